package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/balcony-im/balcony/trust"
)

// OwnKey is one of the account's own key pairs (see trust.OwnKey).
type OwnKey = trust.OwnKey

// AddOwnKey stores a new key pair. secret is the secret key in the
// mechanism's own encoding; it is sealed, bound to (mechanism,
// fingerprint). If k.Active, the mechanism's previously active key is
// deactivated in the same transaction. Adding an existing fingerprint
// fails with ErrExists. A zero k.Created means now.
func (s *core) AddOwnKey(ctx context.Context, k OwnKey, secret []byte) error {
	const op = "add own key"
	if !k.Mechanism.Valid() {
		return wrap(op, fmt.Errorf("unknown mechanism %q", string(k.Mechanism)))
	}
	fpr, err := NormalizeFingerprint(k.Mechanism, k.Fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	if len(secret) == 0 {
		return wrap(op, fmt.Errorf("empty secret key"))
	}
	created := k.Created.UnixMilli()
	if k.Created.IsZero() {
		created = s.nowMillis()
	}
	return s.update(ctx, op, func(q Querier) error {
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM own_keys WHERE /*account*/ mechanism = ? AND fingerprint = ?`,
			k.Mechanism, fpr).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return failure(ErrExists, fmt.Sprintf("%s key %s", k.Mechanism, fpr))
		}
		if k.Active {
			if _, err := q.Exec(ctx, `UPDATE own_keys SET active = FALSE WHERE /*account*/ mechanism = ? AND active`, k.Mechanism); err != nil {
				return err
			}
		}
		blob, err := s.seal(secret, "own_keys", string(k.Mechanism), fpr)
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx,
			`INSERT INTO own_keys (/*account_id,*/ mechanism, fingerprint, public, secret, created, active, seq)
			 VALUES (/*$account,*/ ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM own_keys WHERE /*account*/ TRUE))`,
			k.Mechanism, fpr, nonNil(k.Public), blob, created, k.Active)
		return err
	})
}

// OwnKeys returns the account's keys for mechanism m, oldest first; keys
// created at the same time are in the order they were added.
func (s *core) OwnKeys(ctx context.Context, m Mechanism) ([]OwnKey, error) {
	var keys []OwnKey
	err := s.read(ctx, "own keys", func(q Querier) error {
		rows, err := q.Query(ctx,
			`SELECT mechanism, fingerprint, public, created, active FROM own_keys
			 WHERE /*account*/ mechanism = ? ORDER BY created, seq`, m)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanOwnKey(rows)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	return keys, err
}

// ActiveOwnKey returns the active key for mechanism m, or ErrNotFound.
func (s *core) ActiveOwnKey(ctx context.Context, m Mechanism) (OwnKey, error) {
	var k OwnKey
	err := s.read(ctx, "active own key", func(q Querier) error {
		var err error
		k, err = scanOwnKey(q.QueryRow(ctx,
			`SELECT mechanism, fingerprint, public, created, active FROM own_keys
			 WHERE /*account*/ mechanism = ? AND active`, m))
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, fmt.Sprintf("no active %s key", m))
		}
		return err
	})
	return k, err
}

// OwnKeySecret returns the secret part of an own key. The caller should
// clear the returned slice after use.
func (s *core) OwnKeySecret(ctx context.Context, m Mechanism, fingerprint string) ([]byte, error) {
	const op = "own key secret"
	fpr, err := NormalizeFingerprint(m, fingerprint)
	if err != nil {
		return nil, wrap(op, err)
	}
	var secret []byte
	err = s.read(ctx, op, func(q Querier) error {
		var blob []byte
		err := q.QueryRow(ctx, `SELECT secret FROM own_keys WHERE /*account*/ mechanism = ? AND fingerprint = ?`, m, fpr).Scan(&blob)
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, fmt.Sprintf("%s key %s", m, fpr))
		}
		if err != nil {
			return err
		}
		secret, err = s.open(blob, "own_keys", string(m), fpr)
		return err
	})
	return secret, err
}

// SetActiveOwnKey makes the given key the active one for its mechanism and
// deactivates the others, in one transaction.
func (s *core) SetActiveOwnKey(ctx context.Context, m Mechanism, fingerprint string) error {
	const op = "set active own key"
	fpr, err := NormalizeFingerprint(m, fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		if _, err := q.Exec(ctx, `UPDATE own_keys SET active = FALSE WHERE /*account*/ mechanism = ? AND active`, m); err != nil {
			return err
		}
		n, err := q.Exec(ctx, `UPDATE own_keys SET active = TRUE WHERE /*account*/ mechanism = ? AND fingerprint = ?`, m, fpr)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, fmt.Sprintf("%s key %s", m, fpr))
		}
		return nil
	})
}

// DeleteOwnKey removes an own key pair. The secret is overwritten in the
// database file (secure_delete), though copies may survive in backups.
func (s *core) DeleteOwnKey(ctx context.Context, m Mechanism, fingerprint string) error {
	const op = "delete own key"
	fpr, err := NormalizeFingerprint(m, fingerprint)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		n, err := q.Exec(ctx, `DELETE FROM own_keys WHERE /*account*/ mechanism = ? AND fingerprint = ?`, m, fpr)
		if err != nil {
			return err
		}
		if n == 0 {
			return failure(ErrNotFound, fmt.Sprintf("%s key %s", m, fpr))
		}
		return nil
	})
}

type scanner interface{ Scan(dest ...any) error }

func scanOwnKey(r scanner) (OwnKey, error) {
	var k OwnKey
	var m string
	var created int64
	if err := r.Scan(&m, &k.Fingerprint, &k.Public, &created, &k.Active); err != nil {
		return OwnKey{}, err
	}
	k.Mechanism = Mechanism(m)
	k.Created = fromMillis(created)
	return k, nil
}

// nonNil returns b, or an empty non-nil slice, so NOT NULL blob columns
// accept an empty value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
