package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// maxKeyFileSize bounds what a key file may hold; a few thousand keys fit.
const maxKeyFileSize = 1 << 20

// KeySource finds the caller that an API key belongs to. [*KeySet] and [*KeyFile] are
// KeySources.
type KeySource interface {
	Lookup(key string) (Caller, bool)
}

// KeyFile is a key set loaded from a file (GATEWAY_API_KEYS_FILE) that can be reloaded
// without a restart: by [KeyFile.Reload] (the command calls it on SIGHUP) or by
// [KeyFile.Watch]. New content replaces the keys only when it is valid as a whole;
// otherwise the keys in use stay, and the problem is logged and returned. Content that
// is valid but holds no keys is applied (that is how every key is revoked at once) and
// logged as a warning. A KeyFile is safe for concurrent use.
type KeyFile struct {
	path string
	log  zerolog.Logger
	keys atomic.Pointer[KeySet]

	mu      sync.Mutex        // serialises loads; guards the fields below
	seen    [sha256.Size]byte // hash of the content last read, applied or refused
	readErr string            // last read failure logged by Watch, to log each once
}

// OpenKeyFile reads and parses the key file at path; it fails if the file cannot be read
// or is invalid. log receives reload outcomes; the zero Logger discards them.
func OpenKeyFile(path string, log zerolog.Logger) (*KeyFile, error) {
	f := &KeyFile{path: path, log: log.With().Str("keyFile", path).Logger()}
	content, err := f.read()
	if err != nil {
		return nil, err
	}
	set, err := ParseKeys(content)
	if err != nil {
		return nil, fmt.Errorf("api keys file %s: %w", path, err)
	}
	f.seen = sha256.Sum256(content)
	f.keys.Store(set)
	f.logLoaded(set, "open")
	return f, nil
}

// Keys returns the keys in use.
func (f *KeyFile) Keys() *KeySet { return f.keys.Load() }

// Lookup finds key among the keys in use; see [KeySet.Lookup].
func (f *KeyFile) Lookup(key string) (Caller, bool) { return f.Keys().Lookup(key) }

// Reload reads and parses the file again. When it cannot be read or is invalid, the keys
// in use stay and the error is logged and returned.
func (f *KeyFile) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	content, err := f.read()
	if err != nil {
		f.log.Error().Err(err).Msg("api keys not reloaded; keeping the keys in use")
		return err
	}
	return f.apply(content, "reload")
}

// Watch reads the file every interval and applies it when its content changed. Comparing
// a hash of the content, not the modification time, catches every kind of edit: in
// place within the file system's time resolution, an atomic rename, the symlink swap of a
// Kubernetes secret volume. Watch returns when ctx ends. An interval <= 0 means 5s.
func (f *KeyFile) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.poll()
		}
	}
}

// poll is one tick of Watch.
func (f *KeyFile) poll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	content, err := f.read()
	if err != nil {
		// A file being replaced may be missing for a moment: warn once per distinct problem.
		if err.Error() != f.readErr {
			f.readErr = err.Error()
			f.log.Warn().Err(err).Msg("api keys file unreadable; keeping the keys in use")
		}
		return
	}
	f.readErr = ""
	if sha256.Sum256(content) == f.seen {
		return
	}
	_ = f.apply(content, "watch") // logged by apply
}

// apply parses content and, when valid, makes it the keys in use. f.mu must be held.
func (f *KeyFile) apply(content []byte, trigger string) error {
	f.seen = sha256.Sum256(content)
	set, err := ParseKeys(content)
	if err != nil {
		err = fmt.Errorf("api keys file %s: %w", f.path, err)
		f.log.Error().Err(err).Str("trigger", trigger).Msg("api keys not reloaded; keeping the keys in use")
		return err
	}
	f.keys.Store(set)
	f.logLoaded(set, trigger)
	return nil
}

func (f *KeyFile) logLoaded(set *KeySet, trigger string) {
	if set.Len() == 0 {
		f.log.Warn().Str("trigger", trigger).Msg("api keys file holds no keys: no caller can authenticate with a key")
		return
	}
	f.log.Info().Str("trigger", trigger).Int("count", set.Len()).Strs("names", set.Names()).Msg("api keys loaded")
}

// read returns the file's content, refusing more than maxKeyFileSize bytes.
func (f *KeyFile) read() ([]byte, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("api keys file: %w", err)
	}
	defer file.Close()
	content, err := io.ReadAll(io.LimitReader(file, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("api keys file: %w", err)
	}
	if len(content) > maxKeyFileSize {
		return nil, fmt.Errorf("api keys file %s: larger than %d bytes", f.path, maxKeyFileSize)
	}
	return content, nil
}
