// Package concursim is an HTTP stand-in for SAP Concur's legacy Payment Batch API (v1.1
// list and close, v1.2 asynchronous close, payment files) and its OAuth2 token endpoint.
// It is faithful to what our client must cope with: rotating refresh tokens, 401 versus
// 403, encrypted batch URLs, both spellings of Batch-URL, regeneration on a second close,
// zip and CSV files, a set of injectable faults (see [Fault]) and random failures for load
// tests (see [Chaos]). It also shows what a real company shows on day one: the company
// request-token grant (grant.go), Concur's token error codes on demand (see [TokenError]),
// refresh tokens that expire, a GLZ host next to a data-centre host (hosts.go),
// concur-correlationid headers and deprecation signals (see [Deprecation]).
//
// A [Sim] is an [http.Handler]; mount it on an httptest.Server or an http.Server (and, for
// two hosts, [Sim.DataCentreHandler] on a second one). Administration lives under /_sim/
// and is never faulted or authenticated.
//
// It imports none of our packages: it knows Concur, not our client (internal/imports_test.go
// holds the rule).
package concursim

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Batch is one payment batch as the simulator holds it.
type Batch struct {
	ID, Name, Total, Currency, Type, PaymentMethod string // Total "1289.40"; Type "Employee" | "Card Program"

	Count    int   // reports in the batch; 0 => close answers 500 "does not contain any reports"
	Closed   bool  // the batch is in the CLOSED list
	FileSize int64 // >0: the payment file is a generated CSV of exactly this many bytes, streamed

	Key     string // the encrypted id in its Batch-URL, of [A-Za-z0-9$]; empty: random
	FileKey string // the JobRunKey of a payment file made before the simulator started; empty: none
}

// Batch types Concur documents.
const (
	TypeEmployee    = "Employee"
	TypeCardProgram = "Card Program"
)

// Options configures a [Sim]. Zero values are the documented defaults.
type Options struct {
	ClientID, ClientSecret string // the client the token endpoint accepts (required)
	RefreshToken           string // redeemable from the start (required unless RequestToken is set)

	// The company request-token grant (grant_type=password, credtype=authtoken), on when
	// both CompanyUUID and RequestToken are set (see grant.go).
	CompanyUUID          string        // username the grant accepts (compared case-insensitively)
	RequestToken         string        // password the grant accepts; reusable within RequestTokenTTL
	RequestTokenTTL      time.Duration // from New; default 24h. Expired: invalid_grant code 108
	RequestTokenClientID string        // the client the request token was issued for (default ClientID); another: code 136

	RefreshTokenTTL time.Duration // default 180 days: each refresh token dies this long after its issue
	Scope           string        // the scope of every token answer (default DefaultScope)

	// DataCentre is the origin of the data-centre host (such as us2.api.concursolutions.com)
	// that [Sim.DataCentreHandler] serves; the Sim itself then plays GLZ (see hosts.go).
	// Empty: one host, as before.
	DataCentre        string
	NoRedirectRefresh bool // with DataCentre: GLZ redeems refresh tokens instead of answering code 16 once per grant

	Sunset  string // an HTTP-date: the Sunset header of every Payment Batch API answer (see [Deprecation])
	APIWarn string // the x-api-warn header of every Payment Batch API answer

	AccessTokenTTL     time.Duration // default 1h
	ExpiresInNumber    bool          // expires_in and refresh_expires_in as JSON numbers (default: strings)
	NoRotate           bool          // default false: every refresh issues a new refresh token, the old one dies
	Geolocation        string        // sent verbatim, a path allowed; default: the DataCentre or the request's origin
	GeolocationPath    bool          // the default geolocation ends in /oauth2/v0/token (not applied to Geolocation)
	NoGeolocation      bool          // token answers carry no geolocation (default: they do)
	AuthScheme         string        // the one Authorization scheme the API accepts, "Bearer" or "OAuth" (default: either)
	RefusedStatus      int           // the API's status for an unknown, expired or revoked token: 403 (default) or 401
	CountedTokens      bool          // tokens named at-1, rt-1, at-2, rt-2… in issue order, for tests (default: random)
	URLElement         string        // "Batch-URL" (default) or "Batch-Url"
	ErrorNamespace     bool          // put <Error> in the paymentbatch namespace (default: no namespace)
	ContentDisposition bool          // send Content-Disposition on files (default: none, it is undocumented)
	AsyncCloseDelay    time.Duration // v1.2 close completes after this (default 2s; negative: at once)
	Batches            []Batch       // nil => Seed()
	Chaos              *Chaos        // chaos from the start (see [Chaos]); nil: none

	now func() time.Time // the clock, for tests; nil: time.Now
}

// DefaultScope is Options.Scope when unset: it holds PAYBAT, the scope the API needs.
const DefaultScope = "EXPRPT PAYBAT company.read"

// Defaults of the credential lifetimes.
const (
	defaultRequestTokenTTL = 24 * time.Hour
	defaultRefreshTokenTTL = 180 * 24 * time.Hour // Concur's refresh tokens live six months
)

