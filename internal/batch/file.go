package batch

import (
	"context"
	"errors"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// asyncAccepted is the detail recorded with an accepted asynchronous close.
const asyncAccepted = "asynchronous close (v1.2) accepted by Concur: the batch is closed when its job has run; " +
	"the first download of its file obtains the File-Url"

// fileURLDetail is the detail recorded with the close that obtains a File-Url after an
// asynchronous close.
const fileURLDetail = "File-Url obtained after an asynchronous close: a v1.1 close of the closed batch, as Concur " +
	"recommends (Concur regenerates the file; the gateway makes this one regeneration on its own)"

// fileNotReadyWait is the Retry-After of a download that waits for an asynchronous close.
const fileNotReadyWait = 5 * time.Second

// FileRequest is one caller's request for a batch's payment file. Caller and RequestID are
// recorded when the download must first obtain the File-Url (after an asynchronous close).
type FileRequest struct {
	ID        string
	Caller    string
	RequestID string
}

// File opens the payment file of the batch's latest successful close. When that close was
// asynchronous (v1.2: no File-Url), the file is obtained as Concur recommends: once the
// batch list shows the batch CLOSED, a v1.1 close of it yields the File-Url. That close
// regenerates the file, so it is made at most once per asynchronous close: under the
// batch's close lease, recorded with Regenerate set, and never again after an attempt
// whose outcome is unknown. The caller must close the returned file's Body.
func (s *Service) File(ctx context.Context, req FileRequest) (*File, error) {
	if err := ValidateID(req.ID); err != nil {
		return nil, err
	}
	last, err := s.lastClosed(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	if last.FileURL == "" {
		if !isAsync(last) {
			return nil, Errorf(CodeFileNotFound, "Concur's answer to the latest close of batch %s carried no File-Url", req.ID)
		}
		if last, err = s.obtainFileURL(ctx, req); err != nil {
			return nil, err
		}
	}
	return s.up.OpenFile(ctx, last.FileURL)
}

// isAsync reports whether c is an accepted asynchronous close still without its File-Url.
func isAsync(c store.Close) bool {
	return c.Outcome == store.OutcomeClosed && c.FileURL == "" && c.Async
}

// lastClosed is the batch's latest close attempt that closed it.
func (s *Service) lastClosed(ctx context.Context, id string) (store.Close, error) {
	c, err := s.st.LastClosed(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Close{}, Errorf(CodeFileNotFound, "the gateway knows no payment file for batch %s", id)
	}
	if err != nil {
		return store.Close{}, storeError(err)
	}
	return c, nil
}

// obtainFileURL makes the v1.1 close that yields the File-Url of a batch closed
// asynchronously, and returns the attempt that holds it.
func (s *Service) obtainFileURL(ctx context.Context, req FileRequest) (store.Close, error) {
	fresh, err := s.dir.current(ctx)
	if err != nil {
		return store.Close{}, err
	}
	if fresh.Stale != nil {
		return store.Close{}, &Error{Code: ErrorCode(fresh.Stale), RetryAfter: retryAfterOf(fresh.Stale), Err: fresh.Stale,
			Detail: "the batch was closed asynchronously, and Concur's batch list could not be read to learn " +
				"whether the close has taken effect; try again later"}
	}
	b, err := s.st.GetBatch(ctx, req.ID)
	if err != nil {
		return store.Close{}, storeError(err)
	}
	if b.Status != store.StatusClosed {
		return store.Close{}, &Error{Code: CodeFileNotReady, RetryAfter: fileNotReadyWait,
			Detail: "the asynchronous close of batch " + req.ID + " has not taken effect in Concur yet: its batch " +
				"list does not show it closed; the file can be downloaded once it does"}
	}

	begun, err := s.begin(ctx, store.Close{BatchID: req.ID, Caller: req.Caller, RequestID: req.RequestID, Regenerate: true})
	if errors.Is(err, store.ErrCloseInProgress) {
		return store.Close{}, &Error{Code: CodeCloseInProgress, RetryAfter: fileNotReadyWait,
			Detail: "a close of batch " + req.ID + " is in progress (perhaps obtaining its file); try again shortly"}
	}
	if err != nil {
		return store.Close{}, storeError(err)
	}
	_, att, sent, err := s.runLeased(ctx, begun, func(ctx context.Context) (CloseResult, bool, error) {
		return s.fileURLGuarded(ctx, req, begun)
	}, func(att *store.Close, res CloseResult, sent bool, err error) {
		if err == nil && !sent {
			att.EndedAt, att.Outcome = s.now(), store.OutcomeRefused
			att.Detail = "not needed: another request obtained the File-Url meanwhile"
			return
		}
		s.finish(att, res, sent, err)
		if err == nil {
			att.Detail = fileURLDetail
		}
	})
	switch {
	case err != nil:
		return store.Close{}, err
	case !sent: // another request obtained it meanwhile
		return *begun.LastClosed, nil
	}
	return att, nil
}

// fileURLGuarded decides, under the lease, whether the v1.1 close is still needed and
// allowed, and makes it. sent is false when nothing was sent to Concur.
func (s *Service) fileURLGuarded(ctx context.Context, req FileRequest, begun store.Begun) (CloseResult, bool, error) {
	last := begun.LastClosed
	switch {
	case last == nil:
		return CloseResult{}, false, Errorf(CodeFileNotFound, "the gateway knows no payment file for batch %s", req.ID)
	case last.FileURL != "":
		return CloseResult{}, false, nil
	case !isAsync(*last):
		return CloseResult{}, false, Errorf(CodeFileNotFound,
			"Concur's answer to the latest close of batch %s carried no File-Url", req.ID)
	}
	// Any attempt since may have made Concur regenerate the file, even if later ones failed.
	unknown, err := s.st.UnknownAfter(ctx, req.ID, last.ID)
	if err != nil {
		return CloseResult{}, false, storeError(err)
	}
	if unknown {
		return CloseResult{}, false, &Error{Code: CodeCloseOutcomeUnknown,
			Detail: "an earlier attempt to obtain the file of batch " + req.ID + " may have made Concur regenerate it " +
				"and its answer was lost; the gateway will not regenerate it again on its own: to get the file, " +
				"close the batch with ?regenerate=true"}
	}
	res, err := s.up.CloseBatch(ctx, begun.Batch.URL)
	if err != nil {
		return CloseResult{}, true, err
	}
	res.ClosedAt = s.now()
	res.Regenerated = true
	return res, true, nil
}
