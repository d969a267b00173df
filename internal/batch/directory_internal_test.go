package batch

import (
	"context"
	"errors"
	"testing"
	"time"
)

// listScript answers each ListBatches call with the next of its errors (nil: an empty
// list), counting the calls.
type listScript struct {
	Upstream
	errs  []error
	calls int
}

func (u *listScript) ListBatches(context.Context, ListStatus, func(Summary) error) error {
	u.calls++
	if len(u.errs) == 0 {
		return nil
	}
	err := u.errs[0]
	u.errs = u.errs[1:]
	return err
}

type noBatches struct{ Store }

func (noBatches) UpsertBatches(context.Context, []Batch, time.Time) error { return nil }

// Which failed refreshes count toward the minimum interval: one the breaker refused sent
// Concur nothing and does not (the next caller asks again, and is not told the refusal);
// one that reached Concur does, even when its request itself was not sent (the token
// endpoint answered 429 or invalid_client: Concur was asked, and is not asked again).
func TestRefreshCountsWhatReachedConcur(t *testing.T) {
	refused := &Error{Code: CodeUpstreamUnavailable, Delivery: NotSent, Err: ErrCircuitOpen}
	noToken := &Error{Code: CodeUpstreamRateLimited, Delivery: NotSent, Detail: "the token endpoint answered 429"}
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		errs []error // the scripted answers: two list reads a fetch
		// forced: the second fetch is the finisher's forced one (since set)
		forced    bool
		wantErr   error // how the third refresh, within the interval of the first, ends
		wantCalls int   // list reads in all
	}{
		{"refused, then within the interval", []error{refused, refused}, false, nil, 4},
		{"token endpoint failed, then within the interval", []error{noToken, noToken}, false, noToken, 2},
		{"a good fetch, a refused forced one, then within the interval", []error{nil, nil, refused, refused}, true, nil, 4},
		{"a failed fetch, a refused forced one, then within the interval", []error{noToken, noToken, refused, refused}, true, noToken, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &listScript{errs: tt.errs}
			now := t0
			d := &directory{up: up, st: noBatches{}, minInterval: time.Minute, now: func() time.Time { return now }}
			first := d.refresh(t.Context(), time.Time{})
			now = now.Add(time.Second)
			if tt.forced {
				if err := d.refresh(t.Context(), now); !errors.Is(err, ErrCircuitOpen) {
					t.Fatalf("forced refresh: %v, want the refusal", err)
				}
			}
			now = now.Add(time.Second)
			got := d.refresh(t.Context(), time.Time{})
			if !errors.Is(got, tt.wantErr) || (tt.wantErr == nil && got != nil) {
				t.Errorf("refresh within the interval: %v, want %v (the first ended %v)", got, tt.wantErr, first)
			}
			if up.calls != tt.wantCalls {
				t.Errorf("%d list reads, want %d", up.calls, tt.wantCalls)
			}
		})
	}
}
