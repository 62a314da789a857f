// Package prosodytest starts a real Prosody server (the Debian package) on
// 127.0.0.1 for integration tests, through scripts/prosody-harness.sh.
//
// It is a thin layer over internal/servertest, which also starts ejabberd
// and runs a test against each server; new tests should use that package.
//
// Tests call Start; it skips the test with a message when Prosody is not
// installed and cannot be installed, unless BALCONY_REQUIRE_INTEGRATION=1
// (set by the project's test command and CI), in which case it fails. The
// server is stopped by t.Cleanup.
package prosodytest

import (
	"testing"

	"github.com/balcony-im/balcony/internal/servertest"
)

// Server is a running throwaway Prosody.
type Server struct {
	Dir     string // config, data, certificates and logs
	Domain  string // "localhost": SCRAM-SHA-256 credentials
	SHA1    string // "sha1.localhost": SCRAM-SHA-1 credentials
	Addr    string // 127.0.0.1:port for STARTTLS
	TLSAddr string // 127.0.0.1:port for direct TLS
	CAFile  string // the private CA that signed the server certificate
	srv     *servertest.Server
}

// Account is a registered test account.
type Account = servertest.Account

// Script returns the path of scripts/prosody-harness.sh in this module.
func Script() string { return servertest.Script("prosody-harness.sh") }

// Required reports whether integration tests must run (and fail rather than
// skip when Prosody is unavailable).
func Required() bool { return servertest.Required() }

// Start starts a server for the test and registers nothing.
func Start(t testing.TB) *Server {
	t.Helper()
	return From(servertest.StartProsody(t))
}

// From gives any running test server, ejabberd included, this package's
// shape, so that a test written for Prosody runs on every server (see
// clienttest.EachServer).
func From(s *servertest.Server) *Server {
	return &Server{
		Dir:     s.Dir,
		Domain:  s.Domain,
		SHA1:    s.SHA1Domain,
		Addr:    s.Addr,
		TLSAddr: s.TLSAddr,
		CAFile:  s.CAFile,
		srv:     s,
	}
}

// Server returns the server as a servertest.Server.
func (s *Server) Server() *servertest.Server { return s.srv }

// AddUser registers local@domain with a random password; domain "" means
// s.Domain.
func (s *Server) AddUser(t testing.TB, local, domain string) Account {
	t.Helper()
	return s.srv.AddUser(t, local, domain)
}
