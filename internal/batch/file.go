package batch

import (
	"context"
	"errors"
	"time"
)

// asyncAccepted is the detail recorded with an accepted asynchronous close.
const asyncAccepted = "asynchronous close (v1.2) accepted by Concur: the batch is closed when its job has run; " +
	"the gateway then obtains the File-Url on its own"

// fileURLDetail is the detail recorded with the close that obtains a File-Url after an
// asynchronous close.
const fileURLDetail = "File-Url obtained after an asynchronous close: a v1.1 close of the closed batch, as Concur " +
	"recommends (Concur regenerates the file; the gateway makes this one regeneration on its own)"

// fileNotReadyWait is the Retry-After of a download that waits for an asynchronous close.
const fileNotReadyWait = 5 * time.Second

// FileRequest is one caller's request for a batch's payment file.
type FileRequest struct {
	ID        string
	Caller    string
	RequestID string
}

// File opens the payment file of the batch's close: the File-Url of the close that the
// batch's state names (FileClose). Reading a file never closes a batch: after an
// asynchronous close, the finisher obtains the File-Url. The caller must close the
// returned file's Body.
func (s *Service) File(ctx context.Context, req FileRequest) (*File, error) {
	if err := ValidateID(req.ID); err != nil {
		return nil, err
	}
	b, err := s.st.GetBatch(ctx, req.ID)
	if errors.Is(err, ErrNotStored) {
		return nil, Errorf(CodeFileNotFound, "the gateway knows no payment file for batch %s", req.ID)
	} else if err != nil {
		return nil, storeError(err)
	}
	c := b.Close
	switch {
	case c.State == StateScheduled, c.State == StateClosing && c.Prev == StateScheduled:
		return nil, &Error{Code: CodeFileNotReady, RetryAfter: fileNotReadyWait,
			Detail: "the asynchronous close of batch " + req.ID + " has not been seen to take effect in Concur yet; " +
				"the gateway obtains the file once Concur's batch list shows it closed"}
	case c.State == StateClosing:
		return nil, &Error{Code: CodeCloseInProgress, RetryAfter: fileNotReadyWait,
			Detail: "a close of batch " + req.ID + " is in progress; its file can be downloaded once it has ended"}
	case c.State == StateUnknown:
		return nil, &Error{Code: CodeCloseOutcomeUnknown, RetryAfter: max(c.SettleUntil.Sub(c.Now).Round(time.Second), time.Second),
			Detail: "the outcome of the latest close of batch " + req.ID + " is unknown; it is settled from Concur's " +
				"batch list by the next close request after the Retry-After"}
	case c.State != StateClosed:
		return nil, Errorf(CodeFileNotFound, "batch %s has not been closed through the gateway", req.ID)
	case c.FileClose == 0:
		return nil, Errorf(CodeFileNotFound, "batch %s is closed, but the answer that carried its File-Url was lost "+
			"(or it was closed outside the gateway); only a regeneration (?regenerate=true) yields a new file", req.ID)
	}
	last, err := s.st.GetClose(ctx, c.FileClose)
	if err != nil {
		return nil, storeError(err)
	}
	if last.FileURL == "" {
		return nil, Errorf(CodeFileNotFound, "Concur's answer to the latest close of batch %s carried no File-Url", req.ID)
	}
	f, err := s.up.OpenFile(ctx, last.FileURL)
	if err != nil {
		return nil, err
	}
	f.CloseID = last.ID
	return f, nil
}
