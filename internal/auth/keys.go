package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// KeyPrefix starts every key minted by [NewKey], so a leaked key is recognisable (secret
// scanners, log reviews). Keys without it are accepted all the same.
const KeyPrefix = "pbg_"

// validKeyName is what a key's name must look like: it appears in logs and records.
var validKeyName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// keyEntry is one element of GATEWAY_API_KEYS or the key file.
type keyEntry struct {
	Name   string  `json:"name"`
	SHA256 string  `json:"sha256"`
	Scopes []Scope `json:"scopes"`
}

type apiKey struct {
	name   string
	hash   [sha256.Size]byte
	scopes []Scope
}

// KeySet is a parsed, validated set of API keys. It is immutable and safe for concurrent
// use. The zero value and nil hold no keys.
type KeySet struct {
	keys []apiKey
	// compare is subtle.ConstantTimeCompare; tests count its calls.
	compare func(x, y []byte) int
}

// ParseKeys parses a JSON array of keys such as
//
//	[{"name":"ap-portal","sha256":"<hex of sha256(key)>","scopes":["batches:read","batches:close"]}]
//
// and reports every problem at once. Names must match ^[A-Za-z0-9._-]{1,64}$ and be unique
// (case-insensitively); sha256 must be 64 hex digits (any case) and unique; every key needs
// at least one scope, each from [KnownScopes]; unknown fields are refused. An empty array
// is valid and yields an empty set: whether that may start the service is the caller's
// decision ([KeySet.Len]). Errors never echo a sha256 value, in case a key was pasted
// there by mistake.
func ParseKeys(data []byte) (*KeySet, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var entries []keyEntry
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("api keys: want a JSON array of {name, sha256, scopes}: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("api keys: unexpected data after the JSON array")
	}
	if entries == nil {
		return nil, errors.New("api keys: want a JSON array, got null")
	}

	var errs []error
	set := &KeySet{keys: make([]apiKey, 0, len(entries))}
	names := make(map[string]int, len(entries))
	hashes := make(map[[sha256.Size]byte]int, len(entries))
	for i, e := range entries {
		n := i + 1
		label := fmt.Sprintf("api key %d", n)
		k := apiKey{name: e.Name}
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is missing", label))
		case !validKeyName.MatchString(e.Name):
			errs = append(errs, fmt.Errorf("%s: name must be 1-64 of [A-Za-z0-9._-]", label))
		default:
			label = fmt.Sprintf("api key %d (%s)", n, e.Name)
			lower := strings.ToLower(e.Name)
			if first, dup := names[lower]; dup {
				errs = append(errs, fmt.Errorf("%s: name already used by api key %d", label, first))
			} else {
				names[lower] = n
			}
		}
		if len(e.SHA256) != hex.EncodedLen(sha256.Size) {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits, got %d characters", label, len(e.SHA256)))
		} else if _, err := hex.Decode(k.hash[:], []byte(e.SHA256)); err != nil {
			errs = append(errs, fmt.Errorf("%s: sha256 must be 64 hex digits", label))
		} else if first, dup := hashes[k.hash]; dup {
			errs = append(errs, fmt.Errorf("%s: sha256 already used by api key %d", label, first))
		} else {
			hashes[k.hash] = n
		}
		if len(e.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("%s: needs at least one scope of %v", label, KnownScopes()))
		}
		for _, s := range e.Scopes {
			if !s.Known() {
				errs = append(errs, fmt.Errorf("%s: unknown scope %.64q; known: %v", label, s, KnownScopes()))
			}
		}
		k.scopes = normaliseScopes(e.Scopes)
		set.keys = append(set.keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// Len is the number of keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Names lists the keys' names in configuration order, for a start-up or reload log line.
func (s *KeySet) Names() []string {
	if s == nil {
		return nil
	}
	names := make([]string, len(s.keys))
	for i, k := range s.keys {
		names[i] = k.name
	}
	return names
}

// Lookup returns the caller whose key is key. It hashes key with SHA-256 and compares the
// hash with every configured hash in constant time, without stopping at a match, so the
// time taken tells nothing about which key, or how much of one, matched.
func (s *KeySet) Lookup(key string) (Caller, bool) {
	if s == nil {
		return Caller{}, false
	}
	compare := s.compare
	if compare == nil {
		compare = subtle.ConstantTimeCompare
	}
	sum := sha256.Sum256([]byte(key))
	found, index := 0, 0
	for i := range s.keys {
		eq := compare(sum[:], s.keys[i].hash[:])
		index = subtle.ConstantTimeSelect(eq, i, index)
		found |= eq
	}
	if found != 1 {
		return Caller{}, false
	}
	k := s.keys[index]
	return Caller{Name: k.name, Scopes: append([]Scope(nil), k.scopes...), Method: MethodAPIKey}, true
}

// NewKey mints a key: KeyPrefix followed by 32 random bytes in unpadded base64url. It
// returns the key, to give to the caller once, and the hex SHA-256 to configure.
func NewKey() (key, sha256hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("minting an api key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// HashKey returns the hex SHA-256 of key, the form a key is configured in.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}
