package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeDev  = "docker-compose.yml"
	composeProd = "docker-compose.prod.yml"
)

// secretVars are the gateway's secrets: in production they come from files only.
var secretVars = []string{"CONCUR_CLIENT_SECRET", "CONCUR_REFRESH_TOKEN", "CONCUR_ACCESS_TOKEN",
	"GATEWAY_DATABASE_URL", "GATEWAY_SECRET_KEY", "GATEWAY_API_KEYS", "POSTGRES_PASSWORD"}

// loadCompose loads a compose file with the compose-spec loader (what docker compose
// uses) with no variable set: no environment, no .env file.
func loadCompose(t *testing.T, file string) *types.Project {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	// ${NAME} without a default would load as "" with a warning: every variable needs one.
	for _, m := range regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`).FindAll(raw, -1) {
		t.Errorf("%s: %s has no default; the file must load with nothing exported", file, m)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, file)},
		cli.WithWorkingDirectory(repoRoot), cli.WithEnv(nil), cli.WithInterpolation(true),
		cli.WithConsistency(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("%s does not load with no variables set: %v", file, err)
	}
	return p
}

func TestComposeDev(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeDev)
	checkServices(t, p)
	gw := service(t, p, "gateway")
	env := environment(gw)
	sim := environment(service(t, p, "concursim"))
	if !strings.HasPrefix(env["CONCUR_BASE_URL"], "http://concursim:") {
		t.Errorf("gateway: CONCUR_BASE_URL=%q: the try-out talks to the simulator only", env["CONCUR_BASE_URL"])
	}
	// The committed Concur credentials are the simulator's own: nothing else accepts them.
	for gwName, simName := range map[string]string{"CONCUR_CLIENT_ID": "CONCURSIM_CLIENT_ID",
		"CONCUR_CLIENT_SECRET": "CONCURSIM_CLIENT_SECRET", "CONCUR_REFRESH_TOKEN": "CONCURSIM_REFRESH_TOKEN"} {
		if env[gwName] == "" || env[gwName] != sim[simName] {
			t.Errorf("gateway %s=%q is not the simulator's %s", gwName, env[gwName], simName)
		}
	}
	// The generated ones are files from the dev-credentials job.
	for _, name := range []string{"GATEWAY_API_KEYS_FILE", "GATEWAY_SECRET_KEY_FILE", "GATEWAY_DATABASE_URL_FILE"} {
		if !strings.HasPrefix(env[name], "/dev-credentials/") {
			t.Errorf("gateway: %s=%q, want a file the dev-credentials job generates", name, env[name])
		}
	}
	cfg := gatewayConfig(t, env)
	if cfg.StoreKind() != "postgres" {
		t.Errorf("gateway: store %s, want postgres", cfg.StoreKind())
	}
}

func TestComposeProd(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeProd)
	checkServices(t, p)
	if _, err := p.GetService("concursim"); err == nil {
		t.Error("production runs no simulator")
	}
	gw := service(t, p, "gateway")
	env := environment(gw)
	cfg := gatewayConfig(t, env, "CONCUR_CLIENT_ID")
	if !strings.HasPrefix(cfg.ConcurBaseURL, "https://") {
		t.Errorf("gateway: CONCUR_BASE_URL=%q, want Concur over https", cfg.ConcurBaseURL)
	}
	if gw.Deploy == nil || gw.Deploy.Replicas == nil || *gw.Deploy.Replicas < 2 {
		t.Error("gateway: want deploy.replicas of at least 2")
	}
	if cfg.StoreKind() != "postgres" || cfg.SecretKey == "" {
		t.Error("gateway: replicas need PostgreSQL and one GATEWAY_SECRET_KEY")
	}
	for _, name := range secretVars {
		if _, ok := env[name]; ok {
			t.Errorf("gateway: %s is set in the file; secrets come from Docker secrets (%s_FILE)", name, name)
		}
	}
	attached := map[string]bool{}
	for _, s := range gw.Secrets {
		target := s.Target
		if target == "" {
			target = "/run/secrets/" + s.Source
		}
		attached[target] = true
		if _, ok := p.Secrets[s.Source]; !ok {
			t.Errorf("gateway: secret %s is not declared", s.Source)
		}
	}
	for name, v := range env {
		if strings.HasSuffix(name, "_FILE") && !attached[v] {
			t.Errorf("gateway: %s=%s is not a Docker secret of the service", name, v)
		}
	}
	for _, name := range []string{"CONCUR_CLIENT_SECRET_FILE", "GATEWAY_DATABASE_URL_FILE",
		"GATEWAY_SECRET_KEY_FILE", "GATEWAY_API_KEYS_FILE"} {
		if env[name] == "" {
			t.Errorf("gateway: %s is not set", name)
		}
	}
	// The grant comes from `gateway authorize`, into the database every replica shares.
	if _, ok := env["CONCUR_REFRESH_TOKEN_FILE"]; ok {
		t.Error("gateway: CONCUR_REFRESH_TOKEN_FILE is set: the grant is stored by `gateway authorize`")
	}
	for name, s := range p.Secrets {
		if s.Environment != "" || s.Content != "" {
			t.Errorf("secret %s: want a file, not a value in the compose file", name)
		}
	}
}

// checkServices holds for both files: every long-running service has a health check; the
// gateway runs read-only, non-root, without capabilities or privilege escalation, and a
// stop waits for its shutdown budget.
func checkServices(t *testing.T, p *types.Project) {
	t.Helper()
	jobs := map[string]bool{} // one-shot services others wait for to complete
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				jobs[dep] = true
			}
		}
	}
	for name, s := range p.Services {
		if jobs[name] {
			if s.Restart != "no" {
				t.Errorf("%s: a one-shot job must not restart (restart: \"no\")", name)
			}
			continue // a job that exits has no health to check
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no health check", name)
		}
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		if s.Image != "" && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) && s.Build == nil {
			t.Errorf("%s: image %q has no pinned tag", name, s.Image)
		}
	}
	gw := service(t, p, "gateway")
	if !gw.ReadOnly {
		t.Error("gateway: want read_only: true")
	}
	if u, _, _ := strings.Cut(gw.User, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("gateway: user %q, want a non-root user", gw.User)
	}
	if !slices.Contains(gw.CapDrop, "ALL") {
		t.Error("gateway: want cap_drop: [ALL]")
	}
	if !slices.Contains(gw.SecurityOpt, "no-new-privileges:true") {
		t.Error("gateway: want security_opt no-new-privileges:true")
	}
	cfg := gatewayConfig(t, environment(gw), "CONCUR_CLIENT_ID")
	if gw.StopGracePeriod == nil || time.Duration(*gw.StopGracePeriod) < cfg.ShutdownBudget() {
		t.Errorf("gateway: stop_grace_period %v, want at least the shutdown budget %v", gw.StopGracePeriod, cfg.ShutdownBudget())
	}
	if gw.HealthCheck != nil && !slices.Equal(gw.HealthCheck.Test, []string{"CMD", "/usr/local/bin/gateway", "healthcheck"}) {
		t.Errorf("gateway: health check %q, want the gateway's own healthcheck (the image has no shell)", gw.HealthCheck.Test)
	}
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func environment(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}
