package secretbox

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func newBox(t *testing.T, key []byte) *Box {
	t.Helper()
	b, err := New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNewKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) = nil error, want one", n)
		}
	}
	if _, err := New(make([]byte, KeySize)); err != nil {
		t.Errorf("New(%d bytes): %v", KeySize, err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	for _, tc := range []struct {
		name       string
		plain, aad []byte
	}{
		{"empty", nil, nil},
		{"token", []byte("refresh-token-value"), []byte("credentials.refresh_token")},
		{"no aad", []byte("x"), nil},
		{"large", bytes.Repeat([]byte("a"), 1<<16), []byte("big")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := b.Seal(tc.plain, tc.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if want := 1 + 12 + len(tc.plain) + 16; len(sealed) != want {
				t.Errorf("len(sealed) = %d, want %d", len(sealed), want)
			}
			if sealed[0] != format1 {
				t.Errorf("format byte = %d, want %d", sealed[0], format1)
			}
			if len(tc.plain) > 3 && bytes.Contains(sealed, tc.plain[:4]) {
				t.Errorf("sealed message contains plaintext")
			}
			got, err := b.Open(sealed, tc.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Errorf("Open = %q, want %q", got, tc.plain)
			}
		})
	}
}

func TestSealIsRandomised(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	x, _ := b.Seal([]byte("same"), nil)
	y, _ := b.Seal([]byte("same"), nil)
	if bytes.Equal(x, y) {
		t.Error("two seals of the same plaintext are equal: nonce not random")
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	b := newBox(t, key)
	aad := []byte("credentials.refresh_token")
	sealed, err := b.Seal([]byte("secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name   string
		box    *Box
		sealed []byte
		aad    []byte
	}{
		{"wrong key", newBox(t, newKey(t)), sealed, aad},
		{"wrong aad", b, sealed, []byte("credentials.access_token")},
		{"missing aad", b, sealed, nil},
		{"format byte changed", b, flip(0), aad},
		{"nonce changed", b, flip(1), aad},
		{"ciphertext changed", b, flip(14), aad},
		{"tag changed", b, flip(len(sealed) - 1), aad},
		{"truncated", b, sealed[:len(sealed)-1], aad},
		{"too short", b, sealed[:20], aad},
		{"empty", b, nil, aad},
		{"appended", b, append(bytes.Clone(sealed), 0), aad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.box.Open(tc.sealed, tc.aad)
			if !errors.Is(err, ErrOpen) {
				t.Errorf("Open = %q, %v; want ErrOpen", got, err)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := newBox(t, newKey(t))
	done := make(chan error)
	for range 20 {
		go func() {
			for range 50 {
				s, err := b.Seal([]byte("p"), []byte("a"))
				if err == nil {
					_, err = b.Open(s, []byte("a"))
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 20 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
