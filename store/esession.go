package store

import (
	"context"
	"crypto/subtle"
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
	// Created is when the secret was computed; the engine ignores
	// secrets older than its configured lifetime.
	Created time.Time
}

// RetainedSecrets returns the retained secrets shared with peer (a bare
// JID), newest first: by Created, and among secrets of the same time the
// one written last first. The values are decrypted; the caller should clear
// them after use.
func (s *core) RetainedSecrets(ctx context.Context, peer string) ([]RetainedSecret, error) {
	const op = "retained secrets"
	p, err := bareJID(peer)
	if err != nil {
		return nil, wrap(op, err)
	}
	var out []RetainedSecret
	err = s.read(ctx, op, func(q Querier) error {
		rs, err := s.retained(ctx, q, p)
		for _, r := range rs {
			out = append(out, r.RetainedSecret)
		}
		return err
	})
	return out, err
}

// ReplaceRetainedSecret stores the retained secret computed at the end of
// an ESession negotiation, in one transaction: the stored secret equal to
// old (compared in constant time) is destroyed and next takes its place;
// if old is nil or no stored secret equals it, next is added as a new
// chain. A zero next.Created means now. (Confirming the SAS of a session
// is VerifyRetainedSecret, which never re-inserts a replaced secret.)
//
// These semantics are those of the esession.RetainedSecrets interface, so
// an adapter maps Lookup to RetainedSecrets, Replace to
// ReplaceRetainedSecret and Verify to VerifyRetainedSecret, copying
// between [32]byte and []byte and supplying a context.
func (s *core) ReplaceRetainedSecret(ctx context.Context, peer string, old []byte, next RetainedSecret) error {
	const op = "replace retained secret"
	p, err := bareJID(peer)
	if err != nil {
		return wrap(op, err)
	}
	if len(next.Value) == 0 {
		return wrap(op, errors.New("empty retained secret"))
	}
	created := next.Created.UnixMilli()
	if next.Created.IsZero() {
		created = s.nowMillis()
	}
	return s.update(ctx, op, func(q Querier) error {
		var id int64
		if old != nil {
			r, err := s.findRetained(ctx, q, p, old)
			switch {
			case err == nil:
				id = r.id
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
		if id == 0 {
			if err := q.QueryRow(ctx,
				`INSERT INTO retained_secrets (/*account_id,*/ peer, secret, verified, created, seq)
				 VALUES (/*$account,*/ ?, ?, FALSE, 0, `+nextSecretSeq+`) RETURNING id`, p, []byte{}).Scan(&id); err != nil {
				return err
			}
		}
		blob, err := s.seal(next.Value, "retained_secrets", p, strconv.FormatInt(id, 10))
		if err != nil {
			return err
		}
		_, err = q.Exec(ctx,
			`UPDATE retained_secrets SET secret = ?, verified = ?, created = ?, seq = `+nextSecretSeq+`
			 WHERE /*account*/ id = ?`,
			blob, next.Verified, created, id)
		return err
	})
}

// VerifyRetainedSecret sets the verified flag of the stored secret equal
// to value (compared in constant time), in one transaction, and reports
// whether such a secret was stored. It never inserts a secret: a secret
// that a later session already replaced stays gone. This is Verify of the
// esession.RetainedSecrets interface.
func (s *core) VerifyRetainedSecret(ctx context.Context, peer string, value []byte) (bool, error) {
	const op = "verify retained secret"
	p, err := bareJID(peer)
	if err != nil {
		return false, wrap(op, err)
	}
	found := false
	err = s.update(ctx, op, func(q Querier) error {
		found = false
		r, err := s.findRetained(ctx, q, p, value)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `UPDATE retained_secrets SET verified = TRUE WHERE /*account*/ id = ?`, r.id); err != nil {
			return err
		}
		found = true
		return nil
	})
	return found, err
}

// ExpireRetainedSecrets deletes the retained secrets shared with peer that
// were created before the given time, and returns how many. This is Expire
// of the esession.RetainedSecrets interface.
func (s *core) ExpireRetainedSecrets(ctx context.Context, peer string, createdBefore time.Time) (int, error) {
	const op = "expire retained secrets"
	p, err := bareJID(peer)
	if err != nil {
		return 0, wrap(op, err)
	}
	var n int64
	err = s.update(ctx, op, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM retained_secrets WHERE /*account*/ peer = ? AND created < ?`,
			p, createdBefore.UnixMilli())
		return err
	})
	return int(n), err
}

// ForgetRetainedSecrets deletes every retained secret shared with peer,
// so the next session with peer starts a new, unverified chain.
func (s *core) ForgetRetainedSecrets(ctx context.Context, peer string) error {
	const op = "forget retained secrets"
	p, err := bareJID(peer)
	if err != nil {
		return wrap(op, err)
	}
	return s.update(ctx, op, func(q Querier) error {
		_, err := q.Exec(ctx, `DELETE FROM retained_secrets WHERE /*account*/ peer = ?`, p)
		return err
	})
}

type retainedRow struct {
	id int64
	RetainedSecret
}

// nextSecretSeq numbers each write of a retained secret, so that of
// secrets with the same time the one written last is listed first.
const nextSecretSeq = `(SELECT coalesce(max(seq), 0) + 1 FROM retained_secrets WHERE /*account*/ TRUE)`

func (s *core) retained(ctx context.Context, q Querier, peer string) ([]retainedRow, error) {
	rows, err := q.Query(ctx,
		`SELECT id, secret, verified, created FROM retained_secrets
		 WHERE /*account*/ peer = ? ORDER BY created DESC, seq DESC`, peer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []retainedRow
	for rows.Next() {
		var r retainedRow
		var blob []byte
		var created int64
		if err := rows.Scan(&r.id, &blob, &r.Verified, &created); err != nil {
			return nil, err
		}
		v, err := s.open(blob, "retained_secrets", peer, strconv.FormatInt(r.id, 10))
		if err != nil {
			clearRetained(out)
			return nil, err
		}
		r.Value = v
		r.Created = fromMillis(created)
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
func (s *core) findRetained(ctx context.Context, q Querier, peer string, value []byte) (retainedRow, error) {
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
func (s *core) OTRInstanceTag(ctx context.Context) (uint32, error) {
	const op = "otr instance tag"
	var tag int64
	err := s.read(ctx, op, func(q Querier) error {
		return q.QueryRow(ctx, `SELECT tag FROM otr_instance WHERE /*account*/ id = 1`).Scan(&tag)
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
	err = s.update(ctx, op, func(q Querier) error {
		if _, err := q.Exec(ctx,
			`INSERT INTO otr_instance (/*account_id,*/ id, tag) VALUES (/*$account,*/ 1, ?)
			 ON CONFLICT (/*account_id,*/ id) DO NOTHING`, int64(fresh)); err != nil {
			return err
		}
		return q.QueryRow(ctx, `SELECT tag FROM otr_instance WHERE /*account*/ id = 1`).Scan(&tag)
	})
	return uint32(tag), err
}
