// Package secretbox seals small secrets (tokens) for storage with AES-256-GCM under one
// 32-byte key. A sealed message is a format byte, a random 12-byte nonce and the GCM
// ciphertext with its tag. The additional data (AAD) names what the secret is, so a
// sealed value cannot be moved from one field to another unnoticed. It imports nothing of ours.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// format1 marks the only format so far: AES-256-GCM, random 12-byte nonce.
const format1 byte = 1

// ErrOpen: the message cannot be opened: wrong key, wrong AAD, unknown format, or
// the message was altered or truncated.
var ErrOpen = errors.New("secretbox: cannot open the sealed message (wrong key, wrong context or tampered data)")

// Box seals and opens messages under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD // random nonce prepended by Seal, read back by Open
}

// New returns a Box for key, which must be exactly KeySize bytes.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext and authenticates aad, which must be given
// again to Open. The result is format byte || nonce || ciphertext || tag.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1, 1+len(plaintext)+b.aead.Overhead()) // Overhead: nonce and tag
	out[0] = format1
	return b.aead.Seal(out, nil, plaintext, withFormat(format1, aad)), nil // #nosec G407 -- NewGCMWithRandomNonce draws the nonce; it must be nil
}

// Open authenticates and decrypts a message made by Seal with the same key and aad. Any
// failure is ErrOpen.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1+b.aead.Overhead() || sealed[0] != format1 {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, nil, sealed[1:], withFormat(sealed[0], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// withFormat binds the format byte to the message: it leads the AAD.
func withFormat(format byte, aad []byte) []byte {
	return append([]byte{format}, aad...)
}
