package concur

import (
	"encoding/xml"
	"io"
	"strings"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// decodeBatchList streams a <BatchList> of <BatchSummary> elements: each summary is handed
// to yield as soon as it is read, so memory does not grow with the list. An error of yield
// stops the decoding and is returned as is.
//
// Two parsers share the input, at the boundaries between the root's children: the fast
// path (fastlist.go) takes the children it can parse whole, and encoding/xml everything
// else, with the same result. encoding/xml reads through listReader's ReadByte, so it
// buffers nothing of its own and both always stand at the same byte. The fast path may
// only start where encoding/xml holds no byte read ahead: not after a text token, whose
// end it found by reading the next '<', and not right after the root's start tag, which
// may have been <BatchList/> (then the Decoder answers its end without reading).
func decodeBatchList(r io.Reader, yield func(batch.Summary) error) error {
	lr := &listReader{r: r, buf: make([]byte, 0, listBuffer)}
	d := newDecoder(lr)
	if err := root(d, "BatchList"); err != nil {
		return err
	}
	var fast fastChild
	slow := true // the next token is encoding/xml's
	for {
		if !slow {
			if err := fast.children(lr, yield); err != nil {
				return err
			}
		}
		tok, err := next(d)
		if err != nil {
			return err
		}
		slow = false
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.CharData:
			slow = true
		case xml.StartElement:
			if !strings.EqualFold(t.Name.Local, "BatchSummary") || isNil(t) {
				if _, err := content(d, 2, false); err != nil {
					return err
				}
				continue
			}
			f, err := readFields(d, 2, summaryFields[:]...)
			if err != nil {
				return err
			}
			s := batch.Summary{
				ID:            f.get("batchid"),
				Name:          f.get("batchname"),
				Total:         f.get("batchtotal"),
				Currency:      f.get("currency"),
				Count:         f.get("count"),
				Type:          f.get("type"),
				PaymentMethod: f.get("paymentmethod"),
				URL:           f.get("batch-url"),
			}
			if err := yield(s); err != nil {
				return err
			}
		}
	}
}

// children parses, from lr's buffer, the spaces and the children of the root that the
// fast path can take, handing each summary to yield. It returns when the input holds
// something else (encoding/xml reads it next), ends or fails (encoding/xml reports it).
func (f *fastChild) children(lr *listReader, yield func(batch.Summary) error) error {
	refills := 0
	for {
		b := lr.buf[lr.off:]
		i := skipSpace(b, 0)
		lr.off += i
		switch {
		case i == len(b) || len(b)-i == 1 && b[i] == '<':
			if !lr.more() {
				return nil
			}
			continue
		case b[i] != '<' || b[i+1] == '/' || b[i+1] == '!' || b[i+1] == '?':
			return nil
		}
		n, st := f.listChild(b[i:])
		switch st {
		case fastBail:
			return nil
		case fastMore:
			// The child is parsed again from its start with more input: a few times at
			// most, so that a child trickling in does not cost its size squared.
			if refills++; refills > maxRefills || !lr.more() {
				return nil
			}
			continue
		}
		lr.off += n
		refills = 0
		if f.summary {
			if err := yield(f.summaryOf()); err != nil {
				return err
			}
		}
	}
}

const (
	listBuffer = 64 << 10 // the list reader's buffer: a child larger than this is left to encoding/xml
	maxRefills = 8        // refills of the buffer one child may wait for on the fast path
)

// listReader is the batch list's input: a buffer that the fast path parses in place and
// that encoding/xml reads a byte at a time.
type listReader struct {
	r   io.Reader
	buf []byte // buf[off:] was read and not consumed yet
	off int
	err error // the read error that ended the input (io.EOF included); sticky
}

func (l *listReader) ReadByte() (byte, error) {
	if l.off == len(l.buf) && !l.more() {
		return 0, l.err
	}
	c := l.buf[l.off]
	l.off++
	return c, nil
}

// Read is for the Decoder's CharsetReader, which hands the reader back as it is: the
// Decoder goes on reading through ReadByte.
func (l *listReader) Read(p []byte) (int, error) {
	if l.off == len(l.buf) && !l.more() {
		return 0, l.err
	}
	n := copy(p, l.buf[l.off:])
	l.off += n
	return n, nil
}

// more reads what the input has next (one Read) after the unconsumed bytes, which it
// first moves to the front of the buffer. It reports false when nothing was added: the
// buffer is full of unconsumed bytes, or the input ended or failed (l.err).
func (l *listReader) more() bool {
	if l.err != nil {
		return false
	}
	n := copy(l.buf[:cap(l.buf)], l.buf[l.off:])
	l.buf, l.off = l.buf[:n], 0
	if n == cap(l.buf) {
		return false
	}
	for range 100 {
		m, err := l.r.Read(l.buf[n:cap(l.buf)])
		l.buf = l.buf[:n+m]
		if err != nil {
			l.err = err
		}
		if m > 0 || err != nil {
			return m > 0
		}
	}
	l.err = io.ErrNoProgress
	return false
}
