package batch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Kind is the class of an error: what a caller can do about it. A handful of kinds
// (upspin's errors.Kind, wtf's codes) are what the HTTP layer maps to a status, in one
// table; each error keeps its finer, stable [Code]. The zero Kind is KindInternal.
type Kind uint8

// The kinds.
const (
	KindInternal        Kind = iota // a bug or an unclassified failure
	KindInvalid                     // the request is malformed; it will not succeed as it is
	KindUnauthorized                // the caller is not authenticated
	KindForbidden                   // the caller may not do this
	KindNotFound                    // what the request names does not exist
	KindConflict                    // the request conflicts with the batch's state, for now or for good
	KindRateLimited                 // too many requests, the caller's or the gateway's; retry later
	KindUnavailable                 // Concur or the gateway's database is down; retry later
	KindUpstreamTimeout             // Concur did not answer in time
	KindUpstreamBad                 // Concur rejected the request, answered badly or could not be reached
	numKinds
)

var kindNames = [numKinds]string{"internal", "invalid", "unauthorized", "forbidden", "not_found",
	"conflict", "rate_limited", "unavailable", "upstream_timeout", "upstream_bad"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Kinds lists every kind, in order.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// Code is a stable, snake_case error code. Callers program against it, so a code never
// changes meaning once published. Each code has a [Kind] and a title ([Code.Kind],
// [Code.Title]); codes that only the HTTP layer produces live there.
type Code string

// The domain's codes; the table below gives each its kind and title.
const (
	CodeInvalidBatchID      Code = "invalid_batch_id"      // the id is not 1-64 of [A-Za-z0-9_-]
	CodeInvalidRequest      Code = "invalid_request"       // a query parameter or header is malformed
	CodeInvalidCursor       Code = "invalid_cursor"        // a list cursor is malformed, or was made for other filters
	CodeBatchNotFound       Code = "batch_not_found"       // not in the batch list, or Concur says it does not exist
	CodeFileNotFound        Code = "file_not_found"        // no payment file is known for the batch
	CodeFileNotReady        Code = "file_not_ready"        // an asynchronous close has not taken effect yet
	CodeBatchNotClosable    Code = "batch_not_closable"    // Concur refused the close as a business answer (e.g. no reports)
	CodeUpstreamConflict    Code = "upstream_conflict"     // Concur answered 409
	CodeBatchAlreadyClosed  Code = "batch_already_closed"  // the gateway knows the batch is closed; closing again needs ?regenerate=true
	CodeCloseInProgress     Code = "close_in_progress"     // another close of the batch is running (in any replica)
	CodeCloseOutcomeUnknown Code = "close_outcome_unknown" // an earlier close may still be taking effect in Concur
	CodeTooManyDownloads    Code = "too_many_downloads"    // the caller, or the gateway, has as many downloads running as allowed
	CodeUpstreamRateLimited Code = "upstream_rate_limited" // Concur answered 429
	CodeUpstreamUnavailable Code = "upstream_unavailable"  // Concur answered 503 (maintenance)
	CodeStoreUnavailable    Code = "store_unavailable"     // the gateway's database failed
	CodeUpstreamTimeout     Code = "upstream_timeout"      // no answer within the configured time-out
	CodeFileChanged         Code = "file_changed"          // Concur's payment file is not the one its first download recorded
	CodeUpstreamAuthFailed  Code = "upstream_auth_failed"  // Concur rejected our credentials even after renewal
	CodeUpstreamBadResponse Code = "upstream_bad_response" // malformed, oversized or unexpected answer
	CodeUpstreamUnreachable Code = "upstream_unreachable"  // connection failed
	CodeUpstreamHostRefused Code = "upstream_host_refused" // a Concur URL pointed at a host we do not trust
	CodeUpstreamRejected    Code = "upstream_rejected"     // any other 4xx from Concur (e.g. 400 request limit)
	CodeInternal            Code = "internal"              // a bug or an unclassified failure
)

// codes is the domain's vocabulary: each code's kind, and its title for people (a
// problem's title). A code missing here is a bug, and is answered as internal.
var codes = map[Code]struct {
	kind  Kind
	title string
}{
	CodeInvalidBatchID:      {KindInvalid, "Invalid batch id"},
	CodeInvalidRequest:      {KindInvalid, "Invalid request"},
	CodeInvalidCursor:       {KindInvalid, "Invalid list cursor"},
	CodeBatchNotFound:       {KindNotFound, "Batch not found"},
	CodeFileNotFound:        {KindNotFound, "Payment file not found"},
	CodeFileNotReady:        {KindConflict, "Payment file not ready yet"},
	CodeBatchNotClosable:    {KindConflict, "Batch cannot be closed"},
	CodeUpstreamConflict:    {KindConflict, "Concur reported a conflict"},
	CodeBatchAlreadyClosed:  {KindConflict, "Batch already closed"},
	CodeCloseInProgress:     {KindConflict, "A close of this batch is in progress"},
	CodeCloseOutcomeUnknown: {KindConflict, "An earlier close of this batch may still be taking effect"},
	CodeTooManyDownloads:    {KindRateLimited, "Too many downloads"},
	CodeUpstreamRateLimited: {KindRateLimited, "Concur is throttling requests"},
	CodeUpstreamUnavailable: {KindUnavailable, "Concur is unavailable"},
	CodeStoreUnavailable:    {KindUnavailable, "Gateway database unavailable"},
	CodeUpstreamTimeout:     {KindUpstreamTimeout, "Concur did not answer in time"},
	CodeFileChanged:         {KindUpstreamBad, "Concur's payment file changed"},
	CodeUpstreamAuthFailed:  {KindUpstreamBad, "Concur rejected the gateway's credentials"},
	CodeUpstreamBadResponse: {KindUpstreamBad, "Concur sent an unexpected answer"},
	CodeUpstreamUnreachable: {KindUpstreamBad, "Concur is unreachable"},
	CodeUpstreamHostRefused: {KindUpstreamBad, "Concur pointed to an untrusted host"},
	CodeUpstreamRejected:    {KindUpstreamBad, "Concur rejected the request"},
	CodeInternal:            {KindInternal, "Internal error"},
}

// Known reports whether c is one of the domain's codes.
func (c Code) Known() bool {
	_, ok := codes[c]
	return ok
}

// Kind is c's kind; KindInternal for a code that is not the domain's.
func (c Code) Kind() Kind { return codes[c].kind }

// Title is c's title; "" for a code that is not the domain's.
func (c Code) Title() string { return codes[c].title }

// Codes lists the domain's codes, sorted.
func Codes() []Code {
	return slices.Sorted(maps.Keys(codes))
}

// UpstreamError is what Concur said when it answered with an error.
type UpstreamError struct {
	Status     int    // Concur's HTTP status
	Message    string // <Message>
	ID         string // <Id>, Concur's id of the error (the concur-correlationid header is Error.CorrelationID)
	ServerTime string // <Server-Time>, Concur's local time without zone
}

// Delivery says how far a failed call to Concur got, and so whether Concur can have acted
// on it. The Concur client sets it on every failure it returns; the zero value is the
// safe assumption, so an error that does not say is treated as one that may have reached
// Concur.
type Delivery uint8

// How far a failed call got.
const (
	// MaybeDelivered: the request may have reached Concur and no usable answer came back
	// (a time-out or a cut connection after sending, an answer that could not be read).
	// Concur may have acted.
	MaybeDelivered Delivery = iota
	// NotSent: the request cannot have reached Concur (no token, breaker open, no slot,
	// refused host, dial failure, the caller gone before sending). Concur did not act.
	NotSent
	// Answered: Concur answered with an error status that says it did not act (its
	// status and message are in Upstream).
	Answered
)

// ErrCircuitOpen is the cause (errors.Is) of an Upstream failure that asked Concur
// nothing at all, its token endpoint included: a breaker refused the call because Concur
// has been failing. Such a failure is NotSent, and costs Concur nothing.
var ErrCircuitOpen = errors.New("circuit open")

func (d Delivery) String() string {
	switch d {
	case NotSent:
		return "not_sent"
	case Answered:
		return "answered"
	}
	return "maybe_delivered"
}

// DeliveryOf is the Delivery of the first *Error in err's chain; MaybeDelivered for any
// other error (nothing proves it was not sent).
func DeliveryOf(err error) Delivery {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Delivery
	}
	return MaybeDelivered
}

// Error is the one error type that crosses layers. Detail is safe to show a caller;
// Err is the cause, for the log only.
type Error struct {
	Code     Code
	Detail   string
	Delivery Delivery       // failures of calls to Concur: whether Concur can have acted
	Upstream *UpstreamError // set when Concur answered with an error
	// CorrelationID is the concur-correlationid header of the Concur answer the failure
	// came from, whatever its status: with Upstream for an error status, alone for a 200
	// whose body could not be used (Upstream stays nil: it describes error answers, and
	// the breaker reads it so). "" when no answer came, or it carried none usable.
	CorrelationID string
	RetryAfter    time.Duration // set when the caller should wait before retrying
	Recorded      *CloseResult  // CodeBatchAlreadyClosed: the recorded close, when the gateway has one
	Err           error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if u := e.Upstream; u != nil && u.Message != "" {
		msg += fmt.Sprintf(" (concur %d: %s)", u.Status, u.Message)
	} else if u != nil {
		msg += fmt.Sprintf(" (concur %d)", u.Status)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a caller-safe detail.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
