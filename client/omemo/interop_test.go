package omemo_test

import (
	"fmt"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/internal/omemopeer"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/omemo"
)

// Interoperability with python-omemo 1.0 (oldmemo and twomemo 1.0.3 over
// slixmpp, internal/omemopeer) through the real servers: a client with
// this package's mechanisms on one side, python-omemo's SessionManager on
// the other, each generation, each direction.

func peerGen(g engine.Generation) string {
	if g == engine.V2 {
		return omemopeer.Gen2
	}
	return omemopeer.Gen03
}

func startPeer(t *testing.T, srv *servertest.Server, acct servertest.Account, resource string) *omemopeer.XMPPPeer {
	t.Helper()
	return omemopeer.StartXMPP(t, srv, acct, omemopeer.XMPPOptions{Resource: resource})
}

func peerJID(p *omemopeer.XMPPPeer) jid.JID { return jid.MustParse(p.Bare) }

// peerSend makes p send body and checks that python-omemo encrypted it
// for the given devices of to (sorted), with or without key exchanges.
func peerSend(t *testing.T, p *omemopeer.XMPPPeer, to string, g engine.Generation, body string) *omemopeer.Sent {
	t.Helper()
	s, err := p.Send(to, peerGen(g), body)
	if err != nil {
		t.Fatalf("%s sending %q: %v", p.JID, body, err)
	}
	if len(s.Errors) > 0 {
		t.Fatalf("%s sending %q: %v", p.JID, body, s.Errors)
	}
	return s
}

// keysFor returns the recipient devices of a python-omemo message for a
// bare JID (0.3 names no JIDs: the peer lists all keys under its own).
func keysFor(s *omemopeer.Sent, bare string) map[uint32]bool {
	out := map[uint32]bool{}
	for _, k := range s.Keys[bare] {
		out[k.RID] = k.PreKey
	}
	return out
}

// expectPeerMessage waits for the next message event on p and checks it;
// carbon "*" accepts a direct delivery and a carbon (a message to the bare
// JID of an account with several devices, as the server chooses).
func expectPeerMessage(t *testing.T, p *omemopeer.XMPPPeer, sid uint32, g engine.Generation, body, carbon string, prekey bool) omemopeer.Event {
	t.Helper()
	ev, err := p.Next("", func(ev omemopeer.Event) bool {
		return ev.Kind == "message" || ev.Kind == "decrypt_error" || ev.Kind == "plain"
	}, wait)
	if err != nil {
		t.Fatalf("%s waiting for %q: %v", p.JID, body, err)
	}
	if ev.Kind != "message" || ev.Gen != peerGen(g) || ev.Body != body || ev.SID != sid || (ev.Carbon != carbon && carbon != "*") || ev.PreKey != prekey {
		t.Fatalf("%s got %+v, want %s message %q from device %d, carbon %q, prekey %v", p.JID, ev, peerGen(g), body, sid, carbon, prekey)
	}
	if len(ev.Warnings) > 0 {
		t.Errorf("%s: warnings %v", p.JID, ev.Warnings)
	}
	if g == engine.V2 {
		env := ev.Envelope
		if env == nil || env.Time == "" || env.RPad <= 0 || !slices.Equal(env.Content, []string{"{jabber:client}body"}) {
			t.Errorf("envelope %+v", env)
		}
	}
	return ev
}

func peerNext(t *testing.T, p *omemopeer.XMPPPeer, kind string, match func(omemopeer.Event) bool) omemopeer.Event {
	t.Helper()
	ev, err := p.Next(kind, match, wait)
	if err != nil {
		t.Fatalf("%s: %v", p.JID, err)
	}
	return ev
}

// quiet matches the peer events a test must not leave unread: not the
// protocol's own traffic, nor the carbons of what another python-omemo
// device of the same account sent.
func quiet(ev omemopeer.Event) bool {
	switch ev.Kind {
	case "devicelist", "sent_empty", "not_for_us", "duplicate", "empty":
		return false
	case "message":
		return ev.Carbon != "sent"
	}
	return true
}

func peerQuiet(t *testing.T, ps ...*omemopeer.XMPPPeer) {
	t.Helper()
	for _, p := range ps {
		if ev, err := p.TryNext("", quiet); err == nil {
			t.Errorf("%s: unexpected %+v", p.JID, ev)
		}
	}
}

func peerFingerprint(t *testing.T, p *omemopeer.XMPPPeer) string {
	t.Helper()
	id, err := p.Identity()
	if err != nil {
		t.Fatal(err)
	}
	return trustFpr(id.Fingerprint)
}

