package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// FileName is the name of the database file inside an account directory.
// SQLite keeps FileName+"-wal" and FileName+"-shm" beside it while the store
// is open.
const FileName = "balcony.db"

// Store is a Balcony account's persistent state, kept in one SQLite
// database inside the account directory: the embedded AccountStore, one
// account per directory. A Store is safe for concurrent use by multiple
// goroutines, and several processes may open the same directory at once:
// writes are serialised by SQLite's lock (each process waits up to
// Options.BusyTimeout) and every reader sees only committed transactions.
type Store struct {
	*core
	dir  string
	path string
	sq   *sqliteDB
}

var (
	_ AccountStore = (*Store)(nil)
	_ Backend      = (*sqliteDB)(nil)
)

// Create creates a new store in the account directory dir, creating the
// directory (mode 0700) if needed, and opens it. It fails with ErrExists if
// dir already holds a store file, whatever its state: an existing file,
// even an empty or damaged one, is never replaced (Open reports what is
// wrong with it). A new store needs one of Options.Passphrase, Options.Key
// or Options.Unencrypted (ErrPassphraseRequired, checked before anything
// is created).
//
// The database is built under a temporary name in dir and linked into
// place only when complete, so a crash during Create leaves either no
// store or a whole one (and perhaps a stray temporary file), and of two
// processes creating the same store at once exactly one succeeds.
func Create(dir string, opts Options) (*Store, error) {
	const op = "create"
	if dir == "" {
		return nil, wrap(op, errors.New("empty account directory"))
	}
	if err := opts.validate(true); err != nil {
		return nil, wrap(op, err)
	}
	if err := prepareDir(dir); err != nil {
		return nil, wrap(op, err)
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Lstat(path); err == nil {
		return nil, wrap(op, failure(ErrExists, "a store already exists in "+dir))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, wrap(op, err)
	}
	km, err := NewKeyMaterial(opts)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer km.Clear()
	if err := build(dir, path, km, opts); err != nil {
		return nil, wrap(op, err)
	}
	// The data key is known: opening the linked file needs no key
	// derivation, only a check that it is the file just built.
	s, err := connect(dir, path, opts, km)
	if err != nil {
		return nil, wrap(op, err)
	}
	return s, nil
}

// build creates the database under a temporary name, migrates it and
// records km, closes it (which checkpoints the WAL into the file and
// removes the -wal and -shm files) and links it to path, which must not
// exist.
func build(dir, path string, km *KeyMaterial, opts Options) error {
	f, err := os.CreateTemp(dir, FileName+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(tmp + suffix)
		}
	}()
	if err := tightenFile(tmp); err != nil {
		return err
	}
	sq, err := openSQLite(tmp, opts.busyTimeout())
	if err != nil {
		return err
	}
	ctx := context.Background()
	err = sq.checkFile(ctx, true)
	if err == nil {
		err = sq.enableWAL(ctx, opts.busyTimeout())
	}
	if err == nil {
		err = sq.migrate(ctx, opts)
	}
	if err == nil {
		err = sq.Write(ctx, func(q Querier) error { return sq.SaveKeys(ctx, q, km) })
	}
	if cerr := sq.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return failure(ErrExists, "a store already exists in "+dir)
		}
		return err
	}
	return syncDir(dir)
}

