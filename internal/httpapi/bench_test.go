package httpapi_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/concursim"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
	"github.com/finplat/payment-batch-gateway/internal/store"
)

// BenchmarkClose measures one close three ways in the same run, so the gateway's cost is
// read as a ratio to baselines measured under the same machine load:
//
//   - concur-direct: the simulator alone (what any client pays);
//   - reverse-proxy: a bare httputil.ReverseProxy in front of it (the floor for one hop);
//   - gateway: the full path (routing, validation, mapping, token, XML -> JSON, logging).
//
// allocs/op and B/op include the benchmark's own HTTP client, which is the same in all three.
func BenchmarkClose(b *testing.B) {
	sim, err := concursim.New(concursim.Options{ClientID: "id", ClientSecret: "secret", RefreshToken: "refresh", NoRotate: true})
	if err != nil {
		b.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	defer sim.Close()

	token := benchToken(b, simSrv.URL)
	closeURL := benchBatchURL(b, simSrv.URL, token) + "/close"

	target, _ := url.Parse(simSrv.URL)
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()

	cfg := clientConfig(simSrv.URL, time.Minute)
	cfg.ClientID, cfg.ClientSecret, cfg.RefreshToken = "id", "secret", "refresh"
	up, err := concur.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Config{DataDir: b.TempDir(), Key: make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	gw := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{
		Log:     zerolog.New(io.Discard), // serialised, then dropped: the logging cost is counted
		Batches: batch.NewService(up, st, batch.Options{}),
	}))
	defer gw.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	run := func(b *testing.B, url string, auth bool) {
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, url, http.NoBody)
			if auth {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	b.Run("concur-direct", func(b *testing.B) { run(b, closeURL, true) })
	b.Run("reverse-proxy", func(b *testing.B) {
		run(b, proxy.URL+strings.TrimPrefix(closeURL, simSrv.URL), true)
	})
	// Every close after the first is a regeneration, the one close the guard lets through
	// again: the full path, with its audit record, each time.
	b.Run("gateway", func(b *testing.B) { run(b, gw.URL+"/batches/"+employeeBatch+"/close?regenerate=true", false) })
}

func benchToken(b *testing.B, base string) string {
	b.Helper()
	resp, err := http.PostForm(base+"/oauth2/v0/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {"refresh"}, "client_id": {"id"}, "client_secret": {"secret"},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		b.Fatalf("token: %v", err)
	}
	return tok.AccessToken
}

func benchBatchURL(b *testing.B, base, token string) string {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/expense/paymentbatch/v1.1/batchlist/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Batches []struct {
			ID  string `xml:"BatchID"`
			URL string `xml:"Batch-URL"`
		} `xml:"BatchSummary"`
	}
	if err := xml.NewDecoder(resp.Body).Decode(&list); err != nil {
		b.Fatal(err)
	}
	for _, s := range list.Batches {
		if s.ID == employeeBatch {
			return s.URL
		}
	}
	b.Fatal("seeded batch not in the list")
	return ""
}
