package concursim

import (
	"encoding/xml"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// batchStatus is the close answer; FileURLNil records i:nil="true".
type batchStatus struct {
	XMLName     xml.Name
	BatchStatus string `xml:"BatchStatus"`
	FileURL     struct {
		Value string `xml:",chardata"`
		Nil   string `xml:"http://www.w3.org/2001/XMLSchema-instance nil,attr"`
	} `xml:"File-Url"`
	Status      string `xml:"Status"`
	JobQueueKey string `xml:"JobQueueKey"`
}

// closeBatch posts to {batchURL}/close, with v1.1 swapped for version.
func (f *fixture) closeBatch(t *testing.T, auth, batchURL, version string) (*http.Response, []byte) {
	t.Helper()
	return f.do(t, http.MethodPost, strings.Replace(batchURL, "/v1.1/", "/"+version+"/", 1)+"/close", auth)
}

// closeOK closes and parses a successful answer.
func (f *fixture) closeOK(t *testing.T, auth, batchURL, version string) batchStatus {
	t.Helper()
	resp, body := f.closeBatch(t, auth, batchURL, version)
	return parseStatus(t, resp, body)
}

func parseStatus(t *testing.T, resp *http.Response, body []byte) batchStatus {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != contentTypeXML {
		t.Fatalf("close: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var bs batchStatus
	if err := xml.Unmarshal(body, &bs); err != nil {
		t.Fatalf("close body: %v\n%s", err, body)
	}
	if bs.XMLName != (xml.Name{Space: nsPaymentBatch, Local: "BatchStatus"}) {
		t.Errorf("root = %v", bs.XMLName)
	}
	if len(bs.JobQueueKey) != 24 || !strings.Contains(bs.JobQueueKey, "$") || !validKey(bs.JobQueueKey) {
		t.Errorf("JobQueueKey = %q, want 24 of [A-Za-z0-9$] with a $", bs.JobQueueKey)
	}
	return bs
}

// listIDs returns the IDs in batchlist/{status}.
func (f *fixture) listIDs(t *testing.T, auth, status string) []string {
	t.Helper()
	_, body := f.do(t, http.MethodGet, listPath+status, auth)
	var ids []string
	for _, s := range parseList(t, body).Summaries {
		ids = append(ids, value(s, "BatchID"))
	}
	return ids
}

var fileURL = regexp.MustCompile(`^(.*)/api/expense/paymentbatch/v1\.1/batch/([A-Za-z0-9$]{32})/file$`)

func TestCloseV11AndRegenerate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	u := f.batchURL(t, auth, SeedOpenUSD)

	var files []string
	for i := range 3 {
		bs := f.closeOK(t, auth, u, "v1.1")
		if bs.BatchStatus != "CLOSED" || bs.Status != "SUCCESS" {
			t.Errorf("close %d: %+v", i, bs)
		}
		m := fileURL.FindStringSubmatch(bs.FileURL.Value)
		if m == nil || m[1] != f.srv.URL {
			t.Fatalf("File-Url = %q", bs.FileURL.Value)
		}
		files = append(files, bs.FileURL.Value)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(files)))) != 3 {
		t.Errorf("File-Urls repeat: %q", files)
	}
	if got := f.listIDs(t, auth, "CLOSED"); !slices.Contains(got, SeedOpenUSD) {
		t.Errorf("CLOSED list %v lacks the closed batch", got)
	}
	// Every file URL ever issued keeps working, with the same content.
	var first []byte
	for _, fu := range files {
		resp, body := f.do(t, http.MethodGet, fu, auth)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", fu, resp.StatusCode)
		}
		if first == nil {
			first = body
		} else if string(body) != string(first) {
			t.Errorf("regenerated file differs")
		}
	}
	st := f.sim.Stats()
	want := Stats{TokenRequests: 1, TokenRefreshes: 1, ListCalls: 2, FilesServed: 3,
		Requests:        map[string]int{"token": 1, "list": 2, "close": 3, "file": 3},
		PresentedTokens: []string{testRefresh}, RedeemedTokens: []string{testRefresh},
		Closes: map[string]int{SeedOpenUSD: 3}, Regenerations: map[string]int{SeedOpenUSD: 2}, AsyncCloses: map[string]int{}}
	if diff := cmp.Diff(want, st, ignoreIssued); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestCloseSeededClosedBatchRegenerates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	f.closeOK(t, auth, f.batchURL(t, auth, SeedClosedUSD), "v1.1")
	st := f.sim.Stats()
	if st.Closes[SeedClosedUSD] != 1 || st.Regenerations[SeedClosedUSD] != 1 {
		t.Errorf("closes %v regenerations %v, want 1 and 1", st.Closes, st.Regenerations)
	}
}

