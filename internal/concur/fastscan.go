package concur

import (
	"bytes"
	"unicode/utf8"
)

// The fast path's byte-level readers (fastlist.go). Each takes the buffer and a position
// and says fastMore when the buffer ends before what it reads does, fastBail when what
// it reads is for encoding/xml to judge.

// scanName reads the ASCII name at b[i]: it ends before the first byte that cannot be in
// a name. A name outside ASCII, or that encoding/xml refuses (two colons), is left to it.
func scanName(b []byte, i int) (int, fastState) {
	if i >= len(b) {
		return 0, fastMore
	}
	if c := b[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == ':') {
		return 0, fastBail
	}
	colons := 0
	j := i
	for ; j < len(b) && isNameByte(b[j]); j++ {
		if b[j] == ':' {
			colons++
		}
	}
	switch {
	case j >= len(b):
		return 0, fastMore
	case b[j] >= utf8.RuneSelf || colons > 1:
		return 0, fastBail
	}
	return j, fastDone
}

func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-'
}

// localName is the name without its prefix, as encoding/xml splits it: a name with one
// colon that has text on both sides.
func localName(name []byte) []byte {
	if k := bytes.IndexByte(name, ':'); k > 0 && k < len(name)-1 {
		return name[k+1:]
	}
	return name
}

// fieldIndex returns the index of name (ASCII, any case) in summaryFields, or -1.
func fieldIndex(name []byte) int {
	for k, f := range summaryFields {
		if len(f) == len(name) && asciiEqualFold(name, f) {
			return k
		}
	}
	return -1
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\r' || c == '\n' || c == '\t' }

// attribute reads the attribute at b[i] (name="value" or name='value', spaces allowed
// around '=') and says whether it is nil="true" in any namespace. A value with an entity
// reference, a CR or anything outside printable ASCII is left to encoding/xml.
func attribute(b []byte, i int) (int, bool, fastState) {
	j, st := scanName(b, i)
	if st != fastDone {
		return 0, false, st
	}
	name := b[i:j]
	if j = skipSpace(b, j); j >= len(b) {
		return 0, false, fastMore
	}
	if b[j] != '=' {
		return 0, false, fastBail
	}
	if j = skipSpace(b, j+1); j >= len(b) {
		return 0, false, fastMore
	}
	q := b[j]
	if q != '"' && q != '\'' {
		return 0, false, fastBail
	}
	end := bytes.IndexByte(b[j+1:], q)
	if end < 0 {
		return 0, false, fastMore
	}
	value := b[j+1 : j+1+end]
	for _, c := range value {
		if c == '<' || c == '&' || c == '\r' || c >= utf8.RuneSelf || c < 0x20 && c != '\t' && c != '\n' {
			return 0, false, fastBail
		}
	}
	local := localName(name)
	isNil := len(local) == 3 && asciiEqualFold(local, "nil") && string(bytes.TrimSpace(value)) == "true"
	return j + 2 + end, isNil, fastDone
}

// entityRef decodes the predefined entity reference at the start of b (&lt; &gt; &amp;
// &apos; &quot;); anything else is left to encoding/xml.
func entityRef(b []byte) (byte, int, fastState) {
	for _, e := range [...]struct {
		ref string
		r   byte
	}{{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}} {
		if bytes.HasPrefix(b, []byte(e.ref)) {
			return e.r, len(e.ref), fastDone
		}
	}
	if len(b) < len("&apos;") && bytes.IndexByte(b, ';') < 0 {
		return 0, 0, fastMore
	}
	return 0, 0, fastBail
}

// isInCharacterRange is encoding/xml's test of an XML Char.
func isInCharacterRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}
