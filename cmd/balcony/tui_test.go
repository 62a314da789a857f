package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/servertest"
)

// The full-screen client, tested as a person uses it: the built balcony
// runs in tmux (a private server socket, killed at the end), keys are
// typed with send-keys and the screen is read with capture-pane, against
// a real Prosody. Screens at fixed points are compared with the text
// fixtures in testdata/tui (times, fingerprints and other random parts
// normalised); -update-screens rewrites them.

var updateScreens = flag.Bool("update-screens", false, "rewrite the screen fixtures of TestTerminalClient")

func TestTerminalClient(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if servertest.Required() {
			t.Fatal("tmux is not installed (apt-get install tmux)")
		}
		t.Skip("tmux is not installed (apt-get install tmux)")
	}
	srv := servertest.StartProsody(t)
	alice := srv.AddUser(t, "alice", "")
	bob := srv.AddUser(t, "bob", "")
	bin := buildBalcony(t)
	dir := t.TempDir()
	env := []string{
		"BALCONY_CONFIG_DIR=" + filepath.Join(dir, "config"),
		"BALCONY_DATA_DIR=" + filepath.Join(dir, "data"),
		"BALCONY_PASSPHRASE=test passphrase",
		"BALCONY_STORE_KDF=time=1,memory=1024,threads=1",
		"LANG=C.UTF-8",
	}
	for _, u := range []struct{ name, pass string }{{"alice", alice.Password}, {"bob", bob.Password}} {
		j := u.name + "@" + srv.Domain
		penv := append(env, "BALCONY_PASSWORD="+u.pass)
		// The screens show OMEMO device ids, drawn at random, and a 9-digit
		// id wraps a line elsewhere than a 10-digit one: the store is made
		// again until the id has 10 digits (a little over half of them do).
		for try := 0; ; try++ {
			runBalcony(t, bin, penv, "account", "add", j, "--offline", "--server", srv.Addr, "--ca-file", srv.CAFile)
			out := outputBalcony(t, bin, penv, "-a", j, "omemo", "fingerprint")
			if id, _, _ := strings.Cut(strings.TrimPrefix(out, "device "), "\n"); len(id) == 10 {
				break
			}
			if try == 40 {
				t.Fatalf("no 10-digit OMEMO device id in %d tries", try)
			}
			runBalcony(t, bin, penv, "account", "remove", j)
			if err := os.RemoveAll(filepath.Join(dir, "data", j)); err != nil {
				t.Fatal(err)
			}
		}
		runBalcony(t, bin, penv, "-a", j, "account", "password", "--save")
		runBalcony(t, bin, penv, "-a", j, "ox", "keygen")
	}

	tm := newTmux(t, env)
	a := tm.start("alice", 100, 30, bin, "-a", "alice@localhost", "ui", "--resource", "home")
	b := tm.start("bob", 100, 30, bin, "-a", "bob@localhost", "ui", "--resource", "desk")
	a.waitFor("alice@localhost ● connected")
	b.waitFor("bob@localhost ● connected")

	// OMEMO 2, chosen automatically: each client announced its device on
	// connecting, and alice opening the conversation reads bob's device
	// list; the status line says so.
	a.line("/open bob@localhost")
	a.waitFor("auto → OMEMO2 (bob@localhost's devices, trusted blindly")
	// The notices of what choosing looked up come as events, after the
	// choice is shown: the screen compared below has them before the
	// first message.
	a.waitFor("uses the OMEMO device")
	a.waitFor("announced an OpenPGP key")
	a.line("hello bob, this is OMEMO")
	a.waitFor("me [OMEMO2] hello bob, this is OMEMO")
	b.waitFor("1:alice@localhost(")
	b.keys("C-n")
	b.waitFor("alice [OMEMO2 unverified] hello bob, this is OMEMO")
	b.waitFor("auto → OMEMO2")
	b.line("hi alice")
	a.waitFor("bob [OMEMO2 unverified] hi alice")
	// Bob lists alice's devices and verifies hers with the URI she shows
	// him (through her running client's control socket).
	b.line("/omemo devices")
	b.waitFor("alice@localhost has 1 OMEMO device(s):")
	uri := outputBalcony(t, bin, env, "-a", "alice@localhost", "omemo", "fingerprint")
	uri = strings.TrimSpace(uri[strings.LastIndex(strings.TrimSpace(uri), "\n")+1:])
	if !strings.HasPrefix(uri, "xmpp:alice@localhost?omemo-sid-") {
		t.Fatalf("alice's URI: %q", uri)
	}
	b.line("/omemo trust " + uri)
	b.waitFor("is now verified")
	a.line("verified by bob")
	b.waitFor("alice [OMEMO2 verified] verified by bob")
	a.waitFor("me [OMEMO2] verified by bob")
	a.expectScreen("omemo_chat_alice")

	// OX, required for this conversation: alice's announced key is
	// fetched and trusted blindly by bob.
	a.line("/encryption require ox")
	a.line("hello bob, this is OX")
	a.waitFor("me [OX] hello bob, this is OX")
	b.waitFor("alice [OX unverified] hello bob, this is OX")

	// OTR: bob starts a private conversation; alice requires OTR; then
	// an SMP verification, the secrets typed without echo.
	b.line("/otr start")
	b.waitFor("--│ private conversation with alice@localhost/home")
	a.waitFor("bob@localhost/desk: Private conversation with")
	a.line("/encryption require otr")
	a.line("off the record")
	b.waitFor("alice [OTR unverified] off the record")
	a.line("/otr smp our street?")
	a.waitFor("Shared secret for bob@localhost/desk (not shown; Esc cancels):")
	a.literal("elm street")
	// The input line shows nothing of it (the prompt is drawn first).
	if s := a.waitFor("Shared secret for bob@localhost/desk"); strings.Contains(s, "elm") {
		t.Fatalf("the secret is echoed:\n%s", s)
	}
	a.keys("Enter")
	b.waitFor("and asks: “our street?”")
	b.line("/otr answer")
	b.waitFor("Shared secret for alice@localhost/home")
	b.literal("elm street")
	b.keys("Enter")
	a.waitFor("verification succeeded: bob@localhost/desk is verified")
	b.waitFor("verification succeeded: alice@localhost/home is verified")
	a.line("verified now")
	b.waitFor("alice [OTR verified] verified now")
	b.expectScreen("otr_smp_bob")
	if s := a.capture() + b.capture(); strings.Contains(s, "elm street") {
		t.Fatalf("a secret shows on a screen:\n%s", s)
	}

	// A notice: a message of a mechanism Balcony does not read, sent by
	// bob's "balcony raw" through his running client's control socket.
	runBalcony(t, bin, env, "-a", "bob@localhost", "raw",
		`<message to='alice@localhost/home' type='chat'><encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/><body>fallback</body></message>`)
	s := a.waitFor("encrypted with OMEMO")
	requireMarker(t, s, "encrypted with OMEMO", "!!")

	// Spoofing: plaintext bodies that imitate a notice, a label and a
	// line of their own stay messages, right of the rule, labelled
	// plaintext.
	for _, body := range []string{
		"[OTR verified] SPOOF1 \n12:00:00 !!│ bob@localhost: SPOOF2 key changed",
		strings.Repeat(" ", 60) + "!!│ SPOOF3 Verification succeeded",
		"\u202e!!│ SPOOF4 reversed",
	} {
		runBalcony(t, bin, env, "-a", "bob@localhost", "send", "--plain", "alice@localhost/home", body)
	}
	s = a.waitFor("SPOOF4")
	for _, w := range []string{"SPOOF1", "SPOOF2", "SPOOF3", "SPOOF4"} {
		requireMarker(t, s, w, "  ")
	}
	if strings.Count(s, "!!│") != strings.Count(s, " !!│ ") || strings.Contains(s, "│ !!│") {
		t.Errorf("the rule's glyph came through from a body:\n%s", s)
	}
	if !regexp.MustCompile(`(?m)│\d\d:\d\d:\d\d   │ bob \[plaintext\] \[OTR verified\] SPOOF1`).MatchString(s) {
		t.Errorf("the spoofing message is not shown as bob's plaintext:\n%s", s)
	}
	a.expectScreen("spoof_alice")

	// Resizing: the layout follows; below 60 columns the roster goes.
	tm.resize("alice", 70, 20)
	a.waitForScreen(drawnAt(70, 20), "a 70×20 screen")
	a.expectScreen("resize70_alice")
	tm.resize("alice", 50, 16)
	s = a.waitForScreen(drawnAt(50, 16), "a 50×16 screen")
	if strings.Contains(strings.Split(s, "\n")[2], "alice@localhost") {
		t.Errorf("the roster is still shown at 50 columns:\n%s", s)
	}
	tm.resize("alice", 100, 30)
	a.waitForScreen(drawnAt(100, 30), "a 100×30 screen")

	// The help overlay, and leaving.
	a.keys("F1")
	a.waitFor("Balcony: keys")
	a.expectScreen("help_alice")
	a.keys("Escape")
	a.waitForScreen(func(s string) bool { return !strings.Contains(s, "Balcony: keys") })
	a.keys("C-q")
	a.waitFor("EXIT=0")
	b.line("/quit")
	b.waitFor("EXIT=0")
}

