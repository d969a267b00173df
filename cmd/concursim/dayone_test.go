package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

func TestDayOneConfig(t *testing.T) {
	t.Parallel()
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{"CONCURSIM_CLIENT_ID": "a", "CONCURSIM_CLIENT_SECRET": "b"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(base(map[string]string{"CONCURSIM_REFRESH_TOKEN": "c"})))
		if err != nil {
			t.Fatal(err)
		}
		o := c.options("")
		if o.RequestToken != "" || o.RefreshTokenTTL != 180*24*time.Hour || o.RequestTokenTTL != 24*time.Hour ||
			o.Scope != concursim.DefaultScope || o.NoRedirectRefresh || o.GeolocationPath || o.DataCentre != "" ||
			o.Sunset != "" || o.APIWarn != "" {
			t.Errorf("defaults: %+v", o)
		}
	})
	t.Run("everything set", func(t *testing.T) {
		t.Parallel()
		c, err := loadConfig(env(base(map[string]string{
			"CONCURSIM_COMPANY_UUID": "08BCCA1E-0D4F-4261-9F1B-F778D96617D6", "CONCURSIM_REQUEST_TOKEN": "rq",
			"CONCURSIM_REQUEST_TOKEN_TTL": "2h", "CONCURSIM_REQUEST_TOKEN_CLIENT_ID": "other",
			"CONCURSIM_REFRESH_TOKEN_TTL": "1s", "CONCURSIM_SCOPE": "EXPRPT company.read",
			"CONCURSIM_GEO_ADDR": "127.0.0.1:0", "CONCURSIM_REDIRECT_REFRESH": "false", "CONCURSIM_GEOLOCATION_PATH": "true",
			"CONCURSIM_GEOLOCATION": "http://127.0.0.1:9091/oauth2/v0/token",
			"CONCURSIM_SUNSET":      "Sat, 31 Oct 2027 23:59:59 GMT", "CONCURSIM_API_WARN": "deprecated",
		})))
		if err != nil {
			t.Fatal(err) // no CONCURSIM_REFRESH_TOKEN: the request token is enough
		}
		o := c.options("http://127.0.0.1:9091")
		want := concursim.Options{CompanyUUID: "08BCCA1E-0D4F-4261-9F1B-F778D96617D6", RequestToken: "rq",
			RequestTokenTTL: 2 * time.Hour, RequestTokenClientID: "other", RefreshTokenTTL: time.Second,
			Scope: "EXPRPT company.read", NoRedirectRefresh: true, GeolocationPath: true,
			Geolocation: "http://127.0.0.1:9091/oauth2/v0/token", DataCentre: "http://127.0.0.1:9091",
			Sunset: "Sat, 31 Oct 2027 23:59:59 GMT", APIWarn: "deprecated"}
		got := concursim.Options{CompanyUUID: o.CompanyUUID, RequestToken: o.RequestToken,
			RequestTokenTTL: o.RequestTokenTTL, RequestTokenClientID: o.RequestTokenClientID, RefreshTokenTTL: o.RefreshTokenTTL,
			Scope: o.Scope, NoRedirectRefresh: o.NoRedirectRefresh, GeolocationPath: o.GeolocationPath,
			Geolocation: o.Geolocation, DataCentre: o.DataCentre, Sunset: o.Sunset, APIWarn: o.APIWarn}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(concursim.Options{})); diff != "" {
			t.Errorf("options (-want +got):\n%s", diff)
		}
		if c.GeoAddr != "127.0.0.1:0" {
			t.Errorf("GeoAddr = %q", c.GeoAddr)
		}
		if _, err := concursim.New(o); err != nil {
			t.Errorf("the simulator refuses them: %v", err)
		}
	})
	for _, tt := range []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{"neither token", nil, []string{"CONCURSIM_REFRESH_TOKEN", "CONCURSIM_REQUEST_TOKEN"}},
		{"request token alone", map[string]string{"CONCURSIM_REQUEST_TOKEN": "rq"}, []string{"CONCURSIM_COMPANY_UUID"}},
		{"company alone", map[string]string{"CONCURSIM_REFRESH_TOKEN": "c", "CONCURSIM_COMPANY_UUID": "x"},
			[]string{"CONCURSIM_REQUEST_TOKEN"}},
		{"bad values", map[string]string{"CONCURSIM_REFRESH_TOKEN": "c",
			"CONCURSIM_REQUEST_TOKEN_TTL": "0s", "CONCURSIM_REFRESH_TOKEN_TTL": "500ms", "CONCURSIM_REDIRECT_REFRESH": "sometimes",
			"CONCURSIM_GEOLOCATION_PATH": "yes please", "CONCURSIM_SUNSET": "2027-10-31",
			"CONCURSIM_GEOLOCATION": "https://us2.api.concursolutions.com/?x=1"},
			[]string{"CONCURSIM_REQUEST_TOKEN_TTL", "CONCURSIM_REFRESH_TOKEN_TTL", "CONCURSIM_REDIRECT_REFRESH",
				"CONCURSIM_GEOLOCATION_PATH", "CONCURSIM_SUNSET", "CONCURSIM_GEOLOCATION"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadConfig(env(base(tt.env)))
			if err == nil {
				t.Fatal("loadConfig succeeded")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s:\n%v", w, err)
				}
			}
		})
	}
}

