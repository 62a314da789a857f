// Package servertest starts real XMPP servers (RFC 6120/6121) for
// Balcony's integration tests: Prosody 0.12 and ejabberd 23.01, the Debian
// packages, each a throwaway instance on 127.0.0.1 run by the project's
// scripts/prosody-harness.sh and scripts/ejabberd-harness.sh.
//
// StartProsody and StartEjabberd start one server for a test; Each runs a
// subtest against every server. Both skip the test with a message when the
// server is not installed and cannot be installed, unless
// BALCONY_REQUIRE_INTEGRATION=1 (set by scripts/test.sh and CI), in which
// case they fail it. Servers are stopped by t.Cleanup, and on failure the
// end of the server's log is added to the test output.
//
// Both servers serve two virtual hosts: Domain stores SCRAM-SHA-256
// credentials and SHA1Domain SCRAM-SHA-1 ones, with a STARTTLS listener
// (Addr) and a direct TLS one (TLSAddr, XEP-0368), certificates signed by a
// private CA (CAFile).
package servertest

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/internal/harness"
)

// Kinds of server.
const (
	Prosody  = "prosody"
	Ejabberd = "ejabberd"
)

// EnvRequire names the environment variable that turns an unavailable
// server from a skipped test into a failed one when set to "1".
const EnvRequire = "BALCONY_REQUIRE_INTEGRATION"

// Server is a running throwaway XMPP server.
type Server struct {
	Kind       string // Prosody or Ejabberd
	Dir        string // configuration, data, certificates and logs
	Domain     string // "localhost": SCRAM-SHA-256 credentials
	SHA1Domain string // "sha1.localhost": SCRAM-SHA-1 credentials
	Addr       string // 127.0.0.1:port for STARTTLS
	TLSAddr    string // 127.0.0.1:port for direct TLS
	CAFile     string // the private CA that signed the server certificate

	// Carbons reports whether the server offers XEP-0280 Message Carbons
	// (false only for ejabberd started with NoCarbons).
	Carbons bool

	script string
	logs   []string // log files shown when a test fails, relative to Dir
}

// Name is "prosody", "ejabberd" or "ejabberd-nocarbons": the subtest name
// Each gives the server.
func (s *Server) Name() string {
	if !s.Carbons {
		return s.Kind + "-nocarbons"
	}
	return s.Kind
}

// Account is a registered test account.
type Account struct {
	JID      jid.JID
	Password string
}

// Required reports whether integration tests must run (and fail rather than
// skip when a server is unavailable).
func Required() bool { return harness.Required() }

// Script returns the path of a script in this module's scripts directory,
// such as "prosody-harness.sh".
func Script(name string) string { return harness.Script(name) }

// StartProsody starts a Prosody for the test and registers nothing.
func StartProsody(t testing.TB) *Server {
	t.Helper()
	return start(t, &Server{
		Kind:   Prosody,
		script: Script("prosody-harness.sh"),
		logs:   []string{"prosody.log", "stdout.log"},
	}, nil)
}

// EjabberdOptions configures StartEjabberd. The zero value is the full
// server.
type EjabberdOptions struct {
	// NoCarbons starts the server without mod_carboncopy (XEP-0280).
	NoCarbons bool
}

// StartEjabberd starts an ejabberd for the test and registers nothing.
func StartEjabberd(t testing.TB, opts EjabberdOptions) *Server {
	t.Helper()
	var args []string
	if opts.NoCarbons {
		args = append(args, "--no-carbons")
	}
	return start(t, &Server{
		Kind:   Ejabberd,
		script: Script("ejabberd-harness.sh"),
		logs:   []string{"log/ejabberd.log", "log/error.log", "stdout.log"},
	}, args)
}

func start(t testing.TB, s *Server, args []string) *Server {
	t.Helper()
	var vars map[string]string
	s.Dir, vars = harness.Start(t, s.script, s.Kind, s.logs, args...)
	prefix := strings.ToUpper(s.Kind) + "_"
	s.Carbons = true
	for k, v := range vars {
		switch strings.TrimPrefix(k, prefix) {
		case "DOMAIN":
			s.Domain = v
		case "SHA1_DOMAIN":
			s.SHA1Domain = v
		case "ADDR":
			s.Addr = v
		case "TLS_ADDR":
			s.TLSAddr = v
		case "CA":
			s.CAFile = v
		case "CARBONS":
			s.Carbons = v != "0"
		}
	}
	if s.SHA1Domain == "" {
		s.SHA1Domain = "sha1." + s.Domain
	}
	if s.Domain == "" || s.Addr == "" || s.TLSAddr == "" || s.CAFile == "" {
		t.Fatalf("%s harness printed no address: %v", s.Kind, vars)
	}
	return s
}

// Restart stops the server and starts it again with the same
// configuration, addresses and data: accounts, archives and offline
// messages survive, sessions (and stream management state) do not.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	out, err := exec.Command(s.script, "restart", s.Dir).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting %s: %v\n%s", s.Kind, err, out)
	}
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
		t.Fatalf("registering %s@%s on %s: %v\n%s", local, domain, s.Kind, err, out)
	}
	j, err := jid.New(local, domain, "")
	if err != nil {
		t.Fatal(err)
	}
	return Account{JID: j, Password: pass}
}

// Variant selects extra server configurations for Each.
type Variant int

// Variants for Each.
const (
	// WithoutCarbons adds a run against an ejabberd started without
	// mod_carboncopy, for code that must work on a server without
	// XEP-0280.
	WithoutCarbons Variant = iota + 1
)

// Each runs f as a subtest against each server, one fresh server per
// subtest: Prosody ("prosody"), ejabberd ("ejabberd"), and with
// WithoutCarbons an ejabberd without carbons ("ejabberd-nocarbons"). A
// server that is unavailable skips its subtest (or fails it when
// BALCONY_REQUIRE_INTEGRATION=1).
func Each(t *testing.T, f func(t *testing.T, s *Server), variants ...Variant) {
	t.Helper()
	type run struct {
		name  string
		start func(testing.TB) *Server
	}
	runs := []run{
		{Prosody, StartProsody},
		{Ejabberd, func(t testing.TB) *Server { return StartEjabberd(t, EjabberdOptions{}) }},
	}
	for _, v := range variants {
		if v == WithoutCarbons {
			runs = append(runs, run{Ejabberd + "-nocarbons", func(t testing.TB) *Server {
				return StartEjabberd(t, EjabberdOptions{NoCarbons: true})
			}})
		}
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			f(t, r.start(t))
		})
	}
}
