// Package pgstore keeps Balcony's persistent state in PostgreSQL, through
// github.com/jackc/pgx/v5: one database for a fleet of XMPP accounts
// served from several hosts. Each account gets a store.AccountStore that
// behaves exactly as the embedded SQLite store (package store) does: the
// same rules, types, sentinel errors and sealing of secrets.
//
// # Schema
//
// The tables are those of the SQLite store with an account_id column
// leading every primary key and index, in a schema of their own
// (Config.Schema, "balcony" by default), versioned by the embedded files
// migrations/NNNN_name.sql. Open applies missing migrations, each in one
// transaction with the version update, under an advisory lock so that
// hosts starting together apply each once; a database with a newer
// version is refused with store.ErrNewerSchema and left untouched.
//
// # Transactions and locks
//
// Every write method of an account is one SERIALIZABLE transaction. It
// first takes a transaction-level advisory lock of the account
// (pg_try_advisory_xact_lock on the pair BLNW, account id), so writers of
// one account, on any host, take turns; a writer finding the lock taken
// waits for it outside its transaction (up to Options.BusyTimeout, then
// store.ErrLocked) and starts afresh, so it never works on a snapshot
// older than the previous writer's commit. A serialisation failure or
// deadlock (SQLSTATE 40001, 40P01), which the lock makes rare, rolls the
// transaction back and runs it again, up to Config.MaxRetries times.
// Reads run in REPEATABLE READ read-only transactions: each method sees
// one consistent snapshot.
//
// Which host serves an account (holds its XMPP session and sends from its
// outbox) is decided with a session-level advisory lock (the pair BLNS,
// account id) on a connection of its own: LockAccount and TryLockAccount.
// PostgreSQL releases it when that connection ends, so another host can
// take over when the holder dies; the holder learns of a lost connection
// through Lock.Lost. A process serving many accounts holds all their
// locks on one connection instead (NewHost), which also counts the live
// hosts and bounds how long a host that lost its connection may believe
// it still serves (Host.FenceDelay). That bound is timing, not a
// guarantee: a host that must never act for an account it no longer
// holds asks the server first (Host.Holds) on its lock connection, and
// relies on the XMPP server to replace the session of a former holder
// bound under the same full JID.
//
// # Secrets
//
// Each account has its own random data key, wrapped by the account's
// passphrase (Argon2id) or, for unattended servers, by a key from a key
// file or a key management service (store.Options.Key); it is never
// stored in the clear (store.Options.Unencrypted is refused). Secrets are
// sealed with XChaCha20-Poly1305 under it with the same associated data as
// in SQLite, naming the table and the row; the account is bound by the
// key itself, since no two accounts share one.
package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/store"
)

// Advisory lock classes (the first key of the two-key form): "BLNW" for
// the writers of an account, "BLNS" for the host serving it, "BLNM" for
// migrations.
const (
	lockWrite   = 0x424c4e57
	lockServe   = 0x424c4e53
	lockMigrate = 0x424c4e4d
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrations = func() []store.Migration {
	ms, err := store.LoadMigrations(migrationFiles)
	if err != nil {
		panic(err)
	}
	return ms
}()

// LatestSchemaVersion returns the schema version this package creates and
// migrates to.
func LatestSchemaVersion() int { return len(migrations) }

// Defaults of Config.
const (
	DefaultSchema            = "balcony"
	DefaultMaxRetries        = 10
	DefaultLockCheckInterval = 2 * time.Second
)

// Config configures Open. The zero value uses the defaults.
type Config struct {
	// Schema is the PostgreSQL schema holding the tables; it is created
	// if needed. Empty means DefaultSchema.
	Schema string
	// MaxRetries bounds how often a write is run again after a
	// serialisation failure. Zero means DefaultMaxRetries.
	MaxRetries int
	// LockCheckInterval is how often a held account lock checks its
	// connection (see Lock.Lost). Zero means DefaultLockCheckInterval.
	LockCheckInterval time.Duration
}

// Store is a PostgreSQL database holding the stores of many accounts. It
// is safe for concurrent use by multiple goroutines, and any number of
// processes on any number of hosts may use the same database.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	cfg    Config

	retries atomic.Int64 // serialisation failures retried, for tests
}

