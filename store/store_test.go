package store

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "acct")
	s := createDir(t, dir, testOptions(testPass))
	if err := s.SetSetting(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	for _, name := range []string{FileName, FileName + "-wal", FileName + "-shm"} {
		checkMode(t, filepath.Join(dir, name), 0o600)
	}
}

func TestFileModesTightened(t *testing.T) {
	dir := t.TempDir()
	s := createDir(t, dir, testOptions(testPass))
	s.Close()
	db := filepath.Join(dir, FileName)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, testOptions(testPass))
	checkMode(t, dir, 0o700)
	checkMode(t, db, 0o600)
	// Files SQLite creates inherit the database file's mode.
	checkMode(t, db+"-wal", 0o600)
	checkMode(t, db+"-shm", 0o600)
	s.Close()
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	s := createDir(t, dir, testOptions(testPass))
	if err := s.AddOwnKey(ctx, OwnKey{Mechanism: OTR, Fingerprint: strings.Repeat("AB", 20), Active: true}, []byte("dsa secret")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := snapshot(t, dir)

	_, err := Open(dir, testOptions("wrong horse"))
	wantErr(t, err, ErrWrongPassphrase)
	if !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("error %q does not say wrong passphrase", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))

	// The right passphrase still works afterwards.
	s = openDir(t, dir, testOptions(testPass))
	sec, err := s.OwnKeySecret(ctx, OTR, strings.Repeat("ab", 20))
	if err != nil || string(sec) != "dsa secret" {
		t.Fatalf("OwnKeySecret = %q, %v", sec, err)
	}
}

func TestPassphraseRequired(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	_, err := Create(dir, Options{KDF: fastKDF})
	wantErr(t, err, ErrPassphraseRequired)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account directory created without a passphrase: %v", err)
	}
	s := createDir(t, dir, testOptions(testPass))
	s.Close()
	_, err = Open(dir, Options{})
	wantErr(t, err, ErrPassphraseRequired)
}

