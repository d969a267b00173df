package secretbox

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:KeySize] // has +/ and -_ in base64
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"std padded", base64.StdEncoding.EncodeToString(key), true},
		{"std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"url padded", base64.URLEncoding.EncodeToString(key), true},
		{"url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"surrounding space", " \t" + base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"empty", "", false},
		{"spaces", "   ", false},
		{"too short", base64.StdEncoding.EncodeToString(key[:31]), false},
		{"too long", base64.StdEncoding.EncodeToString(append(key, 1)), false},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"not base64", "this is not base64 at all, it is a passphrase!!", false},
		{"hex", strings.Repeat("ab", KeySize), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKey(tc.in)
			if tc.ok {
				if err != nil || !bytes.Equal(got, key) {
					t.Errorf("ParseKey = %x, %v; want %x", got, err, key)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKey = %x, nil; want an error", got)
			}
			if s := strings.TrimSpace(tc.in); s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("error %q echoes the value", err)
			}
		})
	}
}

func TestEncodeKeyRoundTrip(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	got, err := ParseKey(EncodeKey(key))
	if err != nil || !bytes.Equal(got, key) {
		t.Errorf("ParseKey(EncodeKey(k)) = %x, %v; want %x", got, err, key)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "key")
	key, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created || len(key) != KeySize {
		t.Fatalf("first LoadOrCreateKeyFile = %d bytes, %v, %v; want a new key", len(key), created, err)
	}
	assertMode(t, path, 0o600)
	assertMode(t, dir, 0o700)
	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Errorf("second LoadOrCreateKeyFile = %x, %v, %v; want %x, false", again, created, err, key)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file", len(entries))
	}
}

func TestLoadOrCreateKeyFileExisting(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(key)+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(got, key) {
		t.Errorf("LoadOrCreateKeyFile = %x, %v, %v; want %x, false", got, created, err, key)
	}
}

func TestLoadOrCreateKeyFileInvalid(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-is-not-a-key"
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreateKeyFile(path)
	if err == nil {
		t.Fatal("LoadOrCreateKeyFile of a bad file = nil error")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q echoes the file's content", err)
	}
	if b, _ := os.ReadFile(path); string(b) != secret {
		t.Error("a bad key file was overwritten")
	}
}

func TestLoadOrCreateKeyFileRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "key")
	const n = 32
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		keys    = make([][]byte, n)
		created = make([]bool, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], created[i], errs[i] = LoadOrCreateKeyFile(path)
		})
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("goroutine %d got a different key", i)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d goroutines report creating the file, want 1", creators)
	}
	onDisk, _, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(onDisk, keys[0]) {
		t.Errorf("key on disk = %x, %v; want the one every goroutine got", onDisk, err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
}
