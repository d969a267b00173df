package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rs/zerolog"
)

const (
	// maxJWKSSize bounds a JWKS answer; real ones are a few KiB.
	maxJWKSSize = 1 << 20
	// minRefetchInterval is how often, at most, an unknown kid makes us fetch the JWKS,
	// so tokens with made-up kids cannot make us hammer the identity provider.
	minRefetchInterval = time.Minute
	// minRSABits refuses weak RSA keys.
	minRSABits = 2048
)

// allowedAlgs are the only JWS algorithms accepted: asymmetric ones. "none" and HMAC
// (whose "secret" would be the public key) are refused by the parser.
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// jwks is a cached JSON Web Key Set, indexed by kid.
type jwks struct {
	url     string
	client  *http.Client
	timeout time.Duration
	log     zerolog.Logger
	now     func() time.Time

	keys atomic.Pointer[map[string][]jose.JSONWebKey]

	mu        sync.Mutex // serialises fetches; guards lastFetch
	lastFetch time.Time  // start of the last fetch, successful or not
}

// lookup returns the cached keys with kid, fetching the set again first when there is
// none and the last fetch is at least minRefetchInterval ago.
func (c *jwks) lookup(ctx context.Context, kid string) []jose.JSONWebKey {
	if ks := c.cached(kid); ks != nil {
		return ks
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ks := c.cached(kid); ks != nil { // fetched while we waited
		return ks
	}
	if c.now().Sub(c.lastFetch) < minRefetchInterval {
		return nil
	}
	// The request's cancellation must not cut a fetch that other requests wait for.
	if err := c.fetch(context.WithoutCancel(ctx)); err != nil {
		c.log.Error().Err(err).Msg("jwks refetch for an unknown kid failed; keeping the cached keys")
		return nil
	}
	return c.cached(kid)
}

func (c *jwks) cached(kid string) []jose.JSONWebKey {
	if m := c.keys.Load(); m != nil {
		return (*m)[kid]
	}
	return nil
}

// refreshEvery fetches the set every interval until ctx ends.
func (c *jwks) refreshEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mu.Lock()
			err := c.fetch(ctx)
			c.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				c.log.Error().Err(err).Msg("jwks refresh failed; keeping the cached keys")
			}
		}
	}
}

// fetch downloads and parses the set and, when it holds a usable key, replaces the cache.
// c.mu must be held.
func (c *jwks) fetch(ctx context.Context) error {
	c.lastFetch = c.now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: %s answered %d", c.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return fmt.Errorf("jwks: reading %s: %w", c.url, err)
	}
	if len(body) > maxJWKSSize {
		return fmt.Errorf("jwks: %s answered more than %d bytes", c.url, maxJWKSSize)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("jwks: %s: %w", c.url, err)
	}
	if skipped > 0 {
		c.log.Warn().Int("skipped", skipped).Msg("jwks holds keys the gateway cannot use for signatures; ignored")
	}
	c.keys.Store(&keys)
	return nil
}

// parseJWKS returns the set's usable signature keys by kid, and how many keys it skipped
// (unparseable, private, symmetric, weak, for encryption, of an algorithm we refuse, or
// without kid). A set without any usable key is an error, so it never replaces a good one.
func parseJWKS(body []byte) (map[string][]jose.JSONWebKey, int, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, 0, fmt.Errorf("not a JWK set: %w", err)
	}
	keys, skipped := make(map[string][]jose.JSONWebKey), 0
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || !usableKey(k) {
			skipped++
			continue
		}
		keys[k.KeyID] = append(keys[k.KeyID], k)
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("no usable signature key")
	}
	return keys, skipped, nil
}

func usableKey(k jose.JSONWebKey) bool {
	if k.KeyID == "" || !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
		return false
	}
	if k.Algorithm != "" && !slices.Contains(allowedAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return pk.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return pk.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return true
	}
	return false
}

// keyFits reports whether k may verify a signature made with alg, so a key is only ever
// used with the algorithm family it was published for.
func keyFits(k jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256) || alg == string(jose.PS256)
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256)
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}
