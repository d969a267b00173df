package store_test

import (
	"crypto/rand"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// backend is one implementation of store.Store under test.
type backend struct {
	name string
	// fresh returns the Config (Key unset) of a new, empty database, removed at cleanup.
	fresh func(t *testing.T) store.Config
	// raw opens the database of cfg for direct SQL, closed at cleanup.
	raw func(t *testing.T, cfg store.Config) *sql.DB
}

// testConformance runs the behaviour every Store must have against b.
func testConformance(t *testing.T, b backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"UpsertBatches", testUpsertBatches},
		{"UpsertBatchesDuplicates", testUpsertBatchesDuplicates},
		{"UpsertBatchesInvalid", testUpsertBatchesInvalid},
		{"UpsertBatches100k", testUpsertBatches100k},
		{"UpsertBatchesConcurrent", testUpsertBatchesConcurrent},
		{"TimesTruncatedToMicroseconds", testTimesTruncated},
		{"GetBatchNotFound", testGetBatchNotFound},
		{"SetBatchStatus", testSetBatchStatus},
		{"ListBatchesOrder", testListBatchesOrder},
		{"ListBatchesFilters", testListBatchesFilters},
		{"ListBatchesLeftList", testListBatchesLeftList},
		{"ListBatchesLimit", testListBatchesLimit},
		{"CloseStateClock", testCloseStateClock},
		{"ApplyCompareAndSet", testApplyCompareAndSet},
		{"ApplyExclusiveConcurrent", testApplyExclusiveConcurrent},
		{"CloseByKey", testCloseByKey},
		{"DueScheduled", testDueScheduled},
		{"ListCloses", testListCloses},
		{"CloseCorrelationID", testCloseCorrelationID},
		{"CredentialsNotFound", testCredentialsNotFound},
		{"CredentialsRoundTrip", testCredentialsRoundTrip},
		{"CredentialsNoWrite", testCredentialsNoWrite},
		{"CredentialsRollback", testCredentialsRollback},
		{"CredentialsLockExcludes", testCredentialsLockExcludes},
		{"CredentialsNoLostUpdate", testCredentialsNoLostUpdate},
		{"CredentialsEncryptedAtRest", testCredentialsEncryptedAtRest},
		{"CredentialsWrongKey", testCredentialsWrongKey},
		{"CredentialsRedeemingLease", testCredentialsRedeemingLease},
		{"IdempotencyClaim", testIdempotencyClaim},
		{"IdempotencyClaimConcurrent", testIdempotencyClaimConcurrent},
		{"IdempotencyReplace", testIdempotencyReplace},
		{"IdempotencyComplete", testIdempotencyComplete},
		{"IdempotencyRelease", testIdempotencyRelease},
		{"IdempotencyPurge", testIdempotencyPurge},
		{"MixedLoad", testMixedLoad},
		{"OpenTwice", testOpenTwice},
		{"CloseWhileQuerying", testCloseWhileQuerying},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t, b))
		})
	}
}

// harness is one fresh database of a backend.
type harness struct {
	b   backend
	cfg store.Config // with the key
}

func newHarness(t *testing.T, b backend) *harness {
	t.Helper()
	cfg := b.fresh(t)
	cfg.Key = newKey(t)
	return &harness{b: b, cfg: cfg}
}

// open opens a Store instance on the harness's database (each call is another
// instance, as another replica would have), closed at cleanup.
func (h *harness) open(t *testing.T) store.Store {
	t.Helper()
	return h.openKey(t, h.cfg.Key)
}

func (h *harness) openKey(t *testing.T, key []byte) store.Store {
	t.Helper()
	cfg := h.cfg
	cfg.Key = key
	s, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// raw returns direct SQL access to the database.
func (h *harness) raw(t *testing.T) *sql.DB {
	t.Helper()
	return h.b.raw(t, h.cfg)
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// t0 is a time the store keeps exactly (microsecond precision).
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// testBatch returns a batch with every field set from id and n.
func testBatch(id string, n int) batch.Batch {
	s := strconv.Itoa(n)
	return batch.Batch{ID: id, URL: "https://concur.example/batch/" + id + "/" + s, Name: "Batch " + id + " " + s,
		Total: s + ".25", Currency: "EUR", Count: s, Type: "Expense", PaymentMethod: "CBCP" + s,
		Status: batch.StatusOpen}
}

// mustUpsert upserts batches at seenAt.
func mustUpsert(t *testing.T, s store.Store, seenAt time.Time, batches ...batch.Batch) {
	t.Helper()
	if err := s.UpsertBatches(t.Context(), batches, seenAt); err != nil {
		t.Fatalf("UpsertBatches: %v", err)
	}
}

func mustGetBatch(t *testing.T, s store.Store, id string) batch.Batch {
	t.Helper()
	b, err := s.GetBatch(t.Context(), id)
	if err != nil {
		t.Fatalf("GetBatch(%q): %v", id, err)
	}
	return b
}
