package store_test

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/storetest"
)

// sqliteBackend runs the shared suite against SQLite stores, one account
// directory per store.
type sqliteBackend struct{}

func (sqliteBackend) Create(t *testing.T, opts store.Options) (store.AccountStore, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Create(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func (sqliteBackend) Open(t *testing.T, dir string, opts store.Options) (store.AccountStore, error) {
	s, err := store.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return s, nil
}

// Exec runs query on the database file with a connection of its own. The
// account markers are comments to SQLite.
func (sqliteBackend) Exec(t *testing.T, dir, query string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Contains looks through every file of the account directory: the
// database, its WAL and shared memory.
func (sqliteBackend) Contains(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			return true
		}
	}
	return false
}

func TestSuite(t *testing.T) { storetest.Run(t, sqliteBackend{}) }
