// Package pgtest starts a real PostgreSQL server (the Debian package,
// PostgreSQL 15 on bookworm) on 127.0.0.1 for integration tests, through
// scripts/postgres-harness.sh.
//
// Tests call Start; it skips the test with a message when PostgreSQL is
// not installed and cannot be installed, or in -short mode, unless
// BALCONY_REQUIRE_INTEGRATION=1 (set by the project's test command and
// CI), in which case it fails. The server is stopped by t.Cleanup.
package pgtest

import (
	"testing"

	"github.com/balcony-im/balcony/internal/harness"
)

// Script returns the path of scripts/postgres-harness.sh in this module.
func Script() string { return harness.Script("postgres-harness.sh") }

// Required reports whether integration tests must run (and fail rather
// than skip when PostgreSQL is unavailable).
func Required() bool { return harness.Required() }

// Start starts a throwaway server for the test and returns a connection
// string (a postgres:// URL) for its superuser and its database
// "postgres". Each call starts a server of its own: share one among
// subtests.
func Start(t testing.TB) string {
	t.Helper()
	_, vars := harness.Start(t, Script(), "PostgreSQL", []string{"postgres.log"})
	url := vars["PG_URL"]
	if url == "" {
		t.Fatalf("postgres harness printed no PG_URL: %v", vars)
	}
	return url
}
