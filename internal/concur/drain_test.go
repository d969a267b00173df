package concur

import (
	"context"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// A refresh whose caller left runs on, detached; Drain waits for it to commit the rotated
// refresh token, so a shutdown does not close the store under it.
func TestDrainWaitsForADetachedRefresh(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.set(func(f *fakeConcur) { f.tokenDelay = 300 * time.Millisecond })
	c, _ := newClient(t, f, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := listOf(ctx, c, batch.ListOpen); err == nil {
		t.Fatal("the caller left before the token came: want an error")
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	redeemed := len(f.redeemed)
	f.mu.Unlock()
	if redeemed != 1 {
		t.Fatalf("redeemed %d refresh tokens, want 1", redeemed)
	}
	creds, err := c.tokens.store.UpdateCredentials(context.Background(),
		func(store.Credentials, bool) (*store.Credentials, error) { return nil, nil }) // a read
	if err != nil || creds.RefreshToken == "" || creds.RefreshToken == "rt-0" {
		t.Errorf("after Drain the store holds %q (%v), want the rotated refresh token", creds.RefreshToken, err)
	}
	// Nothing in flight: Drain returns at once, even with an ended context.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := c.Drain(done); err != nil {
		t.Errorf("Drain with nothing in flight: %v", err)
	}
}
