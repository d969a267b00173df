// Package api holds the JSON wire types of the payment-batch gateway, for Go services that
// call it. It imports nothing of the gateway's internals.
package api

// CloseResponse is the answer to POST /batches/{id}/close.
type CloseResponse struct {
	// BatchID is the plain Concur BatchID that was closed.
	BatchID string `json:"batchId" example:"6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13" validate:"required" maxLength:"64"`
	// BatchStatus is Concur's BatchStatus, passed through (documented value: CLOSED).
	BatchStatus string `json:"batchStatus" example:"CLOSED" maxLength:"32"`
	// Status is Concur's status of the close request, passed through (documented value: SUCCESS).
	Status string `json:"status" example:"SUCCESS" maxLength:"32"`
	// JobQueueKey is Concur's identifier of the batch job, when Concur sent one.
	JobQueueKey string `json:"jobQueueKey,omitempty" example:"d$wIUEkl72LW299WTjTlskdy" maxLength:"256"`
	// FileURL is the gateway's link to the payment file, when Concur produced one.
	FileURL string `json:"fileUrl,omitempty" example:"/batches/6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13/file" maxLength:"2048"`
	// ClosedAt is when the gateway recorded Concur's answer (RFC 3339): the close record carries the same value.
	ClosedAt string `json:"closedAt,omitempty" example:"2026-11-24T10:00:00Z" maxLength:"64"`
	// Regenerated is true when the batch was already closed and this close, asked for with
	// ?regenerate=true, made Concur regenerate its payment file.
	Regenerated bool `json:"regenerated,omitempty" example:"false"`
	// Accepted is true when the close was asynchronous (Prefer: respond-async, answered
	// 202): Concur scheduled it; GET /batches/{id} shows when the batch is CLOSED.
	Accepted bool `json:"accepted,omitempty" example:"false"`
}

// CloseAttempt is one entry of a batch's audit trail: GET /batches/{id}/closes.
type CloseAttempt struct {
	// ID orders attempts: a later attempt has a larger id.
	ID int64 `json:"id" example:"42" format:"int64" minimum:"1" maximum:"9223372036854775807"`
	// Caller is who asked for the close.
	Caller string `json:"caller" example:"ap-portal" maxLength:"128"`
	// RequestID is the id of the request that made the attempt.
	RequestID string `json:"requestId" example:"d4jb7ksa3fmq2elr0h5pcgvtn8" maxLength:"128"`
	// IdempotencyKey is the caller's Idempotency-Key, when it sent one.
	IdempotencyKey string `json:"idempotencyKey,omitempty" example:"8e03978e-40d5-43e8-bc93-6894a57f9324" maxLength:"255"`
	// Regenerate is true when the caller allowed a regeneration (?regenerate=true).
	Regenerate bool `json:"regenerate,omitempty" example:"false"`
	// StartedAt and EndedAt bound the attempt (RFC 3339); EndedAt is absent while it runs.
	StartedAt string `json:"startedAt" example:"2026-11-24T10:00:00Z" maxLength:"64"`
	EndedAt   string `json:"endedAt,omitempty" example:"2026-11-24T10:00:01Z" maxLength:"64"`
	// Outcome: in_progress, closed (Concur closed the batch or regenerated its file), failed
	// (Concur did not close it), unknown (it may have: the next close re-reads the batch
	// list first) or refused (the gateway did not call Concur).
	Outcome string `json:"outcome" example:"closed" enums:"in_progress,closed,failed,unknown,refused"`
	// UpstreamStatus is Concur's HTTP status, when Concur answered.
	UpstreamStatus int `json:"upstreamStatus,omitempty" example:"200" format:"int32" minimum:"100" maximum:"599"`
	// UpstreamCorrelationID is the concur-correlationid header of the Concur answer that
	// decided the attempt (a success, an error, or a 200 whose body could not be read):
	// quote it to Concur's support. Absent when no answer came or it carried none.
	UpstreamCorrelationID string `json:"upstreamCorrelationId,omitempty" example:"0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90" maxLength:"128"`
	// Code is the problem code the caller got, when the attempt did not close the batch.
	Code string `json:"code,omitempty" example:"batch_already_closed" maxLength:"64"`
	// Detail explains a failed, unknown or refused attempt.
	Detail string `json:"detail,omitempty" maxLength:"8192"`
	// Result is what Concur answered to a successful close.
	Result *CloseResponse `json:"result,omitempty"`
	// Downloads are the latest downloads of the close's payment file through the gateway,
	// newest first (at most 20); absent when there were none.
	Downloads []FileDownload `json:"downloads,omitempty" validate:"max=20"`
}

