// Package prosodytest starts a real Prosody server (the Debian package) on
// 127.0.0.1 for integration tests, through scripts/prosody-harness.sh.
//
// Tests call Start; it skips the test with a message when Prosody is not
// installed and cannot be installed, unless BALCONY_REQUIRE_INTEGRATION=1
// (set by the project's test command and CI), in which case it fails. The
// server is stopped by t.Cleanup.
package prosodytest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// Server is a running throwaway Prosody.
type Server struct {
	Dir     string // config, data, certificates and logs
	Domain  string // "localhost": SCRAM-SHA-256 credentials
	SHA1    string // "sha1.localhost": SCRAM-SHA-1 credentials
	Addr    string // 127.0.0.1:port for STARTTLS
	TLSAddr string // 127.0.0.1:port for direct TLS
	CAFile  string // the private CA that signed the server certificate
	script  string
}

// Script returns the path of scripts/prosody-harness.sh in this module.
func Script() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "scripts/prosody-harness.sh"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "prosody-harness.sh")
}

// Required reports whether integration tests must run (and fail rather than
// skip when Prosody is unavailable).
func Required() bool { return os.Getenv("BALCONY_REQUIRE_INTEGRATION") == "1" }

// Start starts a server for the test and registers nothing.
func Start(t testing.TB) *Server {
	t.Helper()
	if testing.Short() && !Required() {
		t.Skip("integration test skipped in -short mode")
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
			t.Skipf("prosody unavailable, integration test skipped: %s", strings.TrimSpace(stderr.String()))
		}
		t.Fatalf("starting prosody: %v\n%s", err, stderr.String())
	}
	s := &Server{Dir: dir, SHA1: "sha1.localhost", script: script}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "PROSODY_DOMAIN":
			s.Domain = v
		case "PROSODY_ADDR":
			s.Addr = v
		case "PROSODY_TLS_ADDR":
			s.TLSAddr = v
		case "PROSODY_CA":
			s.CAFile = v
		}
	}
	t.Cleanup(func() {
		if err := exec.Command(script, "stop", dir).Run(); err != nil {
			t.Errorf("stopping prosody: %v", err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "prosody.log")); err == nil {
				t.Logf("prosody.log:\n%s", tail(log, 60))
			}
		}
	})
	if s.Addr == "" || s.CAFile == "" {
		t.Fatalf("prosody harness printed no address: %s", out)
	}
	return s
}

func tail(b []byte, lines int) []byte {
	parts := bytes.Split(b, []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return bytes.Join(parts, []byte("\n"))
}

// Account is a registered test account.
type Account struct {
	JID      jid.JID
	Password string
}

// AddUser registers local@domain with a random password; domain "" means
// s.Domain.
func (s *Server) AddUser(t testing.TB, local, domain string) Account {
	t.Helper()
	if domain == "" {
		domain = s.Domain
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	pass := hex.EncodeToString(b[:])
	out, err := exec.Command(s.script, "adduser", s.Dir, local, pass, domain).CombinedOutput()
	if err != nil {
		t.Fatalf("registering %s@%s: %v\n%s", local, domain, err, out)
	}
	j, err := jid.New(local, domain, "")
	if err != nil {
		t.Fatal(err)
	}
	return Account{JID: j, Password: pass}
}
