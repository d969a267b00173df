package batch

import (
	"context"
	"time"
)

// ListChunk is how many batches of a list one upsert carries, for the tests of the
// streaming refresh.
const ListChunk = listChunk

// DirectoryLookup is the directory's lookup of a BatchID, for the benchmarks.
func DirectoryLookup(up Upstream, st Store) func(context.Context, string) (Batch, error) {
	d := &directory{up: up, st: st, now: time.Now}
	return d.lookup
}

// DirectoryFetch is one forced fetch of the directory, for the benchmarks.
func DirectoryFetch(up Upstream, st Store) func(context.Context) error {
	d := &directory{up: up, st: st, now: time.Now}
	return func(ctx context.Context) error { _, err := d.fetch(ctx, true); return err }
}

// FinishPass runs one pass of the finisher of asynchronous closes.
func (s *Service) FinishPass(ctx context.Context) error {
	_, err := s.finishPass(ctx)
	return err
}
