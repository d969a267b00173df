package secretbox

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ParseKey decodes a key written as base64 (standard or URL alphabet, padded or not,
// surrounding space ignored) that must decode to exactly KeySize bytes. Errors never
// contain the value.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secretbox: key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.Strict().DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: key decodes to %d bytes, want %d", len(key), KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("secretbox: key is not base64 of %d bytes", KeySize)
}

// EncodeKey writes key as ParseKey reads it (standard base64, padded).
func EncodeKey(key []byte) string {
	return base64.StdEncoding.EncodeToString(key)
}

// LoadOrCreateKeyFile reads the base64 key in the file at path. When the file does not
// exist it creates it, with a new random key, mode 0600 (and its directory, mode 0700,
// when missing), and reports created. The file appears complete or not at all: the key
// is written to a temporary file that is then linked to path, which fails when path
// exists. So when processes race, one creates the file and the others read its key.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	key, err = readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("secretbox: key file directory: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("secretbox: %w", err)
	}
	err = createExclusive(path, []byte(EncodeKey(key)+"\n"))
	if errors.Is(err, fs.ErrExist) { // another process won the race: use its key
		key, err = readKeyFile(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- GATEWAY_SECRET_KEY_FILE or GATEWAY_DATA_DIR/secret.key, the operator's path
	if err != nil {
		return nil, fmt.Errorf("secretbox: key file: %w", err) // *PathError: path, not content
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("secretbox: key file %s: %w", path, err)
	}
	return key, nil
}

// createExclusive writes data to a new file at path, mode 0600, or fails with an error
// wrapping fs.ErrExist when path exists. The content is synced before the file appears.
func createExclusive(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("secretbox: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("secretbox: write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("secretbox: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("secretbox: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil { // atomic; fails when path exists
		return fmt.Errorf("secretbox: create key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // #nosec G304 -- the key file's own directory: make the new name durable; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
