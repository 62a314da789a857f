package main

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// Every command and subcommand takes -h and --help (usage on standard
// output, exit 0); "help" of an unknown command is a usage error; flags are
// echoed as typed.
func TestHelpEverywhere(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	for name, c := range commands {
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {name, "help"}} {
			if name == "help" {
				continue
			}
			out, errOut, code := runCmd(t, args...)
			if args[1] == "help" && name != "help" {
				// "help" may be an argument (a JID, a text); only the
				// flags are universal.
				continue
			}
			if code != 0 || out != c.usage || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q, usage printed: %v", args, code, errOut, out == c.usage)
			}
		}
	}
	for _, args := range [][]string{
		{"otr", "start", "--help"}, {"otr", "smp", "-h"}, {"esession", "confirm", "--help"},
		{"ox", "keygen", "--help"}, {"account", "add", "-h"}, {"send", "bob@example.org", "--help"},
	} {
		out, errOut, code := runCmd(t, args...)
		if code != 0 || out != commands[args[0]].usage || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %.60q", args, code, errOut, out)
		}
	}
	// After "--" a -h is an argument.
	if _, errOut, code := runCmd(t, "send", "bob@example.org", "--", "-h"); code == 0 || strings.Contains(errOut, "Usage") {
		t.Errorf("send -- -h: exit %d %q", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"help", "nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"send", "--bogus", "bob@example.org", "hi"}, 2, "flag provided but not defined: --bogus"},
		{[]string{"send", "-bogus", "bob@example.org", "hi"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"otr", "status", "--bogus=1"}, 2, "flag provided but not defined: --bogus"},
	} {
		_, errOut, code := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
}

// Commands run without an account say how to add one, before doing
// anything else.
func TestNoAccount(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	out, errOut, code := runCmd(t, "account", "list")
	if code != 0 || !strings.Contains(out+errOut, "balcony account add") {
		t.Errorf("account list: exit %d, %q %q", code, out, errOut)
	}
	_, errOut, code = runCmd(t, "ox", "keygen")
	if code == 0 || strings.Contains(errOut, "generating") || !strings.Contains(errOut, "no account configured") {
		t.Errorf("ox keygen without an account: exit %d, %q", code, errOut)
	}
}

// A policy that requires a mechanism refuses a plaintext send before any
// connection is tried (exit 3 with the server down), and sending in the
// clear makes no OTR key.
func TestPolicyCheckedBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("BALCONY_PASSPHRASE", "pass")
	t.Setenv("BALCONY_PASSWORD", "pw")
	t.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
	if _, e, code := runCmd(t, "account", "add", "alice@example.org", "--server", "127.0.0.1:1", "--offline"); code != 0 {
		t.Fatalf("account add: %s", e)
	}
	if _, e, code := runCmd(t, "policy", "carol@example.org", "require:ox"); code != 0 {
		t.Fatalf("policy: %s", e)
	}
	for _, args := range [][]string{
		{"send", "--plain", "carol@example.org", "hi"},
		{"send", "--otr", "carol@example.org/x", "hi"},
	} {
		_, errOut, code := runCmd(t, args...)
		if code != exitSecurity || !strings.Contains(errOut, "requires OpenPGP for XMPP") || strings.Contains(errOut, "connection refused") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	// Allowed, the message tries to leave and, the server being
	// unreachable, waits in the outbox.
	out, errOut, code := runCmd(t, "send", "--plain", "dave@example.org", "hi")
	if code != 0 || !strings.Contains(out, "queued:") || strings.Contains(errOut, "created an OTR key") {
		t.Errorf("send --plain made an OTR key or was not queued: exit %d, %q, %q", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	settings := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "714dd6c1a2b3c4d5e6f708192a3b4c5d6e7f8091"
	for _, tc := range []struct {
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"v1.2.3", settings(rev, "false"), "v1.2.3 (go1.26.0)"},
		{"v0.4.0-rc.1", nil, "v0.4.0-rc.1 (go1.26.0)"},
		{"v0.0.0-20261206054239-714dd6c1a2b3", settings(rev, "false"), "commit 714dd6c1a2b3 (go1.26.0)"},
		{"v1.2.4-0.20261206054239-714dd6c1a2b3+dirty", settings(rev, "true"), "commit 714dd6c1a2b3+dirty (go1.26.0)"},
		{"(devel)", settings(rev, "true"), "commit 714dd6c1a2b3+dirty (go1.26.0)"},
		{"(devel)", nil, "devel (go1.26.0)"},
	} {
		info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/balcony-im/balcony", Version: tc.version}, Settings: tc.settings}
		if got := versionOf(info); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.version, got, tc.want)
		}
	}
}

// docs/balcony.1 is what "balcony help --man" prints: regenerate it with
// go run ./cmd/balcony help --man > docs/balcony.1
func TestManPageUpToDate(t *testing.T) {
	out, errOut, code := runCmd(t, "help", "--man")
	if code != 0 || errOut != "" {
		t.Fatalf("help --man: exit %d, %q", code, errOut)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "balcony.1"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatal("docs/balcony.1 is out of date: run go run ./cmd/balcony help --man > docs/balcony.1")
	}
	// Every command has its section, and nothing breaks the roff.
	for name := range commands {
		if !strings.Contains(out, "\n.SS "+roffEscape(name)+"\n") {
			t.Errorf("no section for %s", name)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, ".") && !regexp.MustCompile(`^\.(\\"|TH|SH|SS|PP|nf|fi|TP|B|BI|BR|RB|I|RI|IR|br)( |$)`).MatchString(l) {
			t.Errorf("line %d: unknown request %q", i+1, l)
		}
	}
}

// "balcony help ui" documents every slash command of the client.
func TestHelpUI(t *testing.T) {
	out, _, code := runCmd(t, "help", "ui")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, c := range []string{"/open", "/encryption auto|off|require MECH", "/ox keys", "/otr start", "/esession start", "/trust", "/history", "/help", "!!│"} {
		if !strings.Contains(out, c) {
			t.Errorf("help ui lacks %q", c)
		}
	}
	// Without a terminal, balcony alone prints its usage (exit 2) and
	// ui refuses.
	if _, errOut, code := runCmd(t); code != 2 || !strings.Contains(errOut, "Usage: balcony") {
		t.Errorf("balcony alone: exit %d %q", code, errOut)
	}
	if _, errOut, code := runCmd(t, "ui"); code != 1 || !strings.Contains(errOut, "needs a terminal") {
		t.Errorf("ui without a terminal: exit %d %q", code, errOut)
	}
}
