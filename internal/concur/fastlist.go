package concur

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// The batch list's fast path. encoding/xml reads a byte at a time through an interface
// and allocates several times per token: a list of 100,000 summaries took it 0.6 s of
// tokenising alone. The fast path parses one child of <BatchList> at a time in place, in
// the list reader's buffer, and hands whatever it does not fully understand back to
// encoding/xml (listChild's fastBail), which then reads that child itself: comments,
// CDATA, processing instructions, directives, numeric character references, names or
// attribute values outside ASCII, deep nesting, a child larger than the buffer, and every
// error. What it accepts, it decodes exactly as decodeBatchList's encoding/xml path would
// (FuzzListFastPath compares the two), so it only ever changes the speed.

// fastState is how listChild ended.
type fastState int

const (
	fastDone fastState = iota // the child was parsed: n bytes
	fastMore                  // the buffer ends before the child does
	fastBail                  // leave the child to encoding/xml
)

// maxFastDepth bounds the nesting the fast path follows, the child itself at level 1.
const maxFastDepth = 8

// summaryFields are the <BatchSummary> children that make a batch.Summary, lower case.
var summaryFields = [...]string{"batchname", "batchid", "batchtotal", "currency", "count", "type",
	"paymentmethod", "batch-url"}

// fastChild is the fast path's scratch, reused from one child to the next.
type fastChild struct {
	stack   [maxFastDepth][2]int // offsets in the child of the open elements' names
	depth   int
	summary bool   // the child is a <BatchSummary> that is not nil
	text    []byte // the kept fields' text, one after another
	field   [len(summaryFields)]struct {
		start, end int // in text
		set        bool
	}
	cur int // the field being collected, -1 for none
}

// listChild parses the element at the start of b, a child of the list's root: b[0] is
// '<' and b[1] starts a name.
func (f *fastChild) listChild(b []byte) (n int, st fastState) {
	f.depth, f.summary, f.text, f.cur = 0, false, f.text[:0], -1
	for i := range f.field {
		f.field[i].set = false
	}
	i := 0
	for {
		if i >= len(b) {
			return 0, fastMore
		}
		if b[i] != '<' {
			if i, st = f.chars(b, i); st != fastDone {
				return 0, st
			}
			continue
		}
		if i+1 >= len(b) {
			return 0, fastMore
		}
		if b[i+1] == '/' {
			if i, st = f.endTag(b, i); st != fastDone {
				return 0, st
			}
			if f.depth == 0 {
				return i, fastDone
			}
			continue
		}
		var empty bool
		if i, empty, st = f.startTag(b, i); st != fastDone {
			return 0, st
		}
		if empty && f.depth == 0 {
			return i, fastDone
		}
	}
}

// startTag reads the start tag at b[i]: the element is opened (and closed at once when
// empty, <a/>), and a field of a summary starts being collected when it is one.
func (f *fastChild) startTag(b []byte, i int) (int, bool, fastState) {
	start := i + 1
	j, st := scanName(b, start)
	if st != fastDone {
		return 0, false, st
	}
	name := b[start:j]
	isNil, empty := false, false
	for {
		if j = skipSpace(b, j); j >= len(b) {
			return 0, false, fastMore
		}
		if b[j] == '>' {
			j++
			break
		}
		if b[j] == '/' {
			if j+1 >= len(b) {
				return 0, false, fastMore
			}
			if b[j+1] != '>' {
				return 0, false, fastBail
			}
			j, empty = j+2, true
			break
		}
		var nilAttr bool
		if j, nilAttr, st = attribute(b, j); st != fastDone {
			return 0, false, st
		}
		isNil = isNil || nilAttr
	}
	level := f.depth + 1
	if level > maxFastDepth {
		return 0, false, fastBail
	}
	local := localName(name)
	switch {
	case level == 1:
		f.summary = !isNil && len(local) == len("batchsummary") && asciiEqualFold(local, "batchsummary")
	case level == 2 && f.summary:
		if k := fieldIndex(local); k >= 0 && !isNil && !f.field[k].set {
			f.field[k].set, f.field[k].start, f.cur = true, len(f.text), k
		}
	}
	if empty {
		if level == 2 && f.cur >= 0 {
			f.field[f.cur].end, f.cur = len(f.text), -1
		}
		return j, true, fastDone
	}
	f.stack[f.depth] = [2]int{start, start + len(name)}
	f.depth++
	return j, false, fastDone
}

// endTag reads the end tag at b[i], which must close the innermost open element.
func (f *fastChild) endTag(b []byte, i int) (int, fastState) {
	start := i + 2
	end, st := scanName(b, start)
	if st != fastDone {
		return 0, st
	}
	j := skipSpace(b, end)
	if j >= len(b) {
		return 0, fastMore
	}
	if b[j] != '>' || f.depth == 0 {
		return 0, fastBail
	}
	if open := f.stack[f.depth-1]; !bytes.Equal(b[start:end], b[open[0]:open[1]]) {
		return 0, fastBail // mismatched: an error for encoding/xml to report
	}
	f.depth--
	if f.depth == 1 && f.cur >= 0 {
		f.field[f.cur].end, f.cur = len(f.text), -1
	}
	return j + 1, fastDone
}

// chars reads character data from b[i] up to the next '<': a run of text or one entity
// reference. Text inside a kept field is collected, with line ends normalised as XML
// requires (CR LF and a lone CR become LF).
func (f *fastChild) chars(b []byte, i int) (int, fastState) {
	if b[i] == '&' {
		r, n, st := entityRef(b[i:])
		if st != fastDone {
			return 0, st
		}
		if f.cur >= 0 {
			f.text = append(f.text, r)
		}
		return i + n, fastDone
	}
	collect := f.cur >= 0
	run := i
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '<' || c == '&':
			return i, fastDone
		case c == '>':
			if i-run >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				return 0, fastBail // "]]>" outside CDATA: an error for encoding/xml to report
			}
		case c == '\r':
			if collect {
				f.text = append(f.text, '\n')
			}
			continue
		case c == '\n':
			if collect && i > run && b[i-1] == '\r' {
				continue // written as the CR's LF
			}
		case c < 0x20 && c != '\t':
			return 0, fastBail // not an XML character
		case c >= utf8.RuneSelf:
			if !utf8.FullRune(b[i:]) {
				return 0, fastMore
			}
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 || !isInCharacterRange(r) {
				return 0, fastBail
			}
			if collect {
				f.text = append(f.text, b[i:i+size]...)
			}
			i += size - 1
			continue
		}
		if collect {
			f.text = append(f.text, c)
		}
	}
	return i, fastDone
}

// summaryOf returns the summary the last child parsed held: its fields' text in one
// string (one allocation), each trimmed as readFields trims it.
func (f *fastChild) summaryOf() batch.Summary {
	all := string(f.text)
	get := func(k int) string {
		if !f.field[k].set {
			return ""
		}
		return strings.TrimSpace(all[f.field[k].start:f.field[k].end])
	}
	return batch.Summary{Name: get(0), ID: get(1), Total: get(2), Currency: get(3), Count: get(4),
		Type: get(5), PaymentMethod: get(6), URL: get(7)}
}
