package concursim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault makes the simulator misbehave on the token and API endpoints (never on /_sim/).
//
// Modes: "status" (Status, default 500, with an XML Error carrying Message), "slow" (sleep
// Delay, then answer normally; a request whose client left first is dropped unprocessed),
// "malformed" (200 with broken XML), "html" (Status or 502
// with an HTML page), "empty" (Status or 500 with no body), "wrongtype" (200 JSON),
// "reset" (close the connection without an answer), "huge" (200 XML over 2 MiB), "bomb"
// (200 XML with a billion-laughs DOCTYPE), "deep" (200 XML nested 100000 levels), "lost"
// (do what was asked, then drop the connection: the answer is lost, as when a close
// succeeds at Concur and the network fails on the way back).
type Fault struct {
	Op         string   `json:"op"`                   // "any" (default), "token", "list", "close", "file"
	Mode       string   `json:"mode"`                 // see above
	Status     int      `json:"status,omitempty"`     // for "status", "html", "empty"
	Message    string   `json:"message,omitempty"`    // Error Message for "status"
	RetryAfter string   `json:"retryAfter,omitempty"` // sent verbatim as Retry-After when set
	Delay      Duration `json:"delay,omitempty"`      // for "slow"
	Count      int      `json:"count,omitempty"`      // next N matching requests; 0 = until cleared
}

var (
	faultOps   = []string{"", "any", "token", "list", "close", "file"}
	faultModes = []string{"status", "slow", "malformed", "html", "empty", "wrongtype", "reset", "huge", "bomb", "deep", "lost"}
)

func (f Fault) validate() error {
	var errs []error
	if !slices.Contains(faultOps, f.Op) {
		errs = append(errs, fmt.Errorf("op %q: want one of %s", f.Op, strings.Join(faultOps[1:], ", ")))
	}
	if !slices.Contains(faultModes, f.Mode) {
		errs = append(errs, fmt.Errorf("mode %q: want one of %s", f.Mode, strings.Join(faultModes, ", ")))
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		errs = append(errs, fmt.Errorf("status %d: want 100..599", f.Status))
	}
	if f.Delay < 0 || f.Count < 0 {
		errs = append(errs, errors.New("delay and count must not be negative"))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("3s").
// A JSON number is read as nanoseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "3s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration: want a string such as \"3s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// SetFault installs f, replacing any current fault.
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = &f
}

// ClearFault removes the current fault.
func (s *Sim) ClearFault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = nil
}

// takeFault returns the fault that applies to a request for op, consuming one use.
func (s *Sim) takeFault(op string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f == nil || (f.Op != "" && f.Op != "any" && f.Op != op) {
		return Fault{}, false
	}
	taken := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			s.fault = nil
		}
	}
	return taken, true
}

// faulted applies the current fault, if it matches op, before next; else chaos, if on.
func (s *Sim) faulted(op string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(func(st *Stats) { st.Requests[op]++ })
		f, ok := s.takeFault(op)
		if !ok {
			s.serveChaos(op, next, w, r)
			return
		}
		status := func(def int) int {
			if f.Status != 0 {
				return f.Status
			}
			return def
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		switch f.Mode {
		case "status":
			msg := f.Message
			if msg == "" {
				msg = "Simulated fault."
			}
			s.writeError(w, status(http.StatusInternalServerError), msg)
		case "slow":
			bufferBody(r) // so that a client leaving is seen, and its request dropped unprocessed
			t := time.NewTimer(time.Duration(f.Delay))
			defer t.Stop()
			select {
			case <-t.C:
				next.ServeHTTP(w, r)
			case <-r.Context().Done():
			}
		case "malformed":
			writeRaw(w, http.StatusOK, contentTypeXML, []byte(`<BatchList xmlns="`+nsPaymentBatch+
				`"><BatchSummary><BatchName>Broken & unfinished</BatchNam><BatchID>`))
		case "html":
			code := status(http.StatusBadGateway)
			page := fmt.Sprintf("<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"+
				"<body><h1>%[1]d %[2]s</h1><p>The gateway could not reach the server.</p></body></html>\n",
				code, http.StatusText(code))
			writeRaw(w, code, "text/html; charset=utf-8", []byte(page))
		case "empty":
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(status(http.StatusInternalServerError))
		case "wrongtype":
			writeRaw(w, http.StatusOK, "application/json", []byte(`{"message":"not what you asked for"}`+"\n"))
		case "reset":
			reset(w)
		case "lost":
			next.ServeHTTP(discard{h: http.Header{}}, r)
			reset(w)
		case "huge":
			writeRaw(w, http.StatusOK, contentTypeXML, hugeXML())
		case "bomb":
			writeRaw(w, http.StatusOK, contentTypeXML, []byte(bombXML))
		case "deep":
			writeRaw(w, http.StatusOK, contentTypeXML, deepXML())
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// reset drops the connection without an answer: an RST where the transport allows it.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2 or no hijacker: abort the stream instead
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// hugeMin is the least size of the "huge" body.
const hugeMin = 2<<20 + 64<<10

func hugeXML() []byte {
	var d xmlDoc
	d.open("BatchList", "xmlns", nsPaymentBatch, "xmlns:i", nsXSI)
	for i := 0; d.b.Len() < hugeMin; i++ {
		d.open("BatchSummary")
		d.elem("BatchName", fmt.Sprintf("Padding batch %07d", i))
		d.elem("BatchID", fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		d.elem("BatchTotal", "1.00")
		d.elem("Currency", "USD")
		d.elem("Count", "1")
		d.elem("Type", TypeEmployee)
		d.elem("PaymentMethod", "Expense Pay by SAP Concur")
		d.elem(URLElementUpper, "http://127.0.0.1/api/expense/paymentbatch/v1.1/batch/"+strconv.Itoa(i))
		d.close("BatchSummary")
	}
	d.close("BatchList")
	return d.b.Bytes()
}

const bombXML = `<?xml version="1.0"?>
<!DOCTYPE BatchList [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<BatchList xmlns="` + nsPaymentBatch + `"><BatchSummary><BatchName>&lol9;</BatchName></BatchSummary></BatchList>
`

// deepDepth is how many levels the "deep" body nests.
const deepDepth = 100000

func deepXML() []byte {
	var b strings.Builder
	b.WriteString(`<BatchList xmlns="` + nsPaymentBatch + `">`)
	for range deepDepth {
		b.WriteString("<BatchSummary>")
	}
	for range deepDepth {
		b.WriteString("</BatchSummary>")
	}
	b.WriteString("</BatchList>")
	return []byte(b.String())
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
