package httpapi

import (
	"net/http"
	"testing"
)

func TestPrefersAsync(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		prefer []string
		want   bool
	}{
		{nil, false},
		{[]string{"respond-async"}, true},
		{[]string{"Respond-Async"}, true},
		{[]string{"return=minimal, respond-async; wait=10"}, true},
		{[]string{"return=minimal", "respond-async"}, true},
		{[]string{"wait=10, respond-asynchronously"}, false},
		{[]string{"return=respond-async"}, false},
	} {
		h := http.Header{}
		for _, v := range tt.prefer {
			h.Add("Prefer", v)
		}
		if got := prefersAsync(h); got != tt.want {
			t.Errorf("prefersAsync(%q) = %v, want %v", tt.prefer, got, tt.want)
		}
	}
}
