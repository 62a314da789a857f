package store

import (
	"context"
	"os"
	"testing"
)

// fastKDF keeps tests quick; TestDefaultKDFParams covers the defaults.
var fastKDF = &KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func testOptions(pass string) Options {
	return Options{Passphrase: []byte(pass), KDF: fastKDF}
}

// openTest opens a new encrypted store in a temporary directory.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), testOptions("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role))
	}
	os.Exit(m.Run())
}

var ctx = context.Background()
