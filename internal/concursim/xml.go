package concursim

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"
)

// The simulator writes its XML by hand: element order, namespace declarations and
// i:nil members must look exactly like Concur's .NET serializer, which encoding/xml
// does not reproduce.

const contentTypeXML = "application/xml; charset=utf-8"

// xmlDoc builds one XML answer.
type xmlDoc struct{ b bytes.Buffer }

// open writes a start tag; attrs are name, value pairs.
func (d *xmlDoc) open(name string, attrs ...string) {
	d.b.WriteString("<" + name)
	for i := 0; i+1 < len(attrs); i += 2 {
		d.b.WriteString(" " + attrs[i] + `="`)
		_ = xml.EscapeText(&d.b, []byte(attrs[i+1]))
		d.b.WriteString(`"`)
	}
	d.b.WriteString(">")
}

func (d *xmlDoc) close(name string) { d.b.WriteString("</" + name + ">") }

// elem writes <name>text</name>, escaped.
func (d *xmlDoc) elem(name, text string) {
	d.open(name)
	_ = xml.EscapeText(&d.b, []byte(text))
	d.close(name)
}

// nilElem writes <name i:nil="true"/>, the .NET way of sending an empty member.
func (d *xmlDoc) nilElem(name string) { d.b.WriteString("<" + name + ` i:nil="true"/>`) }

func (d *xmlDoc) nl() { d.b.WriteString("\n") }

// writeXML sends the document with the given status.
func writeXML(w http.ResponseWriter, status int, d *xmlDoc) {
	w.Header().Set("Content-Type", contentTypeXML)
	w.Header().Set("Content-Length", strconv.Itoa(d.b.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(d.b.Bytes())
}

// writeError sends Concur's error body: Message, Server-Time (no zone) and an upper-case
// GUID, optionally in the paymentbatch namespace.
func (s *Sim) writeError(w http.ResponseWriter, status int, msg string) {
	var d xmlDoc
	if s.opts.ErrorNamespace {
		d.open("Error", "xmlns", nsPaymentBatch)
	} else {
		d.open("Error")
	}
	d.elem("Message", msg)
	d.elem("Server-Time", s.now().UTC().Format("2006-01-02T15:04:05"))
	d.elem("Id", newGUID())
	d.close("Error")
	writeXML(w, status, &d)
}
