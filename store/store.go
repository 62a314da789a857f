package store

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// FileName is the name of the database file inside an account directory.
// SQLite keeps FileName+"-wal" and FileName+"-shm" beside it while the store
// is open.
const FileName = "balcony.db"

// DefaultBusyTimeout is how long a statement waits for a lock held by
// another process before failing with ErrLocked.
const DefaultBusyTimeout = 5 * time.Second

// Options configure Open. The zero value is not usable: set either
// Passphrase or Unencrypted.
type Options struct {
	// Passphrase unlocks the store, or protects a new one. Open neither
	// keeps nor modifies the slice; the caller should clear it after Open
	// returns. The bytes are used exactly as given.
	Passphrase []byte

	// Unencrypted is the explicit opt-out for bots that run unattended
	// and have nobody to type a passphrase. Secrets are then still
	// sealed, but under a data key stored in the clear beside them:
	// anyone who can read the account directory can read every secret.
	// The choice is recorded in the database when it is created: an
	// encrypted store cannot be opened with Unencrypted, and an
	// unencrypted one cannot be opened without it (ErrEncryptionMode).
	// There is no in-place conversion between the two modes.
	Unencrypted bool

	// KDF sets the Argon2id parameters used when a passphrase is set (on
	// creation and by ChangePassphrase). Nil means DefaultKDFParams.
	// Unlocking always uses the parameters recorded in the database.
	KDF *KDFParams

	// BusyTimeout is how long to wait for a lock held by another process
	// before failing with ErrLocked. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// NoBlindTrust records a contact's first OX key as Undecided instead
	// of Blind. See RecordSeenKey.
	NoBlindTrust bool

	// Rand is the source of randomness for keys, salts, nonces and the
	// OTR instance tag. Nil means crypto/rand.Reader.
	Rand io.Reader

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// Unexported knobs for tests: stop migrating at this version (0 means
	// the latest), and use these migrations instead of the embedded ones.
	migrateTo  int
	migrations []migration
}

func (o *Options) busyTimeout() time.Duration {
	if o.BusyTimeout <= 0 {
		return DefaultBusyTimeout
	}
	return o.BusyTimeout
}

// Store is a Balcony account's persistent state, kept in one SQLite
// database inside the account directory. A Store is safe for concurrent
// use by multiple goroutines, and several processes may open the same
// directory at once: writes are serialised by SQLite's lock (each process
// waits up to Options.BusyTimeout) and every reader sees only committed
// transactions.
type Store struct {
	dir     string
	path    string
	db      *sql.DB
	rand    io.Reader
	now     func() time.Time
	noBlind bool
	kdf     KDFParams

	// wmu serialises this process's write transactions, so goroutines
	// queue here instead of polling SQLite's lock.
	wmu sync.Mutex

	// mu is held shared by every operation and exclusively by Close.
	mu        sync.RWMutex
	closed    bool
	encrypted bool
	storeID   []byte
	dataKey   [keySize]byte
	aead      cipher.AEAD // XChaCha20-Poly1305 under dataKey
}

// Create creates a new store in the account directory dir, creating the
// directory (mode 0700) if needed, and opens it. It fails with ErrExists if
// dir already holds a store file, whatever its state: an existing file,
// even an empty or damaged one, is never replaced (Open reports what is
// wrong with it). A new store needs Options.Passphrase or
// Options.Unencrypted (ErrPassphraseRequired, checked before anything is
// created).
//
// The database is built under a temporary name in dir and linked into
// place only when complete, so a crash during Create leaves either no
// store or a whole one (and perhaps a stray temporary file), and of two
// processes creating the same store at once exactly one succeeds.
func Create(dir string, opts Options) (*Store, error) {
	const op = "create"
	s, err := newStore(dir, opts)
	if err != nil {
		return nil, wrap(op, err)
	}
	if !opts.Unencrypted && len(opts.Passphrase) == 0 {
		return nil, wrap(op, failure(ErrPassphraseRequired, "a new store needs a passphrase or Options.Unencrypted"))
	}
	if err := prepareDir(dir); err != nil {
		return nil, wrap(op, err)
	}
	if _, err := os.Lstat(s.path); err == nil {
		return nil, wrap(op, failure(ErrExists, "a store already exists in "+dir))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, wrap(op, err)
	}
	if err := s.build(opts); err != nil {
		return nil, wrap(op, err)
	}
	// The data key is known: reopening the linked file needs no key
	// derivation, only a check that it is the file just built.
	if err := s.connect(opts, true); err != nil {
		s.clearKey()
		return nil, wrap(op, err)
	}
	return s, nil
}