// buildBalcony builds the command into a temporary directory.
func buildBalcony(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "balcony")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBalcony(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	outputBalcony(t, bin, env, args...)
}

// outputBalcony runs the command and returns its standard output.
func outputBalcony(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("balcony %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// tmux is a private tmux server for one test.
type tmux struct {
	t      *testing.T
	socket string
	env    []string
}

func newTmux(t *testing.T, env []string) *tmux {
	var b [6]byte
	rand.Read(b[:])
	tm := &tmux{t: t, socket: "balcony-test-" + hex.EncodeToString(b[:]), env: env}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"alice", "bob"} {
				if out, err := tm.run("capture-pane", "-p", "-t", name); err == nil {
					t.Logf("screen of %s at the end:\n%s", name, out)
				}
			}
		}
		tm.run("kill-server")
	})
	return tm
}

func (tm *tmux) run(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-L", tm.socket, "-f", "/dev/null"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (tm *tmux) must(args ...string) string {
	tm.t.Helper()
	out, err := tm.run(args...)
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs argv in a new session of w×h; the pane stays after it ends,
// showing its exit status.
func (tm *tmux) start(name string, w, h int, argv ...string) *pane {
	tm.t.Helper()
	args := []string{"new-session", "-d", "-s", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)}
	for _, e := range tm.env {
		args = append(args, "-e", e)
	}
	var q []string
	for _, a := range argv {
		q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	args = append(args, strings.Join(q, " ")+"; echo EXIT=$?; sleep 600")
	tm.must(args...)
	return &pane{tm: tm, name: name}
}

func (tm *tmux) resize(name string, w, h int) {
	tm.t.Helper()
	tm.must("resize-window", "-t", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h))
}