// FileDownload is one download of a close's payment file (GET /batches/{id}/file).
type FileDownload struct {
	// Caller is who downloaded it.
	Caller string `json:"caller" example:"ap-portal" maxLength:"128"`
	// RequestID is the id of the download's request.
	RequestID string `json:"requestId" example:"d4jb7ksa3fmq2elr0h5pcgvtn8" maxLength:"128"`
	// At is when the download started, EndedAt when it ended (RFC 3339).
	At      string `json:"at" example:"2026-11-24T10:01:00Z" maxLength:"64"`
	EndedAt string `json:"endedAt" example:"2026-11-24T10:01:02Z" maxLength:"64"`
	// Bytes is how much of the file reached the caller.
	Bytes int64 `json:"bytes" example:"48213" format:"int64" minimum:"0" maximum:"9223372036854775807"`
	// SHA256 is the hex SHA-256 of Concur's whole file, when the gateway read it to its end.
	// The close's first complete download fixes it: later downloads are verified against
	// it and carry it as Repr-Digest.
	SHA256 string `json:"sha256,omitempty" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" minLength:"64" maxLength:"64"`
	// Outcome: complete (the caller got the whole file), cut (it read too slowly),
	// mismatch (Concur's file differed from the first complete download's: the download
	// was cut before its end, or, for two first downloads at once, the later one is marked)
	// or failed (Concur's stream broke, or the caller left).
	Outcome string `json:"outcome" example:"complete" enums:"complete,cut,mismatch,failed"`
}

// CloseAttemptList is the answer to GET /batches/{id}/closes, newest first.
type CloseAttemptList struct {
	Items []CloseAttempt `json:"items" validate:"max=1000"`
}

// Problem is an RFC 9457 problem detail, served as application/problem+json.
type Problem struct {
	// Type identifies the kind of problem; it ends in the Code.
	Type string `json:"type" example:"/problems/batch_not_found" validate:"required" maxLength:"256"`
	// Title is a short, fixed summary of the kind of problem.
	Title string `json:"title" example:"Batch not found" validate:"required" maxLength:"256"`
	// Status is the HTTP status code.
	Status int `json:"status" example:"404" validate:"required" format:"int32" minimum:"100" maximum:"599"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty" example:"batch 42 is not in Concur's batch list" maxLength:"8192"`
	// Instance is the path of the request that failed.
	Instance string `json:"instance,omitempty" example:"/batches/42/close" maxLength:"2048"`
	// Code is stable and snake_case: program against it.
	Code string `json:"code" example:"batch_not_found" validate:"required" maxLength:"64"`
	// RequestID is the request's id, also sent as the X-Request-ID header.
	RequestID string `json:"requestId,omitempty" example:"d4jb7ksa3fmq2elr0h5pcgvtn8" maxLength:"128"`
	// Upstream is what Concur answered, when the problem comes from Concur's error answer.
	Upstream *UpstreamProblem `json:"upstream,omitempty"`
	// ConcurCorrelationID is the concur-correlationid of the Concur answer the problem comes
	// from when that answer was no error (a 200 the gateway could not read, as with
	// close_outcome_unknown): quote it to Concur's support. With upstream, it is
	// upstream.correlationId instead.
	ConcurCorrelationID string `json:"concurCorrelationId,omitempty" example:"0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90" maxLength:"128"`
	// Recorded is the batch's recorded close, with batch_already_closed.
	Recorded *CloseResponse `json:"recorded,omitempty"`
}

// UpstreamProblem is Concur's own error answer.
type UpstreamProblem struct {
	// Status is Concur's HTTP status code.
	Status int `json:"status" example:"500" format:"int32" minimum:"100" maximum:"599"`
	// Message is Concur's error message.
	Message string `json:"message,omitempty" example:"The batch you attempted to close does not contain any reports." maxLength:"8192"`
	// ID is Concur's error id, useful when talking to Concur support.
	ID string `json:"id,omitempty" example:"8E7D1C2B-3A4F-4E5D-9C8B-7A6F5E4D3C2B" maxLength:"256"`
	// ServerTime is Concur's server time of the error, without a time zone.
	ServerTime string `json:"serverTime,omitempty" example:"2026-11-24T10:00:00" maxLength:"64"`
	// CorrelationID is the concur-correlationid header of Concur's answer: quote it to
	// Concur's support. Absent when Concur sent none (or one that is not 1-128 visible ASCII).
	CorrelationID string `json:"correlationId,omitempty" example:"0b6f8a52-3c1e-4d7a-9f2b-5e8c1a4d7b90" maxLength:"128"`
}

// ProblemType describes one problem code: GET /problems/{code}, where a Problem's Type
// points.
type ProblemType struct {
	// Code is the problem's stable code.
	Code string `json:"code" example:"batch_not_found" maxLength:"64"`
	// Title is the fixed summary of the kind of problem.
	Title string `json:"title" example:"Batch not found" maxLength:"256"`
	// Status is the HTTP status answered with this code.
	Status int `json:"status" example:"404" format:"int32" minimum:"100" maximum:"599"`
}
