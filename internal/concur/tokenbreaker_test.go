package concur

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// The token endpoint has its own breaker: its outage opens it, refuses refreshes without
// sending them (the refresh token is not spent), leaves the API breaker closed, and a
// successful probe closes it.
func TestTokenBreaker(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) {
		f.tokenFail = func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "temporarily_unavailable"})
		}
	})
	var tr transitions
	c, _ := newClient(t, f, func(c *Config) {
		// Long enough that the breaker is still open for the third call, even under load.
		c.BreakerThreshold, c.BreakerOpenInterval, c.OnBreakerStateChange = 2, time.Second, tr.hook
	})
	t.Cleanup(c.CloseIdleConnections)
	for i := range 2 {
		_, err := listOf(t.Context(), c, batch.ListOpen)
		if e := wantCode(t, err, batch.CodeUpstreamUnavailable); errors.Is(err, ErrCircuitOpen) || e.Upstream == nil {
			t.Fatalf("call %d: %v, want the token endpoint's 503", i+1, err)
		}
	}
	_, err := listOf(t.Context(), c, batch.ListOpen)
	if e := wantRefused(t, err); !strings.Contains(e.Detail, "token endpoint") {
		t.Errorf("Detail = %q, want it to name the token endpoint", e.Detail)
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Errorf("token endpoint received %d requests, want 2", n)
	}
	if c.BreakerState(BreakerToken) != BreakerOpen || c.BreakerState(BreakerAPI) != BreakerClosed {
		t.Errorf("token breaker %s, API breaker %s; want open and closed",
			c.BreakerState(BreakerToken), c.BreakerState(BreakerAPI))
	}
	if f.apiCalls.Load() != 0 {
		t.Errorf("the API received %d calls without a token", f.apiCalls.Load())
	}

	f.set(func(f *fakeConcur) { f.tokenFail = nil })
	waitState(t, c, BreakerToken, BreakerHalfOpen)
	if _, err := listOf(t.Context(), c, batch.ListOpen); err != nil {
		t.Fatalf("after the token endpoint recovered: %v", err)
	}
	if diff := cmp.Diff([]string{"rt-0"}, f.redeemedTokens()); diff != "" {
		t.Errorf("redeemed refresh tokens (-want +got):\n%s", diff)
	}
	want := []string{"concur-token: closed -> open", "concur-token: open -> half-open", "concur-token: half-open -> closed"}
	if diff := cmp.Diff(want, tr.list()); diff != "" {
		t.Errorf("state changes (-want +got):\n%s", diff)
	}
}

// slowLock is a credential store whose lock takes a while to get (another replica renewing).
type slowLock struct {
	CredentialStore
	wait time.Duration
}

func (s slowLock) UpdateCredentials(ctx context.Context, fn func(store.Credentials, bool) (*store.Credentials, error)) (store.Credentials, error) {
	select {
	case <-time.After(s.wait):
	case <-ctx.Done():
	}
	return s.CredentialStore.UpdateCredentials(ctx, fn)
}

// A token call cut short because the credential store's lock took most of the refresh
// budget is not held against the token endpoint; one that had the whole time-out is.
func TestTokenBreakerLockWait(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		lock time.Duration
		want string
	}{
		{"whole time-out", 0, BreakerOpen},
		{"cut short by the lock wait", 500 * time.Millisecond, BreakerClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.tokenFail = func(w http.ResponseWriter, r *http.Request) {
					_ = r.ParseForm() // read the body, so the server sees the client leave
					<-r.Context().Done()
				}
			})
			c, _ := newClient(t, f, func(c *Config) {
				c.Timeout, c.BreakerThreshold = 400*time.Millisecond, 1
				c.Credentials = slowLock{CredentialStore: newMemCredentials(), wait: tt.lock}
			})
			t.Cleanup(c.CloseIdleConnections)
			_, err := listOf(t.Context(), c, batch.ListOpen)
			if err == nil {
				t.Fatal("list succeeded without a token")
			}
			if got := c.BreakerState(BreakerToken); got != tt.want {
				t.Errorf("token breaker = %s, want %s (err %v)", got, tt.want, err)
			}
		})
	}
}
