package auth

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// writeFile replaces path atomically, as an operator's tooling (or Kubernetes) would.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// keyFileFixture is a key file holding key a, opened with a captured log.
func keyFileFixture(t *testing.T) (f *KeyFile, path string, a testKey, logs *syncBuffer) {
	t.Helper()
	a = mintKey(t)
	path = filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, path, keysJSON(entry("a", a.hash, ScopeBatchesRead)))
	log, logs := testLogger(t)
	f, err := OpenKeyFile(path, log)
	if err != nil {
		t.Fatalf("OpenKeyFile: %v", err)
	}
	return f, path, a, logs
}

func authenticates(f *KeyFile, k testKey) bool {
	_, ok := f.Lookup(k.key)
	return ok
}

func TestOpenKeyFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.json")
	writeFile(t, invalid, []byte(`[{"name":"a"}]`))
	big := filepath.Join(dir, "big.json")
	writeFile(t, big, []byte(strings.Repeat(" ", maxKeyFileSize+1)))
	for name, path := range map[string]string{"missing": filepath.Join(dir, "nope.json"), "invalid": invalid, "too big": big} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := OpenKeyFile(path, testLoggerOnly(t)); err == nil {
				t.Error("OpenKeyFile succeeded")
			}
		})
	}
}

func TestKeyFileReload(t *testing.T) {
	t.Parallel()
	f, path, a, logs := keyFileFixture(t)
	b := mintKey(t)

	writeFile(t, path, keysJSON(entry("b", b.hash, ScopeBatchesClose)))
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if authenticates(f, a) || !authenticates(f, b) {
		t.Fatal("after a reload, the old key still works or the new one does not")
	}

	// Invalid content (here: the key itself pasted as the hash) keeps the keys in use.
	writeFile(t, path, keysJSON(entry("c", b.key, ScopeBatchesClose)))
	if err := f.Reload(); err == nil {
		t.Fatal("Reload of invalid content succeeded")
	}
	if !authenticates(f, b) {
		t.Fatal("an invalid reload dropped the keys in use")
	}
	os.Remove(path)
	if err := f.Reload(); err == nil || !authenticates(f, b) {
		t.Fatalf("Reload of a missing file: err %v, keys kept %v", err, authenticates(f, b))
	}

	// An empty array revokes every key, with a warning.
	writeFile(t, path, []byte("[]"))
	if err := f.Reload(); err != nil || authenticates(f, b) || f.Keys().Len() != 0 {
		t.Fatalf("Reload of []: err %v, keys %d", err, f.Keys().Len())
	}

	out := logs.String()
	for _, want := range []string{"api keys loaded", "keeping the keys in use", "holds no keys"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for _, secret := range []string{a.key, b.key} {
		if strings.Contains(out, secret) {
			t.Error("log contains a key")
		}
	}
}

func TestKeyFileWatch(t *testing.T) {
	t.Parallel()
	f, path, a, logs := keyFileFixture(t)
	b := mintKey(t)
	done := make(chan struct{})
	go func() { defer close(done); f.Watch(t.Context(), 5*time.Millisecond) }()
	t.Cleanup(func() { <-done }) // no log line after the test, and before its directory goes

	writeFile(t, path, keysJSON(entry("b", b.hash, ScopeBatchesClose)))
	waitFor(t, "the watched change", func() bool { return authenticates(f, b) && !authenticates(f, a) })

	// An in-place rewrite of the same size keeps the modification time within the file
	// system's resolution on some systems; the content hash still sees it.
	c := mintKey(t)
	if err := os.WriteFile(path, keysJSON(entry("c", c.hash, ScopeBatchesClose)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the in-place rewrite", func() bool { return authenticates(f, c) })

	// Invalid content: keys kept, error logged once however many ticks pass. (The
	// in-place rewrite above may have been read half-written and refused once already.)
	refusals := func() int { return strings.Count(logs.String(), "api keys not reloaded") }
	before := refusals()
	writeFile(t, path, []byte(`[{"name":"x",`))
	waitFor(t, "the refusal", func() bool { return refusals() > before })
	time.Sleep(50 * time.Millisecond)
	if !authenticates(f, c) {
		t.Fatal("invalid content dropped the keys in use")
	}
	if n := refusals() - before; n != 1 {
		t.Errorf("refusal logged %d times, want once", n)
	}

	// A vanished file: warned once, keys kept; back with valid content: applied.
	os.Remove(path)
	waitFor(t, "the warning", func() bool { return strings.Contains(logs.String(), "unreadable") })
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "unreadable"); n != 1 || !authenticates(f, c) {
		t.Errorf("missing file: warned %d times, keys kept %v", n, authenticates(f, c))
	}
	writeFile(t, path, keysJSON(entry("a", a.hash, ScopeBatchesRead)))
	waitFor(t, "the restored file", func() bool { return authenticates(f, a) && !authenticates(f, c) })
}

// Lookups run while the file is reloaded: for the race detector.
func TestKeyFileConcurrentReload(t *testing.T) {
	t.Parallel()
	f, path, a, _ := keyFileFixture(t)
	b := mintKey(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_, okA := f.Lookup(a.key)
				_, okB := f.Lookup(b.key)
				_ = okA || okB // either, depending on the reload that won
			}
		})
	}
	for i := range 20 {
		k := a
		if i%2 == 1 {
			k = b
		}
		writeFile(t, path, keysJSON(entry("k", k.hash, ScopeBatchesRead)))
		if err := f.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLoggerOnly(t *testing.T) zerolog.Logger {
	t.Helper()
	l, _ := testLogger(t)
	return l
}
