package batch_test

import (
	"context"
	"errors"
	"sync"

	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// scriptedUp is an Upstream whose answers each test scripts, counting the closes Concur got.
type scriptedUp struct {
	mu         sync.Mutex
	lists      func(status batch.ListStatus) ([]batch.Summary, error)
	closes     func(ctx context.Context, url string, n int) (batch.CloseResult, error)
	closeCalls []string
}

func (u *scriptedUp) ListBatches(_ context.Context, s batch.ListStatus, fn func(batch.Summary) error) error {
	u.mu.Lock()
	list, err := u.lists(s)
	u.mu.Unlock()
	return each(list, err, fn)
}

// each hands the summaries of a fake list to fn, as a streaming Upstream does.
func each(list []batch.Summary, err error, fn func(batch.Summary) error) error {
	if err != nil {
		return err
	}
	for _, s := range list {
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

func (u *scriptedUp) CloseBatch(ctx context.Context, url string) (batch.CloseResult, error) {
	u.mu.Lock()
	u.closeCalls = append(u.closeCalls, url)
	n := len(u.closeCalls)
	u.mu.Unlock()
	return u.closes(ctx, url, n)
}

func (u *scriptedUp) CloseBatchAsync(ctx context.Context, url string) (batch.CloseResult, error) {
	return u.CloseBatch(ctx, url)
}

func (u *scriptedUp) OpenFile(context.Context, string) (*batch.File, error) {
	return nil, errors.New("no files here")
}
