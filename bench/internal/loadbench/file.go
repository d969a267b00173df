package loadbench

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// largeFileBatch is the simulator's batch whose file is CONCURSIM_LARGE_FILE_BYTES long.
const largeFileBatch = "large-file-batch"

// FileResult is the payment file streamed from the simulator directly and through the
// gateway, with the gateway's resident memory watched during the download.
type FileResult struct {
	Bytes            int64
	Direct, Gateway  time.Duration // the whole download, first byte asked to last received
	IdleRSS, PeakRSS int64         // the gateway's, just before and at most during its download
	RSSSamples       int
}

// Growth is how far the gateway's resident memory rose above idle while streaming.
func (f FileResult) Growth() int64 { return max(f.PeakRSS-f.IdleRSS, 0) }

// MiBps is the throughput of a download that took d.
func (f FileResult) MiBps(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(f.Bytes) / (1 << 20) / d.Seconds()
}

// fileBench downloads the large file straight from the simulator (the baseline), then
// through the gateway's /batches/{id}/file, sampling the gateway's RSS every few ms.
func (s *stack) fileBench(ctx context.Context, size int64) (FileResult, error) {
	res := FileResult{Bytes: size}
	token, err := s.accessToken(ctx)
	if err != nil {
		return res, err
	}
	fileURL, err := s.closeDirect(ctx, token)
	if err != nil {
		return res, err
	}
	concur := http.Header{"Authorization": {"Bearer " + token}}
	if res.Direct, err = s.download(ctx, fileURL, concur, size); err != nil {
		return res, fmt.Errorf("direct download: %w", err)
	}

	gw := http.Header{"Authorization": {"Bearer " + s.apiKey}}
	closeURL := s.gw.URL + "/batches/" + largeFileBatch + "/close?regenerate=true"
	if err := s.expectOK(ctx, http.MethodPost, closeURL, gw); err != nil {
		return res, err
	}
	pid := s.gw.cmd.Process.Pid
	if res.IdleRSS, err = rss(pid); err != nil {
		return res, err
	}
	res.PeakRSS = res.IdleRSS
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if r, err := rss(pid); err == nil {
				res.PeakRSS = max(res.PeakRSS, r)
				res.RSSSamples++
			}
		}
	})
	res.Gateway, err = s.download(ctx, s.gw.URL+"/batches/"+largeFileBatch+"/file", gw, size)
	close(stop)
	wg.Wait()
	if err != nil {
		return res, fmt.Errorf("download through the gateway: %w", err)
	}
	return res, nil
}

// closeDirect closes the large-file batch at the simulator and returns its File-Url.
func (s *stack) closeDirect(ctx context.Context, token string) (string, error) {
	all, err := s.list(ctx, token)
	if err != nil {
		return "", err
	}
	for _, b := range all {
		if b.ID != largeFileBatch {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.URL+"/close", http.NoBody)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var st struct {
			FileURL string `xml:"File-Url"`
		}
		if err := xml.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil || st.FileURL == "" {
			return "", fmt.Errorf("closing %s at the simulator: %s %v", largeFileBatch, resp.Status, err)
		}
		return st.FileURL, nil
	}
	return "", fmt.Errorf("the simulator does not list %s open", largeFileBatch)
}

// download GETs u and reads the body to the end, checking its length.
func (s *stack) download(ctx context.Context, u string, h http.Header, size int64) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header = h.Clone()
	client := &http.Client{Timeout: 10 * time.Minute}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 64<<10))
	took := time.Since(began)
	if err != nil {
		return 0, err
	}
	if n != size {
		return 0, fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return took, nil
}

func (s *stack) expectOK(ctx context.Context, method, u string, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, method, u, http.NoBody)
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", method, u, resp.Status, b)
	}
	return nil
}
