package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/finplat/payment-batch-gateway/api"
)

// idp is a company identity provider: a JWKS endpoint and a signer for its tokens.
type idp struct {
	url    string
	signer jose.Signer
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: "e2e-1", Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "e2e-1"))
	if err != nil {
		t.Fatal(err)
	}
	return &idp{url: srv.URL, signer: signer}
}

// token signs claims over the defaults of a valid token, an hour long.
func (p *idp) token(t *testing.T, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": "https://idp.e2e", "aud": "payment-batch-gateway", "client_id": "sso-portal",
		"scope": "batches:read batches:close", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range over {
		claims[k] = v
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := p.signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The attack suite: each hostile request gets its clean answer, nothing reaches Concur
// that should not, and the gateway stays up and serves the next honest caller.
func TestAttackSuite(t *testing.T) {
	t.Parallel()
	p := newIdP(t)
	s := startStack(t, nil, map[string]string{
		"GATEWAY_JWKS_URL": p.url, "GATEWAY_JWT_ISSUER": "https://idp.e2e", "GATEWAY_JWT_AUDIENCE": "payment-batch-gateway",
		// The hostile Concur answers below would open the circuit breaker (rightly: see
		// TestChaos); here they must each reach the parser, and the honest close after them Concur.
		"CONCUR_BREAKER_THRESHOLD": "1000",
	})
	closeURL := s.gw.URL + "/batches/" + employeeBatch + "/close"
	jwt := func(over map[string]any) map[string]string {
		return map[string]string{"Authorization": "Bearer " + p.token(t, over)}
	}
	hour := time.Hour

	t.Run("credentials", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			header map[string]string
			status int
		}{
			{"expired JWT", jwt(map[string]any{"exp": time.Now().Add(-hour).Unix()}), 401},
			{"JWT for another audience", jwt(map[string]any{"aud": "another-api"}), 401},
			{"JWT from another issuer", jwt(map[string]any{"iss": "https://evil.example.com"}), 401},
			{"JWT with a forged signature", map[string]string{"Authorization": "Bearer " + forge(p.token(t, nil))}, 401},
			{"unsigned JWT", map[string]string{"Authorization": "Bearer " + unsigned()}, 401},
			{"JWT without the close scope", jwt(map[string]any{"scope": "batches:read"}), 403},
			{"huge Authorization header", map[string]string{"Authorization": "Bearer " + strings.Repeat("a", 20<<10)}, 401},
		} {
			r := do(t, "POST", closeURL, tt.header)
			if p := decode[api.Problem](t, r); r.Status != tt.status || r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: %d %s", tt.name, r.Status, p.Code)
			}
		}
		if st := s.stats(t); len(st.Closes) != 0 {
			t.Errorf("refused callers closed batches: %v", st.Closes)
		}
		// A valid JWT with the scope closes; its caller is named by client_id.
		if r := do(t, "POST", closeURL, jwt(nil)); r.Status != 200 {
			t.Fatalf("valid JWT: %d %s", r.Status, r.Body)
		}
		trail := decode[api.CloseAttemptList](t, do(t, "GET", s.gw.URL+"/batches/"+employeeBatch+"/closes", nil))
		if len(trail.Items) != 1 || trail.Items[0].Caller != "sso-portal" {
			t.Errorf("audit trail = %+v", trail.Items)
		}
	})

	t.Run("headers and bodies", func(t *testing.T) {
		huge := do(t, "GET", s.gw.URL+"/healthz", map[string]string{"X-Padding": strings.Repeat("x", 100<<10)})
		if huge.Status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("100 KiB of headers: %d", huge.Status)
		}
		req, _ := http.NewRequest("POST", closeURL, strings.NewReader(strings.Repeat("x", 10<<20)))
		authorize(req, nil)
		resp, err := client.Do(req)
		if err == nil { // the gateway may answer and close before the client sent it all
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "request_body_not_allowed") {
				t.Errorf("10 MiB body: %d %s", resp.StatusCode, body)
			}
		}
		for _, id := range []string{`"quoted"`, "with space", strings.Repeat("r", 200), "<script>"} {
			r := do(t, "GET", s.gw.URL+"/healthz", map[string]string{"X-Request-ID": id})
			if got := r.Header.Get("X-Request-ID"); got == id || got == "" {
				t.Errorf("X-Request-ID %q echoed as %q", id, got)
			}
		}
	})

	t.Run("slowloris", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = bufio.NewReader(conn).ReadString('\n') // the server gives up on the headers and hangs up
		if took := time.Since(start); err == nil && took > 25*time.Second {
			t.Errorf("a connection that never finished its headers was held %v", took)
		}
	})

	t.Run("paths", func(t *testing.T) {
		for path, want := range map[string]int{
			"/batches/../close":                400,
			"/batches/a%2Fb/close":             400,
			"/batches/%2e%2e/close":            400,
			"/batches/b%C3%A4tch/close":        400,
			"/batches/" + employeeBatch + "/x": 404,
			"/batches//close":                  400,
		} {
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.gw.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+s.key+
				"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			resp.Body.Close()
			conn.Close()
			if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d %s, want %d", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
			}
		}
	})

	t.Run("hostile Concur", func(t *testing.T) {
		for _, mode := range []string{"bomb", "deep", "malformed", "html"} {
			time.Sleep(1100 * time.Millisecond)           // the batch-list refresh bound: each id reads the list
			s.fault(t, `{"op":"list","mode":"`+mode+`"}`) // every time: retries meet it too
			r := do(t, "POST", s.gw.URL+"/batches/unknown-"+mode+"/close", nil)
			if p := decode[api.Problem](t, r); r.Status != 502 || p.Code != "upstream_bad_response" {
				t.Errorf("%s batch list: %d %s", mode, r.Status, r.Body)
			}
			if r := do(t, "DELETE", s.sim.URL+"/_sim/fault", nil); r.Status/100 != 2 {
				t.Fatalf("clearing the fault: %d", r.Status)
			}
		}
	})

	// Still up, still honest.
	if r := do(t, "GET", s.gw.URL+"/healthz", nil); r.Status != 200 {
		t.Fatalf("healthz after the attacks: %d", r.Status)
	}
	if r := do(t, "POST", s.gw.URL+"/batches/"+cardBatch+"/close", nil); r.Status != 200 {
		t.Errorf("an honest close after the attacks: %d %s", r.Status, r.Body)
	}
}

// forge flips a byte of the signature.
func forge(token string) string {
	b := []byte(token)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// unsigned is a JWT with alg none.
func unsigned() string {
	enc := base64.RawURLEncoding.EncodeToString
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	return enc([]byte(`{"alg":"none","kid":"e2e-1"}`)) + "." +
		enc([]byte(`{"iss":"https://idp.e2e","aud":"payment-batch-gateway","client_id":"x","scope":"batches:close","exp":`+exp+`}`)) + "."
}
