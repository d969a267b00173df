package concur

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// OpenFile starts the download of a File-Url from CloseBatch. The answer's headers must come
// within Config.Timeout; then the body streams, unbuffered and uncapped, and each Read must
// make progress within Config.Timeout. The caller must close Body.
//
// Failures before the headers are retried like the batch list (see Config.MaxAttempts);
// once the body is handed over nothing is retried. The download holds one of the
// Config.MaxConcurrent slots until its headers arrive, not while the body streams: a slow
// consumer must not starve other calls.
func (c *Client) OpenFile(ctx context.Context, fileURL string) (*batch.File, error) {
	raw := strings.TrimSpace(fileURL)
	if _, err := parseConcurURL(raw); err != nil {
		return nil, err
	}
	var (
		resp *http.Response
		a    *attempt
	)
	err := c.call(ctx, opFile, func(ctx context.Context, timeout time.Duration) (t tried, err error) {
		resp, a, t, err = c.send(ctx, request{op: opFile, method: http.MethodGet, url: raw}, timeout)
		return t, err
	})
	if err != nil {
		return nil, err
	}
	a.timer.Stop() // headers are in: from now on the timer is an idle timer, armed per Read
	body := &idleBody{body: resp.Body, a: a, caller: ctx, timeout: c.timeout}
	f := &batch.File{
		Body:               body,
		ContentType:        resp.Header.Get("Content-Type"),
		ContentLength:      resp.ContentLength,
		ContentDisposition: resp.Header.Get("Content-Disposition"),
	}
	if mt, _, _ := mime.ParseMediaType(f.ContentType); mt == "" || mt == "application/octet-stream" {
		br := bufio.NewReader(body)
		head, err := br.Peek(4)
		if err != nil && !errors.Is(err, io.EOF) {
			_ = body.Close()
			return nil, err
		}
		f.ContentType = "text/csv"
		if bytes.Equal(head, []byte("PK\x03\x04")) {
			f.ContentType = "application/zip"
		}
		f.Body = &readCloser{Reader: br, Closer: body} // the peeked bytes stay in the stream
	}
	return f, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// idleBody fails a Read that makes no progress within timeout. The timer runs only while a
// Read is in progress, so a slow consumer is not mistaken for a stalled Concur.
type idleBody struct {
	body    io.ReadCloser
	a       *attempt
	caller  context.Context
	timeout time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.a.timer.Reset(b.timeout)
	n, err := b.body.Read(p)
	b.a.timer.Stop()
	if err != nil && err != io.EOF {
		e := transportError(b.caller, b.a.ctx, err)
		if e.Code == batch.CodeUpstreamTimeout && b.caller.Err() == nil {
			e.Detail = "Concur stopped sending the payment file"
		}
		return n, e
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.body.Close()
	b.a.end()
	return err
}
