package batch

import (
	"time"
)

// Attempt is one recorded attempt to close a batch: the audit trail's entry.
type Attempt struct {
	ID             int64
	BatchID        string
	Caller         string
	RequestID      string
	IdempotencyKey string
	Regenerate     bool
	StartedAt      time.Time
	EndedAt        time.Time // zero while in progress
	Outcome        string    // in_progress, closed, failed, unknown, refused
	UpstreamStatus int
	Code           string // the problem code, when the attempt did not close the batch
	Detail         string
	Result         CloseResult // what Concur answered, for a closed attempt
}

func attemptOf(c Close) Attempt {
	a := Attempt{
		ID: c.ID, BatchID: c.BatchID, Caller: c.Caller, RequestID: c.RequestID, IdempotencyKey: c.IdempotencyKey,
		Regenerate: c.Regenerate, StartedAt: c.StartedAt, EndedAt: c.EndedAt, Outcome: string(c.Outcome),
		UpstreamStatus: c.UpstreamStatus, Code: c.ErrorCode, Detail: c.Detail,
	}
	if c.Outcome == OutcomeClosed {
		a.Result = resultOf(c)
	}
	return a
}

func resultOf(c Close) CloseResult {
	return CloseResult{
		BatchID: c.BatchID, BatchStatus: c.BatchStatus, Status: c.Status, JobQueueKey: c.JobQueueKey, FileURL: c.FileURL,
		ClosedAt: c.EndedAt,
	}
}