// The binary on two listeners: the request token is exchanged at GLZ, the geolocation
// names the second listener, refreshes at GLZ are sent there once, API calls only work there.
func TestRunTwoHosts(t *testing.T) {
	t.Parallel()
	const company, requestToken = "08BCCA1E-0D4F-4261-9F1B-F778D96617D6", "request-token-value"
	getenv := env(map[string]string{
		"CONCURSIM_ADDR": "127.0.0.1:0", "CONCURSIM_GEO_ADDR": "127.0.0.1:0",
		"CONCURSIM_CLIENT_ID": "gateway", "CONCURSIM_CLIENT_SECRET": "secret",
		"CONCURSIM_COMPANY_UUID": company, "CONCURSIM_REQUEST_TOKEN": requestToken,
		"CONCURSIM_SUNSET": "Sat, 31 Oct 2027 23:59:59 GMT",
	})
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { err := run(ctx, nil, getenv, pw, io.Discard); _ = pw.Close(); done <- err }()
	scanned := make(chan struct{})
	defer func() { <-scanned }() // the log reader's t.Errorf must not outlive the test
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not return after cancel")
		}
	}()
	listening := make(chan struct{ Addr, GeoAddr string }, 1)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var l struct {
				Message, Addr string
				GeoAddr       string `json:"geo_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "listening" {
				listening <- struct{ Addr, GeoAddr string }{l.Addr, l.GeoAddr}
			}
			if strings.Contains(sc.Text(), requestToken) {
				t.Errorf("log leaks the request token: %s", sc.Text())
			}
		}
	}()
	var glz, dc string
	select {
	case l := <-listening:
		glz, dc = "http://"+l.Addr, "http://"+l.GeoAddr
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line")
	}
	if dc == "http://" {
		t.Fatal("the listening line has no geo_addr")
	}

	token := func(base string, form url.Values) (int, map[string]any) {
		t.Helper()
		form.Set("client_id", "gateway")
		form.Set("client_secret", "secret")
		resp, err := http.PostForm(base+"/oauth2/v0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.Header.Get("concur-correlationid") == "" {
			t.Error("token answer without concur-correlationid")
		}
		return resp.StatusCode, m
	}
	code, tok := token(glz, url.Values{"grant_type": {"password"}, "username": {company},
		"password": {requestToken}, "credtype": {"authtoken"}})
	if code != 200 || tok["geolocation"] != dc || !strings.Contains(tok["scope"].(string), "PAYBAT") {
		t.Fatalf("exchange at GLZ: %d %v, want geolocation %s", code, tok, dc)
	}
	code, redirect := token(glz, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if code != 400 || redirect["code"] != 16.0 || redirect["geolocation"] != dc {
		t.Errorf("refresh at GLZ: %d %v, want code 16 and the geolocation", code, redirect)
	}

	list := func(base string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/api/expense/paymentbatch/v1.1/batchlist/OPEN", nil)
		req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := list(glz); resp.StatusCode != http.StatusForbidden {
		t.Errorf("list at GLZ: %d, want 403", resp.StatusCode)
	}
	if resp := list(dc); resp.StatusCode != 200 || resp.Header.Get("Sunset") != "Sat, 31 Oct 2027 23:59:59 GMT" {
		t.Errorf("list at the data centre: %d, Sunset %q", resp.StatusCode, resp.Header.Get("Sunset"))
	}
}
