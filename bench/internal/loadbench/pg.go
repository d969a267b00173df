package loadbench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// pgServer is the PostgreSQL server of the suite's PostgreSQL mode: an admin connection,
// the schemas the run made (dropped at the end), and the CPU time of the server's backends
// that serve one application name, the database's share of a request.
type pgServer struct {
	db      *sql.DB
	base    *url.URL
	schemas []string
}

// openPG connects to the server at base, or fails within a few seconds.
func openPG(ctx context.Context, base string) (*pgServer, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("the PostgreSQL URL must start with postgres://")
	}
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	q.Set("connect_timeout", "3")
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &pgServer{db: db, base: u}, nil
}

// schema creates a schema of the run's and returns the URL of a connection to it whose
// backends are named app (application_name), for cpu.
func (p *pgServer) schema(ctx context.Context, name, app string) (string, error) {
	if _, err := p.db.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", err
	}
	p.schemas = append(p.schemas, name)
	u := *p.base
	q := u.Query()
	q.Set("search_path", name)
	q.Set("application_name", app)
	q.Del("connect_timeout")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// backends is the CPU time so far of each backend named app, by pid, from /proc (the
// server runs on this machine). A backend that exited takes its time with it: the pools
// keep theirs for the run.
func (p *pgServer) backends(ctx context.Context, app string) (map[int]time.Duration, error) {
	rows, err := p.db.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL backends: %w", err)
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		c, err := cpuTime(pid)
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL backend %d (is the server on this machine?): %w", pid, err)
		}
		out[pid] = c
	}
	return out, rows.Err()
}

// backendsCPU is the CPU the backends spent from before to after (a backend new since
// before counts from its start).
func backendsCPU(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, c := range after {
		d += c - before[pid]
	}
	return d
}

func (p *pgServer) close() {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range p.schemas {
		_, _ = p.db.ExecContext(ctx, "DROP SCHEMA "+s+" CASCADE")
	}
	_ = p.db.Close()
}
