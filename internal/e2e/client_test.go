package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	gwclient "github.com/finplat/payment-batch-gateway/api/client"
)

// The typed Go client (api/client) against the real gateway and simulator binaries.
func TestClientAgainstTheRealGateway(t *testing.T) {
	t.Parallel()
	allKey, allEntry := mintKey(t, "payroll-service", "batches:read", "batches:close")
	readKey, readEntry := mintKey(t, "reporting", "batches:read")
	keys := "[" + strings.Trim(allEntry, "[]") + "," + strings.Trim(readEntry, "[]") + "]"
	s := startStack(t, nil, map[string]string{"GATEWAY_API_KEYS": keys})
	s.secrets = append(s.secrets, allKey, readKey)
	ctx := context.Background()
	newClient := func(key string) *gwclient.Client {
		c, err := gwclient.New(gwclient.Config{BaseURL: s.gw.URL, Key: key, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c, reader := newClient(allKey), newClient(readKey)
	// wantCode checks a typed error, and that no key is in it.
	wantCode := func(what string, err error, status int, code string) {
		t.Helper()
		e, ok := errors.AsType[*gwclient.Error](err)
		if !ok || e.Status != status || e.Code != code || gwclient.ErrorCode(err) != code || e.RequestID == "" {
			t.Errorf("%s: %v, want a *gwclient.Error %d %s", what, err, status, code)
		}
		if err != nil && (strings.Contains(fmt.Sprintf("%+v", err), allKey) || strings.Contains(err.Error(), readKey)) {
			t.Errorf("%s: a key is in the error", what)
		}
	}

	// List: every page, then with filters, then one page and its freshness.
	var ids []string
	for b, err := range reader.List(ctx, gwclient.Filter{Limit: 2}) {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		ids = append(ids, b.BatchID)
	}
	if strings.Join(ids, " ") != strings.Join(seededBatches, " ") {
		t.Errorf("List = %q, want %q", ids, seededBatches)
	}
	ids = ids[:0]
	for b, err := range reader.List(ctx, gwclient.Filter{Status: "OPEN", Currency: "USD", Limit: 1}) {
		if err != nil {
			t.Fatalf("List with filters: %v", err)
		}
		ids = append(ids, b.BatchID)
	}
	if strings.Join(ids, " ") != employeeBatch+" "+cardBatch {
		t.Errorf("open USD batches = %q", ids)
	}
	page, err := reader.ListPage(ctx, gwclient.Filter{Status: "OPEN", Limit: 3}, "")
	if err != nil || len(page.Items) != 3 || page.NextCursor == "" || page.AsOf == "" || page.Stale {
		t.Fatalf("ListPage: %+v, %v", page, err)
	}
	_, err = reader.ListPage(ctx, gwclient.Filter{Status: "CLOSED", Limit: 3}, page.NextCursor)
	wantCode("a cursor with other filters", err, 400, "invalid_cursor")
	_, err = reader.ListPage(ctx, gwclient.Filter{Currency: "DOLLARS"}, "")
	wantCode("a bad filter", err, 400, "invalid_request")

	// Get, Close (with an Idempotency-Key, replayed), the guard, the trail, the file.
	d, err := reader.Get(ctx, employeeBatch)
	if err != nil || d.Status != "OPEN" || d.Total != "1289.40" || d.LastClose != nil {
		t.Fatalf("Get before the close: %+v, %v", d, err)
	}
	_, err = reader.Get(ctx, "no-such-batch")
	wantCode("an unknown batch", err, 404, "batch_not_found")

	_, err = reader.Close(ctx, employeeBatch, gwclient.CloseOptions{})
	wantCode("a close with a read-only key", err, 403, "forbidden")
	_, err = newClient("pbg_"+strings.Repeat("A", 43)).Get(ctx, employeeBatch)
	wantCode("an unknown key", err, 401, "unauthorized")

	res, err := c.Close(ctx, employeeBatch, gwclient.CloseOptions{IdempotencyKey: "payroll-run-47"})
	if err != nil || res.BatchStatus != "CLOSED" || res.FileURL == "" {
		t.Fatalf("Close: %+v, %v", res, err)
	}
	again, err := c.Close(ctx, employeeBatch, gwclient.CloseOptions{IdempotencyKey: "payroll-run-47"})
	if err != nil || again != res {
		t.Errorf("a retried Close with its key = %+v, %v; want the first answer %+v", again, err, res)
	}
	_, err = c.Close(ctx, employeeBatch, gwclient.CloseOptions{})
	wantCode("closing a closed batch", err, 409, "batch_already_closed")
	if e, ok := errors.AsType[*gwclient.Error](err); ok && (e.Problem.Recorded == nil || e.Problem.Recorded.FileURL != res.FileURL) {
		t.Errorf("batch_already_closed without the recorded close: %+v", e.Problem)
	}
	_, err = c.Close(ctx, employeeBatch, gwclient.CloseOptions{Regenerate: true})
	wantCode("a regeneration without its scope", err, 403, "forbidden")
	if n := s.stats(t).Closes[employeeBatch]; n != 1 {
		t.Errorf("Concur saw %d closes, want 1", n)
	}

	trail, err := reader.Closes(ctx, employeeBatch, 10)
	if err != nil || len(trail) != 2 || trail[0].Outcome != "refused" || trail[1].Outcome != "closed" || trail[1].Caller != "payroll-service" {
		t.Errorf("Closes = %+v, %v", trail, err)
	}
	d, err = reader.Get(ctx, employeeBatch)
	if err != nil || d.Status != "CLOSED" || d.LastClose == nil || d.LastClose.ID != trail[0].ID {
		t.Errorf("Get after the close: %+v, %v", d, err)
	}

	f, err := reader.File(ctx, employeeBatch)
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	body, err := io.ReadAll(f.Body)
	f.Body.Close()
	if err != nil || len(body) == 0 || !strings.HasPrefix(f.ContentType, "text/csv") || f.Size != int64(len(body)) ||
		!strings.HasSuffix(f.Name, ".csv") {
		t.Errorf("file: %q %q %d bytes (size %d), %v", f.Name, f.ContentType, len(body), f.Size, err)
	}
	_, err = reader.File(ctx, cardBatch)
	wantCode("a batch without a file", err, 404, "file_not_found")
	if st := s.stats(t); st.FilesServed != 1 {
		t.Errorf("files served = %d", st.FilesServed)
	}
}

// A close slower than the client's time-out is a context.DeadlineExceeded, not a hang;
// the gateway still finishes it, and a retry with the same key learns how it ended.
func TestClientTimeoutAgainstTheRealGateway(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil, nil)
	patient, err := gwclient.New(gwclient.Config{BaseURL: s.gw.URL, Key: s.key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patient.Get(context.Background(), employeeBatch); err != nil { // the gateway learns the batch list
		t.Fatal(err)
	}
	hasty, err := gwclient.New(gwclient.Config{BaseURL: s.gw.URL, Key: s.key, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.fault(t, `{"op":"close","mode":"slow","delay":"1500ms","count":1}`)
	_, err = hasty.Close(context.Background(), employeeBatch, gwclient.CloseOptions{IdempotencyKey: "slow-1"})
	if !errors.Is(err, context.DeadlineExceeded) || gwclient.ErrorCode(err) != "" {
		t.Fatalf("a slow close: %v, want a deadline error", err)
	}
	waitFor(t, "the slow close to end and replay", func() bool {
		res, err := patient.Close(context.Background(), employeeBatch, gwclient.CloseOptions{IdempotencyKey: "slow-1"})
		return err == nil && res.BatchStatus == "CLOSED"
	})
	if n := s.stats(t).Closes[employeeBatch]; n != 1 {
		t.Errorf("Concur saw %d closes, want 1", n)
	}
}
