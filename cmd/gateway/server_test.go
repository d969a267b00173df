package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerHeaderLimit: the request line and headers, up to the blank line that ends them,
// may be 64 KiB at most, as the README says; one byte more is refused with 431.
func TestServerHeaderLimit(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	addr := strings.TrimPrefix(g.base, "http://")
	for _, tc := range []struct {
		name string
		size int // bytes of the request line and the header block
		want int
	}{
		{"well under", 8 << 10, http.StatusOK},
		{"exactly 64 KiB", 64 << 10, http.StatusOK},
		{"one byte over", 64<<10 + 1, http.StatusRequestHeaderFieldsTooLarge},
		{"the old limit with its slop", 68 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := statusOfHeaderBlock(t, addr, tc.size); got != tc.want {
				t.Errorf("a request whose header block is %d bytes: %d, want %d", tc.size, got, tc.want)
			}
		})
	}
}

// statusOfHeaderBlock sends GET /healthz whose request line and headers, blank line
// included, are exactly size bytes, and returns the status of the answer.
func statusOfHeaderBlock(t *testing.T, addr string, size int) int {
	t.Helper()
	const head, tail = "GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nX-Padding: ", "\r\n\r\n"
	raw := head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	if len(raw) != size {
		t.Fatalf("built %d bytes, want %d", len(raw), size)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
