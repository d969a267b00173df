package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/api"
)

// CloseOptions tunes Close.
type CloseOptions struct {
	// IdempotencyKey, when set, makes a retried Close safe: the gateway replays the first
	// answer to the same key (for 24 h, per caller) instead of closing again. Use one key
	// per intended close, e.g. a UUID stored with the payment run.
	IdempotencyKey string
	// Regenerate closes the batch even if it is closed already: Concur then regenerates its
	// payment file, which can pay people twice. Needs the batches:regenerate scope.
	Regenerate bool
	// Async asks for Concur's asynchronous close (Prefer: respond-async): the answer is
	// Accepted (202) with a JobQueueKey and no file yet; the batch's status then comes
	// from Get, and once it is CLOSED, File obtains and serves the file.
	Async bool
}

// Close closes the batch (POST /batches/{id}/close). A batch the gateway knows is closed
// is an *Error with Code "batch_already_closed", whose Problem.Recorded is the recorded
// close. Once the gateway has started a close it finishes it even if this call times out;
// retry with the same IdempotencyKey, or read Closes, to learn how it ended.
func (c *Client) Close(ctx context.Context, id string, opts CloseOptions) (api.CloseResponse, error) {
	var out api.CloseResponse
	path, err := batchPath(id, "close")
	if err != nil {
		return out, err
	}
	var query url.Values
	if opts.Regenerate {
		query = url.Values{"regenerate": {"true"}}
	}
	header := http.Header{}
	if opts.IdempotencyKey != "" {
		header.Set("Idempotency-Key", opts.IdempotencyKey)
	}
	if opts.Async {
		header.Set("Prefer", "respond-async")
	}
	err = c.doJSON(ctx, http.MethodPost, path, query, header, &out)
	return out, err
}

// Closes returns the batch's close attempts through the gateway, newest first
// (GET /batches/{id}/closes); limit 0 means the gateway's default (100), at most 1000.
func (c *Client) Closes(ctx context.Context, id string, limit int) ([]api.CloseAttempt, error) {
	path, err := batchPath(id, "closes")
	if err != nil {
		return nil, err
	}
	var query url.Values
	if limit != 0 {
		query = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var out api.CloseAttemptList
	err = c.doJSON(ctx, http.MethodGet, path, query, nil, &out)
	return out.Items, err
}

// Get returns one batch and its latest close attempt (GET /batches/{id}). An unknown id is
// an *Error with Code "batch_not_found".
func (c *Client) Get(ctx context.Context, id string) (api.BatchDetail, error) {
	var out api.BatchDetail
	path, err := batchPath(id, "")
	if err != nil {
		return out, err
	}
	err = c.doJSON(ctx, http.MethodGet, path, nil, nil, &out)
	return out, err
}

// Filter selects batches for List and ListPage; empty fields match every batch.
type Filter struct {
	Status        string // "OPEN" or "CLOSED"
	Currency      string // ISO 4217, e.g. "USD"
	PaymentMethod string // exactly as Concur spells it
	Type          string // "Employee" or "Card Program"
	Limit         int    // page size, 1-500; 0 means the gateway's default (50)
}

func (f Filter) query(cursor string) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "currency": f.Currency,
		"paymentMethod": f.PaymentMethod, "type": f.Type, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListPage returns one page of the batch list (GET /batches): the first with cursor "",
// the next with the previous page's NextCursor and the same filter. The page says how
// fresh it is (AsOf, Stale): when Concur cannot be read, the gateway answers from its copy.
func (c *Client) ListPage(ctx context.Context, f Filter, cursor string) (api.BatchList, error) {
	var out api.BatchList
	err := c.doJSON(ctx, http.MethodGet, "/batches", f.query(cursor), nil, &out)
	return out, err
}

// List iterates over every batch matching f, a page at a time, each page within the
// client's time-out. An error ends the iteration: it is yielded with a zero Batch.
//
//	for b, err := range c.List(ctx, client.Filter{Status: "OPEN"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(b.BatchID, b.Total, b.Currency)
//	}
//
// Use ListPage to see each page's freshness.
func (c *Client) List(ctx context.Context, f Filter) iter.Seq2[api.Batch, error] {
	return func(yield func(api.Batch, error) bool) {
		cursor := ""
		for {
			page, err := c.ListPage(ctx, f, cursor)
			if err != nil {
				yield(api.Batch{}, err)
				return
			}
			for _, b := range page.Items {
				if !yield(b, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == cursor {
				yield(api.Batch{}, errors.New("client: GET /batches: the gateway answered the same cursor twice"))
				return
			}
			cursor = page.NextCursor
		}
	}
}

// File is a payment file being downloaded. Close its Body.
type File struct {
	Body        io.ReadCloser
	Name        string // the file name the gateway gave (Content-Disposition), e.g. "batch-42.csv"
	ContentType string // text/csv, or application/zip when the batch makes several files
	Size        int64  // bytes; -1 when unknown
}

// File starts the download of the payment file of the batch's last close
// (GET /batches/{id}/file). The client's time-out bounds the wait for the answer; the
// stream itself is bounded by ctx only. A batch without a file is an *Error with Code
// "file_not_found".
func (c *Client) File(ctx context.Context, id string) (*File, error) {
	path, err := batchPath(id, "file")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, cancel)
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil, http.Header{"Accept": {"*/*"}})
	if timer != nil && !timer.Stop() { // the time-out struck: even an answer now has a dead stream
		if err == nil {
			_ = resp.Body.Close() // nothing to tell: the answer is dropped
		}
		cancel()
		return nil, fmt.Errorf("client: GET %s: no answer within %v: %w", path, c.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	f := &File{Body: &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, ContentType: resp.Header.Get("Content-Type"),
		Size: resp.ContentLength}
	f.Name = fileName(resp.Header.Get("Content-Disposition"), id, f.ContentType)
	return f, nil
}

// fileName is the Content-Disposition's file name reduced to a base name (no directory can
// be smuggled in through it), or batch-{id}.csv|zip.
func fileName(disposition, id, contentType string) string {
	if _, params, err := mime.ParseMediaType(disposition); err == nil {
		name := path.Base(strings.ReplaceAll(params["filename"], `\`, "/"))
		if name != "" && name != "." && name != ".." && name != "/" {
			return name
		}
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/zip" {
		return "batch-" + id + ".zip"
	}
	return "batch-" + id + ".csv"
}

// cancelOnClose releases the download's context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
