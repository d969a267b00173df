package concursim

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handleFile is GET v1.1/batch/{JobRunKey}/file. Every JobRunKey ever issued keeps
// working; the content is derived from the batch alone, so a regenerated file is equal.
func (s *Sim) handleFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, ok := s.files[r.PathValue("key")]
	var batch Batch
	if ok {
		batch = b.Batch
		s.stats.FilesServed++
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, "The file was not found.")
		return
	}

	h := w.Header()
	switch {
	case batch.FileSize > 0:
		s.disposition(h, batch, "csv")
		h.Set("Content-Type", "text/csv")
		h.Set("Content-Length", strconv.FormatInt(batch.FileSize, 10))
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(w, io.LimitReader(&rowReader{}, batch.FileSize), buf)
	case batch.Type == TypeCardProgram:
		body := cardProgramZip(batch)
		s.disposition(h, batch, "zip")
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	default:
		body := employeeCSV(batch)
		s.disposition(h, batch, "csv")
		h.Set("Content-Type", "text/csv")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}

func (s *Sim) disposition(h http.Header, b Batch, ext string) {
	if s.opts.ContentDisposition {
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="PaymentBatch_%s.%s"`, safeName(b.ID), ext))
	}
}

func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '/' {
			return '_'
		}
		return r
	}, id)
}

var employeeNames = []string{
	"Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra",
	"Barbara Liskov", "Donald Knuth", "Margaret Hamilton", "Ken Thompson", "Frances Allen",
}

// line is one report of a batch: who is paid how much.
type line struct {
	EmployeeID, Name, Amount string
}

// lines splits the batch total over its reports, deterministically from the batch ID;
// amounts add up to the total exactly.
func lines(b Batch) []line {
	cents, _ := parseCents(b.Total) // validated by New
	h := fnv.New32a()
	_, _ = h.Write([]byte(b.ID))
	seed := int(h.Sum32() % 90000)
	out := make([]line, b.Count)
	for i := range out {
		c := cents / int64(b.Count)
		if int64(i) < cents%int64(b.Count) {
			c++
		}
		out[i] = line{
			EmployeeID: fmt.Sprintf("E%05d", 10000+(seed+i*7919)%90000),
			Name:       employeeNames[(seed+i)%len(employeeNames)],
			Amount:     formatCents(c),
		}
	}
	return out
}

func employeeCSV(b Batch) []byte {
	var buf bytes.Buffer
	buf.WriteString("EmployeeID,EmployeeName,Amount,Currency\r\n")
	for _, l := range lines(b) {
		fmt.Fprintf(&buf, "%s,%s,%s,%s\r\n", l.EmployeeID, l.Name, l.Amount, b.Currency)
	}
	return buf.Bytes()
}

// cardProgramZip is the Card Program file: an accounting import and a general ledger.
func cardProgramZip(b Batch) []byte {
	var acct, gl bytes.Buffer
	acct.WriteString("BatchID,ReportKey,EmployeeID,Amount,Currency\r\n")
	gl.WriteString("Account,Description,Debit,Credit,Currency\r\n")
	for i, l := range lines(b) {
		fmt.Fprintf(&acct, "%s,R%06d,%s,%s,%s\r\n", b.ID, i+1, l.EmployeeID, l.Amount, b.Currency)
		fmt.Fprintf(&gl, "6400,Card expenses %s,%s,,%s\r\n", l.EmployeeID, l.Amount, b.Currency)
	}
	fmt.Fprintf(&gl, "2100,Card program liability,,%s,%s\r\n", b.Total, b.Currency)

	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	modified := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		name string
		body []byte
	}{
		{"AccountingImport.csv", acct.Bytes()},
		{"GeneralLedger.csv", gl.Bytes()},
	} {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: modified})
		if err == nil {
			_, err = fw.Write(f.body)
		}
		if err != nil {
			panic(err) // writing to memory cannot fail
		}
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}

// rowReader yields an endless CSV: a header, then fixed-width rows. Callers limit it.
type rowReader struct {
	row     int
	pending []byte
}

func (g *rowReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(g.pending) == 0 {
			if g.row == 0 {
				g.pending = []byte("EmployeeID,EmployeeName,Amount,Currency\r\n")
			} else {
				g.pending = fmt.Appendf(g.pending[:0], "E%09d,Employee %09d,%10s,USD\r\n",
					g.row, g.row, formatCents(int64(g.row%100000)+100))
			}
			g.row++
		}
		c := copy(p[n:], g.pending)
		g.pending = g.pending[c:]
		n += c
	}
	return n, nil
}

// parseCents parses a non-negative decimal with at most two places ("1289.40").
func parseCents(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 {
		return 0, fmt.Errorf("%q is not a decimal with at most 2 places", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err1 := strconv.ParseUint(whole, 10, 47)
	f, err2 := strconv.ParseUint(frac, 10, 8)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%q is not a decimal with at most 2 places", s)
	}
	return int64(w*100 + f), nil
}

func formatCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
