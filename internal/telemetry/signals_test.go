package telemetry

import (
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// The refresh token's expiry and Concur's deprecation notices are exported while known,
// and absent otherwise (an alert on a missing series would fire on a fresh replica).
func TestConcurSignalsMetrics(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var cur concur.Signals
	m := NewMetrics("test")
	m.WatchConcurSignals(func() concur.Signals {
		mu.Lock()
		defer mu.Unlock()
		return cur
	})
	fams := scrape(t, m)
	for _, name := range []string{"gateway_concur_refresh_token_expiry_timestamp_seconds",
		"gateway_concur_api_sunset_timestamp_seconds", "gateway_concur_api_warning"} {
		if fams[name] != nil {
			t.Errorf("%s exported before anything is known", name)
		}
	}
	expiry := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	sunset := time.Date(2027, 10, 31, 23, 59, 59, 0, time.UTC)
	mu.Lock()
	cur = concur.Signals{RefreshExpiry: expiry, Sunset: sunset, SunsetOperation: concur.OpClose,
		APIWarn: "deprecated", APIWarnOp: concur.OpList}
	mu.Unlock()
	fams = scrape(t, m)
	if v := value(fams, "gateway_concur_refresh_token_expiry_timestamp_seconds", l{}); v != float64(expiry.Unix()) {
		t.Errorf("expiry = %v, want %d", v, expiry.Unix())
	}
	if v := value(fams, "gateway_concur_api_sunset_timestamp_seconds", l{"operation": "close"}); v != float64(sunset.Unix()) {
		t.Errorf("sunset = %v, want %d", v, sunset.Unix())
	}
	if v := value(fams, "gateway_concur_api_warning", l{"operation": "list"}); v != 1 {
		t.Errorf("api warning = %v, want 1", v)
	}
}
