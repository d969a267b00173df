package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"
)

// The WAL's checkpoints run in the background, not inside a commit. By default SQLite
// checkpoints in whichever commit takes the WAL past 1000 pages (wal_autocheckpoint):
// that commit copies the WAL into the database file and fsyncs it before it returns,
// while this process's next writers wait behind it (writeSem). In the load suite's close
// (two commits of about ten pages each) that was one close in a hundred, tens of
// milliseconds each: the gateway's p99. So every connection has wal_autocheckpoint off,
// and a checkpointer of its own, on a connection of its own:
//
//   - every checkpointInterval, a PASSIVE checkpoint: it copies what it can without
//     waiting for anyone, writers go on appending to the WAL meanwhile; then a second,
//     short one with the writers held, so that the WAL restarts (see tick);
//   - once the WAL stopped growing (no commit for a whole interval), a TRUNCATE one, which
//     empties the WAL file: an idle gateway leaves nothing to replay;
//   - when readers kept the passive ones from ever finishing and the WAL file passed
//     walLimit, a RESTART one, which waits (briefly: checkpointWait) for the readers, and
//     for which this process's writers wait at writeSem, so the WAL is bounded.
//
// Durability is unchanged: every commit still fsyncs the WAL (synchronous=FULL), and a
// checkpoint only copies committed pages into the database file, fsyncing it (the
// checkpointer's connection is synchronous=FULL too) before the WAL is reused. A crash
// between checkpoints leaves the commits in the WAL, replayed by the next open.
//
// The three figures are fixed here; a deployment that needs others could have them as
// settings (GATEWAY_SQLITE_CHECKPOINT_INTERVAL, GATEWAY_SQLITE_WAL_LIMIT).
const (
	// checkpointInterval: at the load suite's ~800 closes/s, about 1,000 WAL pages per
	// round, as many as SQLite's own default copies in one checkpoint.
	checkpointInterval = 100 * time.Millisecond
	// walLimit is the WAL file's size past which the checkpointer waits for readers; also
	// its journal_size_limit (the file is cut back to it when the WAL restarts).
	walLimit = 64 << 20
	// checkpointWait bounds a TRUNCATE's or RESTART's wait for readers and writers (its
	// connection's busy_timeout): one that cannot finish in time is tried again later.
	checkpointWait = time.Second
)

// checkpointer runs the WAL's checkpoints of one SQLite store (see above).
type checkpointer struct {
	db       *sql.DB       // one connection, its own
	wal      string        // path of the WAL file
	writeSem chan struct{} // the store's: held for a RESTART, tried for a TRUNCATE
	interval time.Duration
	limit    int64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	lastErr error // the last checkpoint's error, for tests; nil when it succeeded
}

// startCheckpointer opens the checkpointer's connection to path and starts it.
func startCheckpointer(ctx context.Context, path string, writeSem chan struct{}, interval time.Duration, limit int64) (*checkpointer, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", checkpointWait.Milliseconds()))
	q.Add("_pragma", "synchronous(FULL)") // a checkpoint fsyncs the database file only with it
	q.Add("_pragma", "wal_autocheckpoint(0)")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open SQLite's checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open SQLite's checkpointer: %w", err)
	}
	c := &checkpointer{db: db, wal: path + "-wal", writeSem: writeSem, interval: interval, limit: limit,
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	var lastLog int64 = -1
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		lastLog = c.tick(lastLog)
	}
}

// tick runs one round: a passive checkpoint of what the WAL holds, with the writers going
// on; then, when that left frames the writers appended meanwhile, a second passive one
// with this process's writers held at writeSem, so that it catches up and the next writer
// begins on a WAL that is wholly in the database file, and restarts it from its start
// (SQLite restarts a WAL only then: without that pause, a WAL written without a break never
// restarts and grows to walLimit). The second one copies a few frames, not the round's
// thousands, so the pause is short. When the WAL stopped growing since the last round
// (lastLog: its frames then), a truncating checkpoint empties it; when it is past the
// limit anyway (readers held old snapshots), a restarting one waits for the readers. It
// returns the WAL's frames as the round found them.
func (c *checkpointer) tick(lastLog int64) int64 {
	log, done, err := c.checkpoint("PASSIVE")
	switch {
	case err != nil:
	case log > 0 && log == lastLog && done == log:
		// Idle: nothing was committed for an interval. A writer in the middle of a
		// transaction holds writeSem: then it is not idle after all.
		select {
		case c.writeSem <- struct{}{}:
			_, _, err = c.checkpoint("TRUNCATE")
			<-c.writeSem
		default:
		}
	case c.walSize() > c.limit:
		err = c.paused("RESTART")
	case log > 0:
		err = c.paused("PASSIVE")
	}
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	return log
}

// paused runs a checkpoint with this process's writers held at writeSem.
func (c *checkpointer) paused(mode string) error {
	select {
	case c.writeSem <- struct{}{}:
	case <-c.stop:
		return nil
	}
	defer func() { <-c.writeSem }()
	_, _, err := c.checkpoint(mode)
	return err
}

// checkpoint runs PRAGMA wal_checkpoint(mode) and returns the WAL's frames and how many
// of them are now in the database file. A checkpoint that could not finish (busy) is no
// error: the next round goes on from where it stopped.
func (c *checkpointer) checkpoint(mode string) (log, done int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*checkpointWait)
	defer cancel()
	var busy int64
	err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done)
	if err != nil {
		return 0, 0, fmt.Errorf("store: SQLite checkpoint (%s): %w", mode, err)
	}
	return log, done, nil
}

// walSize is the WAL file's size, 0 when there is none.
func (c *checkpointer) walSize() int64 {
	fi, err := os.Stat(c.wal)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// close stops the checkpointer and closes its connection; safe to call more than once.
func (c *checkpointer) close() error {
	var err error
	c.stopOnce.Do(func() {
		close(c.stop)
		<-c.done
		err = c.db.Close()
	})
	return err
}
