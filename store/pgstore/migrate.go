package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/balcony-im/balcony/store"
)

// migrate creates the schema if needed and applies migrations until the
// schema reaches version target. Each migration runs in its own
// transaction with the version update, holding the migration advisory
// lock, so hosts starting together apply each migration once.
func (s *Store) migrate(ctx context.Context, target int) error {
	for {
		done := false
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
					return err
				}
			}
			v, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if v > len(migrations) {
				return fmt.Errorf("%w: the database has schema version %d, this version of balcony knows up to %d",
					store.ErrNewerSchema, v, len(migrations))
			}
			if v >= target {
				done = true
				return nil
			}
			m := migrations[v]
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
			}
			_, err = tx.Exec(ctx,
				`INSERT INTO meta (key, value) VALUES ('schema_version', $1)
				 ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.Itoa(m.Version))
			return err
		})
		if err != nil {
			return fmt.Errorf("pgstore: migrate: %w", classify(err))
		}
		if done {
			return nil
		}
	}
}

// schemaVersion returns the recorded version, or 0 for a schema without
// the meta table.
func schemaVersion(ctx context.Context, tx pgx.Tx) (int, error) {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('meta') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v string
	err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: meta table has no schema version", store.ErrCorrupt)
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: schema version %q", store.ErrCorrupt, v)
	}
	return n, nil
}
