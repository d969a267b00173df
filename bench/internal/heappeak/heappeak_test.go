package heappeak

import "testing"

var sink [][]byte

// The peak sees memory the section held, even after it let go of it.
func TestPeakSeesWhatWasHeld(t *testing.T) {
	h := Start()
	for range 64 {
		sink = append(sink, make([]byte, 256<<10)) // 16 MiB in all
	}
	h.Sample()
	sink = nil
	if peak := h.Stop(); peak < 15<<20 {
		t.Errorf("peak %d bytes, want at least 15 MiB", peak)
	}
}
