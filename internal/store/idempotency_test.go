package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// claim returns a claim of key by requestID at now: a one-minute lease, a day to live.
func claim(key, requestID string, now time.Time) store.Idempotency {
	return store.Idempotency{Caller: "payroll", Key: key, Fingerprint: "POST /batches/A/close",
		RequestID: requestID, LeaseUntil: now.Add(time.Minute), ExpiresAt: now.Add(24 * time.Hour),
		CreatedAt: now}
}

func mustClaim(t *testing.T, s store.Store, rec store.Idempotency, now time.Time) (store.Idempotency, bool) {
	t.Helper()
	got, claimed, err := s.ClaimIdempotencyKey(t.Context(), rec, now)
	if err != nil {
		t.Fatalf("ClaimIdempotencyKey: %v", err)
	}
	return got, claimed
}

func testIdempotencyClaim(t *testing.T, h *harness) {
	s := h.open(t)
	rec := claim("k1", "r1", at(0))
	got, claimed := mustClaim(t, s, rec, at(0))
	want := rec
	want.State = store.IdempotencyInProgress
	if diff := cmp.Diff(want, got); !claimed || diff != "" {
		t.Errorf("first claim: claimed %v (-want +got):\n%s", claimed, diff)
	}

	// Live and in progress: returned as it is, not claimed.
	again, claimed := mustClaim(t, s, claim("k1", "r2", at(30*time.Second)), at(30*time.Second))
	if diff := cmp.Diff(want, again); claimed || diff != "" {
		t.Errorf("claim of a live key: claimed %v (-want +got):\n%s", claimed, diff)
	}
	// Keys are scoped per caller.
	other := claim("k1", "r3", at(0))
	other.Caller = "treasury"
	if _, claimed := mustClaim(t, s, other, at(0)); !claimed {
		t.Error("another caller's claim of the same key was refused")
	}
	if _, _, err := s.ClaimIdempotencyKey(t.Context(), store.Idempotency{Caller: "c", Key: "k"}, at(0)); err == nil {
		t.Error("a claim without lease and expiry = nil error, want one")
	}
}

func testIdempotencyClaimConcurrent(t *testing.T, h *harness) {
	stores := []store.Store{h.open(t), h.open(t)}
	const n = 50
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		got     = make([]store.Idempotency, n)
		claimed = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], claimed[i], errs[i] = stores[i%2].ClaimIdempotencyKey(t.Context(),
				claim("k", fmt.Sprint("r", i), at(0)), at(0))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if claimed[i] {
			if winner >= 0 {
				t.Errorf("claims %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no claim won")
	}
	for i := range n {
		if got[i].RequestID != fmt.Sprint("r", winner) {
			t.Errorf("claim %d sees request %q, want the winner r%d", i, got[i].RequestID, winner)
		}
	}
}

func testIdempotencyReplace(t *testing.T, h *harness) {
	s := h.open(t)
	for _, tc := range []struct {
		name    string
		done    bool // completed rather than in progress
		now     time.Duration
		claimed bool
	}{
		{"in progress, lease live", false, 59 * time.Second, false},
		{"in progress, lease expired", false, time.Minute, true},
		{"done, live", true, 23 * time.Hour, false},
		{"done, lease over but live", true, 2 * time.Minute, false},
		{"done, expired", true, 24 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "k-" + tc.name
			first, _ := mustClaim(t, s, claim(key, "r1", at(0)), at(0))
			if tc.done {
				first.State, first.Status, first.Body = store.IdempotencyDone, 200, []byte(`{}`)
				if err := s.CompleteIdempotencyKey(t.Context(), first); err != nil {
					t.Fatal(err)
				}
			}
			now := at(tc.now)
			got, claimed := mustClaim(t, s, claim(key, "r2", now), now)
			wantRequest := "r1"
			if tc.claimed {
				wantRequest = "r2"
			}
			if claimed != tc.claimed || got.RequestID != wantRequest {
				t.Errorf("claim = request %q, claimed %v; want %q, %v", got.RequestID, claimed, wantRequest, tc.claimed)
			}
			if tc.claimed && (got.State != store.IdempotencyInProgress || got.Body != nil) {
				t.Errorf("replacing claim = %+v, want a fresh in-progress record", got)
			}
		})
	}
}

