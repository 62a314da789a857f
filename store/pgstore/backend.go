package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/balcony-im/balcony/store"
)

// accountDB is the store.Backend of one account in the database.
type accountDB struct {
	s    *Store
	id   int64
	jid  string
	busy time.Duration // how long a write waits for the account's lock
}

var _ store.Backend = (*accountDB)(nil)

// AccountJID makes SetAccount refuse any JID but the account's.
func (a *accountDB) AccountJID() string { return a.jid }

// Close does nothing: the pool belongs to the Store.
func (a *accountDB) Close() error { return nil }

// Read runs fn in a REPEATABLE READ, read-only transaction.
func (a *accountDB) Read(ctx context.Context, fn func(q store.Querier) error) error {
	err := pgx.BeginTxFunc(ctx, a.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(querier{tx: tx, account: a.id}) })
	return classify(err)
}

// Write runs fn in a SERIALIZABLE transaction holding the account's write
// lock, retrying after serialisation failures.
func (a *accountDB) Write(ctx context.Context, fn func(q store.Querier) error) error {
	deadline := time.Now().Add(a.busy)
	delay := time.Millisecond
	for attempt := 0; ; {
		locked, err := a.writeOnce(ctx, fn)
		switch {
		case err == nil && locked:
			return nil
		case err == nil:
			// Another writer holds the lock: wait for it outside any
			// transaction that has a snapshot, then start afresh.
			if time.Now().After(deadline) {
				return &dbError{kind: store.ErrLocked, err: errors.New("the account's write lock is held elsewhere")}
			}
			if err := a.waitLock(ctx, time.Until(deadline)); err != nil {
				return classify(err)
			}
			continue
		case !retryable(err) || attempt >= a.s.cfg.MaxRetries:
			return classify(err)
		}
		attempt++
		a.s.retries.Add(1)
		t := time.NewTimer(delay/2 + rand.N(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// writeOnce runs one attempt. It returns false, nil if the account's lock
// was held by another transaction (nothing was done).
func (a *accountDB) writeOnce(ctx context.Context, fn func(q store.Querier) error) (locked bool, err error) {
	tx, err := a.s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return false, err
	}
	defer func() {
		if !locked || err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockWrite, lockKey(a.id)).Scan(&locked); err != nil || !locked {
		return false, err
	}
	if err := fn(querier{tx: tx, account: a.id}); err != nil {
		return true, err
	}
	return true, tx.Commit(ctx)
}

// waitLock waits until the account's write lock is free, taking and at
// once releasing it in a transaction of its own.
func (a *accountDB) waitLock(ctx context.Context, timeout time.Duration) error {
	return pgx.BeginTxFunc(ctx, a.s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		ms := max(timeout.Milliseconds(), 1)
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+strconv.FormatInt(ms, 10)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockWrite, lockKey(a.id))
		return err
	})
}

// lockKey is the second key of the account's advisory locks.
func lockKey(id int64) int32 { return int32(id) }

// LoadKeys reads the account's key material.
func (a *accountDB) LoadKeys(ctx context.Context, q store.Querier) (*store.KeyMaterial, error) {
	km := &store.KeyMaterial{}
	var salt []byte
	var tm, mem, threads *int64
	err := q.QueryRow(ctx,
		`SELECT encryption, store_id, kdf_salt, kdf_time, kdf_memory_kib, kdf_threads, wrapped_key
		 FROM accounts WHERE /*account*/ TRUE`).Scan(&km.Mode, &km.StoreID, &salt, &tm, &mem, &threads, &km.Wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &dbError{kind: store.ErrNoStore, err: fmt.Errorf("account %s was deleted", a.jid)}
	}
	if err != nil {
		return nil, err
	}
	if salt != nil && tm != nil && mem != nil && threads != nil {
		if *tm < 0 || *tm > 1<<31 || *mem < 0 || *mem > 1<<31 || *threads < 0 || *threads > 255 {
			return nil, &dbError{kind: store.ErrCorrupt, err: errors.New("key derivation parameters out of range")}
		}
		km.Salt = salt
		km.KDF = store.KDFParams{Time: uint32(*tm), MemoryKiB: uint32(*mem), Threads: uint8(*threads)}
	}
	return km, nil
}

// SaveKeys replaces the account's key material.
func (a *accountDB) SaveKeys(ctx context.Context, q store.Querier, km *store.KeyMaterial) error {
	n, err := q.Exec(ctx,
		`UPDATE accounts SET encryption = ?, store_id = ?, kdf_salt = ?, kdf_time = ?, kdf_memory_kib = ?,
		   kdf_threads = ?, wrapped_key = ? WHERE /*account*/ TRUE`, keyColumns(km)...)
	if err == nil && n == 0 {
		err = &dbError{kind: store.ErrNoStore, err: fmt.Errorf("account %s was deleted", a.jid)}
	}
	return err
}

// keyColumns are the values of the key material columns of accounts, in
// their order there.
func keyColumns(km *store.KeyMaterial) []any {
	var salt []byte
	var tm, mem, threads *int64
	if km.Salt != nil {
		salt = km.Salt
		t, m, p := int64(km.KDF.Time), int64(km.KDF.MemoryKiB), int64(km.KDF.Threads)
		tm, mem, threads = &t, &m, &p
	}
	return []any{km.Mode, km.StoreID, salt, tm, mem, threads, km.Wrapped}
}

// querier runs the shared statements in a transaction, scoped to one
// account.
type querier struct {
	tx      pgx.Tx
	account int64
}

func (q querier) args(args []any) []any { return append([]any{q.account}, args...) }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.tx.Exec(ctx, render(query), q.args(args)...)
	return tag.RowsAffected(), err
}

func (q querier) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	return q.tx.Query(ctx, render(query), q.args(args)...)
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	return q.tx.QueryRow(ctx, render(query), q.args(args)...)
}

var (
	rendered sync.Map // shared statement -> PostgreSQL statement
	markers  = strings.NewReplacer(
		"/*account*/", "account_id = $1 AND",
		"/*account_id,*/", "account_id,",
		"/*$account,*/", "$1,",
	)
)

// render turns a statement of the shared rules (see store.Querier) into
// PostgreSQL's: the account markers become account_id = $1 and the like,
// and the ? parameters $2, $3, ...
func render(query string) string {
	if r, ok := rendered.Load(query); ok {
		return r.(string)
	}
	s := markers.Replace(query)
	var b strings.Builder
	n := 1
	quoted := false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == '?' && !quoted:
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	rendered.Store(query, b.String())
	return b.String()
}

// dbError is a database error with the store sentinel it matches. It
// prints as the database error; errors.Is finds both.
type dbError struct {
	kind error
	err  error
}

func (e *dbError) Error() string   { return e.err.Error() }
func (e *dbError) Unwrap() []error { return []error{e.kind, e.err} }

// retryable reports a serialisation failure or a deadlock: the
// transaction was rolled back and may succeed if run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// classify maps PostgreSQL errors to the store's sentinels.
func classify(err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Code == "55P03", pe.Code == "40001", pe.Code == "40P01":
		// lock_not_available (lock_timeout), or retries exhausted.
		return &dbError{kind: store.ErrLocked, err: err}
	case pe.Code == "XX001", pe.Code == "XX002":
		// data_corrupted, index_corrupted
		return &dbError{kind: store.ErrCorrupt, err: err}
	}
	return err
}
