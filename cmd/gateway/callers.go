package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/finplat/payment-batch-gateway/internal/auth"
	"github.com/finplat/payment-batch-gateway/internal/config"
)

// keyFilePoll is how often GATEWAY_API_KEYS_FILE is checked for changes (SIGHUP reloads at once).
const keyFilePoll = 5 * time.Second

// newAuthenticator builds caller authentication from the configuration: nil when it is
// disabled (loudly). The key file is watched, and reloaded on SIGHUP, until ctx ends.
func newAuthenticator(ctx context.Context, cfg config.Config, log zerolog.Logger) (*auth.Authenticator, error) {
	if cfg.AuthDisabled() {
		log.Warn().Msg("CALLER AUTHENTICATION IS DISABLED (GATEWAY_AUTH=disabled): anyone who can reach the gateway " +
			"can close every payment batch with company-administrator rights. Development only.")
		return nil, nil
	}
	var sources []auth.KeySource
	if cfg.APIKeys != "" {
		keys, err := auth.ParseKeys([]byte(cfg.APIKeys))
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_API_KEYS: %w", err)
		}
		sources = append(sources, keys)
		log.Info().Strs("callers", keys.Names()).Msg("API keys loaded from GATEWAY_API_KEYS")
	}
	if cfg.APIKeysFile != "" {
		kf, err := auth.OpenKeyFile(cfg.APIKeysFile, log)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_API_KEYS_FILE: %w", err)
		}
		sources = append(sources, kf)
		go kf.Watch(ctx, keyFilePoll)
		go reloadOnHangup(ctx, kf)
	}
	var verifier *auth.JWTVerifier
	if cfg.JWKSURL != "" {
		v, err := auth.NewJWTVerifier(ctx, auth.JWTConfig{
			JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			ScopeClaim: cfg.JWTScopes, NameClaim: cfg.JWTName, Log: log,
		})
		if err != nil {
			return nil, fmt.Errorf("JWT callers: %w", err)
		}
		verifier = v
	}
	return auth.NewAuthenticator(verifier, sources...)
}

// reloadOnHangup reloads the key file on SIGHUP (KeyFile logs the outcome).
func reloadOnHangup(ctx context.Context, kf *auth.KeyFile) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = kf.Reload()
		}
	}
}

// mintKey prints a new API key and the GATEWAY_API_KEYS entry that admits it: the key on
// the first line (give it to the caller, once), the entry on the second (configure it).
// The gateway keeps only the hash.
func mintKey(args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return errors.New("usage: gateway mint-key NAME SCOPE... (scopes: batches:read batches:close batches:regenerate)")
	}
	key, hash, err := auth.NewKey()
	if err != nil {
		return err
	}
	entry, err := json.Marshal([]map[string]any{{"name": args[0], "sha256": hash, "scopes": args[1:]}})
	if err != nil {
		return err
	}
	if _, err := auth.ParseKeys(entry); err != nil { // the same rules as at start
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n%s\n", key, entry)
	return err
}
