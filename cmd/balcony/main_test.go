package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/xmltree"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"balcony": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// xmpp-raw JID PASSWORD-ENV STANZA: logs in and sends one raw stanza,
		// for tests that need what balcony itself never sends.
		"xmpp-raw": xmppRaw,
	})
}

func xmppRaw() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: xmpp-raw JID PASSWORD-ENV STANZA")
		os.Exit(2)
	}
	j, err := jid.Parse(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, err := xmltree.Parse([]byte(os.Args[3]), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := client.New(client.Config{JID: j, Password: os.Getenv(os.Args[2]), Addr: os.Getenv("SERVER"),
		CAFile: os.Getenv("CA"), DisablePresence: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := c.SendElement(ctx, st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.Close()
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
