package concursim

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// closedFile closes the batch (v1.1) and returns its File-Url.
func (f *fixture) closedFile(t *testing.T, auth, id string) string {
	t.Helper()
	return f.closeOK(t, auth, f.batchURL(t, auth, id), "v1.1").FileURL.Value
}

// sumCents adds the amount column of CSV records (header skipped).
func sumCents(t *testing.T, records [][]string, col int) int64 {
	t.Helper()
	var sum int64
	for _, r := range records[1:] {
		c, err := parseCents(r[col])
		if err != nil {
			t.Fatalf("amount %q: %v", r[col], err)
		}
		sum += c
	}
	return sum
}

func TestFileEmployeeCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		disposition     bool
		wantDisposition string
	}{
		{"no disposition by default", false, ""},
		{"disposition by option", true, `attachment; filename="PaymentBatch_` + SeedOpenUSD + `.csv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.ContentDisposition = tt.disposition })
			auth := "Bearer " + f.accessToken(t)
			resp, body := f.do(t, http.MethodGet, f.closedFile(t, auth, SeedOpenUSD), auth)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv" {
				t.Fatalf("file: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if got := resp.Header.Get("Content-Disposition"); got != tt.wantDisposition {
				t.Errorf("Content-Disposition = %q, want %q", got, tt.wantDisposition)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
			records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatalf("csv: %v", err)
			}
			if diff := cmp.Diff([]string{"EmployeeID", "EmployeeName", "Amount", "Currency"}, records[0]); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if len(records) != 1+7 {
				t.Errorf("%d records, want header + 7 reports", len(records))
			}
			if got := sumCents(t, records, 2); got != 128940 {
				t.Errorf("amounts add up to %d cents, want 128940", got)
			}
			if f.sim.Stats().FilesServed != 1 {
				t.Errorf("FilesServed = %d", f.sim.Stats().FilesServed)
			}
		})
	}
}

func TestFileCardProgramZip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	resp, body := f.do(t, http.MethodGet, f.closedFile(t, auth, SeedOpenCard), auth)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("file: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != int64(len(body)) || !bytes.HasPrefix(body, []byte("PK\x03\x04")) {
		t.Fatalf("Content-Length %d, %d bytes, prefix %q", resp.ContentLength, len(body), body[:4])
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("zip: %v", err)
	}
	contents := map[string][][]string{}
	var names []string
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		records, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
		names = append(names, zf.Name)
		contents[zf.Name] = records
	}
	if diff := cmp.Diff([]string{"AccountingImport.csv", "GeneralLedger.csv"}, names); diff != "" {
		t.Fatalf("entries (-want +got):\n%s", diff)
	}
	if acct := contents["AccountingImport.csv"]; len(acct) != 1+41 || sumCents(t, acct, 3) != 1825075 {
		t.Errorf("accounting import: %d records, want header + 41 adding up to 18250.75", len(acct))
	}
	gl := contents["GeneralLedger.csv"]
	if last := gl[len(gl)-1]; last[3] != "18250.75" {
		t.Errorf("general ledger credit = %q, want the batch total", last[3])
	}
}

func TestFileSizeStreaming(t *testing.T) {
	t.Parallel()
	sizes := []int64{1, 41, 100, 64<<10 + 3, 3<<20 + 7}
	for _, size := range sizes {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) {
				o.Batches = []Batch{{ID: "large", Name: "Large", Total: "1.00", Currency: "USD",
					Type: TypeEmployee, PaymentMethod: "Expense Pay by SAP Concur", Count: 1, FileSize: size}}
			})
			auth := "Bearer " + f.accessToken(t)
			req, _ := http.NewRequest(http.MethodGet, f.closedFile(t, auth, "large"), nil)
			req.Header.Set("Authorization", auth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var head bytes.Buffer
			n, err := io.Copy(&limitedBuffer{&head, 64}, resp.Body)
			if err != nil || n != size || resp.ContentLength != size {
				t.Fatalf("read %d bytes (err %v), Content-Length %d, want %d", n, err, resp.ContentLength, size)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/csv" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !strings.HasPrefix("EmployeeID,EmployeeName,Amount,Currency\r\n", head.String()) &&
				!strings.HasPrefix(head.String(), "EmployeeID,EmployeeName,Amount,Currency\r\n") {
				t.Errorf("file starts %q, want the CSV header", head.String())
			}
		})
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func TestFileUnknownKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	resp, body := f.do(t, http.MethodGet, "/api/expense/paymentbatch/v1.1/batch/NoSuchJobRunKey$/file", auth)
	wantError(t, resp, body, http.StatusNotFound, "")
	// A Batch-URL is not a File-Url.
	resp, body = f.do(t, http.MethodGet, f.batchURL(t, auth, SeedOpenUSD)+"/file", auth)
	wantError(t, resp, body, http.StatusNotFound, "")
	if resp, _ := f.do(t, http.MethodGet, f.closedFile(t, auth, SeedOpenUSD), ""); resp.StatusCode != 401 {
		t.Errorf("file without authorization: %d, want 401", resp.StatusCode)
	}
	if n := f.sim.Stats().FilesServed; n != 0 {
		t.Errorf("FilesServed = %d, want 0", n)
	}
}
