package auth

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseBearer feeds arbitrary Authorization values and queries: no panic, only the
// known errors (which never echo the input), and an accepted credential is a well-formed
// b64token that round-trips.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer pbg_abcDEF123-_", "bearer  a.b.c", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
		"Bearer a b", "Bearer abc==", "Bearer ==", "Bearer a\x00b", "Bearer \u00e9", "",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer a.b.c.d",
	} {
		f.Add(s, "api_key=x&regenerate=true")
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		token, err := parseBearer([]string{header})
		if err != nil {
			if !errors.Is(err, errNoCredentials) && !errors.Is(err, errWrongScheme) && !errors.Is(err, errMalformedHeader) {
				t.Fatalf("unexpected error %v", err)
			}
			if token != "" {
				t.Fatal("a token with an error")
			}
		} else {
			if token == "" || len(token) > maxCredentialLen || !isB64Token(token) || strings.ContainsAny(token, " \t\r\n") {
				t.Fatalf("accepted a malformed credential %q", token)
			}
			if again, err := parseBearer([]string{"Bearer " + token}); err != nil || again != token {
				t.Fatalf("round trip: %q, %v", again, err)
			}
			if looksLikeJWT(token) && strings.Count(token, ".") != 2 {
				t.Fatalf("looksLikeJWT(%q) with %d dots", token, strings.Count(token, "."))
			}
		}
		if name, ok := queryCredential(query); ok != queryCredentialNames[name] {
			t.Fatalf("queryCredential(%q) = %q, %v", query, name, ok)
		}
	})
}

// FuzzParseKeys: configuration is not untrusted, but a bad file must never panic, and
// whatever is accepted is valid.
func FuzzParseKeys(f *testing.F) {
	f.Add([]byte(`[{"name":"a","sha256":"` + strings.Repeat("ab", 32) + `","scopes":["batches:read"]}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"name":"a","sha256":"","scopes":[]},{}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := ParseKeys(data)
		if err != nil {
			return
		}
		for i, k := range set.keys {
			if !validKeyName.MatchString(k.name) || len(k.scopes) == 0 {
				t.Fatalf("accepted invalid key %d", i)
			}
		}
	})
}