// Open connects to the database named by connString (a postgres:// URL or
// key=value string, with pgxpool's pool_* parameters), creates the schema
// or migrates it to the current version, and returns the Store.
func Open(ctx context.Context, connString string, cfg *Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{schema: DefaultSchema}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.Schema != "" {
		s.schema = s.cfg.Schema
	}
	if s.cfg.MaxRetries <= 0 {
		s.cfg.MaxRetries = DefaultMaxRetries
	}
	if s.cfg.LockCheckInterval <= 0 {
		s.cfg.LockCheckInterval = DefaultLockCheckInterval
	}
	pc.ConnConfig.RuntimeParams["search_path"] = s.schema
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if err := s.migrate(ctx, len(migrations)); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool. Account stores obtained from s must not be used
// afterwards; locks held end with their own connections (Release them).
func (s *Store) Close() { s.pool.Close() }

// Create creates the store of the account with the bare JID of account,
// protected by opts.Passphrase or opts.Key, and returns it. It fails with
// store.ErrExists if the database holds the account already.
func (s *Store) Create(ctx context.Context, account string, opts store.Options) (*Account, error) {
	j, err := bareJID(account)
	if err != nil {
		return nil, err
	}
	if opts.Unencrypted {
		return nil, fmt.Errorf("pgstore: create %s: %w: PostgreSQL stores need a passphrase or a key (Options.Key)", j, store.ErrEncryptionMode)
	}
	km, err := store.NewKeyMaterial(opts)
	if err != nil {
		return nil, fmt.Errorf("pgstore: create %s: %w", j, err)
	}
	defer km.Clear()
	var id int64
	err = s.pool.QueryRow(ctx,
		`INSERT INTO accounts (jid, created, encryption, store_id, kdf_salt, kdf_time, kdf_memory_kib, kdf_threads, wrapped_key)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (jid) DO NOTHING RETURNING account_id`,
		append([]any{j, nowMillis(opts)}, keyColumns(km)...)...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: create %s: %w", j, store.ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: create %s: %w", j, classify(err))
	}
	if id > math.MaxInt32 {
		// The advisory locks take the id as their second, 32-bit key.
		s.pool.Exec(ctx, `DELETE FROM accounts WHERE account_id = $1`, id)
		return nil, fmt.Errorf("pgstore: create %s: account id %d out of the range of advisory lock keys", j, id)
	}
	return s.account(j, id, km, opts)
}

// Open opens the store of the account with the bare JID of account. It
// fails with store.ErrNoStore if the database does not hold the account,
// and like store.Open with store.ErrWrongPassphrase,
// store.ErrEncryptionMode or store.ErrPassphraseRequired if opts do not
// unlock it; nothing is written.
func (s *Store) Open(ctx context.Context, account string, opts store.Options) (*Account, error) {
	j, id, err := s.lookup(ctx, account)
	if err != nil {
		return nil, err
	}
	db := &accountDB{s: s, id: id, jid: j, busy: busyTimeout(opts)}
	var km *store.KeyMaterial
	if err := db.Read(ctx, func(q store.Querier) error {
		km, err = db.LoadKeys(ctx, q)
		return err
	}); err != nil {
		return nil, fmt.Errorf("pgstore: open %s: %w", j, err)
	}
	return s.account(j, id, km, opts)
}

func (s *Store) account(j string, id int64, km *store.KeyMaterial, opts store.Options) (*Account, error) {
	db := &accountDB{s: s, id: id, jid: j, busy: busyTimeout(opts)}
	as, err := store.NewAccountStore(db, km, opts)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", j, err)
	}
	return &Account{AccountStore: as, jid: j}, nil
}

// Accounts returns the bare JIDs of the accounts held, in byte order.
func (s *Store) Accounts(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT jid FROM accounts ORDER BY jid`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: accounts: %w", classify(err))
	}
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: accounts: %w", classify(err))
	}
	return jids, nil
}

// Delete deletes the account and all its data. Stores of the account open
// elsewhere fail from then on (store.ErrNoStore on the next unlock, and
// writes find no rows).
func (s *Store) Delete(ctx context.Context, account string) error {
	j, id, err := s.lookup(ctx, account)
	if err != nil {
		return err
	}
	db := &accountDB{s: s, id: id, jid: j, busy: store.DefaultBusyTimeout}
	err = db.Write(ctx, func(q store.Querier) error {
		_, err := q.Exec(ctx, `DELETE FROM accounts WHERE /*account*/ TRUE`)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete %s: %w", j, err)
	}
	return nil
}

// SchemaVersion returns the schema version of the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		v, err = schemaVersion(ctx, tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: schema version: %w", classify(err))
	}
	return v, nil
}

// lookup returns the bare JID of account and its id, or ErrNoStore.
func (s *Store) lookup(ctx context.Context, account string) (string, int64, error) {
	j, err := bareJID(account)
	if err != nil {
		return "", 0, err
	}
	id, err := s.accountID(ctx, j)
	return j, id, err
}

func (s *Store) accountID(ctx context.Context, j string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT account_id FROM accounts WHERE jid = $1`, j).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("pgstore: %s: %w", j, store.ErrNoStore)
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", j, classify(err))
	}
	if id < 1 || id > math.MaxInt32 {
		// The advisory locks take the id as their second, 32-bit key.
		return 0, fmt.Errorf("pgstore: %s: account id %d out of the range of advisory lock keys", j, id)
	}
	return id, nil
}

// Account is the store of one account of a PostgreSQL Store: the same
// store.AccountStore as an SQLite store, scoped to the account. It is safe
// for concurrent use. Close it when done; the pool stays open.
type Account struct {
	store.AccountStore
	jid string
}

// JID returns the bare JID of the account.
func (a *Account) JID() string { return a.jid }

func bareJID(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" {
		return "", fmt.Errorf("pgstore: invalid account JID %q", s)
	}
	return j.Bare().String(), nil
}

func busyTimeout(opts store.Options) time.Duration {
	if opts.BusyTimeout > 0 {
		return opts.BusyTimeout
	}
	return store.DefaultBusyTimeout
}

func nowMillis(opts store.Options) int64 {
	if opts.Now != nil {
		return opts.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}
