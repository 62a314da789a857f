package ox_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/store"
)

// goSendxmpp returns the path of go-sendxmpp (the Debian package), an
// independent OX implementation on gopenpgp. It skips the test when the
// program is missing, unless BALCONY_REQUIRE_INTEROP=1: then it installs
// the package when it can (root with apt-get), and fails otherwise.
func goSendxmpp(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go-sendxmpp"); err == nil {
		return p
	}
	if os.Getenv("BALCONY_REQUIRE_INTEROP") != "1" {
		t.Skip("go-sendxmpp not found (apt-get install go-sendxmpp, or set BALCONY_REQUIRE_INTEROP=1 to install it or fail)")
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		install := func(args ...string) error {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Logf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return err
		}
		if install("install", "-y", "-qq", "go-sendxmpp") != nil {
			if install("update", "-qq") == nil {
				install("install", "-y", "-qq", "go-sendxmpp")
			}
		}
		if p, err := exec.LookPath("go-sendxmpp"); err == nil {
			return p
		}
	}
	t.Fatal("go-sendxmpp not found and BALCONY_REQUIRE_INTEROP=1")
	return ""
}

// TestInteropOXGoSendxmpp exchanges OX messages both ways with go-sendxmpp
// through Prosody: it announces its key over PEP, Balcony discovers it,
// decrypts and verifies go-sendxmpp's message, and go-sendxmpp decrypts
// Balcony's.
func TestInteropOXGoSendxmpp(t *testing.T) {
	bin := goSendxmpp(t)
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "SSL_CERT_FILE="+srv.CAFile)
	args := func(more ...string) []string {
		return append([]string{"-u", alice.JID.String(), "-p", alice.Password, "-j", srv.Addr, "--timeout", "20"}, more...)
	}
	run := func(stdin string, more ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args(more...)...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go-sendxmpp %s: %v\n%s", strings.Join(more, " "), err, out)
		}
	}
	ctx := context.Background()

	run("", "--ox-genprivkey-x25519")
	b := oxConnect(t, srv, bob, "b", true, nil, ox.Config{})
	// Bob follows alice's presence, so that he can tell when the server has
	// ended go-sendxmpp's session: it sends available presence, and a
	// message to alice routed to a session that the server has not yet
	// seen end is written to a closed socket and lost, instead of being
	// kept for her next login.
	a := clienttest.Connect(t, srv, alice, "watch")
	clienttest.Subscribe(t, a, b.c)
	a.Close()
	offline := func() {
		t.Helper()
		for len(b.c.Resources(alice.JID)) > 0 {
			clienttest.WaitFor(t, b.c, func(p *client.PresenceEvent) bool { return !p.Available && p.From.Bare().Equal(alice.JID) })
		}
	}
	offline()
	b.publish(t)
	d, err := b.x.Discover(ctx, alice.JID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Keys) != 1 || d.Keys[0].Trust != store.Blind || !d.Keys[0].Announced || len(d.Problems) != 0 {
		t.Fatalf("go-sendxmpp's key as discovered: %+v", d)
	}

	// go-sendxmpp -> Balcony.
	run("hello from go-sendxmpp <&>\n", "--ox", bob.JID.String())
	m := clienttest.WaitFor(t, b.c, func(m *client.MessageEvent) bool { return strings.HasPrefix(m.Body, "hello from go-sendxmpp") })
	if m.Body != "hello from go-sendxmpp <&>" || m.Security.Mechanism != eme.OX || m.Security.Fingerprint != d.Keys[0].Fingerprint ||
		m.Security.Trust != "blind" || len(m.Security.Warnings) != 0 {
		t.Fatalf("message from go-sendxmpp: %q %+v", m.Body, m.Security)
	}
	if err := b.st.SetTrust(ctx, alice.JID.String(), store.OX, d.Keys[0].Fingerprint, store.Verified); err != nil {
		t.Fatal(err)
	}
	run("verified now\n", "--ox", bob.JID.String())
	if m := clienttest.WaitFor(t, b.c, func(m *client.MessageEvent) bool { return m.Body == "verified now" }); !m.Security.Verified {
		t.Fatalf("after verification: %+v", m.Security)
	}

	// Balcony -> go-sendxmpp. Alice is offline: the server keeps the
	// message until go-sendxmpp logs in to listen.
	offline()
	b.send(t, alice.JID, "hello from Balcony <&>")
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	listen := exec.CommandContext(lctx, bin, args("--ox", "-l")...)
	var stderr strings.Builder
	listen.Env, listen.Stderr = env, &stderr
	out, err := listen.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		listen.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "[OX] "+bob.JID.String()+": hello from Balcony <&>") {
			return
		}
		t.Logf("go-sendxmpp: %s", sc.Text())
	}
	listen.Wait()
	t.Fatalf("go-sendxmpp did not show Balcony's OX message; its errors:\n%s", stderr.String())
}
