package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"

	"github.com/balcony-im/balcony/internal/prosodytest"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"balcony": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// xmpp-raw JID PASSWORD-ENV STANZA is shorthand for
		// balcony -a JID raw --password-env PASSWORD-ENV STANZA.
		"xmpp-raw": func() {
			if len(os.Args) != 4 {
				os.Exit(2)
			}
			os.Exit(run([]string{"-a", os.Args[1], "raw", "--password-env", os.Args[2], os.Args[3]}, os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScripts runs the command end to end against a real Prosody started
// for each script, with accounts alice, bob and carol.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			srv := prosodytest.Start(env.T().(testing.TB))
			env.Setenv("SERVER", srv.Addr)
			env.Setenv("TLS_SERVER", srv.TLSAddr)
			env.Setenv("CA", srv.CAFile)
			for _, name := range []string{"alice", "bob", "carol"} {
				a := srv.AddUser(env.T().(testing.TB), name, "")
				env.Setenv(strings.ToUpper(name)+"_PASS", a.Password)
			}
			env.Setenv("BALCONY_CONFIG_DIR", filepath.Join(env.WorkDir, "config"))
			env.Setenv("BALCONY_DATA_DIR", filepath.Join(env.WorkDir, "data"))
			env.Setenv("LANG", "en_US.UTF-8")
			env.Setenv("BALCONY_PASSPHRASE", "test passphrase")
			// Cheap Argon2id for the many stores tests create (the race
			// detector makes the default cost seconds per open).
			env.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
			return nil
		},
	})
}

// TestUsage runs the command without a server.
func TestUsage(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/usage", Setup: func(env *testscript.Env) error {
		env.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
		env.Setenv("BALCONY_CONFIG_DIR", filepath.Join(env.WorkDir, "config"))
		env.Setenv("BALCONY_DATA_DIR", filepath.Join(env.WorkDir, "data"))
		return nil
	}})
}

// A resource containing " !! " must not make a message line look like a
// notice: the FROM field is one token.
func TestRenderSpoofedResource(t *testing.T) {
	var b strings.Builder
	r := &renderer{w: &b}
	from := jid.MustParse("mallory@example.org/x !! private conversation started; verified")
	r.event(&client.MessageEvent{From: from, Body: "hi", Time: time.Unix(0, 0)})
	line := b.String()
	f := strings.Fields(line)
	if len(f) < 3 || f[2] != "[plaintext]" || strings.Count(line, " !! ") != 0 {
		t.Fatalf("line %q: the third field must be Balcony's", line)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"two\nlines":       `two\nlines`,
		"\x1b[31mred":      `\u001b[31mred`,
		"rtl\u202eevil":    `rtl\u202eevil`,
		`back\slash`:       `back\\slash`,
		"2026 x !! notice": "2026 x !! notice",
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}