type pane struct {
	tm   *tmux
	name string
}

// keys sends tmux key names (Enter, C-n, F1, ...).
func (p *pane) keys(keys ...string) {
	p.tm.t.Helper()
	p.tm.must(append([]string{"send-keys", "-t", p.name}, keys...)...)
}

// literal types text as it is.
func (p *pane) literal(text string) {
	p.tm.t.Helper()
	p.tm.must("send-keys", "-t", p.name, "-l", text)
}

// line types text and Enter.
func (p *pane) line(text string) {
	p.tm.t.Helper()
	p.literal(text)
	p.keys("Enter")
}

func (p *pane) capture() string {
	p.tm.t.Helper()
	return p.tm.must("capture-pane", "-p", "-t", p.name)
}

// screenTimeout bounds every wait for the screen.
const screenTimeout = 60 * time.Second

// waitFor polls the screen until it shows text, and returns it.
func (p *pane) waitFor(text string) string {
	p.tm.t.Helper()
	return p.waitForScreen(func(s string) bool { return strings.Contains(s, text) }, text)
}

func (p *pane) waitForScreen(ok func(string) bool, what ...string) string {
	p.tm.t.Helper()
	deadline := time.Now().Add(screenTimeout)
	delay := 20 * time.Millisecond
	for {
		s := p.capture()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.tm.t.Fatalf("%s: the screen did not show %q within %s:\n%s", p.name, what, screenTimeout, s)
		}
		time.Sleep(delay) // polling tmux, which has nothing to wait on
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// expectScreen compares the normalised screen with testdata/tui/NAME.txt.
func (p *pane) expectScreen(name string) {
	p.tm.t.Helper()
	got := normaliseScreen(p.capture())
	path := filepath.Join("testdata", "tui", name+".txt")
	if *updateScreens {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			p.tm.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		p.tm.t.Fatalf("%v (run with -update-screens to create it)", err)
	}
	if got != string(want) {
		p.tm.t.Errorf("%s: the screen differs from %s (-update-screens rewrites it)\ngot:\n%s\nwant:\n%s", p.name, path, got, want)
	}
}

var normalisers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d\d:\d\d:\d\d`), "hh:mm:ss"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d`), "yyyy-mm-dd"},
	{regexp.MustCompile(`0x[0-9a-f]+`), "0x…"},
	{regexp.MustCompile(`[0-9a-fA-F]{16,}`), "<hex>"},
	{regexp.MustCompile(`\b[0-9A-F]{8}\b`), "<fpr8>"},
	{regexp.MustCompile(`\b[0-9a-f]{8}\b`), "<fpr8>"},
	// OMEMO device ids.
	{regexp.MustCompile(`\bdevice [1-9][0-9]*\b`), "device <id>"},
	{regexp.MustCompile(`\b[1-9][0-9]*(  OMEMO 2)`), "<id>$1"},
	{regexp.MustCompile(`omemo-sid-[0-9]+`), "omemo-sid-<id>"},
}

