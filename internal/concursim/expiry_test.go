package concursim

import (
	"net/http"
	"testing"
	"time"
)

func TestRefreshTokenExpiry(t *testing.T) {
	t.Parallel()
	const ttl = 10 * 24 * time.Hour
	tests := []struct {
		name     string
		noRotate bool
	}{{"rotating", false}, {"not rotating", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(o *Options) { o.RefreshTokenTTL = ttl; o.NoRotate = tt.noRotate; o.ExpiresInNumber = true })
			start := f.clock.now()
			if got := f.sim.Stats().RefreshTokenExpiry; got != start.Add(ttl).Unix() {
				t.Errorf("configured token expires %d, want start + TTL %d", got, start.Add(ttl).Unix())
			}
			// Each refresh extends the grant: refreshing every 9 days keeps it alive past
			// the first token's expiry.
			rt := testRefresh
			for i := range 3 {
				f.clock.add(9 * 24 * time.Hour)
				code, tr := f.refresh(t, rt)
				if code != http.StatusOK {
					t.Fatalf("refresh %d: %d %+v", i, code, tr)
				}
				want := f.clock.now().Add(ttl).Unix()
				if got := epoch(t, tr); got != want {
					t.Errorf("refresh %d: refresh_expires_in %d, want %d", i, got, want)
				}
				if tr.RefreshExpiresIn[0] == '"' {
					t.Errorf("refresh_expires_in %s is a string under ExpiresInNumber", tr.RefreshExpiresIn)
				}
				if got := f.sim.Stats().RefreshTokenExpiry; got != want {
					t.Errorf("refresh %d: stats expiry %d, want %d", i, got, want)
				}
				rt = tr.RefreshToken
			}
			// Left alone for the TTL, the newest refresh token dies: code 108, for good.
			f.clock.add(ttl)
			for range 2 {
				if code, tr := f.refresh(t, rt); code != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.Code != 108 {
					t.Errorf("expired: %d %+v, want 400 invalid_grant 108", code, tr)
				}
			}
		})
	}
}

func TestConfiguredRefreshTokenExpiresFromStart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *Options) { o.RefreshTokenTTL = time.Hour })
	f.clock.add(time.Hour)
	if code, tr := f.refresh(t, testRefresh); code != http.StatusBadRequest || tr.Code != 108 {
		t.Errorf("configured token after its TTL: %d %+v, want 108", code, tr)
	}
	f.sim.AddRefreshToken("again") // a person authorises the app again: a fresh TTL
	f.clock.add(59 * time.Minute)
	if code, _ := f.refresh(t, "again"); code != http.StatusOK {
		t.Errorf("added token within its TTL: %d", code)
	}
}
