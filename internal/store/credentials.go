package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/finplat/payment-batch-gateway/internal/concur"
)

// The AAD of each sealed token names its field, so one cannot stand in for the other.
var (
	aadRefreshToken = []byte("credentials.refresh_token")
	aadAccessToken  = []byte("credentials.access_token")
)

const credentialsColumns = `refresh_token, refresh_expiry, access_token, access_expiry,
	access_lifetime_ns, geolocation, seed_hash, version, updated_at,
	redeeming_hash, redeeming_until, spent_seeds, spent_tokens`

// LoadCredentials reads the credentials without taking the lock. An error wrapping
// ErrUndecryptable means they were sealed with another key.
func (s *sqlStore) LoadCredentials(ctx context.Context) (concur.Credentials, bool, error) {
	c, found, err := s.readCredentials(ctx, s.db, "")
	return c, found, wrap("load credentials", err)
}

// UpdateCredentials runs fn under the credentials lock: in PostgreSQL SELECT ... FOR
// UPDATE of the credentials row (created by the first migration), in SQLite a write
// transaction (BEGIN IMMEDIATE). fn must not call the Store: the lock is held. Stored
// credentials that cannot be decrypted fail with an error wrapping ErrUndecryptable,
// before fn is called. The credentials returned read back the same from LoadCredentials
// (times truncated to the microsecond).
func (s *sqlStore) UpdateCredentials(ctx context.Context,
	fn func(cur concur.Credentials, found bool) (*concur.Credentials, error)) (concur.Credentials, error) {
	var out concur.Credentials
	err := s.write(ctx, func(tx *sql.Tx) error {
		if s.d.lockHeld != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockHeld); err != nil {
				return err
			}
		}
		cur, found, err := s.readCredentials(ctx, tx, s.d.forUpdate)
		if err != nil {
			return err
		}
		next, err := fn(cur, found)
		if err != nil || next == nil {
			out = cur
			return err
		}
		c := *next
		c.RefreshExpiry, c.AccessExpiry = stored(c.RefreshExpiry), stored(c.AccessExpiry)
		c.Version, c.UpdatedAt = cur.Version+1, stored(time.Now())
		refresh, err := s.box.Seal([]byte(c.RefreshToken), aadRefreshToken)
		if err != nil {
			return err
		}
		access, err := s.box.Seal([]byte(c.AccessToken), aadAccessToken)
		if err != nil {
			return err
		}
		var lease, until int64 // no marker: both 0
		if r := c.Redeeming; r.TokenHash != "" {
			lease, until = r.Lease.Microseconds(), micros(r.Until)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE credentials SET refresh_token = ?,
			refresh_expiry = ?, access_token = ?, access_expiry = ?, access_lifetime_ns = ?,
			geolocation = ?, seed_hash = ?, version = ?, updated_at = ?,
			redeeming_hash = ?, redeeming_until = CASE WHEN CAST(? AS BIGINT) > 0
				THEN `+s.d.nowMicros+` + CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END,
			spent_seeds = ?, spent_tokens = ? WHERE id = 1`),
			refresh, micros(c.RefreshExpiry), access, micros(c.AccessExpiry),
			int64(c.AccessLifetime), c.Geolocation, c.SeedHash, c.Version, micros(c.UpdatedAt),
			c.Redeeming.TokenHash, lease, lease, until, c.SpentSeeds, c.SpentTokens)
		if err := oneRow(res, err); err != nil {
			return err
		}
		// Read back: the lease's end comes from the database's clock.
		out, _, err = s.readCredentials(ctx, tx, "")
		return err
	})
	if err != nil {
		return concur.Credentials{}, wrap("update credentials", err)
	}
	return out, nil
}

// readCredentials reads the credentials row, appending suffix (a lock clause) to the
// SELECT; found is false while nothing was ever stored (version 0).
func (s *sqlStore) readCredentials(ctx context.Context, q querier, suffix string) (concur.Credentials, bool, error) {
	var (
		c                          concur.Credentials
		refresh, access            []byte
		refreshExp, accessExp, upd int64
		lifetime, until, live      int64
	)
	err := q.QueryRowContext(ctx, "SELECT "+credentialsColumns+
		", CASE WHEN redeeming_until > "+s.d.nowMicros+" THEN 1 ELSE 0 END FROM credentials WHERE id = 1"+suffix).Scan(
		&refresh, &refreshExp, &access, &accessExp, &lifetime, &c.Geolocation, &c.SeedHash,
		&c.Version, &upd, &c.Redeeming.TokenHash, &until, &c.SpentSeeds, &c.SpentTokens, &live)
	if errors.Is(err, sql.ErrNoRows) {
		return concur.Credentials{}, false, errors.New("the credentials row is missing (was it deleted?)")
	}
	if err != nil || c.Version == 0 {
		return concur.Credentials{}, false, err
	}
	rt, err := s.box.Open(refresh, aadRefreshToken)
	if err != nil {
		return concur.Credentials{}, false, fmt.Errorf("store: %w (refresh token)", concur.ErrUndecryptable)
	}
	at, err := s.box.Open(access, aadAccessToken)
	if err != nil {
		return concur.Credentials{}, false, fmt.Errorf("store: %w (access token)", concur.ErrUndecryptable)
	}
	c.RefreshToken, c.AccessToken = string(rt), string(at)
	c.RefreshExpiry, c.AccessExpiry = fromMicros(refreshExp), fromMicros(accessExp)
	c.AccessLifetime, c.UpdatedAt = time.Duration(lifetime), fromMicros(upd)
	if c.Redeeming.TokenHash != "" {
		c.Redeeming.Until, c.Redeeming.Live = fromMicros(until), live == 1
	}
	return c, true, nil
}
