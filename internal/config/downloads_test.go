package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDownloads(t *testing.T) {
	t.Parallel()
	base := map[string]string{"CONCUR_BASE_URL": "https://us.api.concursolutions.com", "CONCUR_ACCESS_TOKEN": "t"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	c, err := Load(env(with()))
	if err != nil {
		t.Fatal(err)
	}
	if c.DownloadsPerCaller != 2 || c.DownloadsMax != 16 || c.DownloadMinRate != 16384 || c.DownloadRateWindow != 30*time.Second {
		t.Errorf("download defaults: %d per caller, %d in all, %d B/s over %v; want 2, 16, 16384, 30s",
			c.DownloadsPerCaller, c.DownloadsMax, c.DownloadMinRate, c.DownloadRateWindow)
	}
	c, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "0", "GATEWAY_DOWNLOADS_MAX", "0",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "0", "GATEWAY_DOWNLOAD_RATE_WINDOW", "1m")))
	if err != nil || c.DownloadsPerCaller != 0 || c.DownloadsMax != 0 || c.DownloadMinRate != 0 || c.DownloadRateWindow != time.Minute {
		t.Errorf("downloads off: %+v, %v", c, err)
	}
	_, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "-1", "GATEWAY_DOWNLOADS_MAX", "x",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "fast", "GATEWAY_DOWNLOAD_RATE_WINDOW", "10ms")))
	for _, want := range []string{"GATEWAY_DOWNLOADS_PER_CALLER", "GATEWAY_DOWNLOADS_MAX",
		"GATEWAY_DOWNLOAD_MIN_RATE_BYTES_PER_SECOND", "GATEWAY_DOWNLOAD_RATE_WINDOW must be at least 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	_, err = Load(env(with("GATEWAY_DOWNLOADS_PER_CALLER", "5", "GATEWAY_DOWNLOADS_MAX", "4")))
	if err == nil || !strings.Contains(err.Error(), "must not exceed GATEWAY_DOWNLOADS_MAX") {
		t.Errorf("per caller above the total: %v", err)
	}
}
