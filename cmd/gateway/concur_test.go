package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/config"
)

// Each of Concur's signals becomes its /readyz warning, with its stable code.
func TestConcurWarnings(t *testing.T) {
	t.Parallel()
	expiry := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	sunset := time.Date(2027, 10, 31, 23, 59, 59, 0, time.UTC)
	sig := concur.Signals{RefreshExpiry: expiry, RefreshExpiring: true, KeepAliveError: "upstream_unavailable: down",
		Sunset: sunset, SunsetValue: "Sun, 31 Oct 2027 23:59:59 GMT", SunsetOperation: concur.OpClose,
		APIWarn: "deprecated", APIWarnOp: concur.OpList}
	got := concurWarnings(func() concur.Signals { return sig })()
	want := map[string]string{
		"concur_refresh_token_expiring": "2027-06-01T00:00:00Z",
		"concur_keepalive_failing":      "upstream_unavailable: down",
		"concur_api_sunset":             "Sun, 31 Oct 2027 23:59:59 GMT",
		"concur_api_warning":            "deprecated",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings = %+v", got)
	}
	for _, w := range got {
		if !strings.Contains(w.Detail, want[w.Code]) {
			t.Errorf("%s: detail %q lacks %q", w.Code, w.Detail, want[w.Code])
		}
	}
	if got[0].At == nil || !got[0].At.Equal(expiry) || got[2].At == nil || !got[2].At.Equal(sunset) {
		t.Errorf("dates: %+v %+v", got[0].At, got[2].At)
	}
	if w := concurWarnings(func() concur.Signals { return concur.Signals{RefreshExpiry: expiry} })(); len(w) != 0 {
		t.Errorf("warnings of a healthy grant: %+v", w)
	}
}

// Each signal is logged at warn, with what to do.
func TestLogSignal(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]string{
		concur.SignalSunset:          "Sunset header",
		concur.SignalAPIWarn:         "x-api-warn header",
		concur.SignalRefreshExpiring: "gateway authorize --replace",
		concur.SignalKeepAliveFailed: "could not renew",
	} {
		var buf bytes.Buffer
		logSignal(zerolog.New(&buf), config.Config{ConcurRefreshKeepAlive: time.Hour}, concur.Signal{Kind: kind, Value: "v"})
		var line struct{ Level, Message, Signal string }
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v: %s", kind, err, buf.String())
		}
		if line.Level != "warn" || line.Signal != kind || !strings.Contains(line.Message, want) {
			t.Errorf("%s: logged %s", kind, buf.String())
		}
	}
}
