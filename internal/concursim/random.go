package concursim

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// keyAlphabet is what Concur's encrypted ids are made of.
const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$"

// newKey returns n characters of [A-Za-z0-9$] from crypto/rand, without modulo bias.
func newKey(n int) string {
	var sb strings.Builder
	buf := make([]byte, 2*n)
	for sb.Len() < n {
		_, _ = rand.Read(buf) // never fails (crypto/rand panics instead)
		for _, c := range buf {
			c &= 63 // 0..63; the alphabet has 63 letters, so reject 63
			if c < byte(len(keyAlphabet)) && sb.Len() < n {
				sb.WriteByte(keyAlphabet[c])
			}
		}
	}
	return sb.String()
}

// newJobQueueKey returns an opaque ~24-character key that always holds a '$', like
// Concur's (e.g. "d$wIUEkl72LW299WTjTlskdy").
func newJobQueueKey() string {
	k := []byte(newKey(24))
	var b [1]byte
	_, _ = rand.Read(b[:])
	k[int(b[0])%len(k)] = '$'
	return string(k)
}

// newGUID returns a random (version 4) GUID in upper case.
func newGUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// validKey reports whether k is a non-empty string of [A-Za-z0-9$].
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if strings.IndexByte(keyAlphabet, k[i]) < 0 {
			return false
		}
	}
	return true
}
