package batch

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A list cursor is opaque to callers: base64url (no padding) of a version byte, the first
// 8 bytes of a SHA-256 of the list's filters, and the ID of the last batch of the page.
// The next page starts after that ID (keyset pagination on the ID), so a cursor stays
// valid however the list changes and across replicas and restarts, and costs the store an
// index seek. The filters' fingerprint makes a cursor reused with other filters an
// invalid_cursor instead of a silently wrong page. A cursor is not a secret and is not
// signed: forging one only moves where a page starts in a list the caller may read anyway.
const (
	cursorVersion  = 1
	fingerprintLen = 8
	// maxCursorLen bounds what is decoded: a cursor for a 700-byte ID.
	maxCursorLen = 960
)

// cursorEncoding is strict, so that every cursor has exactly one spelling.
var cursorEncoding = base64.RawURLEncoding.Strict()

// fingerprint identifies a (normalised) filter.
func (f Filter) fingerprint() [fingerprintLen]byte {
	h := sha256.New()
	for _, v := range []string{"payment-batch-gateway list cursor", f.Status, f.Currency, f.PaymentMethod, f.Type} {
		h.Write([]byte(v))
		h.Write([]byte{0}) // values hold no NUL (validated): the encoding is unambiguous
	}
	var fp [fingerprintLen]byte
	copy(fp[:], h.Sum(nil))
	return fp
}

// encodeCursor is the cursor of the page after lastID in the list filtered by f.
func encodeCursor(f Filter, lastID string) string {
	fp := f.fingerprint()
	b := make([]byte, 0, 1+fingerprintLen+len(lastID))
	b = append(b, cursorVersion)
	b = append(b, fp[:]...)
	b = append(b, lastID...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor returns the ID a cursor made for the list filtered by f starts after, or
// an *Error with CodeInvalidCursor.
func decodeCursor(f Filter, cursor string) (string, error) {
	fp, id, ok := parseCursor(cursor)
	if !ok {
		return "", Errorf(CodeInvalidCursor, "cursor is not one this gateway made: pass nextCursor as it was received")
	}
	if want := f.fingerprint(); !bytes.Equal(fp, want[:]) {
		return "", Errorf(CodeInvalidCursor, "cursor belongs to a list with other filters: "+
			"repeat the filters it was made with, or start again without a cursor")
	}
	return id, nil
}

// parseCursor splits a cursor into its filter fingerprint and ID; ok is false for
// anything encodeCursor cannot have made.
func parseCursor(cursor string) (fp []byte, id string, ok bool) {
	if cursor == "" || len(cursor) > maxCursorLen {
		return nil, "", false
	}
	b, err := cursorEncoding.DecodeString(cursor)
	if err != nil || len(b) < 1+fingerprintLen+1 || b[0] != cursorVersion {
		return nil, "", false
	}
	// encoding/base64 skips \r and \n anywhere in its input: only the one spelling the
	// encoder makes is a cursor.
	if cursorEncoding.EncodeToString(b) != cursor {
		return nil, "", false
	}
	fp, id = b[1:1+fingerprintLen], string(b[1+fingerprintLen:])
	// Whatever ID the store holds is UTF-8 without NUL (PostgreSQL would refuse anything
	// else in a query), so every cursor encodeCursor makes passes.
	if !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return nil, "", false
	}
	return fp, id, true
}

// validText reports whether s is UTF-8 without control characters (NUL included): what
// may go into a query as a text value on either database.
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
