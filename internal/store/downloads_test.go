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
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// The downloads' conformance suite, on both dialects.
func TestSQLiteDownloads(t *testing.T) {
	t.Parallel()
	testDownloads(t, sqliteBackend)
}

func TestPostgresDownloads(t *testing.T) {
	t.Parallel()
	storetest.PostgresURL(t) // skips the whole test, loudly, without PostgreSQL
	testDownloads(t, postgresBackend)
}

func testDownloads(t *testing.T, b backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"FirstCompleteRecordsFingerprint", testDownloadFirstComplete},
		{"IncompleteRecordsNoFingerprint", testDownloadIncomplete},
		{"LaterDifferentIsMismatch", testDownloadLaterDifferent},
		{"ConcurrentFirstAgree", testDownloadConcurrentFirst},
		{"CloseNotFound", testDownloadCloseNotFound},
		{"List", testDownloadList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t, b))
		})
	}
}

// closed records a finished close of a new batch id and returns it.
func closed(t *testing.T, s store.Store, id string) batch.Close {
	t.Helper()
	mustUpsert(t, s, at(0), testBatch(id, 1))
	_, c, err := s.Apply(t.Context(), batch.Change{BatchID: id, Begin: &batch.Close{BatchID: id, Caller: "c", RequestID: "r",
		StartedAt: at(0), EndedAt: at(time.Second), Outcome: batch.OutcomeClosed, FileURL: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func download(c batch.Close, requestID, sum string, n int64, o batch.DownloadOutcome) batch.Download {
	return batch.Download{CloseID: c.ID, Caller: "ap-portal", RequestID: requestID,
		StartedAt: at(time.Minute), EndedAt: at(2 * time.Minute), Bytes: n, SHA256: sum, Outcome: o}
}

func mustRecord(t *testing.T, s store.Store, d batch.Download) (batch.Download, batch.Fingerprint, bool) {
	t.Helper()
	rec, fp, found, err := s.RecordDownload(t.Context(), d)
	if err != nil {
		t.Fatalf("RecordDownload: %v", err)
	}
	return rec, fp, found
}

func testDownloadFirstComplete(t *testing.T, h *harness) {
	s := h.open(t)
	c := closed(t, s, "A")
	if _, err := s.FileFingerprint(t.Context(), c.ID); !errors.Is(err, batch.ErrNotStored) {
		t.Fatalf("FileFingerprint before any download = %v, want ErrNotStored", err)
	}
	in := download(c, "r1", "aa", 10, batch.DownloadComplete)
	rec, fp, found := mustRecord(t, s, in)
	in.ID, in.BatchID = rec.ID, "A"
	if diff := cmp.Diff(in, rec); diff != "" || rec.ID <= 0 {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	want := batch.Fingerprint{CloseID: c.ID, SHA256: "aa", Size: 10, DownloadID: rec.ID, RecordedAt: at(2 * time.Minute)}
	if diff := cmp.Diff(want, fp); diff != "" || !found {
		t.Errorf("fingerprint found=%v (-want +got):\n%s", found, diff)
	}
	got, err := s.FileFingerprint(t.Context(), c.ID)
	if diff := cmp.Diff(want, got); diff != "" || err != nil {
		t.Errorf("FileFingerprint = %v (-want +got):\n%s", err, diff)
	}
	// The same file again is complete, and leaves the fingerprint as it was.
	again, fp2, _ := mustRecord(t, s, download(c, "r2", "aa", 10, batch.DownloadComplete))
	if again.Outcome != batch.DownloadComplete || fp2 != want {
		t.Errorf("second download: %s, fingerprint %+v; want complete, %+v", again.Outcome, fp2, want)
	}
}

func testDownloadIncomplete(t *testing.T, h *harness) {
	s := h.open(t)
	c := closed(t, s, "A")
	for _, o := range []batch.DownloadOutcome{batch.DownloadCut, batch.DownloadFailed, batch.DownloadMismatch} {
		rec, _, found := mustRecord(t, s, download(c, "r-"+string(o), "aa", 5, o))
		if found || rec.Outcome != o {
			t.Errorf("%s download: recorded %s, fingerprint found %v; want %s, none", o, rec.Outcome, found, o)
		}
	}
	if _, err := s.FileFingerprint(t.Context(), c.ID); !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("FileFingerprint after incomplete downloads = %v, want ErrNotStored", err)
	}
	if _, _, _, err := s.RecordDownload(t.Context(), download(c, "r", "aa", 5, "whatever")); err == nil {
		t.Error("RecordDownload with an unknown outcome = nil error, want one")
	}
}

func testDownloadLaterDifferent(t *testing.T, h *harness) {
	s := h.open(t)
	c := closed(t, s, "A")
	mustRecord(t, s, download(c, "r1", "aa", 10, batch.DownloadComplete))
	for name, d := range map[string]batch.Download{
		"digest": download(c, "r2", "bb", 10, batch.DownloadComplete),
		"size":   download(c, "r3", "aa", 11, batch.DownloadComplete),
	} {
		rec, fp, found := mustRecord(t, s, d)
		if rec.Outcome != batch.DownloadMismatch || !found || fp.SHA256 != "aa" || fp.Size != 10 {
			t.Errorf("%s differs: recorded %s, fingerprint %+v; want mismatch, the first one's", name, rec.Outcome, fp)
		}
	}
}

// testDownloadConcurrentFirst: first complete downloads racing from several replicas
// all see one fingerprint, the one recorded.
func testDownloadConcurrentFirst(t *testing.T, h *harness) {
	c := closed(t, h.open(t), "A")
	const n = 8
	fps := make([]batch.Fingerprint, n)
	outcomes := make([]batch.DownloadOutcome, n)
	var wg sync.WaitGroup
	for i := range n {
		s := h.open(t)
		wg.Go(func() {
			rec, fp, found, err := s.RecordDownload(t.Context(),
				download(c, fmt.Sprint("r", i), fmt.Sprint("sum", i), 10, batch.DownloadComplete))
			if err != nil || !found {
				t.Errorf("RecordDownload %d: found %v, %v", i, found, err)
			}
			fps[i], outcomes[i] = fp, rec.Outcome
		})
	}
	wg.Wait()
	complete := 0
	for i := range n {
		if fps[i] != fps[0] {
			t.Errorf("download %d saw fingerprint %+v, download 0 %+v", i, fps[i], fps[0])
		}
		if outcomes[i] == batch.DownloadComplete {
			complete++
			if fps[i].SHA256 != fmt.Sprint("sum", i) {
				t.Errorf("download %d complete, but the fingerprint is %s", i, fps[i].SHA256)
			}
		}
	}
	if complete != 1 {
		t.Errorf("%d downloads complete, want 1 (the others mismatch)", complete)
	}
}

func testDownloadCloseNotFound(t *testing.T, h *harness) {
	s := h.open(t)
	_, _, _, err := s.RecordDownload(t.Context(), batch.Download{CloseID: 999, Outcome: batch.DownloadFailed})
	if !errors.Is(err, batch.ErrNotStored) {
		t.Errorf("RecordDownload of no close = %v, want ErrNotStored", err)
	}
}

func testDownloadList(t *testing.T, h *harness) {
	s := h.open(t)
	c1 := closed(t, s, "A")
	_, c2, err := s.Apply(t.Context(), batch.Change{BatchID: "A", Begin: &batch.Close{BatchID: "A", StartedAt: at(time.Hour),
		EndedAt: at(time.Hour), Outcome: batch.OutcomeClosed, FileURL: "f2"}})
	if err != nil {
		t.Fatal(err)
	}
	other := closed(t, s, "B")
	var want1 []batch.Download
	for i := range 4 {
		rec, _, _ := mustRecord(t, s, download(c1, fmt.Sprint("a", i), "aa", 10, batch.DownloadComplete))
		want1 = append([]batch.Download{rec}, want1...)
	}
	rec2, _, _ := mustRecord(t, s, download(c2, "b", "", 0, batch.DownloadFailed))
	mustRecord(t, s, download(other, "o", "cc", 1, batch.DownloadComplete))

	got, err := s.ListDownloads(t.Context(), "A", 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]batch.Download{rec2}, want1[:3]...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListDownloads(A, 0, 3) (-want +got):\n%s", diff)
	}
	got, err = s.ListDownloads(t.Context(), "A", c2.ID, 3)
	if diff := cmp.Diff([]batch.Download{rec2}, got); diff != "" || err != nil {
		t.Errorf("ListDownloads(A, since c2) = %v (-want +got):\n%s", err, diff)
	}
	if _, err := s.ListDownloads(t.Context(), "A", 0, 0); err == nil {
		t.Error("ListDownloads with perClose 0 = nil error, want one")
	}
}
