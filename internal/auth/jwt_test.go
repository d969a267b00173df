package auth

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

func TestJWTVerify(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	idp := newTestIdP(t, append(defaultKeys(), publicJWK("rsa-rs", "RS256", rsaKey2()))...)
	v := newTestVerifier(t, idp, clk, nil)
	now := clk.now()
	b64 := base64.RawURLEncoding.EncodeToString
	payload := b64([]byte(`{"iss":"` + testIssuer + `","aud":"` + testAudience + `","client_id":"x","exp":` +
		strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `,"scope":"batches:close"}`))
	valid := sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, nil))
	parts := strings.Split(valid, ".")
	both := []Scope{ScopeBatchesClose, ScopeBatchesRead}

	tests := []struct {
		name    string
		token   string
		want    Caller
		wantErr error
	}{
		{name: "RS256", token: valid, want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "PS256", token: sign(t, jose.PS256, rsaKey1(), "rsa-1", claims(clk, nil)), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "ES256", token: sign(t, jose.ES256, ecKey1(), "ec-1", claims(clk, nil)), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "EdDSA", token: sign(t, jose.EdDSA, edKey1(), "ed-1", claims(clk, nil)), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "scope claim as array", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"scope": []string{"batches:read", "openid"}})), want: Caller{Name: "ap-portal", Scopes: []Scope{ScopeBatchesRead}, Method: MethodJWT}},
		{name: "scope claim as string, unknown scopes ignored", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"scope": "openid  batches:regenerate profile"})), want: Caller{Name: "ap-portal", Scopes: []Scope{ScopeBatchesRegenerate}, Method: MethodJWT}},
		{name: "no scope claim", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"scope": nil})), want: Caller{Name: "ap-portal", Scopes: []Scope{}, Method: MethodJWT}},
		{name: "audience array", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"aud": []string{"other", testAudience}})), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "expired within leeway", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "name from azp without client_id", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"client_id": nil, "azp": "portal-app"})), want: Caller{Name: "portal-app", Scopes: both, Method: MethodJWT}},
		{name: "name from sub alone", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"client_id": nil})), want: Caller{Name: "00u1abcd", Scopes: both, Method: MethodJWT}},

		{name: "expired", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})), wantErr: errTokenExpired},
		{name: "not yet valid", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), wantErr: errTokenNotYetValid},
		{name: "issued in the future", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), wantErr: errTokenNotYetValid},
		{name: "no exp", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"exp": nil})), wantErr: errTokenClaims},
		{name: "wrong issuer", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"iss": "https://evil.example.com/"})), wantErr: errTokenIssuer},
		{name: "no issuer", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"iss": nil})), wantErr: errTokenIssuer},
		{name: "wrong audience", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"aud": "another-api"})), wantErr: errTokenAudience},
		{name: "no audience", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"aud": nil})), wantErr: errTokenAudience},
		{name: "scope claim of the wrong type", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"scope": 7})), wantErr: errTokenClaims},
		{name: "scope array with a number", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"scope": []any{"batches:read", 7}})), wantErr: errTokenClaims},
		{name: "name claim not a string", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"client_id": 42})), wantErr: errTokenClaims},
		{name: "name claim with control characters", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"client_id": "a\nb"})), wantErr: errTokenClaims},
		{name: "no name claim", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"client_id": nil, "sub": nil})), wantErr: errTokenClaims},
		{name: "exp of the wrong type", token: sign(t, jose.RS256, rsaKey1(), "rsa-1", claims(clk, map[string]any{"exp": "tomorrow"})), wantErr: errTokenClaims},

		{name: "alg none", token: b64([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + payload + ".", wantErr: errTokenAlgorithm},
		{name: "alg none with a signature", token: b64([]byte(`{"alg":"none","kid":"rsa-1"}`)) + "." + payload + "." + parts[2], wantErr: errTokenAlgorithm},
		// The classic confusion: HMAC keyed with the public key the IdP publishes.
		{name: "HS256 keyed with the public key", token: sign(t, jose.HS256, rsaKey1().PublicKey.N.Bytes(), "rsa-1", claims(clk, nil)), wantErr: errTokenAlgorithm},
		{name: "RS384 is not allowed", token: sign(t, jose.RS384, rsaKey1(), "rsa-1", claims(clk, nil)), wantErr: errTokenAlgorithm},
		{name: "unknown kid", token: sign(t, jose.RS256, rsaKey2(), "rsa-2", claims(clk, nil)), wantErr: errTokenKeyUnknown},
		{name: "no kid", token: sign(t, jose.RS256, rsaKey1(), "", claims(clk, nil)), wantErr: errTokenNoKeyID},
		{name: "other key under a known kid", token: sign(t, jose.RS256, rsaKey2(), "rsa-1", claims(clk, nil)), wantErr: errTokenSignature},
		{name: "alg of another key family", token: sign(t, jose.RS256, rsaKey1(), "ec-1", claims(clk, nil)), wantErr: errTokenSignature},
		{name: "alg the key is not published for", token: sign(t, jose.PS256, rsaKey2(), "rsa-rs", claims(clk, nil)), wantErr: errTokenSignature},
		{name: "alg the key is published for", token: sign(t, jose.RS256, rsaKey2(), "rsa-rs", claims(clk, nil)), want: Caller{Name: "ap-portal", Scopes: both, Method: MethodJWT}},
		{name: "payload swapped", token: parts[0] + "." + payload + "." + parts[2], wantErr: errTokenSignature},
		{name: "signature cut", token: parts[0] + "." + parts[1] + "." + parts[2][:10], wantErr: errTokenSignature},
		{name: "garbage", token: "a.b.c", wantErr: errTokenMalformed},
		{name: "JWE-like five parts", token: "a.b.c.d.e", wantErr: errTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := v.Verify(t.Context(), tt.token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.token) || strings.Contains(err.Error(), parts[2]) {
					t.Errorf("error contains the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("caller (-want +got):\n%s", diff)
			}
		})
	}
}
