package config

import (
	"testing"
	"time"
)

func TestShutdownBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		concurTimeout time.Duration
		want          time.Duration
	}{
		{"default", 60 * time.Second, 17*time.Minute + 10*time.Second},
		{"short", 2 * time.Second, 15*2*time.Second + 5*time.Second + 2*2*time.Second + 5*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Config{ConcurTimeout: tc.concurTimeout}
			if got := c.ShutdownBudget(); got != tc.want {
				t.Errorf("ShutdownBudget() = %v, want %v", got, tc.want)
			}
			if c.ShutdownGrace() <= c.CloseBudget() {
				t.Errorf("the grace period %v does not outlast a close (%v)", c.ShutdownGrace(), c.CloseBudget())
			}
		})
	}
}
