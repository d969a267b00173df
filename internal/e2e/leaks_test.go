package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// audit collects, over the whole end-to-end suite, everything every gateway logged and every
// credential in play: the configured secrets, each minted API key, and each token the
// simulator issued. TestMain fails the suite when one of them, or anything shaped like an
// API key, a JWT or a bearer credential, appears in a gateway's log.
var audit leakAudit

type leakAudit struct {
	mu      sync.Mutex
	logs    []*lockedBuffer
	secrets map[string]bool
}

// secretEnv are the variables whose values are credentials.
var secretEnv = []string{
	"CONCUR_CLIENT_SECRET", "CONCUR_REFRESH_TOKEN", "CONCUR_ACCESS_TOKEN", "CONCUR_REQUEST_TOKEN",
	"GATEWAY_SECRET_KEY", "GATEWAY_DATABASE_URL",
}

// credentialShapes catch a credential the audit was not told about.
var credentialShapes = []*regexp.Regexp{
	regexp.MustCompile(`pbg_[A-Za-z0-9_-]{20,}`),                          // an API key (auth.NewKey)
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}`),      // a JWT
	regexp.MustCompile(`(?i)(bearer|oauth) +[A-Za-z0-9._~+/=-]{16,}`),     // an Authorization value
	regexp.MustCompile(`(?i)(refresh_token|access_token|client_secret)=`), // a token form
	regexp.MustCompile(`/batch/[^{/\s"\\]{8,}`),                           // a Batch-URL's or File-Url's encrypted key
}

func (a *leakAudit) watch(logs *lockedBuffer, env map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logs = append(a.logs, logs)
	for _, k := range secretEnv {
		a.addLocked(env[k])
	}
}

func (a *leakAudit) add(secrets ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range secrets {
		a.addLocked(s)
	}
}

func (a *leakAudit) addLocked(s string) {
	if len(s) < 8 { // shorter values would match by chance
		return
	}
	if a.secrets == nil {
		a.secrets = map[string]bool{}
	}
	a.secrets[s] = true
}

// findings lists what leaked, naming the log (by index) and the kind, never the value.
func (a *leakAudit) findings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for i, l := range a.logs {
		text := l.String()
		for s := range a.secrets {
			if strings.Contains(text, s) {
				out = append(out, fmt.Sprintf("gateway log #%d holds a configured or issued credential", i))
				break
			}
		}
		for _, re := range credentialShapes {
			if re.MatchString(text) {
				out = append(out, fmt.Sprintf("gateway log #%d holds something shaped like a credential (%s)", i, re))
			}
		}
	}
	return out
}

// summary is what TestMain prints: how much was scanned and what leaked.
func (a *leakAudit) summary() (scanned string, leaks []string) {
	leaks = a.findings()
	a.mu.Lock()
	defer a.mu.Unlock()
	var bytes int
	for _, l := range a.logs {
		bytes += len(l.String())
	}
	return fmt.Sprintf("leak audit: %d gateway logs (%d KiB), %d credentials looked for",
		len(a.logs), bytes>>10, len(a.secrets)), leaks
}

// The audit itself must be able to fail: a planted credential of each kind is found.
func TestLeakAuditFindsPlantedCredentials(t *testing.T) {
	t.Parallel()
	for name, line := range map[string]string{
		"configured secret": `{"msg":"x","v":"s3cret-client-value"}`,
		"api key":           `{"msg":"pbg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		"jwt":               `{"h":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcC1wb3J0YWwifQ.sig"}`,
		"authorization":     `{"authorization":"Bearer abcdefghijklmnopqrstuvwxyz"}`,
		"token form":        `grant_type=refresh_token&refresh_token=x`,
		"batch key":         `{"error":"Post \"https://us2.api.concursolutions.com/api/expense/paymentbatch/v1.1/batch/n$s4MtBKgvoJxAYcbggR7eD2jRU/close\""}`,
	} {
		t.Run(name, func(t *testing.T) {
			var a leakAudit
			b := &lockedBuffer{}
			_, _ = b.Write([]byte(`{"level":"info","message":"clean line"}` + "\n" + line))
			a.watch(b, map[string]string{"CONCUR_CLIENT_SECRET": "s3cret-client-value"})
			if len(a.findings()) == 0 {
				t.Errorf("the audit missed a planted %s", name)
			}
		})
	}
	var a leakAudit
	b := &lockedBuffer{}
	_, _ = b.Write([]byte(`{"level":"warn","message":"401","wwwAuthenticate":"Bearer realm=\"payment-batch-gateway\""}`))
	a.watch(b, map[string]string{"CONCUR_CLIENT_SECRET": "s3cret-client-value"})
	if f := a.findings(); len(f) != 0 {
		t.Errorf("a clean log was flagged: %v", f)
	}
}