// Spellings of the batch URL element seen in the wild.
const (
	URLElementUpper = "Batch-URL" // the reference documentation
	URLElementCamel = "Batch-Url" // Concur's own sample client
)

const (
	nsPaymentBatch = "http://www.concursolutions.com/api/expense/paymentbatch/2011/11"
	nsXSI          = "http://www.w3.org/2001/XMLSchema-instance"
	apiPrefix      = "/api/expense/paymentbatch/"
)

// Sim is the simulator. All state is guarded by mu; it is safe for concurrent use.
type Sim struct {
	opts  Options
	mux   *http.ServeMux
	now   func() time.Time // Options.now or time.Now
	start time.Time        // when New ran: request tokens and the configured refresh token count from it

	geoOrigin string // scheme and host of Options.Geolocation, for the URLs handed out

	mu       sync.Mutex
	batches  []*batchState                   // in list order
	byKey    map[string]*batchState          // encrypted batch key -> batch
	files    map[string]*batchState          // JobRunKey -> batch; every key ever issued
	refresh  map[string]refreshState         // refresh tokens the token endpoint redeems
	access   map[string]time.Time            // access token -> expiry
	issued   int                             // successful grants, for CountedTokens
	tokenErr *TokenError                     // nil: no injected token error
	depr     Deprecation                     // headers of the Payment Batch API answers
	edit     func(map[string]any)            // edits each successful token answer (see [Sim.EditTokenAnswers])
	wrap     func(http.Handler) http.Handler // wraps the API handlers (see [Sim.InterceptAPI])
	fault    *Fault                          // nil: no fault
	chaos    *chaosState                     // nil: no chaos
	stats    Stats
	timers   map[*time.Timer]struct{} // pending v1.2 closes
	shutdown bool
}

type batchState struct {
	Batch
	key string // encrypted id in Batch-URL
}

