package loadbench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileGateway takes a CPU profile of the gateway for d (whole seconds, at least one),
// then its allocation profile, into dir. The result arrives on the channel when both are
// written.
func (s *stack) profileGateway(ctx context.Context, dir string, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		secs := max(int(math.Round(d.Seconds())), 1)
		err := s.fetchProfile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), filepath.Join(dir, "gateway.cpu.pprof"))
		if err == nil {
			err = s.fetchProfile(ctx, "/debug/pprof/allocs", filepath.Join(dir, "gateway.allocs.pprof"))
		}
		done <- err
	}()
	return done
}

func (s *stack) fetchProfile(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.gw.Admin+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", path, resp.Status)
	}
	f, err := os.Create(file) // #nosec G304 -- a file in the operator's profile directory
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
