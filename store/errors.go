package store

import (
	"database/sql"
	"errors"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// kind is the type of the exported sentinel errors. Its text carries the
// package prefix when printed alone and is embedded without it when a
// sentinel is part of a longer message.
type kind string

func (k kind) Error() string { return "store: " + string(k) }

// Sentinel errors. Every error returned by this package that matches one of
// these does so through errors.Is; the message adds what failed and why.
var (
	// ErrNotFound reports that the requested record does not exist.
	ErrNotFound error = kind("not found")
	// ErrExists reports an attempt to add a record that already exists,
	// or to create a store where one exists.
	ErrExists error = kind("already exists")
	// ErrNoStore reports that there is no store to open: Open never
	// creates one (see Create).
	ErrNoStore error = kind("no store")
	// ErrLocked reports that another process (or connection) held the
	// database lock for longer than Options.BusyTimeout. Retrying later
	// may succeed.
	ErrLocked error = kind("database is locked")
	// ErrCorrupt reports a damaged database: a file that is not an SQLite
	// database, a failed integrity check, or a sealed value that fails
	// authentication. Restore the account directory from a backup.
	ErrCorrupt error = kind("database is corrupt")
	// ErrNewerSchema reports a database written by a newer version of
	// Balcony. It is left untouched.
	ErrNewerSchema error = kind("database schema is newer than this version of balcony supports")
	// ErrWrongPassphrase reports that the passphrase does not unlock the
	// store. Nothing was changed.
	ErrWrongPassphrase error = kind("wrong passphrase")
	// ErrPassphraseRequired reports that the store is (or would be)
	// encrypted and Options.Passphrase is empty.
	ErrPassphraseRequired error = kind("passphrase required")
	// ErrEncryptionMode reports that Options.Unencrypted does not match how
	// the store was created: an encrypted store opened with Unencrypted,
	// or an unencrypted store opened without it.
	ErrEncryptionMode error = kind("encryption mode mismatch")
	// ErrClosed reports use of a Store after Close.
	ErrClosed error = kind("store is closed")
)

// opError is the concrete error returned by Store methods. It prints as
// "store: <op>: <detail>: <kind>: <cause>", leaving out empty parts, and
// unwraps to both its kind and its cause.
type opError struct {
	op     string
	detail string
	kind   error // one of the sentinels, or nil
	cause  error
}

func (e *opError) Error() string {
	var b strings.Builder
	b.WriteString("store")
	for _, part := range []string{e.op, e.detail, kindText(e.kind), causeText(e.cause)} {
		if part != "" {
			b.WriteString(": ")
			b.WriteString(part)
		}
	}
	return b.String()
}

func (e *opError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func kindText(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "store: ")
}

func causeText(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "store: ")
}

// failure builds an error of the given kind with a detail; wrap adds the
// operation name later.
func failure(k error, detail string) error {
	return &opError{kind: k, detail: detail}
}

// wrap turns any error met while performing op into an *opError, mapping
// SQLite result codes to the sentinels. An *opError passes through, gaining
// the operation name if it has none.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var oe *opError
	if errors.As(err, &oe) {
		if oe.op == "" {
			c := *oe
			c.op = op
			return &c
		}
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &opError{op: op, kind: ErrNotFound}
	}
	return &opError{op: op, kind: classify(err), cause: err}
}

// sentinels are the exported sentinel errors, in the order classify tries
// them.
var sentinels = []error{ErrLocked, ErrCorrupt, ErrNewerSchema, ErrWrongPassphrase, ErrPassphraseRequired,
	ErrEncryptionMode, ErrNoStore, ErrExists, ErrNotFound, ErrClosed}

// classify maps a database error to a sentinel, or nil if none applies.
// Backends report their conditions by wrapping a sentinel.
func classify(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	for _, k := range sentinels {
		if errors.Is(err, k) {
			return k
		}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return ErrLocked
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return ErrCorrupt
		}
	}
	return nil
}