// build creates the database under a temporary name, migrates it and
// creates its keys, closes it (which checkpoints the WAL into the file and
// removes the -wal and -shm files) and links it to s.path, which must not
// exist. s keeps the data key.
func (s *Store) build(opts Options) error {
	f, err := os.CreateTemp(s.dir, FileName+".new-*")
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
	db, err := openDB(tmp, opts.busyTimeout())
	if err != nil {
		return err
	}
	s.db = db
	err = s.init(context.Background(), opts, true)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	s.db = nil
	if err != nil {
		s.clearKey()
		return err
	}
	if err := os.Link(tmp, s.path); err != nil {
		s.clearKey()
		if errors.Is(err, fs.ErrExist) {
			return failure(ErrExists, "a store already exists in "+s.dir)
		}
		return err
	}
	return syncDir(s.dir)
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
	s, err := newStore(dir, opts)
	if err != nil {
		return nil, wrap(op, err)
	}
	fi, err := os.Lstat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, wrap(op, failure(ErrNoStore, "no store in "+dir))
	case err != nil:
		return nil, wrap(op, err)
	case !fi.Mode().IsRegular():
		return nil, wrap(op, fmt.Errorf("%s is not a regular file", s.path))
	}
	if err := checkHeader(s.path); err != nil {
		return nil, wrap(op, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, wrap(op, err)
	}
	if err := s.connect(opts, false); err != nil {
		return nil, wrap(op, err)
	}
	return s, nil
}

