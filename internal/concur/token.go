package concur

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

const (
	// maxTokenLifetime caps expires_in (Concur's tokens live an hour), so an absurd value
	// cannot overflow into an expiry in the past.
	maxTokenLifetime = 24 * time.Hour
	maxTokenBody     = 64 << 10         // token endpoint answers
	refreshEarly     = 60 * time.Second // renew a token that expires within this, or within half its lifetime if shorter
)

// token is one access token. It is immutable once built. The same access token can be built
// twice (this process's, and adopted from the store), so tokens are compared by access.
type token struct {
	access   string
	expiry   time.Time     // zero: unknown, used until Concur refuses it
	lifetime time.Duration // expires_in as granted; meaningful only with expiry
	apiBase  string        // canonical origin of the geolocation; "" when none
}

// trusts reports whether origin may receive this token: Config.BaseURL's or the geolocation's.
func (t *token) trusts(base, origin string) bool {
	return origin == base || (t.apiBase != "" && origin == t.apiBase)
}

// tokenSource owns the credentials. The grant itself (newest refresh token, newest access
// token) lives in the credential store shared by every replica; the source keeps the access
// token in use in this process. Refreshes are single-flight in the process and serialised
// across processes by the store (see refresh), and run detached from any one caller, so a
// refresh token that Concur has redeemed is never lost to a cancelled request.
type tokenSource struct {
	static       *token // set in static AccessToken mode: never refresh
	store        CredentialStore
	seed         string // Config.RefreshToken: redeemed when the store holds no chain started from it
	seedHash     string // hex SHA-256 of seed
	tokenURL     string
	clientID     string
	clientSecret string
	allowHTTPGeo bool // Config.BaseURL is http:// (development, simulator): an http geolocation is accepted
	timeout      time.Duration
	userAgent    string
	httpc        *http.Client
	now          func() time.Time
	breaker      *breaker // BreakerToken: around every request to the token endpoint
	obs          Observer // told of every token request and renewal (observe.go); nil: none

	// Background commits of an unsaved grant (redeem.go): they run under bg, which Drain ends.
	bg                 context.Context
	stopBG             context.CancelFunc
	retryMin, retryMax time.Duration // their back-off

	mu       sync.Mutex
	cur      *token
	denied   string // the access token Concur refused last: never adopted from the store again
	inflight *flight
	// refusedHash is the hash of the refresh token Concur refused (invalid_grant), and
	// refusedErr its error: while the store still holds that token, it is not presented again.
	refusedHash string
	refusedErr  error
	unsaved     *grant // a grant the store failed to commit; committed again in the background
	retrying    bool   // retryUnsaved is running
}

// errGrantRefused marks Concur's invalid_grant: the refresh token is dead until a person
// re-authorises the gateway (a later change that reloads the token must clear refused).
var errGrantRefused = errors.New("concur: refresh token refused (invalid_grant)")

type flight struct {
	done chan struct{}
	tok  *token
	err  error
}

// get returns a token that is not about to expire (see fresh), refreshing it if needed.
func (s *tokenSource) get(ctx context.Context) (*token, error) {
	if s.static != nil {
		return s.static, nil
	}
	return s.acquire(ctx, nil)
}

// renew is called after Concur refused failed. If another caller (or replica) already
// replaced it, the replacement is returned; otherwise one refresh is made (or joined).
func (s *tokenSource) renew(ctx context.Context, failed *token) (*token, error) {
	return s.acquire(ctx, failed)
}

// acquire returns the current token unless it is stale or is failed (nil for none), else
// starts or joins the one refresh.
func (s *tokenSource) acquire(ctx context.Context, failed *token) (*token, error) {
	for try := 0; ; try++ {
		s.mu.Lock()
		if failed != nil {
			s.denied = failed.access
			if s.cur != nil && s.cur.access == failed.access {
				s.cur = nil
			}
		}
		if s.cur != nil && s.fresh(s.cur) {
			t := s.cur
			s.mu.Unlock()
			return t, nil
		}
		f := s.startLocked(ctx)
		s.mu.Unlock()
		tok, err := s.wait(ctx, f)
		// A refresh that was already running may have adopted the refused token from the
		// store before this caller said it was refused: then run one more.
		if err != nil || failed == nil || tok.access != failed.access || try > 0 {
			return tok, err
		}
	}
}

// fresh reports whether t may still be used: it is renewed once less than
// min(refreshEarly, half its lifetime) remains, so a short-lived token (expires_in of a
// minute or less) is not renewed on every call.
func (s *tokenSource) fresh(t *token) bool {
	if t.expiry.IsZero() {
		return true
	}
	margin := min(refreshEarly, t.lifetime/2)
	return !s.now().Add(margin).After(t.expiry)
}

func (s *tokenSource) startLocked(ctx context.Context) *flight {
	if s.inflight != nil {
		return s.inflight
	}
	f := &flight{done: make(chan struct{})}
	s.inflight = f
	go func() {
		// Lock wait, token call and commit: the token call gets s.timeout of it (see refresh).
		ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), refreshBudget(s.timeout), errCallTimeout)
		defer cancel()
		tok, err := s.refresh(ctx)
		s.mu.Lock()
		if err == nil {
			s.cur = tok
		}
		s.inflight = nil
		f.tok, f.err = tok, err
		s.mu.Unlock()
		close(f.done)
	}()
	return f
}

// drain waits for the refresh in flight, if any, to end (commit or fail), then commits an
// unsaved grant, trying again with back-off until ctx ends, and stops the background
// commits. A grant still unsaved then is lost with the process: the error says so.
func (s *tokenSource) drain(ctx context.Context) error {
	defer s.stopBG()
	s.mu.Lock()
	f := s.inflight
	s.mu.Unlock()
	if f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	wait := s.retryMin
	for {
		s.mu.Lock()
		g := s.unsaved
		s.mu.Unlock()
		if g == nil {
			return nil
		}
		if _, _, err := s.commit(ctx, g); err == nil {
			continue
		}
		if !sleep(ctx, wait) {
			return errors.New("concur: a renewed refresh token could not be stored before shutdown")
		}
		wait = min(2*wait, s.retryMax)
	}
}

func (s *tokenSource) wait(ctx context.Context, f *flight) (*token, error) {
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, callerGone(ctx)
	}
}
