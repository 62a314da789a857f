// Package harness runs the project's throwaway-server scripts
// (scripts/*-harness.sh: Prosody, PostgreSQL) for integration tests: each
// has "start DIR", which prints KEY=VALUE lines and exits 3 when the server
// cannot be installed here, and "stop DIR".
package harness

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

// Required reports whether integration tests must run, and fail rather
// than skip when a server is unavailable: BALCONY_REQUIRE_INTEGRATION=1,
// set by the project's test command and CI.
func Required() bool { return os.Getenv("BALCONY_REQUIRE_INTEGRATION") == "1" }

// Script returns the path of scripts/name in this module.
func Script(name string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("scripts", name)
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// Start runs "script start DIR" in a new temporary directory and returns
// the directory and the KEY=VALUE lines the script printed. It skips the
// test in -short mode and when the script exits 3 (the server cannot be
// installed), unless Required. The server is stopped by t.Cleanup; if the
// test failed, the end of each of the log files (relative to the
// directory) is logged.
func Start(t testing.TB, script, what string, logs []string, args ...string) (string, map[string]string) {
	t.Helper()
	if testing.Short() && !Required() {
		t.Skipf("%s integration test skipped in -short mode", what)
	}
	// A free port can be taken by another test's server between the
	// script's check and the server's bind: a failed start is tried
	// again, with new ports, a few times.
	var (
		dir string
		out []byte
	)
	for attempt := 1; ; attempt++ {
		dir = t.TempDir()
		cmd := exec.Command(script, append([]string{"start", dir}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		if err == nil {
			break
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 && !Required() {
			t.Skipf("%s unavailable, integration test skipped (set BALCONY_REQUIRE_INTEGRATION=1 to make this a failure): %s", what, strings.TrimSpace(stderr.String()))
		}
		// A half-started server is stopped too.
		exec.Command(script, "stop", dir).Run()
		if attempt == startAttempts || (errors.As(err, &ee) && ee.ExitCode() == 3) {
			t.Fatalf("starting %s (attempt %d): %v\n%s", what, attempt, err, stderr.String())
		}
		t.Logf("starting %s failed (attempt %d of %d), trying again: %v\n%s", what, attempt, startAttempts, err, Tail(stderr.Bytes(), 10))
	}
	t.Cleanup(func() {
		if err := exec.Command(script, "stop", dir).Run(); err != nil {
			t.Errorf("stopping %s: %v", what, err)
		}
		if t.Failed() {
			for _, log := range logs {
				if b, err := os.ReadFile(filepath.Join(dir, log)); err == nil && len(b) > 0 {
					t.Logf("%s %s:\n%s", what, log, Tail(b, 60))
				}
			}
		}
	})
	vars := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	return dir, vars
}

// startAttempts is how many times Start tries to start a server.
const startAttempts = 3

// Tail returns the last lines of b.
func Tail(b []byte, lines int) []byte {
	parts := bytes.Split(b, []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return bytes.Join(parts, []byte("\n"))
}
