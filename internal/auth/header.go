package auth

import (
	"net/url"
	"strings"
)

// maxCredentialLen bounds a bearer credential: keys are 47 bytes, IdP tokens a few KiB.
const maxCredentialLen = 8 << 10

// queryCredentialNames are query parameters that carry credentials in other APIs
// (RFC 6750 §2.3 access_token, the usual api_key spellings). A request with one of them
// is refused even when its header is valid: the credential has leaked into URLs, proxy
// and browser histories, and the client must be fixed. The value is never read.
var queryCredentialNames = map[string]bool{
	"access_token": true, "api_key": true, "api-key": true, "apikey": true,
	"key": true, "token": true, "authorization": true,
}

// queryCredential reports the first credential-like parameter name in a raw query, matched
// case-insensitively, escaped or not.
func queryCredential(rawQuery string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if name = strings.ToLower(strings.TrimSpace(name)); queryCredentialNames[name] {
			return name, true
		}
	}
	return "", false
}

// parseBearer returns the credential of the Authorization header values: exactly one
// header, scheme Bearer (any case), one or more spaces, and an RFC 6750 b64token of at
// most maxCredentialLen bytes. Errors never contain the header.
func parseBearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", errNoCredentials
	case 1:
	default:
		return "", errMalformedHeader
	}
	v := strings.Trim(values[0], " \t")
	if v == "" {
		return "", errNoCredentials
	}
	scheme, rest, found := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errWrongScheme
	}
	token := strings.TrimLeft(rest, " ")
	if !found || token == "" || len(token) > maxCredentialLen || !isB64Token(token) {
		return "", errMalformedHeader
	}
	return token, nil
}

// isB64Token reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; !isAlnum(c) && !strings.ContainsRune("-._~+/", rune(c)) {
			return false
		}
	}
	return true
}

// looksLikeJWT reports whether s is three non-empty base64url segments joined by dots,
// the JWS compact serialisation. Keys minted by NewKey never contain a dot.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if c := p[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
