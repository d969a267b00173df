package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testKey is a key with its configured hash.
type testKey struct{ key, hash string }

func mintKey(t *testing.T) testKey {
	t.Helper()
	k, h, err := NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return testKey{k, h}
}

func keysJSON(entries ...string) []byte {
	return []byte("[" + strings.Join(entries, ",") + "]")
}

func entry(name, hash string, scopes ...Scope) string {
	q := make([]string, len(scopes))
	for i, s := range scopes {
		q[i] = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf(`{"name":%q,"sha256":%q,"scopes":[%s]}`, name, hash, strings.Join(q, ","))
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	a, b := mintKey(t), mintKey(t)
	tests := []struct {
		name      string
		data      []byte
		wantNames []string
		wantErrs  []string // substrings, each in its own joined error
	}{
		{name: "one key", data: keysJSON(entry("ap-portal", a.hash, ScopeBatchesRead, ScopeBatchesClose)), wantNames: []string{"ap-portal"}},
		{name: "upper-case hex", data: keysJSON(entry("ap.portal_2", strings.ToUpper(a.hash), ScopeBatchesRead)), wantNames: []string{"ap.portal_2"}},
		{name: "two keys", data: keysJSON(entry("a", a.hash, ScopeBatchesRead), entry("b", b.hash, ScopeBatchesRegenerate)), wantNames: []string{"a", "b"}},
		{name: "empty array is valid", data: []byte(" [ ] \n"), wantNames: []string{}},
		{name: "null", data: []byte("null"), wantErrs: []string{"got null"}},
		{name: "empty", data: nil, wantErrs: []string{"want a JSON array"}},
		{name: "object", data: []byte(`{"name":"a"}`), wantErrs: []string{"want a JSON array"}},
		{name: "unknown field", data: []byte(`[{"name":"a","sha256":"` + a.hash + `","scopes":["batches:read"],"key":"x"}]`), wantErrs: []string{`unknown field "key"`}},
		{name: "trailing data", data: []byte(`[] []`), wantErrs: []string{"after the JSON array"}},
		{
			name: "every problem at once",
			data: keysJSON(
				entry("", a.hash, ScopeBatchesRead),
				entry("bad name!", b.hash, ScopeBatchesRead),
				entry("dup", strings.Repeat("z", 64), ScopeBatchesRead),
				entry("DUP", "abc", "batches:write"),
				entry("nohash-twice", strings.ToUpper(a.hash)),
			),
			wantErrs: []string{
				"api key 1: name is missing",
				"api key 2: name must be 1-64",
				"api key 3 (dup): sha256 must be 64 hex digits",
				"api key 4 (DUP): name already used by api key 3",
				"api key 4 (DUP): sha256 must be 64 hex digits, got 3 characters",
				`api key 4 (DUP): unknown scope "batches:write"`,
				"api key 5 (nohash-twice): sha256 already used by api key 1",
				"api key 5 (nohash-twice): needs at least one scope",
			},
		},
		{name: "name too long", data: keysJSON(entry(strings.Repeat("n", 65), a.hash, ScopeBatchesRead)), wantErrs: []string{"name must be 1-64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set, err := ParseKeys(tt.data)
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("ParseKeys: %v", err)
				}
				if diff := cmp.Diff(tt.wantNames, set.Names()); diff != "" {
					t.Errorf("names (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKeys: no error, want %q", tt.wantErrs)
			}
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					got = append(got, e.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			if len(got) != len(tt.wantErrs) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.wantErrs), err)
			}
			for i, want := range tt.wantErrs {
				if !strings.Contains(got[i], want) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

// A key pasted into the sha256 field by mistake must not end up in a start-up error.
func TestParseKeysNeverEchoesTheHashField(t *testing.T) {
	t.Parallel()
	k := mintKey(t)
	_, err := ParseKeys(keysJSON(entry("ap-portal", k.key, ScopeBatchesRead)))
	if err == nil {
		t.Fatal("ParseKeys accepted a key as its hash")
	}
	if strings.Contains(err.Error(), k.key) {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestKeySetLookup(t *testing.T) {
	t.Parallel()
	keys := []testKey{mintKey(t), mintKey(t), mintKey(t), mintKey(t), mintKey(t)}
	// A configured hash one bit away from the wrong key's hash: a prefix compare would match.
	wrong := mintKey(t)
	near, _ := hex.DecodeString(wrong.hash)
	near[len(near)-1] ^= 1
	entries := []string{
		entry("k0", keys[0].hash, ScopeBatchesRead),
		entry("k1", keys[1].hash, ScopeBatchesClose, ScopeBatchesRead, ScopeBatchesRead),
		entry("k2", keys[2].hash, ScopeBatchesRegenerate),
		entry("k3", keys[3].hash, ScopeBatchesRead),
		entry("k4", keys[4].hash, ScopeBatchesClose),
		entry("near", hex.EncodeToString(near), ScopeBatchesRead),
	}
	set, err := ParseKeys(keysJSON(entries...))
	if err != nil {
		t.Fatal(err)
	}
	// Count the comparisons: every configured hash is compared, match or not.
	var compares int
	set.compare = func(x, y []byte) int {
		compares++
		return subtle.ConstantTimeCompare(x, y)
	}

	tests := []struct {
		name   string
		key    string
		want   Caller
		wantOK bool
	}{
		{"first", keys[0].key, Caller{Name: "k0", Scopes: []Scope{ScopeBatchesRead}, Method: MethodAPIKey}, true},
		{"second, scopes sorted and unique", keys[1].key, Caller{Name: "k1", Scopes: []Scope{ScopeBatchesClose, ScopeBatchesRead}, Method: MethodAPIKey}, true},
		{"middle", keys[2].key, Caller{Name: "k2", Scopes: []Scope{ScopeBatchesRegenerate}, Method: MethodAPIKey}, true},
		{"last key", keys[4].key, Caller{Name: "k4", Scopes: []Scope{ScopeBatchesClose}, Method: MethodAPIKey}, true},
		{"wrong key, near hash configured", wrong.key, Caller{}, false},
		{"the hash itself is not a key", keys[0].hash, Caller{}, false},
		{"key with a suffix", keys[0].key + "x", Caller{}, false},
		{"key prefix", keys[0].key[:20], Caller{}, false},
		{"empty", "", Caller{}, false},
	}
	for _, tt := range tests { // sequential: compares is shared
		t.Run(tt.name, func(t *testing.T) {
			compares = 0
			got, ok := set.Lookup(tt.key)
			if ok != tt.wantOK {
				t.Fatalf("Lookup ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("caller (-want +got):\n%s", diff)
			}
			if compares != set.Len() {
				t.Errorf("compared %d hashes, want all %d (no early exit)", compares, set.Len())
			}
		})
	}

	t.Run("callers get a copy of the scopes", func(t *testing.T) {
		c, _ := set.Lookup(keys[0].key)
		c.Scopes[0] = ScopeBatchesRegenerate
		if c2, _ := set.Lookup(keys[0].key); c2.Has(ScopeBatchesRegenerate) {
			t.Error("mutating a caller's scopes changed the key set")
		}
	})
	t.Run("nil set", func(t *testing.T) {
		var none *KeySet
		if _, ok := none.Lookup(keys[0].key); ok || none.Len() != 0 || none.Names() != nil {
			t.Error("nil KeySet is not empty")
		}
	})
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	a, b := mintKey(t), mintKey(t)
	if a.key == b.key {
		t.Fatal("two minted keys are equal")
	}
	if !strings.HasPrefix(a.key, KeyPrefix) || len(a.key) != len(KeyPrefix)+43 {
		t.Errorf("key has the wrong form (length %d)", len(a.key))
	}
	sum := sha256.Sum256([]byte(a.key))
	if a.hash != hex.EncodeToString(sum[:]) || a.hash != HashKey(a.key) {
		t.Error("hash is not the hex SHA-256 of the key")
	}
	if tok, err := parseBearer([]string{"Bearer " + a.key}); err != nil || tok != a.key || looksLikeJWT(tok) {
		t.Errorf("a minted key is not a plain bearer credential: %v", err)
	}
	set, err := ParseKeys(keysJSON(entry("minted", a.hash, ScopeBatchesRead)))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := set.Lookup(a.key); !ok || c.Name != "minted" {
		t.Error("a minted key does not authenticate with its hash")
	}
}

func TestCaller(t *testing.T) {
	t.Parallel()
	c := Caller{Name: "n", Scopes: []Scope{ScopeBatchesRead}, Method: MethodJWT}
	if !c.Has(ScopeBatchesRead) || c.Has(ScopeBatchesClose) {
		t.Error("Has is wrong")
	}
	ctx := WithCaller(t.Context(), c)
	c.Scopes[0] = ScopeBatchesClose // the context kept its own copy
	got, ok := CallerFrom(ctx)
	if !ok {
		t.Fatal("no caller in the context")
	}
	if diff := cmp.Diff(Caller{Name: "n", Scopes: []Scope{ScopeBatchesRead}, Method: MethodJWT}, got); diff != "" {
		t.Errorf("caller (-want +got):\n%s", diff)
	}
	if _, ok := CallerFrom(t.Context()); ok {
		t.Error("caller in an empty context")
	}
}