// newStore validates opts and returns an unconnected Store for dir.
func newStore(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("empty account directory")
	}
	if opts.Unencrypted && len(opts.Passphrase) > 0 {
		return nil, errors.New("Options.Unencrypted and Options.Passphrase are mutually exclusive")
	}
	kdf := DefaultKDFParams()
	if opts.KDF != nil {
		kdf = *opts.KDF
	}
	if err := kdf.validate(); err != nil {
		return nil, err
	}
	s := &Store{
		dir:     dir,
		path:    filepath.Join(dir, FileName),
		rand:    opts.Rand,
		now:     opts.Now,
		noBlind: opts.NoBlindTrust,
		kdf:     kdf,
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.now == nil {
		s.now = time.Now
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

// connect opens s.path, tightening the permissions of the database files,
// and checks, unlocks and migrates it. With known set, s already holds the
// data key of the store just built, and the file must be that store.
func (s *Store) connect(opts Options, known bool) error {
	for _, p := range []string{s.path, s.path + "-wal", s.path + "-shm"} {
		if err := tightenFile(p); err != nil {
			return err
		}
	}
	db, err := openDB(s.path, opts.busyTimeout())
	if err != nil {
		return err
	}
	s.db = db
	ctx := context.Background()
	if known {
		err = s.checkBuilt(ctx)
	} else {
		err = s.init(ctx, opts, false)
	}
	if err != nil {
		db.Close()
		s.clearKey()
		if oe, ok := err.(*opError); ok && oe.detail == "" && oe.kind != nil {
			oe.detail = s.path // say which account directory
		}
		return err
	}
	for _, p := range []string{s.path + "-wal", s.path + "-shm"} {
		if err := tightenFile(p); err != nil {
			s.Close()
			return err
		}
	}
	return nil
}

// checkBuilt checks that the file at s.path is the store build made, and
// prepares the AEAD under its data key.
func (s *Store) checkBuilt(ctx context.Context) error {
	km, err := readKeyMaterial(ctx, s.db)
	if err != nil {
		return err
	}
	if km == nil || subtle.ConstantTimeCompare(km.storeID, s.storeID) != 1 {
		return failure(ErrExists, "another store took the place of the one created")
	}
	return s.initAEAD()
}

func (s *Store) initAEAD() error {
	aead, err := chacha20poly1305.NewX(s.dataKey[:])
	if err != nil {
		return err
	}
	s.aead = aead
	return nil
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

// init checks, unlocks and migrates the database, in that order, so that
// nothing is written to a file that is not ours, is newer than we know, or
// whose passphrase was not given. With create, the database is the empty
// one build made, and init creates the schema and the keys.
func (s *Store) init(ctx context.Context, opts Options, create bool) error {
	// One statement, so both values come from the same snapshot even
	// while another process is creating the store.
	var appID int64
	var tables int
	if err := s.db.QueryRowContext(ctx,
		`SELECT (SELECT application_id FROM pragma_application_id), (SELECT count(*) FROM sqlite_schema)`).
		Scan(&appID, &tables); err != nil {
		return err
	}
	if create != (appID == 0 && tables == 0) || (!create && appID != applicationID) {
		return failure(ErrCorrupt, fmt.Sprintf("%s is an SQLite database but not a Balcony store (application_id %#x, %d tables)", s.path, appID, tables))
	}
	if err := quickCheck(ctx, s.db); err != nil {
		return err
	}
	ms := migrations
	if opts.migrations != nil {
		ms = opts.migrations
	}
	target := len(ms)
	if opts.migrateTo > 0 && opts.migrateTo < target {
		target = opts.migrateTo
	}
	version, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if version > len(ms) {
		return failure(ErrNewerSchema, fmt.Sprintf("%s has schema version %d, this version of balcony knows up to %d", s.path, version, len(ms)))
	}

	if !create {
		if version < 1 {
			return failure(ErrCorrupt, "no schema version")
		}
		km, err := readKeyMaterial(ctx, s.db)
		if err != nil {
			return err
		}
		if km == nil {
			return failure(ErrCorrupt, "no key material")
		}
		if err := s.unlock(km, opts); err != nil {
			return err
		}
	}

	if err := s.enableWAL(ctx, opts.busyTimeout()); err != nil {
		return err
	}
	if err := s.migrate(ctx, ms, target); err != nil {
		return err
	}
	if create {
		if err := s.createKeys(ctx, opts); err != nil {
			return err
		}
	}
	return s.initAEAD()
}

// enableWAL switches the database to WAL mode (a no-op once it is). While
// another process converts a new database, SQLite answers SQLITE_BUSY
// without calling the busy handler, so the conversion is retried here,
// for at most the busy timeout.
func (s *Store) enableWAL(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
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

// unlock checks the encryption mode and recovers the data key.
func (s *Store) unlock(km *keyMaterial, opts Options) error {
	switch {
	case km.mode == encNone && !opts.Unencrypted:
		return failure(ErrEncryptionMode, "the store was created unencrypted (Options.Unencrypted) and must be opened that way")
	case km.mode != encNone && opts.Unencrypted:
		return failure(ErrEncryptionMode, "the store is encrypted and must be opened with its passphrase, not Options.Unencrypted")
	case km.mode != encNone && len(opts.Passphrase) == 0:
		return failure(ErrPassphraseRequired, "the store is encrypted")
	}
	defer clear(km.plain)
	if err := km.unlock(opts.Passphrase, &s.dataKey); err != nil {
		return err
	}
	s.encrypted = km.mode != encNone
	s.storeID = km.storeID
	return nil
}

// createKeys creates the data key of a new store (the file build is
// making, which nobody else opens).
func (s *Store) createKeys(ctx context.Context, opts Options) error {
	var dk [keySize]byte
	defer clear(dk[:])
	km, err := newKeyMaterial(s.rand, opts.Unencrypted, opts.Passphrase, s.kdf, nil, &dk)
	if err != nil {
		return err
	}
	defer clear(km.plain)
	err = s.writeTx(ctx, "create keys", func(tx *sql.Tx) error {
		return writeKeyMaterial(ctx, tx, km)
	})
	if err != nil {
		return err
	}
	s.dataKey = dk
	s.encrypted = km.mode != encNone
	s.storeID = km.storeID
	return nil
}

func (s *Store) clearKey() {
	clear(s.dataKey[:])
	s.aead = nil
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
	return s.read(ctx, "check", func(q querier) error {
		if err := check(ctx, q, "integrity_check"); err != nil {
			return err
		}
		var n int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return failure(ErrCorrupt, fmt.Sprintf("%d foreign key violations", n))
		}
		return s.checkSealed(ctx, q)
	})
}

// Close closes the database and clears the data key from memory. Further
// use of s returns ErrClosed. Close waits for operations in progress.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.clearKey()
	return wrap("close", s.db.Close())
}

// Dir returns the account directory of s.
func (s *Store) Dir() string { return s.dir }

// Encrypted reports whether the store's secrets are protected by a
// passphrase (false for a store created with Options.Unencrypted).
func (s *Store) Encrypted() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.encrypted
}

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.read(ctx, "schema version", func(q querier) error {
		var err error
		v, err = schemaVersion(ctx, q)
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
// An unencrypted store cannot be given a passphrase this way.
func (s *Store) ChangePassphrase(ctx context.Context, passphrase []byte) error {
	const op = "change passphrase"
	if err := s.enter(); err != nil {
		return wrap(op, err)
	}
	defer s.mu.RUnlock()
	if !s.encrypted {
		return wrap(op, failure(ErrEncryptionMode, "the store is unencrypted"))
	}
	if len(passphrase) == 0 {
		return wrap(op, failure(ErrPassphraseRequired, ""))
	}
	km, err := wrapDataKey(s.rand, passphrase, s.kdf, s.storeID, &s.dataKey)
	if err != nil {
		return wrap(op, err)
	}
	err = s.writeTx(ctx, op, func(tx *sql.Tx) error {
		old, err := readKeyMaterial(ctx, tx)
		if err != nil {
			return err
		}
		if old == nil || old.mode != encArgon2id {
			return failure(ErrEncryptionMode, "the store's key material changed underneath")
		}
		return writeKeyMaterial(ctx, tx, km)
	})
	if err != nil {
		return wrap(op, err)
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		// The new passphrase is committed; a busy checkpoint only delays
		// overwriting the old wrapped key in the WAL.
		if classify(err) != ErrLocked {
			return wrap(op, err)
		}
	}
	return nil
}

// enter takes the shared lock and fails if s is closed. The caller must
// s.mu.RUnlock() when enter returns nil.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// read runs fn against the database outside any explicit transaction.
func (s *Store) read(ctx context.Context, op string, fn func(q querier) error) error {
	if err := s.enter(); err != nil {
		return wrap(op, err)
	}
	defer s.mu.RUnlock()
	return wrap(op, fn(s.db))
}

// update runs fn in a write transaction.
func (s *Store) update(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if err := s.enter(); err != nil {
		return wrap(op, err)
	}
	defer s.mu.RUnlock()
	return s.writeTx(ctx, op, fn)
}

// writeTx runs fn in one BEGIN IMMEDIATE transaction and commits it, or
// rolls it back if fn or the commit fails.
func (s *Store) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return wrap(op, err)
	}
	return wrap(op, tx.Commit())
}

func (s *Store) nowMillis() int64 { return s.now().UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// seal encrypts a secret bound to its table and row identity.
func (s *Store) seal(plaintext []byte, table string, row ...string) ([]byte, error) {
	return sealWith(s.aead, s.rand, adFor(table, row...), plaintext)
}

// open decrypts a sealed value; failure is ErrCorrupt.
func (s *Store) open(blob []byte, table string, row ...string) ([]byte, error) {
	pt, err := openWith(s.aead, adFor(table, row...), blob)
	if err != nil {
		return nil, &opError{kind: ErrCorrupt, detail: table, cause: err}
	}
	return pt, nil
}

// readKeyMaterial returns the key material recorded in meta, or nil if
// none is recorded yet.
func readKeyMaterial(ctx context.Context, q querier) (*keyMaterial, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM meta WHERE key IN
		('encryption', 'store_id', 'kdf_salt', 'kdf_time', 'kdf_memory_kib', 'kdf_threads', 'wrapped_key', 'data_key')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	km := &keyMaterial{}
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
			km.mode = asString(v)
		case "store_id":
			km.storeID = asBytes(v)
		case "kdf_salt":
			km.salt = asBytes(v)
		case "kdf_time":
			km.params.Time = uint32(asInt(v))
		case "kdf_memory_kib":
			km.params.MemoryKiB = uint32(asInt(v))
		case "kdf_threads":
			km.params.Threads = uint8(asInt(v))
		case "wrapped_key":
			km.wrapped = asBytes(v)
		case "data_key":
			km.plain = asBytes(v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	if km.mode == "" || len(km.storeID) != idSize {
		return nil, failure(ErrCorrupt, "incomplete key material")
	}
	return km, nil
}

func writeKeyMaterial(ctx context.Context, tx *sql.Tx, km *keyMaterial) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key IN
		('encryption', 'store_id', 'kdf_salt', 'kdf_time', 'kdf_memory_kib', 'kdf_threads', 'wrapped_key', 'data_key')`); err != nil {
		return err
	}
	kv := []any{"encryption", km.mode, "store_id", km.storeID}
	switch km.mode {
	case encNone:
		kv = append(kv, "data_key", km.plain)
	case encArgon2id:
		kv = append(kv,
			"kdf_salt", km.salt,
			"kdf_time", int64(km.params.Time),
			"kdf_memory_kib", int64(km.params.MemoryKiB),
			"kdf_threads", int64(km.params.Threads),
			"wrapped_key", km.wrapped)
	}
	for i := 0; i < len(kv); i += 2 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

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