// Open opens the existing store in the account directory dir and migrates
// an older schema to the current one. It never creates a store: without a
// store file in dir it fails with ErrNoStore and creates nothing, not even
// the directory. An empty file, or one that is not an SQLite database, is
// ErrCorrupt and is left exactly as it is.
//
// Permissions: Open removes group and other permission bits from dir, from
// the database file and from its -wal and -shm files, and refuses a
// directory or file owned by another user. SQLite creates the -wal and
// -shm files with the database file's mode, so they are 0600 too.
//
// Before changing anything, Open checks that the file is a Balcony store
// (ErrCorrupt for a damaged file or one that is not a Balcony store), that
// its schema is not newer than this package knows (ErrNewerSchema), that
// the encryption mode matches (ErrEncryptionMode) and that the passphrase
// unlocks it (ErrWrongPassphrase). A lock held by another process for
// longer than the busy timeout gives ErrLocked.
//
// The database runs in WAL mode with synchronous=FULL: every committed
// transaction is on stable storage before the method returns, so neither a
// crash nor a power failure loses a committed trust decision or a
// replaced ESession retained secret (losing the latter would break the
// chain with the peer, who has already replaced it). The price is one
// fsync per commit: about 1 ms (up to 5 ms under load) on a shared
// virtual machine's disk, where synchronous=NORMAL takes 30 µs. That is negligible for interactive use;
// bulk writes such as a MAM back-fill go through LogMessages, one
// transaction per batch. Foreign keys and secure_delete are on.
//
// Unlocking runs Argon2id once; keep the Store open for the life of the
// process rather than opening it per operation.
func Open(dir string, opts Options) (*Store, error) {
	const op = "open"
	if dir == "" {
		return nil, wrap(op, errors.New("empty account directory"))
	}
	if err := opts.validate(false); err != nil {
		return nil, wrap(op, err)
	}
	path := filepath.Join(dir, FileName)
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, wrap(op, failure(ErrNoStore, "no store in "+dir))
	case err != nil:
		return nil, wrap(op, err)
	case !fi.Mode().IsRegular():
		return nil, wrap(op, fmt.Errorf("%s is not a regular file", path))
	}
	if err := checkHeader(path); err != nil {
		return nil, wrap(op, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, wrap(op, err)
	}
	s, err := connect(dir, path, opts, nil)
	if err != nil {
		return nil, wrap(op, err)
	}
	return s, nil
}

// sqliteMagic starts every SQLite database file; the header is 100 bytes.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader reports ErrCorrupt for a file that cannot be an SQLite
// database, before SQLite opens it: SQLite would take an empty file for an
// empty database, and a WAL-mode open creates -wal and -shm files.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [100]byte
	n, err := io.ReadFull(f, h[:])
	switch {
	case n == 0 && (err == io.EOF || err == nil):
		return failure(ErrCorrupt, path+" is empty")
	case err == io.ErrUnexpectedEOF || (err == nil && string(h[:len(sqliteMagic)]) != sqliteMagic):
		return failure(ErrCorrupt, path+" is not an SQLite database")
	}
	return err
}

// connect opens the database at path, tightening the permissions of its
// files, checks it, unlocks it and migrates it, in that order, so that
// nothing is written to a file that is not ours, is newer than we know, or
// whose passphrase was not given. With built set, the file is the store
// Create just built with that key material, which is checked and used
// without unlocking.
func connect(dir, path string, opts Options, built *KeyMaterial) (*Store, error) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := tightenFile(p); err != nil {
			return nil, err
		}
	}
	sq, err := openSQLite(path, opts.busyTimeout())
	if err != nil {
		return nil, err
	}
	s, err := sq.unlock(context.Background(), opts, built)
	if err != nil {
		sq.Close()
		if oe, ok := err.(*opError); ok && oe.detail == "" && oe.kind != nil {
			oe.detail = path // say which account directory
		}
		return nil, err
	}
	s.dir, s.path = dir, path
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := tightenFile(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// unlock does the work of connect on the open database.
func (sq *sqliteDB) unlock(ctx context.Context, opts Options, built *KeyMaterial) (*Store, error) {
	if err := sq.checkFile(ctx, false); err != nil {
		return nil, err
	}
	version, err := schemaVersion(ctx, sq.db)
	if err != nil {
		return nil, err
	}
	if ms := opts.migrationList(); version > len(ms) {
		return nil, failure(ErrNewerSchema, fmt.Sprintf("%s has schema version %d, this version of balcony knows up to %d", sq.path, version, len(ms)))
	}
	if version < 1 {
		return nil, failure(ErrCorrupt, "no schema version")
	}
	km, err := sq.LoadKeys(ctx, sqlQuerier{sq.db})
	if errors.Is(err, ErrNoStore) {
		return nil, failure(ErrCorrupt, "no key material")
	}
	if err != nil {
		return nil, err
	}
	if built != nil {
		if string(km.StoreID) != string(built.StoreID) {
			return nil, failure(ErrExists, "another store took the place of the one created")
		}
		km.Clear()
		km = built
	}
	c, err := newCore(sq, km, opts)
	if err != nil {
		return nil, err
	}
	s := &Store{core: c, sq: sq}
	if err := sq.enableWAL(ctx, opts.busyTimeout()); err != nil {
		s.clearKey()
		return nil, err
	}
	if err := sq.migrate(ctx, opts); err != nil {
		s.clearKey()
		return nil, err
	}
	return s, nil
}

// checkFile checks that the database is a Balcony store, or, when
// creating, an empty database, and runs PRAGMA quick_check.
func (sq *sqliteDB) checkFile(ctx context.Context, create bool) error {
	// One statement, so both values come from the same snapshot.
	var appID int64
	var tables int
	if err := sq.db.QueryRowContext(ctx,
		`SELECT (SELECT application_id FROM pragma_application_id), (SELECT count(*) FROM sqlite_schema)`).
		Scan(&appID, &tables); err != nil {
		return err
	}
	if create != (appID == 0 && tables == 0) || (!create && appID != applicationID) {
		return failure(ErrCorrupt, fmt.Sprintf("%s is an SQLite database but not a Balcony store (application_id %#x, %d tables)", sq.path, appID, tables))
	}
	return quickCheck(ctx, sq.db)
}

// dsn builds the data source name for modernc.org/sqlite. The pragmas run
// on every new connection.
func dsn(absPath string, busy time.Duration) string {
	p := filepath.ToSlash(absPath)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letters
	}
	u := url.URL{Scheme: "file", Path: p}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(1)")
	q.Add("_pragma", "journal_size_limit(4194304)")
	q.Set("_txlock", "immediate")
	return u.String() + "?" + q.Encode()
}

