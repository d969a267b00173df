package concur

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// maxDepth bounds element nesting: Concur's documents are three levels deep.
const maxDepth = 32

// fields maps a lower-cased local name to its trimmed text; a missing key is absent.
type fields map[string]string

// newDecoder is how Concur's XML is read, token by token: elements are matched by local
// name, case-insensitively, ignoring namespaces (Batch-URL and Batch-Url alike); values are
// trimmed text; unknown elements are skipped; i:nil="true" elements are absent; DTDs are
// refused; nesting is bounded. Bodies come through the caps of do.go.
func newDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.Strict = true
	// .NET may declare utf-16 on a document it sends as UTF-8: having read the declaration
	// byte by byte as UTF-8 proves the bytes are ASCII-compatible, so pass them through.
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-16", "us-ascii", "ascii":
			return in, nil
		}
		return nil, fmt.Errorf("unsupported encoding %q", label)
	}
	return d
}

// next returns the next token, refusing DTDs (and so entity declarations).
func next(d *xml.Decoder) (xml.Token, error) {
	tok, err := d.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	if _, ok := tok.(xml.Directive); ok {
		return nil, errors.New("xml: a DOCTYPE or other directive is not accepted")
	}
	return tok, nil
}

// root reads up to the document element and checks its local name.
func root(d *xml.Decoder, want string) error {
	for {
		tok, err := next(d)
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if !strings.EqualFold(se.Name.Local, want) {
				return fmt.Errorf("xml: root element is %q, want %q", se.Name.Local, want)
			}
			return nil
		}
	}
}

// children hands each child of the element just opened to fn, which consumes it, up to the
// element's end. An error of fn is returned as is.
func children(d *xml.Decoder, fn func(xml.StartElement) error) error {
	for {
		tok, err := next(d)
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if err := fn(t); err != nil {
				return err
			}
		}
	}
}

// readFields reads the children of the element just opened (at depth), up to its end, and
// returns the text content of those named in want (lower case). The first occurrence wins.
func readFields(d *xml.Decoder, depth int, want ...string) (fields, error) {
	out := make(fields, len(want))
	err := children(d, func(se xml.StartElement) error {
		name := strings.ToLower(se.Name.Local)
		_, seen := out[name]
		keep := !seen && !isNil(se) && slices.Contains(want, name)
		text, err := content(d, depth+1, keep)
		if err == nil && keep {
			out[name] = text
		}
		return err
	})
	return out, err
}

// content consumes the element just opened (at depth) and, if collect, returns its trimmed
// text content, child elements included (a Message may carry markup).
func content(d *xml.Decoder, depth int, collect bool) (string, error) {
	var b strings.Builder
	for level := depth; ; {
		if level > maxDepth {
			return "", errors.New("xml: elements nested too deep")
		}
		tok, err := next(d)
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			level++
		case xml.EndElement:
			if level == depth {
				return strings.TrimSpace(b.String()), nil
			}
			level--
		case xml.CharData:
			if collect {
				b.Write(t)
			}
		}
	}
}

func isNil(se xml.StartElement) bool {
	for _, a := range se.Attr {
		if strings.EqualFold(a.Name.Local, "nil") && strings.TrimSpace(a.Value) == "true" {
			return true
		}
	}
	return false
}

// decodeBatchList streams a <BatchList> of <BatchSummary> elements: each summary is handed
// to yield as soon as it is read, so memory does not grow with the list. An error of yield
// stops the decoding and is returned as is.
func decodeBatchList(r io.Reader, yield func(batch.Summary) error) error {
	d := newDecoder(r)
	if err := root(d, "BatchList"); err != nil {
		return err
	}
	return children(d, func(se xml.StartElement) error {
		if !strings.EqualFold(se.Name.Local, "BatchSummary") || isNil(se) {
			_, err := content(d, 2, false)
			return err
		}
		f, err := readFields(d, 2, "batchname", "batchid", "batchtotal", "currency", "count", "type",
			"paymentmethod", "batch-url")
		if err != nil {
			return err
		}
		return yield(batch.Summary{
			ID: f["batchid"], Name: f["batchname"], Total: f["batchtotal"], Currency: f["currency"],
			Count: f["count"], Type: f["type"], PaymentMethod: f["paymentmethod"], URL: f["batch-url"],
		})
	})
}

// decodeClose reads a close answer: <BatchStatus> with optional BatchStatus, File-Url,
// Status and JobQueueKey (v1.1 and v1.2 alike).
func decodeClose(r io.Reader) (batch.CloseResult, error) {
	f, err := decodeSmall(r, "BatchStatus", "batchstatus", "file-url", "status", "jobqueuekey")
	if err != nil {
		return batch.CloseResult{}, err
	}
	return batch.CloseResult{BatchStatus: f["batchstatus"], Status: f["status"], JobQueueKey: f["jobqueuekey"],
		FileURL: f["file-url"]}, nil
}

// errorBody is Concur's <Error>.
type errorBody struct {
	Message    string
	ServerTime string
	ID         string
}

// decodeErrorBody reads <Error><Message/><Server-Time/><Id/></Error>, any namespace.
func decodeErrorBody(r io.Reader) (errorBody, error) {
	f, err := decodeSmall(r, "Error", "message", "server-time", "id")
	if err != nil {
		return errorBody{}, err
	}
	return errorBody{Message: f["message"], ServerTime: f["server-time"], ID: f["id"]}, nil
}

// readers are the buffers small answers are decoded through: encoding/xml reads a byte at
// a time, and wraps a reader that cannot (the capped body) in a new 4 KiB bufio.Reader
// for every answer, about a tenth of what the gateway allocated per close.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// decodeSmall reads a small answer: the document element rootName and those of its children
// named in want.
func decodeSmall(r io.Reader, rootName string, want ...string) (fields, error) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil) // the decoder is done with it
		readers.Put(br)
	}()
	d := newDecoder(br)
	if err := root(d, rootName); err != nil {
		return nil, err
	}
	return readFields(d, 1, want...)
}
