package psk_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/examples/psk"
)

// The test talks to a real Prosody started by the repository's harness
// script; it uses nothing of Balcony but its public packages.

var harness = filepath.Join("..", "..", "scripts", "prosody-harness.sh")

type server struct {
	dir, domain, addr, ca string
}

func startProsody(t *testing.T) *server {
	t.Helper()
	required := os.Getenv("BALCONY_REQUIRE_INTEGRATION") == "1"
	if testing.Short() && !required {
		t.Skip("integration test skipped in -short mode")
	}
	dir := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.Command(harness, "start", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 3 && !required {
			t.Skipf("Prosody unavailable: %s", stderr.String())
		}
		exec.Command(harness, "stop", dir).Run()
		t.Fatalf("starting Prosody: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := exec.Command(harness, "stop", dir).Run(); err != nil {
			t.Errorf("stopping Prosody: %v", err)
		}
	})
	s := &server{dir: dir}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "PROSODY_DOMAIN":
			s.domain = v
		case "PROSODY_ADDR":
			s.addr = v
		case "PROSODY_CA":
			s.ca = v
		}
	}
	if s.domain == "" || s.addr == "" || s.ca == "" {
		t.Fatalf("harness output lacks the server's address: %s", out)
	}
	return s
}

// connect registers an account and logs it in, with the mechanism if m is
// not nil.
func (s *server) connect(t *testing.T, local string, m client.Mechanism) *client.Client {
	t.Helper()
	pass := make([]byte, 12)
	rand.Read(pass)
	if out, err := exec.Command(harness, "adduser", s.dir, local, hex.EncodeToString(pass)).CombinedOutput(); err != nil {
		t.Fatalf("adduser %s: %v\n%s", local, err, out)
	}
	c, err := client.New(client.Config{JID: jid.MustParse(local + "@" + s.domain + "/example"),
		Password: hex.EncodeToString(pass), Addr: s.addr, CAFile: s.ca})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if m != nil {
		if err := c.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", local, err)
	}
	return c
}

// next returns the first event of type E on c.
func next[E client.Event](t *testing.T, c *client.Client) E {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if e, ok := ev.(E); ok {
				return e
			}
		case <-timeout:
			var zero E
			t.Fatalf("no %T", zero)
			return zero
		}
	}
}

func mustNew(t *testing.T, secret string) *psk.Mechanism {
	t.Helper()
	m, err := psk.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Two clients with the mechanism talk through the server; a client
// without it gets a notice naming it, never the fallback body; a client
// with another secret gets a notice, never the message.
func TestThroughProsody(t *testing.T) {
	srv := startProsody(t)
	const secret = "correct horse battery staple"
	alice := srv.connect(t, "alice", mustNew(t, secret))
	bob := srv.connect(t, "bob", mustNew(t, secret))
	carol := srv.connect(t, "carol", nil)
	dave := srv.connect(t, "dave", mustNew(t, "another secret, sixteen+ bytes"))
	ctx := context.Background()

	if _, err := alice.Send(ctx, &client.Outgoing{To: bob.JID(), Body: "hello through the seam"}, psk.NS); err != nil {
		t.Fatal(err)
	}
	m := next[*client.MessageEvent](t, bob)
	if m.Body != "hello through the seam" || m.Security.Mechanism != psk.NS || !m.Security.Authenticated || m.Security.Verified {
		t.Fatalf("bob got %+v", m)
	}

	if _, err := alice.Send(ctx, &client.Outgoing{To: carol.JID(), Body: "carol cannot read this"}, psk.NS); err != nil {
		t.Fatal(err)
	}
	n := next[*client.NoticeEvent](t, carol)
	if n.Reason != eme.ReasonNotSupported || n.Namespace != psk.NS || !strings.Contains(n.Text, psk.Name) ||
		strings.Contains(n.Text, "carol cannot read this") {
		t.Fatalf("carol got %+v", n)
	}

	if _, err := alice.Send(ctx, &client.Outgoing{To: dave.JID(), Body: "wrong key"}, psk.NS); err != nil {
		t.Fatal(err)
	}
	n = next[*client.NoticeEvent](t, dave)
	if n.Reason != eme.ReasonVerificationFailed || strings.Contains(n.Text, "wrong key") {
		t.Fatalf("dave got %+v", n)
	}
}

// A message is bound to its sender: the same ciphertext claiming to come
// from someone else does not open. No server needed: the pipeline runs
// the stanza as received.
func TestBoundToSender(t *testing.T) {
	const secret = "a secret of sixteen bytes or more"
	newClient := func(addr string, m *psk.Mechanism) *client.Client {
		c, err := client.New(client.Config{JID: jid.MustParse(addr), Password: "x"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Register(m); err != nil {
			t.Fatal(err)
		}
		return c
	}
	m := mustNew(t, secret)
	alice, bob := newClient("alice@example.org/a", m), newClient("bob@example.org/b", mustNew(t, secret))
	sealed, err := m.Seal(context.Background(), &client.Outgoing{To: bob.JID(), Body: "from alice"})
	if err != nil {
		t.Fatal(err)
	}
	st := sealed.Stanzas[0]
	if err := alice.Pipeline().Decorate(st, &client.Outgoing{To: bob.JID(), Body: "from alice"}, psk.NS); err != nil {
		t.Fatal(err)
	}
	if st.Child(eme.NS, "encryption") == nil || st.Child(eme.NS, "encryption").AttrValue("name") != psk.Name {
		t.Fatalf("no named EME tag: %s", st)
	}
	for from, ok := range map[string]bool{"alice@example.org/a": true, "mallory@example.org/m": false} {
		ev := bob.Pipeline().Receive(context.Background(), &client.Incoming{Stanza: st.Copy(), From: jid.MustParse(from), To: bob.JID()})
		msg, isMsg := ev.(*client.MessageEvent)
		if isMsg != ok || (ok && msg.Body != "from alice") {
			t.Errorf("from %s: %#v", from, ev)
		}
	}
}
