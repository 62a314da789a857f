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
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Script returns the path of scripts/postgres-harness.sh in this module.
func Script() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "scripts/postgres-harness.sh"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "postgres-harness.sh")
}

// Required reports whether integration tests must run (and fail rather
// than skip when PostgreSQL is unavailable).
func Required() bool { return os.Getenv("BALCONY_REQUIRE_INTEGRATION") == "1" }

// Start starts a throwaway server for the test and returns a connection
// string (a postgres:// URL) for its superuser and its database
// "postgres". Each call starts a server of its own: share one among
// subtests.
func Start(t testing.TB) string {
	t.Helper()
	if testing.Short() && !Required() {
		t.Skip("PostgreSQL integration test skipped in -short mode")
	}
	script := Script()
	dir := t.TempDir()
	cmd := exec.Command(script, "start", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 && !Required() {
			t.Skipf("PostgreSQL unavailable, integration test skipped: %s", strings.TrimSpace(stderr.String()))
		}
		// A half-started server is stopped too.
		exec.Command(script, "stop", dir).Run()
		t.Fatalf("starting PostgreSQL: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := exec.Command(script, "stop", dir).Run(); err != nil {
			t.Errorf("stopping PostgreSQL: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "postgres.log")); err == nil && len(log) > 0 {
				t.Logf("postgres.log:\n%s", log)
			}
		}
	})
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PG_URL="); ok {
			return v
		}
	}
	t.Fatalf("postgres harness printed no PG_URL: %s", out)
	return ""
}