// enableWAL switches the database to WAL mode (a no-op once it is). While
// another process converts a new database, SQLite answers SQLITE_BUSY
// without calling the busy handler, so the conversion is retried here,
// for at most the busy timeout.
func (sq *sqliteDB) enableWAL(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		var mode string
		err := sq.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("cannot enable WAL mode (journal_mode is %s)", mode)
			}
			return nil
		}
		if classify(err) != ErrLocked || time.Now().Add(delay).After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// quickCheck runs PRAGMA quick_check and reports any problem as ErrCorrupt.
func quickCheck(ctx context.Context, q querier) error {
	return check(ctx, q, "quick_check")
}

func check(ctx context.Context, q querier, pragma string) error {
	rows, err := q.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return failure(ErrCorrupt, pragma+": "+strings.Join(problems, "; "))
	}
	return nil
}

// Check runs SQLite's full integrity check and a foreign key check, and
// opens every sealed value. It returns ErrCorrupt describing the first
// problems found. It reads the whole database and may take a while on a
// large message log.
func (s *Store) Check(ctx context.Context) error {
	return s.read(ctx, "check", func(q Querier) error {
		if err := check(ctx, s.sq.db, "integrity_check"); err != nil {
			return err
		}
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return failure(ErrCorrupt, fmt.Sprintf("%d foreign key violations", n))
		}
		return s.checkSealed(ctx, q)
	})
}

// Dir returns the account directory of s.
func (s *Store) Dir() string { return s.dir }

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.read(ctx, "schema version", func(Querier) error {
		var err error
		v, err = schemaVersion(ctx, s.sq.db)
		return err
	})
	return v, err
}

// ChangePassphrase re-wraps the data key under a key derived from
// passphrase with a new salt and the Options.KDF parameters, in one
// transaction; the secrets themselves are not re-encrypted. Processes that
// have the store open keep working. Old wrapped keys are overwritten in the
// database file (secure_delete) and the WAL is checkpointed, but copies
// may survive in backups or in the file system's free space.
//
// A store protected by a key or unencrypted cannot be given a passphrase
// this way (ErrEncryptionMode).
func (s *Store) ChangePassphrase(ctx context.Context, passphrase []byte) error {
	if err := s.core.ChangePassphrase(ctx, passphrase); err != nil {
		return err
	}
	return s.checkpoint(ctx, "change passphrase")
}

// ChangeKey re-wraps the data key of a store protected by Options.Key
// under a new key, like ChangePassphrase.
func (s *Store) ChangeKey(ctx context.Context, key []byte) error {
	if err := s.core.ChangeKey(ctx, key); err != nil {
		return err
	}
	return s.checkpoint(ctx, "change key")
}

// checkpoint moves the WAL into the database file, so that an old wrapped
// key in the WAL is overwritten.
func (s *Store) checkpoint(ctx context.Context, op string) error {
	if err := s.enter(); err != nil {
		return wrap(op, err)
	}
	defer s.mu.RUnlock()
	if _, err := s.sq.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		// The new wrapping is committed; a busy checkpoint only delays
		// overwriting the old wrapped key in the WAL.
		if classify(err) != ErrLocked {
			return wrap(op, err)
		}
	}
	return nil
}
