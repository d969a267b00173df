package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/concursim"
)

const defaultAddr = "127.0.0.1:9090"

// maxLoadBatches bounds CONCURSIM_LOAD_BATCHES: the batch list is one answer.
const maxLoadBatches = 10000

// config is everything concursim reads from its environment.
type config struct {
	Addr         string        // CONCURSIM_ADDR, default 127.0.0.1:9090
	ClientID     string        // CONCURSIM_CLIENT_ID (required)
	ClientSecret string        // CONCURSIM_CLIENT_SECRET (required, never logged)
	RefreshToken string        // CONCURSIM_REFRESH_TOKEN (required unless CONCURSIM_REQUEST_TOKEN; never logged)
	TokenTTL     time.Duration // CONCURSIM_TOKEN_TTL, default 1h

	// The company request-token grant (grant_type=password), on when both are set.
	CompanyUUID          string        // CONCURSIM_COMPANY_UUID
	RequestToken         string        // CONCURSIM_REQUEST_TOKEN (never logged)
	RequestTokenTTL      time.Duration // CONCURSIM_REQUEST_TOKEN_TTL, default 24h from the start
	RequestTokenClientID string        // CONCURSIM_REQUEST_TOKEN_CLIENT_ID, default CONCURSIM_CLIENT_ID (another: code 136)
	RefreshTokenTTL      time.Duration // CONCURSIM_REFRESH_TOKEN_TTL, default 4320h (180 days), at least 1s
	Scope                string        // CONCURSIM_SCOPE, default concursim.DefaultScope

	GeoAddr         string // CONCURSIM_GEO_ADDR: a second listener, the data-centre host; empty: one host
	RedirectRefresh bool   // CONCURSIM_REDIRECT_REFRESH, default true: with GEO_ADDR, code 16 once per grant at GLZ
	GeolocationPath bool   // CONCURSIM_GEOLOCATION_PATH, default false: the default geolocation ends in /oauth2/v0/token

	Sunset          string        // CONCURSIM_SUNSET: an HTTP-date, the Sunset header of Payment Batch answers
	APIWarn         string        // CONCURSIM_API_WARN: the x-api-warn header of Payment Batch answers
	ExpiresInNumber bool          // CONCURSIM_EXPIRES_IN: "string" (default) | "number"
	Rotate          bool          // CONCURSIM_ROTATE, default true
	URLElement      string        // CONCURSIM_URL_ELEMENT: Batch-URL (default) | Batch-Url
	Geolocation     string        // CONCURSIM_GEOLOCATION (verbatim, a path allowed), default: the data centre or the request's origin
	AsyncCloseDelay time.Duration // CONCURSIM_ASYNC_CLOSE_DELAY, default 2s; 0 closes at once
	LargeFileBytes  int64         // CONCURSIM_LARGE_FILE_BYTES: >0 adds batch "large-file-batch"
	LoadBatches     int           // CONCURSIM_LOAD_BATCHES: adds that many open batches "load-0001"…, for load tests
	ErrorNamespace  bool          // CONCURSIM_ERROR_NAMESPACE, default false
	Disposition     bool          // CONCURSIM_CONTENT_DISPOSITION, default false
	// Chaos is CONCURSIM_CHAOS: random failures from the start, the JSON of PUT /_sim/chaos
	// (e.g. {"reset":0.1,"status5xx":0.1,"slow":0.1,"slowFor":"3s","seed":42}); nil: none.
	Chaos *concursim.Chaos
}

