package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"time"
)

// sqliteDB is the Backend of a Store: one SQLite database holding one
// account.
type sqliteDB struct {
	db   *sql.DB
	path string

	// wmu serialises this process's write transactions, so goroutines
	// queue here instead of polling SQLite's lock.
	wmu sync.Mutex
}

func openSQLite(path string, busy time.Duration) (*sqliteDB, error) {
	db, err := openDB(path, busy)
	if err != nil {
		return nil, err
	}
	return &sqliteDB{db: db, path: path}, nil
}

// Read runs fn against the database outside any explicit transaction:
// in WAL mode every statement sees committed data only.
func (sq *sqliteDB) Read(ctx context.Context, fn func(q Querier) error) error {
	return fn(sqlQuerier{sq.db})
}

// Write runs fn in one BEGIN IMMEDIATE transaction (the DSN's _txlock),
// which takes SQLite's write lock at once, waiting up to the busy timeout.
func (sq *sqliteDB) Write(ctx context.Context, fn func(q Querier) error) error {
	return sq.writeTx(ctx, func(tx *sql.Tx) error {
		q := &txQuerier{tx: tx}
		defer q.close()
		return fn(q)
	})
}

// writeTx runs fn in one transaction and commits it, or rolls it back if
// fn or the commit fails.
func (sq *sqliteDB) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	sq.wmu.Lock()
	defer sq.wmu.Unlock()
	tx, err := sq.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (sq *sqliteDB) Close() error { return sq.db.Close() }

// metaKeys are the keys of the meta table that hold key material.
const metaKeys = `('encryption', 'store_id', 'kdf_salt', 'kdf_time', 'kdf_memory_kib', 'kdf_threads', 'wrapped_key', 'data_key')`

// LoadKeys reads the key material from the meta table.
func (sq *sqliteDB) LoadKeys(ctx context.Context, q Querier) (*KeyMaterial, error) {
	rows, err := q.Query(ctx, `SELECT key, value FROM meta WHERE key IN `+metaKeys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	km := &KeyMaterial{}
	found := false
	for rows.Next() {
		var k string
		var v any
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		found = true
		switch k {
		case "encryption":
			km.Mode = asString(v)
		case "store_id":
			km.StoreID = asBytes(v)
		case "kdf_salt":
			km.Salt = asBytes(v)
		case "kdf_time":
			km.KDF.Time = uint32(asInt(v))
		case "kdf_memory_kib":
			km.KDF.MemoryKiB = uint32(asInt(v))
		case "kdf_threads":
			km.KDF.Threads = uint8(asInt(v))
		case "wrapped_key":
			km.Wrapped = asBytes(v)
		case "data_key":
			km.Plain = asBytes(v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, failure(ErrNoStore, "no key material")
	}
	if km.Mode == "" || len(km.StoreID) != idSize {
		return nil, failure(ErrCorrupt, "incomplete key material")
	}
	return km, nil
}

// SaveKeys replaces the key material in the meta table.
func (sq *sqliteDB) SaveKeys(ctx context.Context, q Querier, km *KeyMaterial) error {
	if _, err := q.Exec(ctx, `DELETE FROM meta WHERE key IN `+metaKeys); err != nil {
		return err
	}
	kv := []any{"encryption", km.Mode, "store_id", km.StoreID}
	switch km.Mode {
	case encNone:
		kv = append(kv, "data_key", km.Plain)
	case encArgon2id:
		kv = append(kv,
			"kdf_salt", km.Salt,
			"kdf_time", int64(km.KDF.Time),
			"kdf_memory_kib", int64(km.KDF.MemoryKiB),
			"kdf_threads", int64(km.KDF.Threads),
			"wrapped_key", km.Wrapped)
	case encKey:
		kv = append(kv, "wrapped_key", km.Wrapped)
	}
	for i := 0; i < len(kv); i += 2 {
		if _, err := q.Exec(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// sqlQuerier runs statements on a *sql.DB or *sql.Conn.
type sqlQuerier struct {
	db interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (q sqlQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return rowsAffected(q.db.ExecContext(ctx, query, args...))
}

func (q sqlQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return sqlRows(q.db.QueryContext(ctx, query, args...))
}

func (q sqlQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	return q.db.QueryRowContext(ctx, query, args...)
}

// txQuerier runs statements in a transaction, preparing each statement
// once per transaction (LogMessages runs the same few hundreds of times).
type txQuerier struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (q *txQuerier) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := q.stmts[query]; ok {
		return st, nil
	}
	st, err := q.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if q.stmts == nil {
		q.stmts = make(map[string]*sql.Stmt)
	}
	q.stmts[query] = st
	return st, nil
}

func (q *txQuerier) close() {
	for _, st := range q.stmts {
		st.Close()
	}
}

func (q *txQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	st, err := q.stmt(ctx, query)
	if err != nil {
		return 0, err
	}
	return rowsAffected(st.ExecContext(ctx, args...))
}

func (q *txQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	st, err := q.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return sqlRows(st.QueryContext(ctx, args...))
}

func (q *txQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	st, err := q.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// rows adapts *sql.Rows, whose Close returns an error (reported by Err
// as well), to Rows.
type rows struct{ *sql.Rows }

func (r rows) Close() { r.Rows.Close() }

func sqlRows(r *sql.Rows, err error) (Rows, error) {
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

// errRow is a Row whose query failed before it ran.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return append([]byte(nil), x...)
	case string:
		return []byte(x)
	}
	return nil
}

func asInt(v any) int64 {
	if x, ok := v.(int64); ok {
		return x
	}
	return -1
}

func openDB(path string, busy time.Duration) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(abs, busy))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	return db, nil
}
