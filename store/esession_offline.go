package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// This file keeps the secrets of XEP-0187 offline Encrypted Sessions: the
// Diffie-Hellman exponents of the offline options the account published,
// sealed at rest, and the key exchanges received for them (to refuse
// replays). The methods follow the esession.OfflineStore interface, with
// a context, so that the Encrypted Sessions glue adapts them directly.

// maxOfflineID bounds a nonce or an exchange identifier (hashes and
// nonces of XEP-0187 are 16 to 64 bytes).
const maxOfflineID = 128

func offlineKey(op string, nonce []byte) (string, error) {
	if len(nonce) == 0 || len(nonce) > maxOfflineID {
		return "", wrap(op, errors.New("offline session nonce missing or too long"))
	}
	return hex.EncodeToString(nonce), nil
}

// SaveOfflineSecrets stores the secrets of the offline session options
// with nonce N_A, sealed, until expires; saving a nonce again replaces its
// secrets and forgets the exchanges recorded for it.
func (s *core) SaveOfflineSecrets(ctx context.Context, nonce, secrets []byte, expires time.Time) error {
	const op = "save offline secrets"
	n, err := offlineKey(op, nonce)
	if err != nil {
		return err
	}
	if len(secrets) == 0 {
		return wrap(op, errors.New("empty offline secrets"))
	}
	return s.update(ctx, op, func(q Querier) error {
		blob, err := s.seal(secrets, "esession_offline", n)
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM esession_offline WHERE /*account*/ nonce = ?`, n); err != nil {
			return err
		}
		_, err = q.Exec(ctx, `INSERT INTO esession_offline (/*account_id,*/ nonce, secrets, expires) VALUES (/*$account,*/ ?, ?, ?)`,
			n, blob, expires.UnixMilli())
		return err
	})
}

// OfflineSecrets returns the secrets of the options with nonce, opened,
// or an error matching ErrNotFound. Expired options are still returned:
// the engine refuses them and says so. The caller clears the result.
func (s *core) OfflineSecrets(ctx context.Context, nonce []byte) ([]byte, error) {
	const op = "offline secrets"
	n, err := offlineKey(op, nonce)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = s.read(ctx, op, func(q Querier) error {
		var blob []byte
		err := q.QueryRow(ctx, `SELECT secrets FROM esession_offline WHERE /*account*/ nonce = ?`, n).Scan(&blob)
		if errors.Is(err, sql.ErrNoRows) {
			return failure(ErrNotFound, "no offline session options with this nonce")
		}
		if err != nil {
			return err
		}
		out, err = s.open(blob, "esession_offline", n)
		return err
	})
	return out, err
}

// MarkOfflineExchange records that a key exchange identified by exchange
// was received for the options with nonce, and reports whether it had
// been recorded before (a replay). Options that are not stored (deleted
// or never published) count every exchange as seen: nothing can be read
// for them anyway.
func (s *core) MarkOfflineExchange(ctx context.Context, nonce, exchange []byte) (bool, error) {
	const op = "mark offline exchange"
	n, err := offlineKey(op, nonce)
	if err != nil {
		return false, err
	}
	x, err := offlineKey(op, exchange)
	if err != nil {
		return false, err
	}
	replayed := false
	err = s.update(ctx, op, func(q Querier) error {
		replayed = false
		var have int64
		err := q.QueryRow(ctx, `SELECT count(*) FROM esession_offline WHERE /*account*/ nonce = ?`, n).Scan(&have)
		if err != nil {
			return err
		}
		if have == 0 {
			replayed = true
			return nil
		}
		added, err := q.Exec(ctx, `INSERT INTO esession_offline_used (/*account_id,*/ nonce, exchange) VALUES (/*$account,*/ ?, ?)
			ON CONFLICT (/*account_id,*/ nonce, exchange) DO NOTHING`, n, x)
		replayed = added == 0
		return err
	})
	return replayed, err
}

// DeleteOfflineSecrets destroys the secrets of the options with nonce and
// the exchanges recorded for them. Deleting options that are not stored
// is not an error.
func (s *core) DeleteOfflineSecrets(ctx context.Context, nonce []byte) error {
	const op = "delete offline secrets"
	n, err := offlineKey(op, nonce)
	if err != nil {
		return err
	}
	return s.update(ctx, op, func(q Querier) error {
		_, err := q.Exec(ctx, `DELETE FROM esession_offline WHERE /*account*/ nonce = ?`, n)
		return err
	})
}

// ExpireOfflineSecrets destroys the secrets of every offline session
// option that expired before the given time, with their recorded
// exchanges, and returns how many options went.
func (s *core) ExpireOfflineSecrets(ctx context.Context, before time.Time) (int, error) {
	const op = "expire offline secrets"
	var n int64
	err := s.update(ctx, op, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM esession_offline WHERE /*account*/ expires < ?`, before.UnixMilli())
		return err
	})
	return int(n), err
}

// ContactsWithKey returns the contacts (bare JIDs, sorted) with which the
// key with the given fingerprint is associated for mechanism m: XEP-0116
// §10.4 asks to alert the user when a key presented by one contact is
// known for another.
func (s *core) ContactsWithKey(ctx context.Context, m Mechanism, fingerprint string) ([]string, error) {
	const op = "contacts with key"
	if !m.Valid() {
		return nil, wrap(op, fmt.Errorf("unknown mechanism %q", string(m)))
	}
	fpr, err := NormalizeFingerprint(m, fingerprint)
	if err != nil {
		return nil, wrap(op, err)
	}
	var out []string
	err = s.read(ctx, op, func(q Querier) error {
		rows, err := q.Query(ctx, `SELECT contact FROM contact_keys WHERE /*account*/ mechanism = ? AND fingerprint = ? ORDER BY contact`, m, fpr)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}
