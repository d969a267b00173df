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

// Concur's XML is read with encoding/xml, token by token: elements are matched by local
// name, case-insensitively, ignoring namespaces (Batch-URL and Batch-Url alike); values
// are trimmed text content; unknown elements are skipped; i:nil="true" elements are
// absent; DTDs are refused; nesting is bounded. Bodies come through the caps of do.go.

// fields maps a lower-cased local name to its trimmed text; a missing key is absent.
type fields map[string]*string

func (f fields) get(name string) string {
	if v := f[name]; v != nil {
		return *v
	}
	return ""
}

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

// readFields reads the children of the element just opened (at depth), up to its end, and
// returns the text content of those named in want (lower case). The first occurrence wins.
func readFields(d *xml.Decoder, depth int, want ...string) (fields, error) {
	out := make(fields, len(want))
	for {
		tok, err := next(d)
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return out, nil
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			keep := !isNil(t) && out[name] == nil && slices.Contains(want, name)
			text, err := content(d, depth+1, keep)
			if err != nil {
				return nil, err
			}
			if keep {
				out[name] = &text
			}
		}
	}
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
	for {
		tok, err := next(d)
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if !strings.EqualFold(t.Name.Local, "BatchSummary") || isNil(t) {
				if _, err := content(d, 2, false); err != nil {
					return err
				}
				continue
			}
			f, err := readFields(d, 2, "batchname", "batchid", "batchtotal", "currency", "count", "type",
				"paymentmethod", "batch-url")
			if err != nil {
				return err
			}
			if err := yield(batch.Summary{
				ID: f.get("batchid"), Name: f.get("batchname"), Total: f.get("batchtotal"), Currency: f.get("currency"),
				Count: f.get("count"), Type: f.get("type"), PaymentMethod: f.get("paymentmethod"), URL: f.get("batch-url"),
			}); err != nil {
				return err
			}
		}
	}
}

// decodeClose reads a close answer: <BatchStatus> with optional BatchStatus, File-Url,
// Status and JobQueueKey (v1.1 and v1.2 alike).
func decodeClose(r io.Reader) (batch.CloseResult, error) {
	br := bufferedReader(r)
	defer releaseReader(br)
	d := newDecoder(br)
	if err := root(d, "BatchStatus"); err != nil {
		return batch.CloseResult{}, err
	}
	f, err := readFields(d, 1, "batchstatus", "file-url", "status", "jobqueuekey")
	if err != nil {
		return batch.CloseResult{}, err
	}
	return batch.CloseResult{
		BatchStatus: f.get("batchstatus"),
		Status:      f.get("status"),
		JobQueueKey: f.get("jobqueuekey"),
		FileURL:     f.get("file-url"),
	}, nil
}

// errorBody is Concur's <Error>.
type errorBody struct {
	Message    string
	ServerTime string
	ID         string
}

// decodeErrorBody reads <Error><Message/><Server-Time/><Id/></Error>, any namespace.
func decodeErrorBody(r io.Reader) (errorBody, error) {
	br := bufferedReader(r)
	defer releaseReader(br)
	d := newDecoder(br)
	if err := root(d, "Error"); err != nil {
		return errorBody{}, err
	}
	f, err := readFields(d, 1, "message", "server-time", "id")
	if err != nil {
		return errorBody{}, err
	}
	return errorBody{Message: f.get("message"), ServerTime: f.get("server-time"), ID: f.get("id")}, nil
}

// readers are the buffers small answers are decoded through: encoding/xml reads a byte at
// a time, and wraps a reader that cannot (the capped body) in a new 4 KiB bufio.Reader
// for every answer, about a tenth of what the gateway allocated per close.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

func bufferedReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

// releaseReader returns br to the pool, once its decoder is done with it.
func releaseReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}
