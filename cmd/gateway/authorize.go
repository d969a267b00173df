package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/finplat/payment-batch-gateway/internal/batch"
	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/config"
)

// authorize is `gateway authorize [--replace]`: it exchanges the company request token a
// Concur administrator generated for the app for the company's grant, and stores it
// encrypted, as a renewal would, in the store the gateway uses (same environment). The
// gateway then starts with no CONCUR_REFRESH_TOKEN. It prints the geolocation, the granted
// scopes and the refresh token's expiry; never a token.
func authorize(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authorize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replace := fs.Bool("replace", false, "replace the grant the store already holds (after a re-authorisation)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway authorize [--replace]\n\n"+
			"Exchanges a Concur company request token for the company's grant and stores it (encrypted).\n"+
			"Reads CONCUR_COMPANY_UUID and CONCUR_REQUEST_TOKEN or CONCUR_REQUEST_TOKEN_FILE (on a terminal, asks for it),\n"+
			"and the gateway's own CONCUR_* and store settings. See README.md, \"Connecting to your Concur company\".")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := config.LoadAuthorize(getenv)
	if err != nil {
		return err
	}
	requestToken := cfg.ConcurRequestToken.Reveal()
	if requestToken == "" {
		if requestToken, err = promptSecret(stdin, stderr, "Company request token (input hidden): "); err != nil {
			return err
		}
	}
	log := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		log.Warn().Msg(w)
	}
	st, _, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	ccfg := concurConfig(cfg, st)
	ccfg.TokenURL, ccfg.RefreshToken = cfg.AuthorizeTokenURL(), ""
	up, err := concur.New(ccfg)
	if err != nil {
		return fmt.Errorf("concur client: %w", err)
	}
	fmt.Fprintf(stderr, "Exchanging the company request token at %s ...\n", concur.RedactURL(ccfg.TokenURL))
	a, err := up.Authorize(ctx, cfg.ConcurCompanyUUID, requestToken, *replace, cfg.ConcurRefreshToken.Reveal())
	switch {
	case errors.Is(err, concur.ErrAlreadyAuthorized):
		return errors.New("the store already holds a Concur grant: nothing was changed. To replace it (after a Concur " +
			"administrator re-authorised the app), run `gateway authorize --replace`; running gateways adopt the new grant at their next renewal")
	case err != nil:
		if e, ok := errors.AsType[*batch.Error](err); ok && e.CorrelationID != "" {
			return fmt.Errorf("authorize: %w (Concur's correlation id, for SAP Concur support: %s)", err, e.CorrelationID)
		}
		return fmt.Errorf("authorize: %w", err)
	}

	verb := "stored"
	if a.Replaced {
		verb = "stored, replacing the one the store held"
	}
	fmt.Fprintf(stdout, "Authorized: the company's Concur grant is %s (encrypted, %s store).\n", verb, cfg.StoreKind())
	fmt.Fprintf(stdout, "  Geolocation:           %s\n", orNone(a.Geolocation, "none named (calls go to CONCUR_BASE_URL)"))
	fmt.Fprintf(stdout, "  Granted scopes:        %s\n", orNone(strings.Join(a.Scopes, " "), "Concur did not list them"))
	expiry := "Concur did not say"
	if !a.RefreshExpiry.IsZero() {
		expiry = fmt.Sprintf("%s (in %d days; the gateway renews it on its own from %s before)",
			a.RefreshExpiry.UTC().Format(time.RFC3339), int(time.Until(a.RefreshExpiry).Hours()/24), cfg.ConcurRefreshKeepAlive)
	}
	fmt.Fprintf(stdout, "  Refresh token expires: %s\n", expiry)
	if len(a.Scopes) == 0 {
		fmt.Fprintf(stdout, "Note: Concur did not list the granted scopes: make sure the app's registration has %s "+
			"(\"Close and export payment batches\"), or every Payment Batch call will be refused.\n", concur.ScopePaymentBatch)
	} else if !a.HasScope(concur.ScopePaymentBatch) {
		fmt.Fprintf(stdout, "WARNING: the grant lacks the %s scope (\"Close and export payment batches\"): Concur will refuse "+
			"every Payment Batch call. Add %s to the app's registration, generate a new request token, and run "+
			"`gateway authorize --replace`.\n", concur.ScopePaymentBatch, concur.ScopePaymentBatch)
	}
	if cfg.ConcurRefreshToken != "" {
		fmt.Fprintln(stdout, "Note: CONCUR_REFRESH_TOKEN is set; it is recorded as superseded, so no replica redeems it. Remove it from the gateway's environment.")
	}
	fmt.Fprintln(stdout, "Next: start the gateway (no CONCUR_REFRESH_TOKEN is needed). The request token is not stored; you may discard it.")
	return nil
}

func orNone(v, none string) string {
	if v == "" {
		return none
	}
	return v
}

// promptSecret asks for a secret on a terminal, without echo. Anything but a terminal is
// refused: a secret piped in would end up in shell history or process listings sooner
// than CONCUR_REQUEST_TOKEN_FILE.
func promptSecret(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) { // #nosec G115 -- a file descriptor fits an int
		return "", errors.New("CONCUR_REQUEST_TOKEN or CONCUR_REQUEST_TOKEN_FILE is required (or run on a terminal to be asked for it)")
	}
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd())) // #nosec G115 -- a file descriptor fits an int
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read the request token: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New("no request token was entered")
	}
	return v, nil
}
