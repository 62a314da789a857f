package servertest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/servertest"
)

// Features later code relies on (XEP-0280, XEP-0313, XEP-0163/0060).
const (
	featCarbons        = "urn:xmpp:carbons:2"
	featMAM            = "urn:xmpp:mam:2"
	featPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// connect logs acct in with Balcony's client over STARTTLS or direct TLS,
// TLS 1.2 forced and carbons left off.
func connect(t *testing.T, s *servertest.Server, acct servertest.Account, direct bool) *client.Client {
	t.Helper()
	addr := s.Addr
	if direct {
		addr = s.TLSAddr
	}
	c, err := client.New(client.Config{
		JID: acct.JID, Password: acct.Password, Addr: addr, DirectTLS: direct, CAFile: s.CAFile,
		TLSMinVersion: tls.VersionTLS12, TLSMaxVersion: tls.VersionTLS12,
		DisableCarbons: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		c.Close()
		t.Fatalf("%s: connecting %s (direct TLS %v): %v", s.Name(), acct.JID, direct, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextMessage waits for the next message with a body.
func nextMessage(t *testing.T, c *client.Client) *client.MessageEvent {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("%s: event channel closed", c.JID())
			}
			if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" {
				return m
			}
		case <-timeout:
			t.Fatalf("%s: no message within 15 s", c.JID())
		}
	}
}

func TestEjabberdMessages(t *testing.T) {
	s := servertest.StartEjabberd(t, servertest.EjabberdOptions{})
	if s.Kind != servertest.Ejabberd || !s.Carbons {
		t.Fatalf("started %s (carbons %v)", s.Kind, s.Carbons)
	}
	for _, domain := range []string{s.Domain, s.SHA1Domain} {
		t.Run(domain, func(t *testing.T) {
			alice, bob := s.AddUser(t, "alice", domain), s.AddUser(t, "bob", domain)
			a := connect(t, s, alice, false)
			b := connect(t, s, bob, true)
			ctx := context.Background()
			body := "hello bob on " + domain
			if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: body}, ""); err != nil {
				t.Fatal(err)
			}
			if m := nextMessage(t, b); m.Body != body || !m.From.Equal(a.JID()) || m.Security.Encrypted() {
				t.Fatalf("bob got %+v", m)
			}
			if _, err := b.Send(ctx, &client.Outgoing{To: alice.JID, Body: "hi alice"}, ""); err != nil {
				t.Fatal(err)
			}
			if m := nextMessage(t, a); m.Body != "hi alice" || !m.From.Bare().Equal(bob.JID) {
				t.Fatalf("alice got %+v", m)
			}
		})
	}
}

// TestServersDisco checks, on every server, the disco#info features the
// client relies on, and that Each starts what it says.
func TestServersDisco(t *testing.T) {
	var ran []string
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		ran = append(ran, s.Name())
		if s.Name() != t.Name()[len("TestServersDisco/"):] {
			t.Fatalf("subtest %s runs server %s", t.Name(), s.Name())
		}
		acct := s.AddUser(t, "alice", "")
		c := connect(t, s, acct, false)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		server, err := c.QueryInfo(ctx, jid.MustParse(s.Domain), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s disco#info of %s: identities %v, features %v", s.Name(), s.Domain, server.Identities, server.Features)
		if server.Has(featCarbons) != s.Carbons {
			t.Errorf("%s: server advertises %s: %v, want %v", s.Name(), featCarbons, server.Has(featCarbons), s.Carbons)
		}
		account, err := c.QueryInfo(ctx, acct.JID, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s disco#info of %s: identities %v, features %v", s.Name(), acct.JID, account.Identities, account.Features)
		for _, f := range []string{featMAM, featPublishOptions} {
			if !account.Has(f) {
				t.Errorf("%s: the account does not advertise %s", s.Name(), f)
			}
		}
		if !slices.ContainsFunc(account.Identities, func(id client.Identity) bool {
			return id.Category == "pubsub" && id.Type == "pep"
		}) {
			t.Errorf("%s: the account has no pubsub/pep identity: %v", s.Name(), account.Identities)
		}
	}, servertest.WithoutCarbons)
	// Unavailable servers skip their subtests unless they are required.
	if want := []string{"prosody", "ejabberd", "ejabberd-nocarbons"}; servertest.Required() && !slices.Equal(ran, want) {
		t.Errorf("Each ran %v, want %v", ran, want)
	}
}

