package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// applicationID is written to the SQLite header (PRAGMA application_id) of
// every Balcony store: "BLCN".
const applicationID = 0x424c434e

//go:embed migrations/*.sql
var migrationFiles embed.FS

// A Migration is one .sql file, migrations/NNNN_name.sql, that takes a
// schema from version NNNN-1 to NNNN. Each backend has its own.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations are the embedded migrations in order; migrations[i] has
// version i+1.
var migrations = mustLoadMigrations(migrationFiles)

func (o *Options) migrationList() []Migration {
	if o.migrations != nil {
		return o.migrations
	}
	return migrations
}

// LatestSchemaVersion returns the schema version this package creates and
// migrates to. Opening a database with a higher version fails with
// ErrNewerSchema.
func LatestSchemaVersion() int { return len(migrations) }

func mustLoadMigrations(fsys fs.FS) []Migration {
	m, err := LoadMigrations(fsys)
	if err != nil {
		panic(err)
	}
	return m
}

// LoadMigrations reads migrations/*.sql from fsys, in order of version.
// Versions must run from 1 without gaps. Backends embed their migrations
// and load them with it.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, name := range names {
		base := path.Base(name)
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v < 1 {
			return nil, fmt.Errorf("store: migration file %s: want NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("store: migration %04d_%s: expected version %d", m.Version, m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("store: no migrations")
	}
	return ms, nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion returns the version recorded in the meta table, or 0 for a
// database without one (a new, empty file).
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var n int
	err := q.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'`).Scan(&n)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	var v int64
	err = q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, failure(ErrCorrupt, "meta table has no schema version")
	}
	if err != nil {
		return 0, err
	}
	return int(v), nil
}

// migrate applies the migrations of opts until the schema reaches the
// latest version (or opts.migrateTo). Each migration runs in its own write
// transaction together with the update of the recorded version, so a
// crash or error leaves the database at the previous version. The version
// is re-read inside each transaction, so several processes opening the
// same store at once apply each migration exactly once.
func (sq *sqliteDB) migrate(ctx context.Context, opts Options) error {
	ms := opts.migrationList()
	target := len(ms)
	if opts.migrateTo > 0 && opts.migrateTo < target {
		target = opts.migrateTo
	}
	for {
		done := false
		err := sq.writeTx(ctx, func(tx *sql.Tx) error {
			v, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(ms) {
				return failure(ErrNewerSchema, fmt.Sprintf("version %d, newest known %d", v, len(ms)))
			}
			if v >= target {
				done = true
				return nil
			}
			m := ms[v]
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			if v == 0 {
				if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
					return err
				}
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO meta (key, value) VALUES ('schema_version', ?)
				 ON CONFLICT (key) DO UPDATE SET value = excluded.value`, m.Version)
			if err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			return nil
		})
		if err != nil {
			return wrap("migrate", err)
		}
		if done {
			return nil
		}
	}
}
