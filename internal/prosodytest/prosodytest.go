// Package prosodytest starts a real Prosody server (the Debian package) on
// 127.0.0.1 for integration tests, through scripts/prosody-harness.sh.
//
// Tests call Start; it skips the test with a message when Prosody is not
// installed and cannot be installed, unless BALCONY_REQUIRE_INTEGRATION=1
// (set by the project's test command and CI), in which case it fails. The
// server is stopped by t.Cleanup.
package prosodytest

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/internal/harness"
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
func Script() string { return harness.Script("prosody-harness.sh") }

// Required reports whether integration tests must run (and fail rather than
// skip when Prosody is unavailable).
func Required() bool { return harness.Required() }

// Start starts a server for the test and registers nothing.
func Start(t testing.TB) *Server {
	t.Helper()
	script := Script()
	dir, vars := harness.Start(t, script, "prosody", "prosody.log")
	s := &Server{Dir: dir, SHA1: "sha1.localhost", script: script,
		Domain: vars["PROSODY_DOMAIN"], Addr: vars["PROSODY_ADDR"], TLSAddr: vars["PROSODY_TLS_ADDR"], CAFile: vars["PROSODY_CA"]}
	if s.Addr == "" || s.CAFile == "" {
		t.Fatalf("prosody harness printed no address: %v", vars)
	}
	return s
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