func TestCloseV12Async(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AsyncCloseDelay = 50 * time.Millisecond })
	auth := "Bearer " + f.accessToken(t)
	u := f.batchURL(t, auth, SeedOpenEUR)

	resp, body := f.closeBatch(t, auth, u, "v1.2")
	bs := parseStatus(t, resp, body)
	if bs.Status != "SUCCESS" || bs.BatchStatus != "" || bs.FileURL.Value != "" || bs.FileURL.Nil != "true" {
		t.Errorf("v1.2 answer = %+v, want SUCCESS, a JobQueueKey and a nil File-Url\n%s", bs, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(f.listIDs(t, auth, "CLOSED"), SeedOpenEUR) {
		if time.Now().After(deadline) {
			t.Fatal("batch never reached the CLOSED list")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Concur's flow: after the asynchronous close, v1.1 close yields the file.
	bs = f.closeOK(t, auth, u, "v1.1")
	if resp, _ := f.do(t, http.MethodGet, bs.FileURL.Value, auth); resp.StatusCode != http.StatusOK {
		t.Errorf("file after async close: %d", resp.StatusCode)
	}
	st := f.sim.Stats()
	if st.AsyncCloses[SeedOpenEUR] != 1 || st.Closes[SeedOpenEUR] != 1 || st.Regenerations[SeedOpenEUR] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCloseStopsAsyncTimers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.AsyncCloseDelay = time.Hour })
	auth := "Bearer " + f.accessToken(t)
	f.closeOK(t, auth, f.batchURL(t, auth, SeedOpenUSD), "v1.2")
	f.sim.Close()
	f.sim.mu.Lock()
	pending := len(f.sim.timers)
	f.sim.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d timers pending after Close", pending)
	}
	if got := f.listIDs(t, auth, "CLOSED"); slices.Contains(got, SeedOpenUSD) {
		t.Errorf("batch closed although its timer was stopped")
	}
	// After Close, a v1.2 close completes at once.
	f.closeOK(t, auth, f.batchURL(t, auth, SeedOpenEUR), "v1.2")
	if got := f.listIDs(t, auth, "CLOSED"); !slices.Contains(got, SeedOpenEUR) {
		t.Errorf("v1.2 close after Close did not complete at once")
	}
}

func TestCloseErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	base := f.srv.URL + "/api/expense/paymentbatch/"
	tests := []struct {
		name    string
		url     func() string
		auth    string
		version string
		status  int
		msg     string
	}{
		{"no reports v1.1", func() string { return f.batchURL(t, auth, SeedOpenEmpty) }, auth, "v1.1", 500, msgNoReports},
		{"no reports v1.2", func() string { return f.batchURL(t, auth, SeedOpenEmpty) }, auth, "v1.2", 500, msgNoReports},
		{"plain BatchID in URI", func() string { return base + "v1.1/batch/" + SeedOpenUSD }, auth, "v1.1", 400, msgInvalidBatch},
		{"unknown numeric id", func() string { return base + "v1.1/batch/" + SeedOpenEUR }, auth, "v1.1", 404, msgInvalidBatch},
		{"unknown key", func() string { return base + "v1.1/batch/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$" }, auth, "v1.2", 404, msgInvalidBatch},
		{"unknown version", func() string { return f.batchURL(t, auth, SeedOpenUSD) }, auth, "v1.3", 404, ""},
		{"no authorization", func() string { return f.batchURL(t, auth, SeedOpenUSD) }, "", "v1.1", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := f.closeBatch(t, tt.auth, tt.url(), tt.version)
			wantError(t, resp, body, tt.status, tt.msg)
		})
	}
}

// unknownLength hides the length of a body so the client sends it chunked.
type unknownLength struct{ io.Reader }

func TestCloseRefusesChunked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	auth := "Bearer " + f.accessToken(t)
	req, err := http.NewRequest(http.MethodPost, f.batchURL(t, auth, SeedOpenUSD)+"/close",
		unknownLength{strings.NewReader("<close/>")})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	wantError(t, resp, body, http.StatusBadRequest, "chunked transfer encoding is not supported")
	st := f.sim.Stats()
	if st.ChunkedRejected != 1 || len(st.Closes) != 0 {
		t.Errorf("stats = %+v, want one chunked rejection and no close", st)
	}
}
