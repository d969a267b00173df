package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

func testOpenTwice(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	put(t, s, concur.Credentials{RefreshToken: "r"})
	versions := func() string {
		rows, err := h.raw(t).QueryContext(t.Context(), "SELECT version_id FROM goose_db_version ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var vs []string
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, fmt.Sprint(v))
		}
		return strings.Join(vs, ",")
	}
	before := versions()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := h.open(t)
	if got := versions(); got != before {
		t.Errorf("goose versions after a second Open = %s, want %s", got, before)
	}
	if !strings.HasSuffix(before, ",1,2,3,4,5,6,7,8") {
		t.Errorf("goose versions = %s, want migrations 1 to 8 applied", before)
	}
	if err := again.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	mustGetBatch(t, again, "A")
	if c, found := mustLoad(t, again); !found || c.RefreshToken != "r" {
		t.Errorf("credentials after reopening = %+v, %v", c, found)
	}
}

// testMixedLoad: 50 goroutines on two instances doing a bit of everything; nothing
// fails, and the race detector has something to look at.
func testMixedLoad(t *testing.T, h *harness) {
	stores := []store.Store{h.open(t), h.open(t)}
	mustUpsert(t, stores[0], at(0), testBatch("A", 0))
	var wg sync.WaitGroup
	for i := range 50 {
		s := stores[i%2]
		wg.Go(func() {
			ctx := t.Context()
			id := fmt.Sprint("B", i%5)
			now := at(time.Duration(i) * time.Second)
			if err := s.UpsertBatches(ctx, []batch.Batch{testBatch(id, i), testBatch("A", i)}, now); err != nil {
				t.Errorf("UpsertBatches: %v", err)
				return
			}
			if _, err := s.GetBatch(ctx, id); err != nil {
				t.Errorf("GetBatch: %v", err)
			}
			if b, err := s.GetBatch(ctx, id); err == nil {
				att := attempt(id, b.Close.Now, fmt.Sprint("r", i))
				to := batch.CloseState{State: "closing", Prev: b.Close.State}
				if _, _, err := s.Apply(ctx, batch.Change{BatchID: id, From: b.Close.Version, To: &to, Begin: &att}); err != nil &&
					!errors.Is(err, batch.ErrStateChanged) {
					t.Errorf("Apply: %v", err)
				}
			}
			r := refused(id, now, fmt.Sprint("x", i))
			if _, _, err := s.Apply(ctx, batch.Change{BatchID: id, Begin: &r}); err != nil {
				t.Errorf("Apply (refusal): %v", err)
			}
			if _, err := s.ListCloses(ctx, id, 10); err != nil {
				t.Errorf("ListCloses: %v", err)
			}
			if _, _, err := s.ClaimIdempotencyKey(ctx, claim(fmt.Sprint("k", i%7), fmt.Sprint("r", i), now), now); err != nil {
				t.Errorf("ClaimIdempotencyKey: %v", err)
			}
			if _, _, err := s.LoadCredentials(ctx); err != nil {
				t.Errorf("LoadCredentials: %v", err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for _, tc := range []struct {
		name   string
		cfg    store.Config
		secret string // must not appear in the error
	}{
		{"no key", store.Config{DataDir: t.TempDir()}, ""},
		{"short key", store.Config{DataDir: t.TempDir(), Key: key[:16]}, ""},
		{"SQLite without a directory", store.Config{Key: key}, ""},
		{"unknown scheme", store.Config{URL: "mysql://u:hunter2secret@db/x", Key: key}, "hunter2secret"},
		{"unparsable postgres URL", store.Config{URL: "postgres://u:hunter2secret@db:notaport/x", Key: key}, "hunter2secret"},
		{"unreachable postgres", store.Config{
			URL: "postgres://gw:hunter2secret@127.0.0.1:1/gw?sslmode=disable&connect_timeout=1", Key: key}, "hunter2secret"},
		{"password in the query", store.Config{
			URL: "postgresql://127.0.0.1:1/gw?password=hunter2secret&sslmode=disable&connect_timeout=1", Key: key}, "hunter2secret"},
		{"escaped password", store.Config{
			URL: "postgres://gw:hunter2%40secret@127.0.0.1:1/gw?sslmode=disable&connect_timeout=1", Key: key}, "hunter2@secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := store.Open(t.Context(), tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open = nil error, want one")
			}
			t.Log(err)
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("the error shows the password: %v", err)
			}
			if tc.secret != "" && strings.Contains(err.Error(), strings.ReplaceAll(tc.secret, "@", "%40")) {
				t.Errorf("the error shows the escaped password: %v", err)
			}
		})
	}
}

// Closing the store while calls still run (a shutdown whose drain gave up on a hanging
// close) is no data race: the calls fail, the store closes.
func testCloseWhileQuerying(t *testing.T, h *harness) {
	s := h.open(t)
	mustUpsert(t, s, at(0), testBatch("A", 1))
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for range 4 {
		wg.Go(func() {
			started <- struct{}{}
			for {
				if _, err := s.GetBatch(t.Context(), "A"); err != nil {
					return
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close while querying: %v", err)
	}
	wg.Wait()
}
