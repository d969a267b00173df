package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/finplat/payment-batch-gateway/bench/internal/loadbench"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "proxy" {
		fs := flag.NewFlagSet("loadbench proxy", flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("addr", "127.0.0.1:0", "listen address")
		target := fs.String("target", "", "upstream origin, e.g. http://127.0.0.1:9090")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return loadbench.ServeProxy(ctx, *addr, *target, stdout)
	}
	if len(args) > 0 && args[0] == "durable" {
		fs := flag.NewFlagSet("loadbench durable", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var cfg loadbench.DurableConfig
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address")
		fs.StringVar(&cfg.Target, "target", "", "upstream origin, e.g. http://127.0.0.1:9090")
		fs.StringVar(&cfg.DataDir, "data", "", "directory of the SQLite database")
		fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL instead: postgres://...")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return loadbench.ServeDurable(ctx, cfg, stdout)
	}
	if len(args) > 0 && args[0] == "report" {
		return report(args[1:], stdout, stderr)
	}

	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smoke := fs.Bool("smoke", false, "a short run that proves the suite works; judges no target")
	gateway := fs.String("gateway", "bin/gateway", "the gateway binary")
	concursim := fs.String("concursim", "bin/concursim", "the simulator binary")
	out := fs.String("out", "bench/results", "directory for latest.md, latest.json and latest.png")
	commit := fs.String("commit", "", "the commit under test, for the report (default: the binary's VCS stamp)")
	profile := fs.String("profile", "", "a directory for the gateway's CPU and allocation profiles (enables GATEWAY_PPROF)")
	pgURL := os.Getenv("GATEWAY_TEST_DATABASE_URL")
	if pgURL == "" {
		pgURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	only := fs.String("only", "", "run only these groups (close,postgres,get,list,file): a quick look, its verdicts partial")
	postgres := fs.String("postgres", pgURL, `the local PostgreSQL server of the PostgreSQL mode ("" leaves it out)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := loadbench.Defaults()
	if *smoke {
		cfg = loadbench.Smoke()
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Self, cfg.Gateway, cfg.Concursim, cfg.Progress, cfg.ProfileDir = self, *gateway, *concursim, stdout, *profile
	cfg.Postgres, cfg.Only = *postgres, *only
	work, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	cfg.WorkDir = work

	res, err := loadbench.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w (the processes' logs are kept in %s)", err, work)
	}
	defer os.RemoveAll(work)
	if *commit != "" {
		res.Machine.Commit = *commit
	}
	return write(res, *out, *smoke, true, stdout)
}

// write writes latest.md and latest.json (and latest.png, with png) of res into out.
func write(res *loadbench.Result, out string, smoke, png bool, stdout io.Writer) error {
	res.Verdicts = res.Checks()
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, smoke); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{"latest.md": md.Bytes(), "latest.json": raw}
	if png {
		var img bytes.Buffer
		if err := res.WritePNG(&img); err != nil {
			return err
		}
		files["latest.png"] = img.Bytes()
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o600); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "\n%s\nwritten to %s/latest.{md,json}\n", md.String(), out)
	return err
}

// report adds the micro-benchmarks' figures (the batch list, the commits' tail) to the
// load suite's latest.json and writes latest.md again with every target.
func report(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("results", "bench/results", "the directory of latest.json, rewritten with latest.md")
	micro := fs.String("micro", "bench/results/micro.txt", "`go test -bench` output of the micro-benchmarks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(*dir, "latest.json"))
	if err != nil {
		return err
	}
	var res loadbench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("latest.json: %w", err)
	}
	f, err := os.Open(*micro)
	if err != nil {
		return err
	}
	defer f.Close()
	if res.Micro, err = loadbench.ParseMicro(f); err != nil {
		return fmt.Errorf("%s: %w", *micro, err)
	}
	return write(&res, *dir, false, false, stdout)
}