// TestEjabberdAdvertises records (go test -v) what ejabberd advertises at
// each step for each listener and TLS version, and checks what Balcony
// depends on: SCRAM with the host's hash, SCRAM-*-PLUS (tls-unique)
// working under TLS 1.2, resource binding and stream management (XEP-0198)
// after authentication.
func TestEjabberdAdvertises(t *testing.T) {
	s := servertest.StartEjabberd(t, servertest.EjabberdOptions{})
	for _, domain := range []string{s.Domain, s.SHA1Domain} {
		acct := s.AddUser(t, "probe", domain)
		hash := "SCRAM-SHA-256"
		if domain == s.SHA1Domain {
			hash = "SCRAM-SHA-1"
		}
		for _, direct := range []bool{false, true} {
			for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				name := fmt.Sprintf("%s/starttls/TLS1.%d", domain, version-tls.VersionTLS10)
				if direct {
					name = fmt.Sprintf("%s/direct/TLS1.%d", domain, version-tls.VersionTLS10)
				}
				t.Run(name, func(t *testing.T) {
					probe(t, s, acct, hash, direct, version)
				})
			}
		}
	}
}

func probe(t *testing.T, s *servertest.Server, acct servertest.Account, hash string, direct bool, version uint16) {
	domain := acct.JID.Domainpart()
	st, pre, post := dialStream(t, s, domain, direct, version)
	if !direct {
		t.Logf("features before TLS: %v", pre)
	}
	t.Logf("features after TLS: %v", post)
	if !slices.Contains(post.Mechanisms, hash) {
		t.Errorf("%s not offered on %s: %v", hash, domain, post.Mechanisms)
	}
	plus := bestSCRAM(post.Mechanisms, true)
	if version == tls.VersionTLS12 && plus != hash+"-PLUS" {
		t.Errorf("%s-PLUS not offered under TLS 1.2: %v", hash, post.Mechanisms)
	}
	if version == tls.VersionTLS13 && plus != "" {
		// ejabberd 23.01 knows tls-unique only, which TLS 1.3 lacks:
		// record what a client that tries channel binding gets.
		st13, _, _ := dialStream(t, s, domain, direct, version)
		err := st13.auth(scram[plus], post.Mechanisms, acct.JID.Localpart(), acct.Password)
		t.Logf("%s under TLS 1.3 (tls-exporter): %v", plus, errOrOK(err))
	}
	mech := bestSCRAM(post.Mechanisms, version == tls.VersionTLS12)
	if err := st.auth(scram[mech], post.Mechanisms, acct.JID.Localpart(), acct.Password); err != nil {
		t.Fatalf("%s: %v", mech, err)
	}
	t.Logf("%s: authenticated", mech)
	after, err := st.open()
	if err != nil {
		t.Fatalf("after authentication: %v", err)
	}
	t.Logf("features after authentication: %v", after)
	for _, f := range []string{"urn:ietf:params:xml:ns:xmpp-bind bind", "urn:xmpp:sm:3 sm"} {
		if !after.has(f) {
			t.Errorf("%s not offered after authentication: %v", f, after)
		}
	}
}

func errOrOK(err error) string {
	switch {
	case err == nil:
		return "authenticated"
	case errors.Is(err, errSASLFailure):
		return "refused by the server: " + err.Error()
	}
	return "failed: " + err.Error()
}
