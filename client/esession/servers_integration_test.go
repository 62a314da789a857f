package esession_test

import (
	"context"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/xmltree"
)

// subscribeAny makes a and b mutually subscribed and waits until each
// sees the other online, whatever order the server sends the
// subscription answers and the presence in (clienttest.Subscribe expects
// Prosody's).
func subscribeAny(t *testing.T, a, b *client.Client) {
	t.Helper()
	ctx := context.Background()
	online := map[*client.Client]bool{}
	watch := func(c, other *client.Client, want string) func(client.Event) bool {
		return func(ev client.Event) bool {
			switch ev := ev.(type) {
			case *client.PresenceEvent:
				if ev.Available && ev.From.Equal(other.JID()) {
					online[c] = true
				}
			case *client.SubscriptionEvent:
				return ev.Type == want
			}
			return false
		}
	}
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		if err := from.Subscribe(ctx, to.JID().Bare()); err != nil {
			t.Fatal(err)
		}
		until(t, to, watch(to, from, "subscribe"))
		if err := to.ApproveSubscription(ctx, from.JID().Bare()); err != nil {
			t.Fatal(err)
		}
		until(t, from, watch(from, to, "subscribed"))
	}
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		c, other := pair[0], pair[1]
		if !online[c] {
			until(t, c, func(ev client.Event) bool {
				p, ok := ev.(*client.PresenceEvent)
				return ok && p.Available && p.From.Equal(other.JID())
			})
		}
	}
}

// TestIntegrationServers runs what depends on the server through Prosody
// and ejabberd alike: keys published and discovered over PEP (XEP-0189,
// with publish-options), a SIGMA-I session with them (XEP-0116), a key
// exchange by hand (XEP-0200 §9), logging renegotiated to mustnot
// (the server's XEP-0313 preferences), and an offline session (XEP-0187:
// options in a PEP node for presence subscribers, messages from offline
// storage) read when the contact comes back while the sender is still
// online and ends the session.
func TestIntegrationServers(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
		ast, bst := newStore(t), newStore(t)
		acfg := esession.Config{Offline: ast, OfflineLifetime: time.Hour, AcceptPolicy: esession.AcceptSubscribed, RekeyFreq: 4}
		bcfg := esession.Config{AcceptPolicy: esession.AcceptSubscribed, RekeyFreq: 4}
		a := connectKeyedTo(t, srv, alice, "laptop", ast, acfg)
		b := connectKeyedTo(t, srv, bob, "phone", bst, bcfg)
		subscribeAny(t, a.c, b.c)
		ctx := context.Background()
		a.publish(t)
		b.publish(t)
		if fp, err := b.es.FetchKey(ctx, a.c.JID().Bare()); err != nil || fp != a.fp {
			t.Fatalf("bob fetched alice's key %q, %v; want %q", fp, err, a.fp)
		}

		info, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true})
		if err != nil {
			t.Fatal(err)
		}
		clienttest.WaitFor(t, a.c, securityEvent(esession.KindEstablished))
		clienttest.WaitFor(t, b.c, securityEvent(esession.KindEstablished))
		got, err := a.es.SAS(b.c.JID())
		if err != nil || !got.ThreeMessage || got.PeerKey != b.fp || got.SAS != "" {
			t.Fatalf("alice's SIGMA-I session %+v, %v", got, err)
		}
		// Four stanzas: a key exchange is allowed (rekey_freq 4), and due
		// at the next one.
		exchangeKeyed(t, a, b, "keyed", info.Thread, false)
		exchangeKeyed(t, a, b, "again", info.Thread, false)
		if _, err := a.es.Rekey(ctx, b.c.JID()); err != nil {
			t.Fatal(err)
		}
		exchangeKeyed(t, a, b, "new keys", info.Thread, false)
		if _, err := b.es.Renegotiate(ctx, a.c.JID(), engine.LoggingMustNot); err != nil {
			t.Fatal(err)
		}
		clienttest.WaitFor(t, a.c, securityEvent(esession.KindRenegotiated))
		clienttest.WaitFor(t, b.c, securityEvent(esession.KindRenegotiated))
		if !a.es.MustNotLog(b.c.JID(), info.Thread) {
			t.Fatal("alice may log after the renegotiation to mustnot")
		}
		exchangeKeyed(t, a, b, "unlogged", info.Thread, false)

		// Alice goes offline: Close ends the session and publishes her
		// offline options; bob writes to her from them.
		if err := a.c.Close(); err != nil {
			t.Fatal(err)
		}
		clienttest.WaitFor(t, b.c, func(p *client.PresenceEvent) bool { return !p.Available && p.From.Equal(a.c.JID()) })
		off, err := b.es.StartOffline(ctx, a.c.JID().Bare(), "while you were away")
		if err != nil {
			t.Fatal(err)
		}
		if !off.Offline || off.PeerKey != a.fp {
			t.Fatalf("bob's offline session %+v", off)
		}
		// Bob stays online as she comes back: he sees her presence and
		// ends his offline session at once (XEP-0187 §5). Her server
		// sends her stored messages while it handles her initial
		// presence, so the session's stanzas reach her before his
		// terminate, which answers that presence, and she reads them.
		//
		// His ping round trip first: his server has handled his message
		// (it is in her offline storage) before she logs in. Without it
		// the message can reach ejabberd while she logs in; ejabberd
		// then stores it after it flushed her storage, and she gets it
		// only at her next login, after the terminate of a session she
		// does not know yet (2 of 10 runs here). No client sees that
		// message in between, so none can fetch it earlier (short of
		// XEP-0013 retrieval); it stays readable while her offline
		// options have not expired.
		ping := xmltree.New(client.NSClient, "iq", "type", "get", "to", b.c.JID().Domainpart()).Append(xmltree.New(client.NSPing, "ping"))
		if _, err := b.c.IQ(ctx, ping); err != nil {
			t.Fatal(err)
		}
		a2 := connectKeyedTo(t, srv, alice, "laptop", ast, acfg)
		clienttest.WaitFor(t, b.c, securityEvent(esession.KindTerminated))
		var read *client.MessageEvent
		seen := until(t, a2.c, func(ev client.Event) bool {
			if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" {
				read = m
			}
			return read != nil && isKind(esession.KindTerminated)(ev)
		})
		if read.Body != "while you were away" || !read.Security.Authenticated || read.Security.Fingerprint != b.fp || !read.Origin.Delayed {
			t.Fatalf("alice read %q: %+v %+v", read.Body, read.Security, read.Origin)
		}
		// A terminate before the session's stanzas would be a live
		// notice (an unknown session). Prosody also stores bob's
		// acknowledgement of the terminate she sent when she closed; its
		// delayed notice says nothing about the offline session.
		for _, ev := range seen {
			if n, ok := ev.(*client.NoticeEvent); ok && !n.Origin.Delayed {
				t.Fatalf("a notice before the offline session ended:\n%s", describe(seen))
			}
		}
	})
}
