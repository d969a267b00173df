package telemetry

import (
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

var _ batch.DownloadObserver = (*Metrics)(nil)

func TestDownloadMetrics(t *testing.T) {
	t.Parallel()
	m := NewMetrics("test")
	fams := scrape(t, m)
	for name, labels := range map[string]l{
		"gateway_downloads_in_flight":     {},
		"gateway_downloads_refused_total": {"limit": "caller"},
		"gateway_downloads_total":         {"outcome": "cut"},
	} {
		if v := value(fams, name, labels); v != 0 {
			t.Errorf("%s%v = %v before any download, want 0", name, labels, v)
		}
	}
	m.DownloadAdmitted()
	m.DownloadAdmitted()
	m.DownloadReleased()
	m.DownloadRefused("total")
	m.DownloadEnded("cut")
	m.DownloadEnded("mismatch")
	fams = scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels l
		want   float64
	}{
		{"gateway_downloads_in_flight", l{}, 1},
		{"gateway_downloads_refused_total", l{"limit": "total"}, 1},
		{"gateway_downloads_refused_total", l{"limit": "caller"}, 0},
		{"gateway_downloads_total", l{"outcome": "cut"}, 1},
		{"gateway_downloads_total", l{"outcome": "mismatch"}, 1},
		{"gateway_downloads_total", l{"outcome": "complete"}, 0},
	} {
		if v := value(fams, tc.name, tc.labels); v != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, v, tc.want)
		}
	}
}
