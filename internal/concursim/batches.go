package concursim

import (
	"net/http"
	"strconv"
	"strings"
)

// handleList is GET v1.1/batchlist/, …/batchlist/OPEN and …/batchlist/CLOSED. The status
// filter is a path segment, matched case-insensitively; summaries carry no status.
func (s *Sim) handleList(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.ListCalls++ })
	status := strings.ToUpper(r.PathValue("status"))
	if status != "" && status != "OPEN" && status != "CLOSED" {
		s.writeError(w, http.StatusBadRequest,
			"The batch status "+strconv.Quote(r.PathValue("status"))+" is invalid. Use OPEN or CLOSED.")
		return
	}
	origin := s.origin(r)

	var d xmlDoc
	d.open("BatchList", "xmlns", nsPaymentBatch, "xmlns:i", nsXSI)
	d.nl()
	s.mu.Lock()
	for _, b := range s.batches {
		if (status == "OPEN" && b.Closed) || (status == "CLOSED" && !b.Closed) {
			continue
		}
		d.b.WriteString("  ")
		d.open("BatchSummary")
		d.elem("BatchName", b.Name)
		d.elem("BatchID", b.ID)
		d.elem("BatchTotal", b.Total)
		d.elem("Currency", b.Currency)
		d.elem("Count", strconv.Itoa(b.Count))
		d.elem("Type", b.Type)
		d.elem("PaymentMethod", b.PaymentMethod)
		d.elem(s.opts.URLElement, origin+apiPrefix+"v1.1/batch/"+b.key)
		d.close("BatchSummary")
		d.nl()
	}
	s.mu.Unlock()
	d.close("BatchList")
	writeXML(w, http.StatusOK, &d)
}