// loadConfig reads the configuration and reports every problem at once.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Addr:            defaultAddr,
		TokenTTL:        time.Hour,
		RequestTokenTTL: 24 * time.Hour,
		RefreshTokenTTL: 180 * 24 * time.Hour,
		Scope:           concursim.DefaultScope,
		RedirectRefresh: true,
		Rotate:          true,
		URLElement:      concursim.URLElementUpper,
		AsyncCloseDelay: 2 * time.Second,
	}
	var errs []error
	bad := func(name, v, want string) {
		errs = append(errs, fmt.Errorf("%s=%q: want %s", name, v, want))
	}
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	required := func(name string, dst *string) {
		if *dst = getenv(name); *dst == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	secret := func(name string, dst *string) { *dst = getenv(name) } // optional, verbatim
	boolean := func(name string, dst *bool) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, v, "true or false")
			}
			*dst = b
		}
	}
	duration := func(name string, dst *time.Duration, least time.Duration) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < least {
				bad(name, v, "a duration such as 30s, at least "+least.String())
			}
			*dst = d
		}
	}

	str("CONCURSIM_ADDR", &c.Addr)
	required("CONCURSIM_CLIENT_ID", &c.ClientID)
	required("CONCURSIM_CLIENT_SECRET", &c.ClientSecret)
	secret("CONCURSIM_REFRESH_TOKEN", &c.RefreshToken)
	secret("CONCURSIM_REQUEST_TOKEN", &c.RequestToken)
	str("CONCURSIM_COMPANY_UUID", &c.CompanyUUID)
	switch {
	case c.RefreshToken == "" && c.RequestToken == "":
		errs = append(errs, errors.New("CONCURSIM_REFRESH_TOKEN is required (or CONCURSIM_REQUEST_TOKEN with CONCURSIM_COMPANY_UUID)"))
	case (c.CompanyUUID == "") != (c.RequestToken == ""):
		errs = append(errs, errors.New("CONCURSIM_COMPANY_UUID and CONCURSIM_REQUEST_TOKEN go together"))
	}
	str("CONCURSIM_REQUEST_TOKEN_CLIENT_ID", &c.RequestTokenClientID)
	duration("CONCURSIM_REQUEST_TOKEN_TTL", &c.RequestTokenTTL, time.Second)
	duration("CONCURSIM_REFRESH_TOKEN_TTL", &c.RefreshTokenTTL, time.Second)
	str("CONCURSIM_SCOPE", &c.Scope)
	str("CONCURSIM_GEO_ADDR", &c.GeoAddr)
	boolean("CONCURSIM_REDIRECT_REFRESH", &c.RedirectRefresh)
	boolean("CONCURSIM_GEOLOCATION_PATH", &c.GeolocationPath)
	str("CONCURSIM_SUNSET", &c.Sunset)
	str("CONCURSIM_API_WARN", &c.APIWarn)
	if err := (concursim.Deprecation{Sunset: c.Sunset, APIWarn: c.APIWarn}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("CONCURSIM_SUNSET or CONCURSIM_API_WARN: %w", err))
	}
	duration("CONCURSIM_TOKEN_TTL", &c.TokenTTL, time.Second)
	duration("CONCURSIM_ASYNC_CLOSE_DELAY", &c.AsyncCloseDelay, 0)
	boolean("CONCURSIM_ROTATE", &c.Rotate)
	boolean("CONCURSIM_ERROR_NAMESPACE", &c.ErrorNamespace)
	boolean("CONCURSIM_CONTENT_DISPOSITION", &c.Disposition)
	switch v := strings.ToLower(strings.TrimSpace(getenv("CONCURSIM_EXPIRES_IN"))); v {
	case "", "string":
	case "number":
		c.ExpiresInNumber = true
	default:
		bad("CONCURSIM_EXPIRES_IN", v, "string or number")
	}
	str("CONCURSIM_URL_ELEMENT", &c.URLElement)
	if c.URLElement != concursim.URLElementUpper && c.URLElement != concursim.URLElementCamel {
		bad("CONCURSIM_URL_ELEMENT", c.URLElement, concursim.URLElementUpper+" or "+concursim.URLElementCamel)
	}
	str("CONCURSIM_GEOLOCATION", &c.Geolocation)
	if c.Geolocation != "" {
		u, err := url.Parse(c.Geolocation)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			bad("CONCURSIM_GEOLOCATION", c.Geolocation,
				"an origin such as https://us2.api.concursolutions.com, a path allowed (such as /oauth2/v0/token)")
		}
	}
	if v := strings.TrimSpace(getenv("CONCURSIM_LARGE_FILE_BYTES")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad("CONCURSIM_LARGE_FILE_BYTES", v, "a non-negative number of bytes")
		}
		c.LargeFileBytes = n
	}
	if v := strings.TrimSpace(getenv("CONCURSIM_LOAD_BATCHES")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxLoadBatches {
			bad("CONCURSIM_LOAD_BATCHES", v, fmt.Sprintf("a number of batches from 0 to %d", maxLoadBatches))
		}
		c.LoadBatches = n
	}
	if v := strings.TrimSpace(getenv("CONCURSIM_CHAOS")); v != "" {
		ch, err := concursim.ParseChaos([]byte(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("CONCURSIM_CHAOS: %w", err))
		} else {
			c.Chaos = &ch
		}
	}
	return c, errors.Join(errs...)
}

// options turns the configuration into simulator options. dataCentre is the origin of
// the CONCURSIM_GEO_ADDR listener, or "".
func (c config) options(dataCentre string) concursim.Options {
	o := concursim.Options{
		ClientID:             c.ClientID,
		ClientSecret:         c.ClientSecret,
		RefreshToken:         c.RefreshToken,
		CompanyUUID:          c.CompanyUUID,
		RequestToken:         c.RequestToken,
		RequestTokenTTL:      c.RequestTokenTTL,
		RequestTokenClientID: c.RequestTokenClientID,
		RefreshTokenTTL:      c.RefreshTokenTTL,
		Scope:                c.Scope,
		NoRedirectRefresh:    !c.RedirectRefresh,
		GeolocationPath:      c.GeolocationPath,
		Sunset:               c.Sunset,
		APIWarn:              c.APIWarn,
		AccessTokenTTL:       c.TokenTTL,
		ExpiresInNumber:      c.ExpiresInNumber,
		NoRotate:             !c.Rotate,
		Geolocation:          c.Geolocation,
		URLElement:           c.URLElement,
		ErrorNamespace:       c.ErrorNamespace,
		ContentDisposition:   c.Disposition,
		AsyncCloseDelay:      c.AsyncCloseDelay,
		Batches:              concursim.Seed(),
		Chaos:                c.Chaos,
		DataCentre:           dataCentre,
	}
	if c.AsyncCloseDelay == 0 {
		o.AsyncCloseDelay = -1 // the simulator reads 0 as its default; negative is "at once"
	}
	if c.LargeFileBytes > 0 {
		o.Batches = append(o.Batches, concursim.Batch{
			ID: "large-file-batch", Name: "Large File USD", Total: "1.00", Currency: "USD",
			Type: concursim.TypeEmployee, PaymentMethod: "Expense Pay by SAP Concur",
			Count: 1, FileSize: c.LargeFileBytes,
		})
	}
	for i := 1; i <= c.LoadBatches; i++ {
		o.Batches = append(o.Batches, concursim.Batch{
			ID: fmt.Sprintf("load-%04d", i), Name: fmt.Sprintf("Load Test USD %04d", i), Total: "100.00", Currency: "USD",
			Type: concursim.TypeEmployee, PaymentMethod: "Expense Pay by SAP Concur", Count: 1,
		})
	}
	return o
}
