package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// RetainedSecret is an ESession (XEP-0217) retained secret shared with one
// of a peer's clients.
type RetainedSecret struct {
	Value []byte
	// Verified is true if the chain this secret continues was ever
	// confirmed by comparing the SAS: XEP-0217 asks clients to remember
	// this and to keep reminding the user until it is.
	Verified bool
	Created  time.Time // when the chain was started
	Updated  time.Time // when this value replaced the previous one
}

// RetainedSecrets returns the retained secrets shared with peer (a bare
// JID), most recently updated first. The values are decrypted; the caller
// should clear them after use.
func (s *Store) RetainedSecrets(ctx context.Context, peer string) ([]RetainedSecret, error) {
	const op = "retained secrets"
	p, err := bareJID(peer)
	if err != nil {
		return nil, wrap(op, err)
	}
	var out []RetainedSecret
	err = s.read(ctx, op, func(q querier) error {
		rs, err := s.retained(ctx, q, p)
		for _, r := range rs {
			out = append(out, r.RetainedSecret)
		}
		return err
	})
	return out, err
}

// ReplaceRetainedSecret stores the new retained secret computed at the end
// of an ESession negotiation. If old is nil, next starts a new chain with
// peer; otherwise the stored secret equal to old is replaced by next, in
// one transaction, and ErrNotFound is returned (nothing changed) if none
// is equal. verified is stored with next: pass the old secret's Verified
// flag or'ed with whether the SAS was confirmed in this session.
//
// The methods RetainedSecrets and ReplaceRetainedSecret are what an
// esession RetainedSecrets adapter needs: Lookup maps to RetainedSecrets,
// Replace to ReplaceRetainedSecret.
func (s *Store) ReplaceRetainedSecret(ctx context.Context, peer string, old, next []byte, verified bool) error {
	const op = "replace retained secret"
	p, err := bareJID(peer)
	if err != nil {
		return wrap(op, err)
	}
	if len(next) == 0 {
		return wrap(op, errors.New("empty retained secret"))
	}
	return s.update(ctx, op, func(tx *sql.Tx) error {
		now := s.nowMillis()
		var id int64
		if old == nil {
			res, err := tx.ExecContext(ctx,
				`INSERT INTO retained_secrets (peer, secret, verified, created, updated) VALUES (?, x'', ?, ?, ?)`,
				p, verified, now, now)
			if err != nil {
				return err
			}
			if id, err = res.LastInsertId(); err != nil {
				return err
			}
		} else {
			r, err := s.findRetained(ctx, tx, p, old)
			if err != nil {
				return err
			}
			id = r.id
		}
		blob, err := s.seal(next, "retained_secrets", p, strconv.FormatInt(id, 10))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE retained_secrets SET secret = ?, verified = ?, updated = ? WHERE id = ?`,
			blob, verified, now, id)
		return err
	})
}

// MarkRetainedSecretVerified sets the verified flag of the retained secret
// equal to value, after the user confirmed the SAS of the session that
// produced it. ErrNotFound if no stored secret is equal.
func (s *Store) MarkRetainedSecretVerified(ctx context.Context, peer string, value []byte) error {
	const op = "mark retained secret verified"
	p, err := bareJID(peer)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(tx *sql.Tx) error {
		r, err := s.findRetained(ctx, tx, p, value)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE retained_secrets SET verified = 1 WHERE id = ?`, r.id)
		return err
	})
}

// ForgetRetainedSecrets deletes every retained secret shared with peer,
// so the next session with peer starts a new, unverified chain.
func (s *Store) ForgetRetainedSecrets(ctx context.Context, peer string) error {
	const op = "forget retained secrets"
	p, err := bareJID(peer)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM retained_secrets WHERE peer = ?`, p)
		return err
	})
}

type retainedRow struct {
	id int64
	RetainedSecret
}

func (s *Store) retained(ctx context.Context, q querier, peer string) ([]retainedRow, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT id, secret, verified, created, updated FROM retained_secrets
		 WHERE peer = ? ORDER BY updated DESC, id DESC`, peer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []retainedRow
	for rows.Next() {
		var r retainedRow
		var blob []byte
		var created, updated int64
		if err := rows.Scan(&r.id, &blob, &r.Verified, &created, &updated); err != nil {
			return nil, err
		}
		v, err := s.open(blob, "retained_secrets", peer, strconv.FormatInt(r.id, 10))
		if err != nil {
			clearRetained(out)
			return nil, err
		}
		r.Value = v
		r.Created, r.Updated = fromMillis(created), fromMillis(updated)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		clearRetained(out)
		return nil, err
	}
	return out, nil
}

// findRetained returns the stored secret equal to value, comparing every
// candidate in constant time, and clears all decrypted values.
func (s *Store) findRetained(ctx context.Context, q querier, peer string, value []byte) (retainedRow, error) {
	rs, err := s.retained(ctx, q, peer)
	if err != nil {
		return retainedRow{}, err
	}
	defer clearRetained(rs)
	found := -1
	for i, r := range rs {
		if subtle.ConstantTimeCompare(r.Value, value) == 1 {
			found = i
		}
	}
	if found < 0 {
		return retainedRow{}, failure(ErrNotFound, "no matching retained secret for "+peer)
	}
	r := rs[found]
	r.Value = nil
	return r, nil
}

func clearRetained(rs []retainedRow) {
	for _, r := range rs {
		clear(r.Value)
	}
}

// OTRInstanceTag returns the account's OTR instance tag, creating it on
// first use: a random value of at least 0x100, persisted so that it stays
// the same across restarts (OTRv3 §"Instance Tags"). Concurrent first
// calls, even from several processes, all get the same tag.
func (s *Store) OTRInstanceTag(ctx context.Context) (uint32, error) {
	const op = "otr instance tag"
	var tag int64
	err := s.read(ctx, op, func(q querier) error {
		return q.QueryRowContext(ctx, `SELECT tag FROM otr_instance WHERE id = 1`).Scan(&tag)
	})
	if err == nil {
		return uint32(tag), nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	var fresh uint32
	for fresh < 0x100 {
		var b [4]byte
		if _, err := io.ReadFull(s.rand, b[:]); err != nil {
			return 0, wrap(op, fmt.Errorf("reading random instance tag: %w", err))
		}
		fresh = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	err = s.update(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO otr_instance (id, tag) VALUES (1, ?) ON CONFLICT (id) DO NOTHING`, int64(fresh)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT tag FROM otr_instance WHERE id = 1`).Scan(&tag)
	})
	return uint32(tag), err
}