// New validates opts and returns a ready simulator.
func New(opts Options) (*Sim, error) {
	var errs []error
	if opts.ClientID == "" {
		errs = append(errs, errors.New("concursim: ClientID is required"))
	}
	if opts.ClientSecret == "" {
		errs = append(errs, errors.New("concursim: ClientSecret is required"))
	}
	if opts.RefreshToken == "" && opts.RequestToken == "" {
		errs = append(errs, errors.New("concursim: RefreshToken is required (or RequestToken)"))
	}
	if (opts.CompanyUUID == "") != (opts.RequestToken == "") {
		errs = append(errs, errors.New("concursim: CompanyUUID and RequestToken go together"))
	}
	opts.RequestTokenClientID = cmp.Or(opts.RequestTokenClientID, opts.ClientID)
	opts.Scope = cmp.Or(opts.Scope, DefaultScope)
	if opts.RequestTokenTTL <= 0 {
		opts.RequestTokenTTL = defaultRequestTokenTTL
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = defaultRefreshTokenTTL
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	switch opts.URLElement {
	case "":
		opts.URLElement = URLElementUpper
	case URLElementUpper, URLElementCamel:
	default:
		errs = append(errs, fmt.Errorf("concursim: URLElement %q: want %q or %q",
			opts.URLElement, URLElementUpper, URLElementCamel))
	}
	opts.Geolocation = strings.TrimRight(opts.Geolocation, "/")
	geoOrigin, err := originOf(opts.Geolocation, true)
	if err != nil {
		errs = append(errs, fmt.Errorf("concursim: Geolocation: %w", err))
	}
	opts.DataCentre = strings.TrimRight(opts.DataCentre, "/")
	if _, err := originOf(opts.DataCentre, false); err != nil {
		errs = append(errs, fmt.Errorf("concursim: DataCentre: %w", err))
	}
	depr := Deprecation{Sunset: opts.Sunset, APIWarn: opts.APIWarn}
	if err := depr.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("concursim: %w", err))
	}
	switch opts.AuthScheme {
	case "", "Bearer", "OAuth":
	default:
		errs = append(errs, fmt.Errorf("concursim: AuthScheme %q: want Bearer or OAuth", opts.AuthScheme))
	}
	switch opts.RefusedStatus {
	case 0:
		opts.RefusedStatus = http.StatusForbidden
	case http.StatusForbidden, http.StatusUnauthorized:
	default:
		errs = append(errs, fmt.Errorf("concursim: RefusedStatus %d: want 401 or 403", opts.RefusedStatus))
	}
	if opts.AsyncCloseDelay == 0 {
		opts.AsyncCloseDelay = 2 * time.Second
	}
	if opts.Batches == nil {
		opts.Batches = Seed()
	}
	opts.Batches = slices.Clone(opts.Batches)

	now := opts.now
	if now == nil {
		now = time.Now
	}
	s := &Sim{
		opts:      opts,
		now:       now,
		start:     now(),
		geoOrigin: geoOrigin,
		byKey:     make(map[string]*batchState),
		files:     make(map[string]*batchState),
		refresh:   make(map[string]refreshState),
		access:    make(map[string]time.Time),
		depr:      depr,
		stats:     newStats(),
		timers:    make(map[*time.Timer]struct{}),
	}
	if opts.RefreshToken != "" {
		exp := s.start.Add(opts.RefreshTokenTTL)
		s.refresh[opts.RefreshToken] = refreshState{exp: exp, grant: &grant{}}
		s.stats.RefreshTokenExpiry = exp.Unix()
	}
	seen := make(map[string]bool)
	for i, b := range opts.Batches {
		if err := validateBatch(b); err != nil {
			errs = append(errs, fmt.Errorf("concursim: batch %d: %w", i, err))
		}
		if seen[b.ID] {
			errs = append(errs, fmt.Errorf("concursim: batch %d: duplicate ID %q", i, b.ID))
		}
		seen[b.ID] = true
		bs := &batchState{Batch: b, key: cmp.Or(b.Key, newKey(32))}
		if s.byKey[bs.key] != nil || (b.FileKey != "" && s.files[b.FileKey] != nil) {
			errs = append(errs, fmt.Errorf("concursim: batch %d: duplicate Key or FileKey", i))
		}
		s.batches = append(s.batches, bs)
		s.byKey[bs.key] = bs
		if b.FileKey != "" {
			s.files[b.FileKey] = bs
		}
	}
	if opts.Chaos != nil {
		if err := opts.Chaos.validate(); err != nil {
			errs = append(errs, fmt.Errorf("concursim: Chaos: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Chaos != nil {
		if _, err := s.SetChaos(*opts.Chaos); err != nil {
			return nil, err
		}
	}
	s.mux = s.routes()
	return s, nil
}

func validateBatch(b Batch) error {
	if b.ID == "" {
		return errors.New("ID is empty")
	}
	if b.Count < 0 || b.FileSize < 0 {
		return fmt.Errorf("batch %q: Count and FileSize must not be negative", b.ID)
	}
	if (b.Key != "" && !validKey(b.Key)) || (b.FileKey != "" && !validKey(b.FileKey)) {
		return fmt.Errorf("batch %q: Key and FileKey must be made of [A-Za-z0-9$]", b.ID)
	}
	if _, err := parseCents(b.Total); err != nil {
		return fmt.Errorf("batch %q: Total: %w", b.ID, err)
	}
	return nil
}

// routes is the whole HTTP surface.
func (s *Sim) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("POST "+tokenPath, s.correlated("token", s.faulted("token", http.HandlerFunc(s.handleToken))))

	// Outermost first: correlation id and deprecation headers on every answer, then faults
	// and chaos, then Concur's own refusals, then the interceptor and the handler.
	api := func(op string, h http.Handler) http.Handler {
		return s.correlated(op, s.deprecated(s.faulted(op, h)))
	}
	list := api("list", s.authed(s.rightHost(s.intercepted(s.handleList))))
	m.Handle("GET "+apiPrefix+"v1.1/batchlist", list)
	m.Handle("GET "+apiPrefix+"v1.1/batchlist/{$}", list)
	m.Handle("GET "+apiPrefix+"v1.1/batchlist/{status}", list)
	m.Handle("POST "+apiPrefix+"{version}/batch/{key}/close",
		api("close", s.refuseChunked(s.authed(s.rightHost(s.intercepted(s.handleClose))))))
	m.Handle("GET "+apiPrefix+"v1.1/batch/{key}/file", api("file", s.authed(s.rightHost(s.intercepted(s.handleFile)))))

	m.HandleFunc("GET /_sim/stats", s.handleStats)
	m.HandleFunc("GET /_sim/fault", s.handleGetFault)
	m.HandleFunc("PUT /_sim/fault", s.handlePutFault)
	m.HandleFunc("DELETE /_sim/fault", s.handleDeleteFault)
	m.HandleFunc("GET /_sim/chaos", s.handleGetChaos)
	m.HandleFunc("PUT /_sim/chaos", s.handlePutChaos)
	m.HandleFunc("DELETE /_sim/chaos", s.handleDeleteChaos)
	m.HandleFunc("GET /_sim/token-error", s.handleGetTokenError)
	m.HandleFunc("PUT /_sim/token-error", s.handlePutTokenError)
	m.HandleFunc("DELETE /_sim/token-error", s.handleDeleteTokenError)
	m.HandleFunc("GET /_sim/deprecation", s.handleGetDeprecation)
	m.HandleFunc("PUT /_sim/deprecation", s.handlePutDeprecation)
	m.HandleFunc("DELETE /_sim/deprecation", s.handleDeleteDeprecation)
	m.HandleFunc("POST /_sim/expire-tokens", s.handleExpireTokens)
	m.HandleFunc("GET /_sim/healthz", s.handleHealthz)
	m.Handle("GET /_sim/metrics", runtimeMetrics())

	m.Handle("/", s.correlated("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, "The requested resource was not found.")
	})))
	return m
}

// ServeHTTP serves the simulated API and the /_sim/ administration endpoints.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending v1.2 close timers. Later v1.2 closes complete at once.
// The simulator keeps answering requests; Close only releases timers.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdown = true
	for t := range s.timers {
		t.Stop()
		delete(s.timers, t)
	}
}
