package main

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/config"
	"github.com/finplat/payment-batch-gateway/internal/telemetry"
)

// newConcurClient is the Concur client, every setting from the configuration, which has
// validated and defaulted each one; the credentials live in the store.
func newConcurClient(cfg config.Config, st concur.CredentialStore, tel *observability, log zerolog.Logger) (*concur.Client, error) {
	up, err := concur.New(concur.Config{
		BaseURL:      cfg.ConcurBaseURL,
		TokenURL:     cfg.ConcurTokenURL,
		ClientID:     cfg.ConcurClientID,
		ClientSecret: cfg.ConcurClientSecret.Reveal(),
		RefreshToken: cfg.ConcurRefreshToken.Reveal(),
		AccessToken:  cfg.ConcurAccessToken.Reveal(),
		AuthScheme:   cfg.ConcurAuthScheme,
		Timeout:      cfg.ConcurTimeout,
		UserAgent:    "payment-batch-gateway/" + version,
		Credentials:  st,
		// The default transport (its time-outs) under a client span per request.
		Transport: telemetry.ConcurTransport(tel.tracing.Provider, concur.DefaultTransport(cfg.ConcurTimeout)),
		Observer:  tel.metrics,

		BreakerThreshold:    cfg.ConcurBreakerThreshold,
		BreakerOpenInterval: cfg.ConcurBreakerOpenInterval,
		OnBreakerStateChange: func(name, from, to string) {
			log.Warn().Str("breaker", name).Str("from", from).Str("to", to).Msg("Concur circuit breaker changed state")
			tel.metrics.BreakerChanged(name, from, to)
		},
		MaxAttempts:   cfg.ConcurMaxAttempts,
		RetryBudget:   cfg.ConcurRetryBudget(), // counted in cfg.CloseBudget()
		MaxConcurrent: cfg.ConcurMaxConcurrent,
		RateLimit:     cfg.ConcurRateLimitPerSecond,
		RateBurst:     cfg.ConcurRateBurst(),
	})
	if err != nil {
		return nil, fmt.Errorf("concur client: %w", err)
	}
	tel.metrics.WatchBreakers(up.BreakerState, concur.BreakerAPI, concur.BreakerToken)
	return up, nil
}
