package concur

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

func TestOpenFile(t *testing.T) {
	t.Parallel()
	zip := append([]byte("PK\x03\x04"), bytes.Repeat([]byte{0, 1, 2, 0xff}, 5000)...)
	csv := []byte("employee,amount\nE1,10.00\n")
	tests := []struct {
		name        string
		contentType string // "" sends none
		body        []byte
		length      bool // send Content-Length
		disposition string
		wantType    string
	}{
		{"csv as sent", "text/csv; charset=utf-8", csv, true, `attachment; filename="b.csv"`, "text/csv; charset=utf-8"},
		{"zip as sent", "application/zip", zip, false, "", "application/zip"},
		{"zip sniffed", "application/octet-stream", zip, true, "", "application/zip"},
		{"csv sniffed", "", csv, false, "", "text/csv"},
		{"tiny sniffed", "", []byte("a"), true, "", "text/csv"},
		{"empty sniffed", "", nil, true, "", "text/csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.api = func(w http.ResponseWriter, r *http.Request) {
					if r.Header.Get("Accept") != "*/*" || r.Method != http.MethodGet {
						t.Errorf("%s Accept %q", r.Method, r.Header.Get("Accept"))
					}
					w.Header()["Content-Type"] = nil // no sniffing by net/http
					if tt.contentType != "" {
						w.Header().Set("Content-Type", tt.contentType)
					}
					if tt.disposition != "" {
						w.Header().Set("Content-Disposition", tt.disposition)
					}
					if tt.length {
						w.Header().Set("Content-Length", strconv.Itoa(len(tt.body)))
					}
					w.(http.Flusher).Flush() // headers first: no Content-Length unless set
					w.Write(tt.body)
				}
			})
			c, _ := newClient(t, f, nil)
			file, err := c.OpenFile(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Body.Close()
			got, err := io.ReadAll(file.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body differs: got %d bytes, want %d", len(got), len(tt.body))
			}
			wantLen := int64(-1)
			if tt.length {
				wantLen = int64(len(tt.body))
			}
			assertEqual(t, batch.File{ContentType: tt.wantType, ContentLength: wantLen,
				ContentDisposition: tt.disposition}, *file, cmpopts.IgnoreFields(batch.File{}, "Body"))
		})
	}
}

// Each Read must make progress within Timeout: a slow but steady file passes, a stalled one fails.
func TestOpenFileIdleTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		gaps  []time.Duration // pause before each chunk
		code  batch.Code      // "" for success
		total int
	}{
		{"steady, longer than the time-out in total", []time.Duration{0, 100, 100, 100, 100, 100}, "", 6},
		{"stalls", []time.Duration{0, 50, 3000}, batch.CodeUpstreamTimeout, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.set(func(f *fakeConcur) {
				f.api = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/csv")
					for _, gap := range tt.gaps {
						select {
						case <-time.After(gap * time.Millisecond):
						case <-r.Context().Done():
							return
						}
						w.Write([]byte("x,y\n"))
						w.(http.Flusher).Flush()
					}
				}
			})
			c, _ := newClient(t, f, func(c *Config) { c.Timeout = 300 * time.Millisecond })
			file, err := c.OpenFile(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Body.Close()
			got, err := io.ReadAll(file.Body)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				wantCode(t, err, tt.code)
			}
			if len(got) != 4*tt.total {
				t.Errorf("read %d bytes, want %d", len(got), 4*tt.total)
			}
		})
	}
}

// A slow consumer is not a stalled Concur: the idle timer runs only inside Read.
func TestOpenFileSlowConsumer(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, _ := newClient(t, f, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	c.tokens.timeout = 5 * time.Second // the test is about the file, not a slow refresh under load
	file, err := c.OpenFile(t.Context(), f.srv.URL+"/api/expense/paymentbatch/v1.1/batch/J0b$Run/file")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Body.Close()
	time.Sleep(600 * time.Millisecond) // three time-outs without a Read
	if got, err := io.ReadAll(file.Body); err != nil || string(got) != "a,b\n1,2\n" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}
