package concursim

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const listPath = "/api/expense/paymentbatch/v1.1/batchlist/"

// member is one child element of a BatchSummary, in document order.
type member struct{ Name, Value string }

// parsedList is a BatchList taken apart without losing order or namespaces.
type parsedList struct {
	Root      xml.Name
	Attrs     []xml.Attr
	Summaries [][]member
}

func parseList(t *testing.T, body []byte) parsedList {
	t.Helper()
	var out parsedList
	dec := xml.NewDecoder(bytes.NewReader(body))
	depth := 0
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("list XML: %v\n%s", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				out.Root, out.Attrs = tok.Name, tok.Attr
			case 2:
				out.Summaries = append(out.Summaries, nil)
			}
			text.Reset()
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			if depth == 3 {
				s := &out.Summaries[len(out.Summaries)-1]
				*s = append(*s, member{tok.Name.Local, text.String()})
			}
			depth--
		}
	}
}

// value returns the named member of a summary.
func value(s []member, name string) string {
	for _, m := range s {
		if m.Name == name {
			return m.Value
		}
	}
	return ""
}

// batchURL returns the Batch-URL of the batch with the given ID.
func (f *fixture) batchURL(t *testing.T, auth, id string) string {
	t.Helper()
	resp, body := f.do(t, http.MethodGet, listPath, auth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	for _, s := range parseList(t, body).Summaries {
		if value(s, "BatchID") == id {
			return s[len(s)-1].Value
		}
	}
	t.Fatalf("batch %s not in list", id)
	return ""
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	open := []string{SeedOpenUSD, SeedOpenEUR, SeedOpenCard, SeedOpenEmpty}
	tests := []struct {
		path string
		want []string
	}{
		{"batchlist/", append(open, SeedClosedUSD)},
		{"batchlist", append(open, SeedClosedUSD)},
		{"batchlist/OPEN", open},
		{"batchlist/open", open},
		{"batchlist/CLOSED", []string{SeedClosedUSD}},
		{"batchlist/Closed", []string{SeedClosedUSD}},
	}
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := f.do(t, http.MethodGet, "/api/expense/paymentbatch/v1.1/"+tt.path, auth)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got []string
			for _, s := range parseList(t, body).Summaries {
				got = append(got, value(s, "BatchID"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("bad status", func(t *testing.T) {
		t.Parallel()
		resp, body := f.do(t, http.MethodGet, listPath+"PENDING", auth)
		wantError(t, resp, body, http.StatusBadRequest, "")
	})
}

var encryptedURL = regexp.MustCompile(`^(.*)/api/expense/paymentbatch/v1\.1/batch/([A-Za-z0-9$]{32})$`)

func TestListShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        Options
		wantElement string
		wantOrigin  string // "" means the test server's own URL
	}{
		{"defaults", Options{}, "Batch-URL", ""},
		{"camel spelling", Options{URLElement: "Batch-Url"}, "Batch-Url", ""},
		{"geolocation", Options{Geolocation: "https://eu2.api.concursolutions.com"}, "Batch-URL",
			"https://eu2.api.concursolutions.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.URLElement, o.Geolocation = tt.opts.URLElement, tt.opts.Geolocation })
			resp, body := f.do(t, http.MethodGet, listPath, "Bearer "+f.accessToken(t))
			if ct := resp.Header.Get("Content-Type"); ct != contentTypeXML {
				t.Errorf("Content-Type = %q", ct)
			}
			l := parseList(t, body)
			if l.Root != (xml.Name{Space: nsPaymentBatch, Local: "BatchList"}) {
				t.Errorf("root = %v", l.Root)
			}
			wantAttrs := []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: nsPaymentBatch},
				{Name: xml.Name{Space: "xmlns", Local: "i"}, Value: nsXSI}}
			if diff := cmp.Diff(wantAttrs, l.Attrs); diff != "" {
				t.Errorf("root attributes (-want +got):\n%s", diff)
			}
			if len(l.Summaries) != 5 {
				t.Fatalf("%d summaries, want 5", len(l.Summaries))
			}
			first := l.Summaries[0]
			u := value(first, tt.wantElement)
			want := []member{
				{"BatchName", "Employee Reimbursements USD - Week 47"}, {"BatchID", SeedOpenUSD},
				{"BatchTotal", "1289.40"}, {"Currency", "USD"}, {"Count", "7"}, {"Type", "Employee"},
				{"PaymentMethod", "Expense Pay by SAP Concur"}, {tt.wantElement, u},
			}
			if diff := cmp.Diff(want, first); diff != "" {
				t.Errorf("first summary (-want +got):\n%s", diff)
			}
			wantOrigin := tt.wantOrigin
			if wantOrigin == "" {
				wantOrigin = f.srv.URL
			}
			keys := map[string]bool{}
			for _, s := range l.Summaries {
				u := value(s, tt.wantElement)
				m := encryptedURL.FindStringSubmatch(u)
				if m == nil || m[1] != wantOrigin {
					t.Errorf("%s = %q, want %s/…/v1.1/batch/{32 of [A-Za-z0-9$]}", tt.wantElement, u, wantOrigin)
					continue
				}
				if strings.Contains(u, value(s, "BatchID")) || keys[m[2]] {
					t.Errorf("URL %q reveals the BatchID or repeats a key", u)
				}
				keys[m[2]] = true
			}
			if bytes.Contains(body, []byte("Status")) {
				t.Errorf("list carries a status element:\n%s", body)
			}
		})
	}
}
