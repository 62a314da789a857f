package store

import (
	"context"
)

// A Backend keeps one account's data in a database for the rules of this
// package: NewAccountStore puts the rules (trust, key changes, retained
// secrets, the log's privacy rule, sealing) on top of it, so that every
// backend behaves the same. This package's SQLite Store is one; the
// PostgreSQL backend in store/pgstore is another. Applications use
// AccountStore and need not look at this interface.
//
// The database has the tables of this package's SQLite schema (see
// migrations/), with the same columns and constraints; a database holding
// several accounts adds an account column to each, leading every key.
type Backend interface {
	// Read runs fn against a consistent snapshot of the account's data
	// (or, where the database offers none across statements, against
	// committed data). fn must not write.
	Read(ctx context.Context, fn func(q Querier) error) error

	// Write runs fn in one transaction and commits it if fn returns nil,
	// or rolls it back. Writes of one account are serialised. A backend
	// may roll back and call fn again after a serialisation failure, so
	// fn must not keep state from a previous call. A lock held elsewhere
	// for too long is an error matching ErrLocked.
	Write(ctx context.Context, fn func(q Querier) error) error

	// LoadKeys returns the key material recorded for the account by
	// SaveKeys, or an error matching ErrNoStore if there is none.
	LoadKeys(ctx context.Context, q Querier) (*KeyMaterial, error)

	// SaveKeys records key material for the account, replacing any; q
	// is the transaction of a Write.
	SaveKeys(ctx context.Context, q Querier, km *KeyMaterial) error

	// Close releases what the backend holds for the account. The store
	// calls it once, from its own Close.
	Close() error
}

// Querier runs the statements of the shared rules.
//
// The statements are plain SQL that SQLite and PostgreSQL both accept:
// positional parameters are written ?, booleans TRUE and FALSE, and new
// ids are read with RETURNING. Three comments mark where a database
// holding several accounts scopes a statement to the account; a database
// of one account ignores them, as SQL comments are:
//
//	WHERE /*account*/ cond          the account's rows: "account_id = X AND cond"
//	(/*account_id,*/ col, ...)      column lists and ON CONFLICT targets
//	VALUES (/*$account,*/ ?, ...)   the account's value in VALUES lists
//
// A statement never has ? or these comments inside a string literal.
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query. The caller closes the Rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a query returning at most one row. Its Scan returns
	// an error matching database/sql.ErrNoRows if there is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows are the results of Querier.Query, as database/sql.Rows and pgx.Rows
// give them. Scan accepts pointers to string, []byte, int64, int, bool,
// time values and database/sql's Null types, and nil for NULL into a
// []byte.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is the result of Querier.QueryRow.
type Row interface {
	Scan(dest ...any) error
}
