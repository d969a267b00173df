package api

// Batch is a payment batch as the gateway knows it from Concur's batch lists: GET /batches
// and GET /batches/{id}. Concur's encrypted Batch-URL is never part of it.
type Batch struct {
	// BatchID is the plain Concur BatchID.
	BatchID string `json:"batchId" example:"6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13" maxLength:"64"`
	// Name is Concur's BatchName.
	Name string `json:"name" example:"Employee Reimbursements USD - Week 47" maxLength:"1024"`
	// Total is Concur's BatchTotal, a decimal as Concur sent it (a string, so no float
	// rounding touches money).
	Total string `json:"total" example:"1289.40" maxLength:"64"`
	// Currency is the ISO 4217 code of Total.
	Currency string `json:"currency" example:"USD" maxLength:"8"`
	// Count is the number of reports in the batch (0 if Concur sent no integer).
	Count int `json:"count" example:"7" format:"int32" minimum:"0" maximum:"2147483647"`
	// Type is Concur's batch type: Employee or Card Program.
	Type string `json:"type" example:"Employee" maxLength:"256"`
	// PaymentMethod is Concur's payment method, as Concur spells it.
	PaymentMethod string `json:"paymentMethod" example:"Expense Pay by SAP Concur" maxLength:"512"`
	// Status is OPEN or CLOSED: which of Concur's lists held the batch when the gateway last
	// saw it, or CLOSED once the gateway closed it. A batch that left both lists keeps its
	// last known status; its LastSeenAt then lies before the answer's AsOf.
	Status string `json:"status" example:"OPEN" enums:"OPEN,CLOSED"`
	// FirstSeenAt is when a batch list first held the batch (RFC 3339).
	FirstSeenAt string `json:"firstSeenAt" example:"2026-11-20T08:00:00Z" maxLength:"64"`
	// LastSeenAt is when a batch list last held the batch (RFC 3339).
	LastSeenAt string `json:"lastSeenAt" example:"2026-11-24T09:59:58Z" maxLength:"64"`
}

// BatchList is one page of GET /batches, in ascending byte order of the BatchID.
type BatchList struct {
	Items []Batch `json:"items" validate:"max=500"`
	// NextCursor continues the list: pass it as ?cursor= with the same filters. Absent on
	// the last page.
	NextCursor string `json:"nextCursor,omitempty" example:"AUgZBrkF85ILYjdlMmQ0ZjAtOWMxYS00YTNlLThmNmQtMmU1YzdhOWIxZDA0" maxLength:"512"`
	Freshness
}

// BatchDetail is the answer to GET /batches/{id}: the batch and its latest close attempt.
type BatchDetail struct {
	Batch
	// LastClose is the latest attempt to close the batch through the gateway, whatever its
	// outcome; absent when there was none. GET /batches/{id}/closes has them all.
	LastClose *CloseAttempt `json:"lastClose,omitempty"`
	Freshness
}

// Freshness says how current a read is. Reads refresh the gateway's copy of Concur's batch
// lists when it is older than the gateway's batch-list interval; when Concur cannot be
// read, the answer comes from that copy, with Stale true.
type Freshness struct {
	// AsOf is when the gateway last read Concur's OPEN and CLOSED lists completely (RFC
	// 3339): the answer reflects Concur as of then, or later. Absent when the gateway has
	// not read them since it started.
	AsOf string `json:"asOf,omitempty" example:"2026-11-24T10:00:00Z" maxLength:"64"`
	// Stale is true when the gateway's latest attempt to read Concur's lists failed: the
	// answer is what the gateway held, as of AsOf at best.
	Stale bool `json:"stale" example:"false"`
	// StaleCode is the problem code of that failure, e.g. upstream_unavailable; absent when
	// not stale.
	StaleCode string `json:"staleCode,omitempty" example:"upstream_unavailable" maxLength:"64"`
}