// TestInteropConversation: python-omemo starts a session with Balcony and
// Balcony one with python-omemo, in both generations; the first message
// is a key exchange, the receiver completes it with an empty message and
// no later message carries one; a conversation with ratchet turns both
// ways, a one-way run that asks for a heartbeat (XEP-0384 §7, counter 53)
// each way.
func TestInteropConversation(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{})
		alice := startPeer(t, srv, srv.AddUser(t, "alice", ""), "")
		dave := startPeer(t, srv, srv.AddUser(t, "dave", ""), "")
		aliceFpr := peerFingerprint(t, alice)
		bobID := bob.d.DeviceID()
		for _, g := range gens {
			t.Run(g.String(), func(t *testing.T) {
				// python-omemo first: a key exchange for Balcony's device.
				body := "from python-omemo, " + g.String() + " ✓ <&>"
				s := peerSend(t, alice, bob.bare.String(), g, body)
				if k := keysFor(s, bob.bare.String()); len(k) != 1 || !k[bobID] {
					t.Fatalf("alice encrypted for %+v, want a key exchange for %d", s.Keys, bobID)
				}
				m := bob.message(t, peerJID(alice), body)
				if sec := m.Security; sec.Fingerprint != aliceFpr || sec.Trust != "blind" || !sec.Authenticated || sec.Verified || len(sec.Warnings) > 0 {
					t.Fatalf("Balcony read alice's first message with %+v (alice's fingerprint %s)", sec, aliceFpr)
				}
				// Balcony completed the session with an empty message.
				if e := peerNext(t, alice, "empty", nil); e.SID != bobID || e.PreKey || e.Gen != peerGen(g) {
					t.Fatalf("alice got %+v", e)
				}
				bob.send(t, peerJID(alice), g, "Balcony answers, "+g.String())
				ev := expectPeerMessage(t, alice, bobID, g, "Balcony answers, "+g.String(), "", false)
				if trustFpr(ev.Fingerprint) != trustFpr(bob.d.Fingerprint()) {
					t.Fatalf("python-omemo sees Balcony's key as %s, Balcony says %s", ev.Fingerprint, bob.d.Fingerprint())
				}

				// Balcony first: a key exchange built from dave's bundle.
				bob.send(t, peerJID(dave), g, "hello dave, "+g.String())
				expectPeerMessage(t, dave, bobID, g, "hello dave, "+g.String(), "", true)
				peerNext(t, dave, "sent_empty", nil)
				// dave's reply comes after his empty message: once Balcony
				// read it, it read the empty message too.
				peerSend(t, dave, bob.bare.String(), g, "hi bob")
				bob.message(t, peerJID(dave), "hi bob")
				bob.send(t, peerJID(dave), g, "no key exchange now")
				expectPeerMessage(t, dave, bobID, g, "no key exchange now", "", false)

				// Ratchet turns: runs of 1 to 4 messages each way.
				for round, run := range []int{1, 3, 2, 4, 1, 2} {
					for i := range run {
						body := fmt.Sprintf("%v round %d message %d", g, round, i)
						if round%2 == 0 {
							peerSend(t, alice, bob.bare.String(), g, body)
							bob.message(t, peerJID(alice), body)
						} else {
							bob.send(t, peerJID(alice), g, body)
							expectPeerMessage(t, alice, bobID, g, body, "", false)
						}
					}
				}

				// A one-way run from python-omemo: Balcony sends a heartbeat
				// on the message with counter 53 (the 54th of a chain).
				bob.send(t, peerJID(alice), g, "your turn")
				expectPeerMessage(t, alice, bobID, g, "your turn", "", false)
				for n := range 54 {
					body := fmt.Sprintf("one-way %d", n)
					peerSend(t, alice, bob.bare.String(), g, body)
					bob.message(t, peerJID(alice), body)
					if n == 52 {
						if ev, err := alice.TryNext("empty", nil); err == nil {
							t.Fatalf("heartbeat too early: %+v", ev)
						}
					}
				}
				if e := peerNext(t, alice, "empty", nil); e.SID != bobID {
					t.Fatalf("alice got %+v", e)
				}
				// And a one-way run from Balcony: python-omemo sends one.
				peerSend(t, alice, bob.bare.String(), g, "and yours")
				bob.message(t, peerJID(alice), "and yours")
				for n := range 54 {
					body := fmt.Sprintf("Balcony one-way %d", n)
					bob.send(t, peerJID(alice), g, body)
					expectPeerMessage(t, alice, bobID, g, body, "", false)
				}
				peerNext(t, alice, "sent_empty", nil)
				peerSend(t, alice, bob.bare.String(), g, "after the heartbeat")
				bob.message(t, peerJID(alice), "after the heartbeat")
				bob.send(t, peerJID(alice), g, "still fine")
				expectPeerMessage(t, alice, bobID, g, "still fine", "", false)

				bob.noMessages(t)
				peerQuiet(t, alice, dave)
			})
		}
	})
}
