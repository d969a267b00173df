package main

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/config"
	"github.com/finplat/payment-batch-gateway/internal/httpapi"
	"github.com/finplat/payment-batch-gateway/internal/telemetry"
)

// concurConfig is the Concur client's configuration, every setting from the configuration,
// which has validated and defaulted each one; the credentials live in the store.
func concurConfig(cfg config.Config, st concur.CredentialStore) concur.Config {
	return concur.Config{
		BaseURL:          cfg.ConcurBaseURL,
		TokenURL:         cfg.ConcurTokenURL,
		ClientID:         cfg.ConcurClientID,
		ClientSecret:     cfg.ConcurClientSecret.Reveal(),
		RefreshToken:     cfg.ConcurRefreshToken.Reveal(),
		AccessToken:      cfg.ConcurAccessToken.Reveal(),
		AuthScheme:       cfg.ConcurAuthScheme,
		Timeout:          cfg.ConcurTimeout,
		UserAgent:        "payment-batch-gateway/" + version,
		Credentials:      st,
		Transport:        concur.DefaultTransport(cfg.ConcurTimeout),
		RefreshKeepAlive: cfg.ConcurRefreshKeepAlive,

		BreakerThreshold:    cfg.ConcurBreakerThreshold,
		BreakerOpenInterval: cfg.ConcurBreakerOpenInterval,
		MaxAttempts:         cfg.ConcurMaxAttempts,
		RetryBudget:         cfg.ConcurRetryBudget(), // counted in cfg.CloseBudget()
		MaxConcurrent:       cfg.ConcurMaxConcurrent,
		RateLimit:           cfg.ConcurRateLimitPerSecond,
		RateBurst:           cfg.ConcurRateBurst(),
	}
}

// newConcurClient is the service's Concur client: concurConfig, traced, observed and
// logged.
func newConcurClient(cfg config.Config, st concur.CredentialStore, tel *observability, log zerolog.Logger) (*concur.Client, error) {
	c := concurConfig(cfg, st)
	// The default transport (its time-outs) under a client span per request.
	c.Transport = telemetry.ConcurTransport(tel.tracing.Provider, c.Transport)
	c.Observer = tel.metrics
	c.OnBreakerStateChange = func(name, from, to string) {
		log.Warn().Str("breaker", name).Str("from", from).Str("to", to).Msg("Concur circuit breaker changed state")
		tel.metrics.BreakerChanged(name, from, to)
	}
	c.OnSignal = func(s concur.Signal) { logSignal(log, cfg, s) }
	up, err := concur.New(c)
	if err != nil {
		return nil, fmt.Errorf("concur client: %w", err)
	}
	tel.metrics.WatchBreakers(up.BreakerState, concur.BreakerAPI, concur.BreakerToken)
	tel.metrics.WatchConcurSignals(up.Signals)
	return up, nil
}

// logSignal writes, at warn, what Concur signalled that an operator must hear (each
// distinct value once: see concur.Signal).
func logSignal(log zerolog.Logger, cfg config.Config, s concur.Signal) {
	ev := log.Warn().Str("signal", s.Kind)
	if s.Operation != "" {
		ev = ev.Str("operation", s.Operation)
	}
	switch s.Kind {
	case concur.SignalSunset:
		if !s.At.IsZero() {
			ev = ev.Time("sunsetAt", s.At)
		}
		ev.Str("sunset", s.Value).Msg("Concur announced the end of an endpoint the gateway calls (Sunset header): " +
			"it stops working then. Concur keeps a deprecated API at least 12 months after announcing it: plan the move now")
	case concur.SignalAPIWarn:
		ev.Str("apiWarn", s.Value).Msg("Concur warned about an endpoint the gateway calls (x-api-warn header)")
	case concur.SignalRefreshExpiring:
		ev.Time("refreshTokenExpiry", s.At).Msgf("the Concur refresh token expires within CONCUR_REFRESH_KEEPALIVE (%s) "+
			"and renewing it did not extend it: before it expires, have a Concur administrator generate a new company "+
			"request token and run `gateway authorize --replace`", cfg.ConcurRefreshKeepAlive)
	case concur.SignalKeepAliveFailed:
		ev.Str("error", s.Value).Msg("the keep-alive could not renew the Concur grant; it tries again at its next tick")
	default:
		ev.Str("value", s.Value).Msg("Concur signal")
	}
}

// concurWarnings are /readyz's warnings from the Concur client's signals.
func concurWarnings(signals func() concur.Signals) func() []httpapi.ReadinessWarning {
	return func() []httpapi.ReadinessWarning {
		s := signals()
		var out []httpapi.ReadinessWarning
		if s.RefreshExpiring {
			at := s.RefreshExpiry
			out = append(out, httpapi.ReadinessWarning{Code: "concur_refresh_token_expiring", At: &at,
				Detail: fmt.Sprintf("the Concur refresh token expires on %s, within CONCUR_REFRESH_KEEPALIVE, and the keep-alive has not extended it: have a Concur "+
					"administrator generate a new company request token and run `gateway authorize --replace` before then",
					at.UTC().Format(time.RFC3339))})
		}
		if s.KeepAliveError != "" {
			out = append(out, httpapi.ReadinessWarning{Code: "concur_keepalive_failing",
				Detail: "the keep-alive could not renew the Concur grant: " + s.KeepAliveError})
		}
		if s.SunsetValue != "" {
			w := httpapi.ReadinessWarning{Code: "concur_api_sunset",
				Detail: fmt.Sprintf("Concur announced the end of an endpoint the gateway calls (%s): Sunset: %s", s.SunsetOperation, s.SunsetValue)}
			if !s.Sunset.IsZero() {
				at := s.Sunset
				w.At = &at
			}
			out = append(out, w)
		}
		if s.APIWarn != "" {
			out = append(out, httpapi.ReadinessWarning{Code: "concur_api_warning",
				Detail: fmt.Sprintf("Concur warned about an endpoint the gateway calls (%s): %s", s.APIWarnOp, s.APIWarn)})
		}
		return out
	}
}
