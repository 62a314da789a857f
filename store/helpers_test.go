package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fastKDF keeps tests quick; TestDefaultKDFParams covers the defaults.
var fastKDF = &KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

const testPass = "correct horse battery staple"

func testOptions(pass string) Options {
	return Options{Passphrase: []byte(pass), KDF: fastKDF}
}

// openTest creates a new encrypted store in a temporary directory.
func openTest(t testing.TB) *Store {
	t.Helper()
	return createDir(t, t.TempDir(), testOptions(testPass))
}

// createDir creates a new store in dir.
func createDir(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Create(dir, opts)
	return keep(t, s, err)
}

// openDir opens the existing store in dir.
func openDir(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	return keep(t, s, err)
}

// keep fails the test on err, or closes s when the test ends.
func keep(t testing.TB, s *Store, err error) *Store {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// concurrently runs fn on n goroutines at once and returns their errors.
func concurrently(n int, fn func() error) []error {
	errs := make(chan error, n)
	for range n {
		go func() { errs <- fn() }()
	}
	out := make([]error, n)
	for i := range out {
		out[i] = <-errs
	}
	return out
}

// openOrCreate opens the store in dir, creating it if there is none, as
// a process that finds no store and races another to create it would.
func openOrCreate(dir string, opts Options) (*Store, error) {
	s, err := Open(dir, opts)
	if errors.Is(err, ErrNoStore) {
		s, err = Create(dir, opts)
		if errors.Is(err, ErrExists) {
			s, err = Open(dir, opts)
		}
	}
	return s, err
}

// rawDB opens the store's database file directly, bypassing this package.
func rawDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot returns the contents of every file in dir.
func snapshot(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string][]byte)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func sameSnapshot(t testing.TB, before, after map[string][]byte) {
	t.Helper()
	for name, b := range before {
		a, ok := after[name]
		if !ok {
			t.Errorf("%s disappeared", name)
		} else if !bytes.Equal(a, b) {
			t.Errorf("%s changed (%d bytes before, %d after)", name, len(b), len(a))
		}
	}
	for name, a := range after {
		if _, ok := before[name]; !ok && len(a) > 0 {
			t.Errorf("%s appeared with %d bytes", name, len(a))
		}
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

var ctx = context.Background()