func testIdempotencyComplete(t *testing.T, h *harness) {
	s := h.open(t)
	rec, _ := mustClaim(t, s, claim("k", "r1", at(0)), at(0))
	done := rec
	done.State, done.Status, done.ContentType = store.IdempotencyDone, 503, "application/problem+json"
	done.RetryAfter, done.Body = "5", []byte(`{"code":"upstream_unavailable"}`)
	done.ExpiresAt = at(48 * time.Hour)
	if err := s.CompleteIdempotencyKey(t.Context(), done); err != nil {
		t.Fatal(err)
	}
	got, claimed := mustClaim(t, s, claim("k", "r2", at(time.Hour)), at(time.Hour))
	want := done
	want.LeaseUntil = time.Time{} // a done record holds no lease
	if diff := cmp.Diff(want, got); claimed || diff != "" {
		t.Errorf("claim of a done key: claimed %v (-want +got):\n%s", claimed, diff)
	}
	// Still live after a day, as the completion extended it.
	if _, claimed := mustClaim(t, s, claim("k", "r3", at(30*time.Hour)), at(30*time.Hour)); claimed {
		t.Error("a done key was claimed before its extended expiry")
	}

	// Only the claim's own request may complete it.
	mustClaim(t, s, claim("k2", "r1", at(0)), at(0))
	stranger := claim("k2", "someone-else", at(0))
	stranger.Status = 200
	if err := s.CompleteIdempotencyKey(t.Context(), stranger); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("CompleteIdempotencyKey by another request = %v, want batch.ErrNotStored", err)
	}
}

func testIdempotencyRelease(t *testing.T, h *harness) {
	s := h.open(t)
	mustClaim(t, s, claim("k", "r1", at(0)), at(0))
	if err := s.ReleaseIdempotencyKey(t.Context(), "payroll", "k", "r0"); err != nil { // not r1's: kept
		t.Fatal(err)
	}
	if got, claimed := mustClaim(t, s, claim("k", "r2", at(time.Second)), at(time.Second)); claimed {
		t.Errorf("another request released r1's claim: %+v", got)
	}
	if err := s.ReleaseIdempotencyKey(t.Context(), "payroll", "k", "r1"); err != nil {
		t.Fatal(err)
	}
	if got, claimed := mustClaim(t, s, claim("k", "r2", at(time.Second)), at(time.Second)); !claimed {
		t.Errorf("claim after release: %+v, not claimed", got)
	}
	if err := s.ReleaseIdempotencyKey(t.Context(), "payroll", "never-claimed", "r1"); err != nil {
		t.Errorf("release of an unknown key = %v, want nil", err)
	}

	// A recorded answer is not released.
	rec, _ := mustClaim(t, s, claim("done", "r1", at(0)), at(0))
	rec.Status = 201
	if err := s.CompleteIdempotencyKey(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseIdempotencyKey(t.Context(), "payroll", "done", "r1"); err != nil {
		t.Fatal(err)
	}
	if got, claimed := mustClaim(t, s, claim("done", "r2", at(time.Second)), at(time.Second)); claimed || got.Status != 201 {
		t.Errorf("after releasing a done key: claim = %+v, %v; want the recorded answer", got, claimed)
	}
}

func testIdempotencyPurge(t *testing.T, h *harness) {
	s := h.open(t)
	for i, ttl := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		rec := claim(fmt.Sprint("k", i), "r", at(0))
		rec.ExpiresAt = at(ttl)
		mustClaim(t, s, rec, at(0))
	}
	for _, tc := range []struct {
		now  time.Duration
		want int64
	}{
		{30 * time.Minute, 0},
		{2 * time.Hour, 2}, // expiring at now counts as expired
		{2 * time.Hour, 0},
		{24 * time.Hour, 1},
	} {
		n, err := s.PurgeIdempotencyKeys(t.Context(), at(tc.now))
		if err != nil || n != tc.want {
			t.Errorf("PurgeIdempotencyKeys(+%v) = %d, %v; want %d", tc.now, n, err, tc.want)
		}
	}
}
