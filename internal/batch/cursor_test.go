package batch

import (
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	f := Filter{Status: "OPEN", Currency: "USD"}
	for _, id := range []string{"a", "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13", "12345678901234567890", "é\t$/", strings.Repeat("x", 700)} {
		c := encodeCursor(f, id)
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("cursor %q is not unpadded base64url", c)
		}
		got, err := decodeCursor(f, c)
		if err != nil || got != id {
			t.Errorf("decodeCursor(encodeCursor(%.20q)) = %.20q, %v", id, got, err)
		}
	}
}

func TestCursorRefused(t *testing.T) {
	t.Parallel()
	f := Filter{Status: "OPEN"}
	valid := encodeCursor(f, "abc")
	raw := func(b ...byte) string { return cursorEncoding.EncodeToString(b) }
	fp := f.fingerprint()
	for name, c := range map[string]string{
		"empty":                "",
		"not base64url":        "abc+/def",
		"padded":               valid + "=",
		"not canonical":        nonCanonical(encodeCursor(f, "abcd")),
		"too long":             encodeCursor(f, strings.Repeat("x", 800)),
		"no id":                raw(append([]byte{cursorVersion}, fp[:]...)...),
		"other version":        raw(append(append([]byte{2}, fp[:]...), 'a')...),
		"id not UTF-8":         raw(append(append([]byte{cursorVersion}, fp[:]...), 0xff)...),
		"id with NUL":          raw(append(append([]byte{cursorVersion}, fp[:]...), 'a', 0)...),
		"other filters":        encodeCursor(Filter{Status: "CLOSED"}, "abc"),
		"no filters":           encodeCursor(Filter{}, "abc"),
		"filters shifted":      encodeCursor(Filter{Currency: "OPEN"}, "abc"),
		"truncated":            valid[:5],
		"whitespace around it": " " + valid,
	} {
		if id, err := decodeCursor(f, c); ErrorCode(err) != CodeInvalidCursor {
			t.Errorf("%s: decodeCursor(%.40q) = %q, %v; want invalid_cursor", name, c, id, err)
		}
	}
}

// nonCanonical sets a trailing bit of a cursor whose byte length is not a multiple of 3:
// lenient base64 decoders would accept it as another spelling of the same cursor.
func nonCanonical(c string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, c[len(c)-1])
	return c[:len(c)-1] + string(alphabet[last|1])
}

// FuzzCursor: the decoder never panics, accepts only what the encoder makes (one spelling
// per cursor), and the encoder's cursors always decode to their ID.
func FuzzCursor(f *testing.F) {
	filter := Filter{Status: "OPEN", Currency: "EUR", PaymentMethod: "ADP (via EPIP file)", Type: "Employee"}
	f.Add(encodeCursor(filter, "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13"), "6f1c2a9e")
	f.Add(encodeCursor(Filter{}, "x"), "12345678901234567890")
	f.Add("AQ", "é")
	f.Add("////", "\x00")
	f.Fuzz(func(t *testing.T, cursor, id string) {
		if got, err := decodeCursor(filter, cursor); err == nil {
			if again := encodeCursor(filter, got); again != cursor {
				t.Fatalf("decodeCursor(%q) = %q, which encodes as %q: two spellings of one cursor", cursor, got, again)
			}
		} else if ErrorCode(err) != CodeInvalidCursor {
			t.Fatalf("decodeCursor(%q): %v", cursor, err)
		}
		c := encodeCursor(filter, id)
		got, err := decodeCursor(filter, c)
		storable := id != "" && !strings.ContainsRune(id, 0) && strings.ToValidUTF8(id, "") == id && len(c) <= maxCursorLen
		if storable && (err != nil || got != id) {
			t.Fatalf("encodeCursor(%q) decodes as %q, %v", id, got, err)
		}
		if !storable && err == nil {
			t.Fatalf("a cursor for %q decoded", id)
		}
	})
}

// TestCursorFormatIsStable: cursors handed out before an upgrade keep working after it
// (and the example in api.BatchList is a real one).
func TestCursorFormatIsStable(t *testing.T) {
	t.Parallel()
	const golden = "AUgZBrkF85ILYjdlMmQ0ZjAtOWMxYS00YTNlLThmNmQtMmU1YzdhOWIxZDA0"
	f := Filter{Status: "OPEN"}
	if got := encodeCursor(f, "b7e2d4f0-9c1a-4a3e-8f6d-2e5c7a9b1d04"); got != golden {
		t.Errorf("encodeCursor = %s, want %s", got, golden)
	}
	if id, err := decodeCursor(f, golden); err != nil || id != "b7e2d4f0-9c1a-4a3e-8f6d-2e5c7a9b1d04" {
		t.Errorf("decodeCursor(golden) = %q, %v", id, err)
	}
}
