package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the PostgreSQL floor
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// durableSeedPath is where the durable floor takes the batches to store (one "id url" a
// line), before the load.
const durableSeedPath = "/_durable/seed"

// DurableConfig is the durable floor: where it listens, what it forwards to, and where it
// commits.
type DurableConfig struct {
	Addr, Target string
	DataDir      string // SQLite: DataDir/gateway.db, as the gateway opens it
	DatabaseURL  string // PostgreSQL instead, when set (its search_path: the floor's own schema)
}

// ServeDurable is the durable floor: the bare reverse proxy of ServeProxy plus the two
// commits a close must make, into the gateway's own schema (store.Open migrates it, and is
// closed again): before the close is forwarded, the attempt inserted and the batch's state
// moved to closing; once Concur has answered and before the answer is sent on, the attempt
// ended and the state moved to closed. SQLite as it comes with the gateway's durability
// (WAL, synchronous=FULL, one writer at a time, SQLite's own checkpoints) or PostgreSQL.
// Nothing else: no lookup, no token, no XML, no log. It is the physical cost of a durable
// close on this machine, the floor the gateway's close is measured against.
func ServeDurable(ctx context.Context, cfg DurableConfig, stdout io.Writer) error {
	u, err := url.Parse(cfg.Target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("durable target %q: want an absolute URL", cfg.Target)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, Key: key})
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil { // the schema is there: from here on, the floor's own statements
		return err
	}
	d := &durable{pg: cfg.DatabaseURL != "", ids: map[string]string{}}
	if d.pg {
		d.db, err = sql.Open("pgx", cfg.DatabaseURL)
	} else {
		d.db, err = sql.Open("sqlite", cfg.DataDir+"/"+store.SQLiteFile+
			"?_txlock=immediate&_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)")
		d.mu = &sync.Mutex{} // one writer, as the gateway's store holds its writers
	}
	if err != nil {
		return err
	}
	defer d.db.Close()
	d.db.SetMaxOpenConns(16)
	d.db.SetMaxIdleConns(16)
	if err := d.prepare(ctx); err != nil {
		return err
	}

	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idleConnsPerHost
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = t
	rp.ModifyResponse = d.end
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET "+proxyMetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST "+durableSeedPath, d.seed)
	mux.Handle("/", d.begin(rp))

	return serveUntil(ctx, cfg.Addr, mux, stdout)
}

type durable struct {
	db    *sql.DB
	pg    bool
	mu    *sync.Mutex // SQLite: the one writer; nil for PostgreSQL
	stmts [4]*sql.Stmt

	idsMu sync.RWMutex
	ids   map[string]string // Batch-URL path (…/batch/{key}) to BatchID
}

// The statements of the two commits, with the columns the gateway's store writes
// (internal/store: insertClose, setStateSQL, endCloseSQL).
var durableSQL = [4]string{
	`INSERT INTO closes (batch_id, caller, request_id, idempotency_key, regenerate, started_at, ended_at,
	lease_until, outcome, upstream_status, error_code, detail, batch_status, status, job_queue_key, file_url, async, claim)
	VALUES (?, 'loadbench', ?, '', ?, ?, 0, ?, 'in_progress', 0, '', '', '', '', '', '', ?, ?) RETURNING id`,
	`UPDATE batches SET close_state = 'closing', close_version = close_version + 1, close_prev = close_state,
	close_attempt = ?, close_lease_until = ? WHERE id = ?`,
	`UPDATE closes SET outcome = 'closed', ended_at = ?, lease_until = 0, upstream_status = ?, batch_status = ?,
	status = ?, file_url = ? WHERE id = ? AND batch_id = ?`,
	`UPDATE batches SET status = 'CLOSED', close_state = 'closed', close_version = close_version + 1,
	close_prev = 'closing', close_lease_until = 0, file_close = ? WHERE id = ?`,
}

func (d *durable) prepare(ctx context.Context) error {
	for i, q := range durableSQL {
		if d.pg {
			q = numbered(q)
		}
		st, err := d.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("durable floor: prepare: %w", err)
		}
		d.stmts[i] = st
	}
	return nil
}

// numbered turns ? placeholders into $1, $2, ...
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// durableSeedSQL stores a batch as a refresh does (internal/store's upsert, first sight).
const durableSeedSQL = `INSERT INTO batches (id, url, name, total, currency, batch_count, batch_type,
	payment_method, status, first_seen, last_seen) VALUES (?, ?, ?, '1289.40', 'USD', '7', 'Employee',
	'Expense Pay by SAP Concur', 'OPEN', ?, ?) ON CONFLICT (id) DO NOTHING`

// seed stores the batches of the body ("id url" a line) as a refresh would.
func (d *durable) seed(w http.ResponseWriter, r *http.Request) {
	q := durableSeedSQL
	if d.pg {
		q = numbered(q)
	}
	now := time.Now().UnixMicro()
	ids := map[string]string{}
	err := d.tx(r.Context(), func(tx *sql.Tx) error {
		sc := bufio.NewScanner(io.LimitReader(r.Body, 64<<20))
		for sc.Scan() {
			id, u, ok := strings.Cut(sc.Text(), " ")
			pu, err := url.Parse(u)
			if !ok || err != nil {
				return fmt.Errorf("seed line %q", sc.Text())
			}
			if _, err := tx.ExecContext(r.Context(), q, id, u, "Load "+id, now, now); err != nil {
				return err
			}
			ids[pu.EscapedPath()+"/close"] = id
		}
		return sc.Err()
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d.idsMu.Lock()
	maps.Copy(d.ids, ids)
	d.idsMu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// attemptKey carries the attempt begun to the response's commit.
type attemptKey struct{}

type attempt struct {
	id    int64
	batch string
}

// begin is the first commit, before the close is forwarded.
func (d *durable) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.idsMu.RLock()
		id, ok := d.ids[r.URL.EscapedPath()]
		d.idsMu.RUnlock()
		if !ok || r.Method != http.MethodPost {
			http.Error(w, "durable floor: not a seeded batch's close", http.StatusNotFound)
			return
		}
		now := time.Now().UnixMicro()
		var att int64
		err := d.tx(r.Context(), func(tx *sql.Tx) error {
			if err := tx.StmtContext(r.Context(), d.stmts[0]).QueryRowContext(r.Context(), id, r.Header.Get("X-Request-Id"),
				true, now, now+int64(5*time.Minute/time.Microsecond), false, rand.Text()).Scan(&att); err != nil {
				return err
			}
			_, err := tx.StmtContext(r.Context(), d.stmts[1]).ExecContext(r.Context(), att, now+int64(5*time.Minute/time.Microsecond), id)
			return err
		})
		if err != nil {
			http.Error(w, "durable floor: begin: "+err.Error(), http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, attempt{att, id})))
	})
}

// end is the second commit, once Concur answered and before the answer goes on: the
// answer read (as the gateway reads it), the attempt ended with it.
func (d *durable) end(resp *http.Response) error {
	att, ok := resp.Request.Context().Value(attemptKey{}).(attempt)
	if !ok {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ctx := resp.Request.Context()
	return d.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, d.stmts[2]).ExecContext(ctx, time.Now().UnixMicro(), resp.StatusCode,
			"CLOSED", "Success", "https://concur.example/file", att.id, att.batch); err != nil {
			return err
		}
		_, err := tx.StmtContext(ctx, d.stmts[3]).ExecContext(ctx, att.id, att.batch)
		return err
	})
}

func (d *durable) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	if d.mu != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