// normaliseScreen replaces what changes from run to run.
func normaliseScreen(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		for _, n := range normalisers {
			l = n.re.ReplaceAllString(l, n.with)
		}
		out = append(out, strings.TrimRight(l, " "))
	}
	return strings.Join(out, "\n") + "\n"
}

// requireMarker checks the marker column (the two columns before the
// rule of the scrollback) of every line that shows text.
func requireMarker(t *testing.T, screen, text, marker string) {
	t.Helper()
	re := regexp.MustCompile(`│(?:\d\d:\d\d:\d\d| {8}) (..)│ `)
	found := false
	for _, l := range strings.Split(screen, "\n") {
		if !strings.Contains(l, text) {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil || strings.Index(l, m[0]) > strings.Index(l, text) {
			t.Errorf("no gutter before %q in %q", text, l)
			continue
		}
		found = true
		if m[1] != marker {
			t.Errorf("%q is in a line marked %q, want %q: %q", text, m[1], marker, l)
		}
	}
	if !found {
		t.Errorf("%q is not on the screen:\n%s", text, screen)
	}
}

// drawnAt reports whether the client has drawn a w×h screen: h lines,
// the title bar's "F1 help" ending at the last column (a trailing space).
func drawnAt(w, h int) func(string) bool {
	return func(s string) bool {
		first := strings.TrimRight(strings.SplitN(s, "\n", 2)[0], " ")
		return lines(s) == h && maxWidth(s) <= w && strings.HasSuffix(first, "F1 help") && len([]rune(first)) == w-1
	}
}

func lines(s string) int { return len(strings.Split(strings.TrimRight(s, "\n"), "\n")) }

func maxWidth(s string) int {
	w := 0
	for _, l := range strings.Split(s, "\n") {
		w = max(w, len([]rune(l)))
	}
	return w
}
