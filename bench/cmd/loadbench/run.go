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

	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	smoke := fs.Bool("smoke", false, "a short run that proves the suite works; judges no target")
	gateway := fs.String("gateway", "bin/gateway", "the gateway binary")
	concursim := fs.String("concursim", "bin/concursim", "the simulator binary")
	out := fs.String("out", "bench/results", "directory for latest.md, latest.json and latest.png")
	commit := fs.String("commit", "", "the commit under test, for the report (default: the binary's VCS stamp)")
	profile := fs.String("profile", "", "a directory for the gateway's CPU and allocation profiles (enables GATEWAY_PPROF)")
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
	work, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.WorkDir = work

	res, err := loadbench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *commit != "" {
		res.Machine.Commit = *commit
	}
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, *smoke); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	var png bytes.Buffer
	if err := res.WritePNG(&png); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"latest.md": md.Bytes(), "latest.json": raw, "latest.png": png.Bytes()} {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o600); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "\n%s\nwritten to %s/latest.{md,json,png}\n", md.String(), *out)
	return err
}