func TestUnencryptedOptOut(t *testing.T) {
	dir := t.TempDir()
	s := createDir(t, dir, Options{Unencrypted: true})
	if s.Encrypted() {
		t.Error("Encrypted() = true for an unencrypted store")
	}
	if err := s.SetAccount(ctx, Account{JID: "bot@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, []byte("bot password")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.ChangePassphrase(ctx, []byte("x")), ErrEncryptionMode)
	s.Close()

	// Without the opt-out, and with a passphrase, it is refused.
	_, err := Open(dir, testOptions(testPass))
	wantErr(t, err, ErrEncryptionMode)
	if !strings.Contains(err.Error(), "Unencrypted") {
		t.Errorf("error %q does not name the option", err)
	}
	_, err = Open(dir, Options{})
	wantErr(t, err, ErrEncryptionMode)

	s = openDir(t, dir, Options{Unencrypted: true})
	pw, err := s.Password(ctx)
	if err != nil || string(pw) != "bot password" {
		t.Fatalf("Password() = %q, %v", pw, err)
	}
	s.Close()

	// And the other way round: an encrypted store refuses the opt-out.
	enc := t.TempDir()
	createDir(t, enc, testOptions(testPass)).Close()
	_, err = Open(enc, Options{Unencrypted: true})
	wantErr(t, err, ErrEncryptionMode)

	_, err = Create(t.TempDir(), Options{Unencrypted: true, Passphrase: []byte("x")})
	if err == nil {
		t.Error("Open accepted both Unencrypted and a passphrase")
	}
}

func TestDefaultKDFParams(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	s, err := Create(dir, Options{Passphrase: []byte(testPass)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("create with default Argon2id parameters: %v", time.Since(start))
	s.Close()

	var tm, mem, threads int64
	db := rawDB(t, dir)
	for key, dst := range map[string]*int64{"kdf_time": &tm, "kdf_memory_kib": &mem, "kdf_threads": &threads} {
		if err := db.QueryRow(`SELECT value FROM meta WHERE key = ?`, key).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	d := DefaultKDFParams()
	if tm != int64(d.Time) || mem != int64(d.MemoryKiB) || threads != int64(d.Threads) {
		t.Errorf("recorded parameters %d/%d/%d, want %+v", tm, mem, threads, d)
	}
	if d.Time < 3 || d.MemoryKiB < 64*1024 {
		t.Errorf("default parameters %+v weaker than RFC 9106's second recommendation", d)
	}
	db.Close()

	start = time.Now()
	s, err = Open(dir, Options{Passphrase: []byte(testPass), KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unlock with default Argon2id parameters: %v", time.Since(start))
	s.Close()
}

func TestKDFParamsValidated(t *testing.T) {
	if _, err := Create(t.TempDir(), Options{Passphrase: []byte("x"), KDF: &KDFParams{Time: 0, MemoryKiB: 64, Threads: 1}}); err == nil {
		t.Error("Open accepted Argon2id time 0")
	}
	if _, err := Create(t.TempDir(), Options{Passphrase: []byte("x"), KDF: &KDFParams{Time: 1, MemoryKiB: 7, Threads: 1}}); err == nil {
		t.Error("Open accepted 7 KiB of Argon2id memory")
	}
	// A tampered file asking for absurd parameters is refused, not run.
	dir := t.TempDir()
	createDir(t, dir, testOptions(testPass)).Close()
	db := rawDB(t, dir)
	if _, err := db.Exec(`UPDATE meta SET value = ? WHERE key = 'kdf_memory_kib'`, int64(1<<40)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(dir, testOptions(testPass))
	wantErr(t, err, ErrCorrupt)
}

func TestCorrupt(t *testing.T) {
	// A store with enough data to span many pages, built once and
	// copied for each case.
	src := t.TempDir()
	s := createDir(t, src, testOptions(testPass))
	for i := range 200 {
		if _, err := s.LogMessage(ctx, LogEntry{Peer: "nurse@example.org", Direction: Incoming,
			Body: strings.Repeat("x", 500) + string(rune('a'+i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, FileName+"-wal")); err == nil {
		t.Fatal("WAL not checkpointed on close")
	}
	good, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		corrupt func(path string, b []byte) []byte
	}{
		{"header overwritten", func(_ string, b []byte) []byte {
			copy(b, bytes.Repeat([]byte{0xA5}, 100))
			return b
		}},
		{"truncated", func(_ string, b []byte) []byte { return b[:len(b)/2] }},
		{"not a database", func(_ string, b []byte) []byte { return []byte("this is a text file, not a database\n") }},
		{"page overwritten", func(_ string, b []byte) []byte {
			// Overwrite the middle pages of the message table's b-tree.
			pageSize := int(b[16])<<8 | int(b[17])
			if pageSize == 1 {
				pageSize = 65536
			}
			pages := len(b) / pageSize
			for p := pages / 2; p < pages/2+3; p++ {
				copy(b[p*pageSize:], bytes.Repeat([]byte{0x5A}, pageSize))
			}
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, tc.corrupt(path, bytes.Clone(good)), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, testOptions(testPass))
			wantErr(t, err, ErrCorrupt)
			t.Log(err)
		})
	}
}

func TestNewerSchema(t *testing.T) {
	dir := t.TempDir()
	createDir(t, dir, testOptions(testPass)).Close()
	db := rawDB(t, dir)
	if _, err := db.Exec(`UPDATE meta SET value = ? WHERE key = 'schema_version'`, LatestSchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := snapshot(t, dir)
	_, err := Open(dir, testOptions(testPass))
	wantErr(t, err, ErrNewerSchema)
	t.Log(err)
	sameSnapshot(t, before, snapshot(t, dir))
}

func TestForeignDatabase(t *testing.T) {
	dir := t.TempDir()
	db := rawDB(t, dir)
	if _, err := db.Exec(`CREATE TABLE songs (title TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := snapshot(t, dir)
	_, err := Open(dir, testOptions(testPass))
	wantErr(t, err, ErrCorrupt)
	if !strings.Contains(err.Error(), "not a Balcony store") {
		t.Fatalf("Open of a foreign database: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, dir))
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(testPass)
	opts.BusyTimeout = 50 * time.Millisecond
	s := createDir(t, dir, opts)

	// Another connection holds the write lock.
	db := rawDB(t, dir)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	err = s.SetSetting(ctx, "theme", "dark")
	wantErr(t, err, ErrLocked)
	t.Log(err)
	// Readers are not blocked in WAL mode.
	if _, err := s.Settings(ctx); err != nil {
		t.Errorf("read while locked: %v", err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "theme", "dark"); err != nil {
		t.Fatalf("after the lock was released: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	wantErr(t, s.SetSetting(ctx, "a", "b"), ErrClosed)
	_, err := s.ListKeys(ctx, "", "")
	wantErr(t, err, ErrClosed)
	if s.dataKey != [keySize]byte{} {
		t.Error("data key not cleared by Close")
	}
}

// An empty or unreadable balcony.db is a damaged store, never a place to
// create a new one: Open reports ErrCorrupt and leaves the directory
// exactly as it was, with no -wal or -shm file beside it.
func TestUnreadableFileIsCorrupt(t *testing.T) {
	for name, content := range map[string][]byte{
		"empty":       {},
		"one byte":    {0},
		"text":        []byte("not a database\n"),
		"short magic": []byte("SQLite format 3"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), content, 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			s, err := Open(dir, testOptions(testPass))
			if err == nil {
				s.Close()
			}
			wantErr(t, err, ErrCorrupt)
			after := snapshot(t, dir)
			sameSnapshot(t, before, after)
			if len(after) != 1 {
				t.Errorf("files after Open: %d, want only %s", len(after), FileName)
			}
		})
	}
}

// Creating is explicit: Open never creates, Create never replaces.
func TestCreateAndOpenAreSeparate(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	_, err := Open(missing, testOptions(testPass))
	wantErr(t, err, ErrNoStore)
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the account directory: %v", err)
	}
	empty := t.TempDir()
	_, err = Open(empty, testOptions(testPass))
	wantErr(t, err, ErrNoStore)
	if n := len(snapshot(t, empty)); n != 0 {
		t.Errorf("Open left %d files in a directory without a store", n)
	}

	// Create builds the store aside and links it: nothing else remains.
	dir := filepath.Join(base, "acct")
	s := createDir(t, dir, testOptions(testPass))
	must(t, s.SetSetting(ctx, "k", "v"))
	must(t, s.Close())
	if files := snapshot(t, dir); len(files) != 1 || files[FileName] == nil {
		t.Errorf("files after Create and Close: %v", slices.Sorted(maps.Keys(files)))
	}
	before := snapshot(t, dir)
	_, err = Create(dir, testOptions("another passphrase"))
	wantErr(t, err, ErrExists)
	sameSnapshot(t, before, snapshot(t, dir))
	s = openDir(t, dir, testOptions(testPass))
	if v, err := s.Setting(ctx, "k"); err != nil || v != "v" {
		t.Errorf("after a refused Create: %q, %v", v, err)
	}

	// An empty file is not replaced either.
	zero := t.TempDir()
	must(t, os.WriteFile(filepath.Join(zero, FileName), nil, 0o600))
	_, err = Create(zero, testOptions(testPass))
	wantErr(t, err, ErrExists)
	if files := snapshot(t, zero); len(files) != 1 || len(files[FileName]) != 0 {
		t.Errorf("Create touched an empty store file: %d files", len(files))
	}
}

// Of several goroutines (separate connections, as separate processes
// would have) creating the same store at once, exactly one succeeds.
func TestConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	errs := concurrently(4, func() error {
		s, err := Create(dir, testOptions(testPass))
		if err == nil {
			err = s.Close()
		}
		return err
	})
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, ErrExists):
			t.Error(err)
		}
	}
	if created != 1 {
		t.Errorf("%d creations succeeded, want 1", created)
	}
	must(t, openDir(t, dir, testOptions(testPass)).Check(ctx))
	if files := snapshot(t, dir); len(files) > 3 {
		t.Errorf("temporary files left behind: %v", slices.Sorted(maps.Keys(files)))
	}
}

// heldFromOS is the heap memory the process holds from the system.
func heldFromOS() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapSys - m.HeapReleased
}

// Unlocking a store runs Argon2id over 64 MiB; afterwards that memory is
// given back, so that an idle client does not hold it (nor let the
// garbage collector's target follow it).
func TestUnlockReleasesKDFMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the full-cost KDF")
	}
	dir := t.TempDir()
	st, err := Create(dir, Options{Passphrase: []byte("a passphrase"), KDF: ptr(DefaultKDFParams())})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	runtime.GC()
	debug.FreeOSMemory()
	before := heldFromOS()
	st, err = Open(dir, Options{Passphrase: []byte("a passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after := heldFromOS()
	if mem := DefaultKDFParams().MemoryKiB << 10; after > before+uint64(mem)/4 {
		t.Fatalf("unlocking keeps %d KiB of heap from the system (before %d KiB, KDF %d KiB)", (after-before)>>10, before>>10, mem>>10)
	}
	t.Logf("heap held from the system: %d KiB before unlocking, %d KiB after", before>>10, after>>10)
}

func ptr[T any](v T) *T { return &v }
