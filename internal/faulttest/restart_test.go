package faulttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	esclient "github.com/balcony-im/balcony/client/esession"
	otrclient "github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/servertest"
)

// TestOTRAfterServerRestart: a server restart loses every stream for
// good (no resumption). The OTR conversation ends on both sides with a
// notice, a message sealed in it whose delivery was not confirmed is
// reported failed to its sender (or, if the server kept it, shown to the
// recipient as a notice that it could not be read: never dropped without
// a word), and, the policy being "always", the next message starts a new
// conversation by itself and arrives privately.
func TestOTRAfterServerRestart(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		alice := newPeer(t, srv, srv.AddUser(t, "alice", ""), options{otr: true, otrKey: 4})
		bob := newPeer(t, srv, srv.AddUser(t, "bob", ""), options{otr: true, otrKey: 3})
		subscribe(t, alice, bob)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		startPrivate(ctx, t, alice, bob)

		// Alice's connection goes down and stays down; her server keeps
		// her session for resumption, so bob's conversation goes on and
		// his message waits on the server for her.
		sent := sendToAway(ctx, t, bob, alice, "in flight")

		// The server restarts: no stream can be resumed.
		marks := []int{alice.col.mark(), bob.col.mark()}
		srv.Restart(t)
		alice.proxy.Refuse(false)
		for i, p := range []*peer{alice, bob} {
			p.col.wait(t, "a new stream", since(marks[i], has(func(e *client.ConnectionEvent) bool { return e.State == client.Connected && !e.Resumed })))
		}
		alice.col.wait(t, "alice's conversation ends", otrEvent(otrclient.KindFinished, bob.c.JID()))
		bob.col.wait(t, "bob's conversation ends", otrEvent(otrclient.KindFinished, alice.c.JID()))
		if alice.otrPrivate(bob.c.JID()) || bob.otrPrivate(alice.c.JID()) {
			t.Fatal("a conversation survived the lost streams")
		}
		// Bob learns that his message may not have been read.
		bob.col.wait(t, "the fate of bob's message", has(func(f *client.FateEvent) bool {
			return f.ID == sent.ID && f.Fate == client.FateFailed && errors.Is(f.Err, client.ErrGivenUp)
		}))
		for _, ev := range alice.col.snapshot() {
			if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" {
				t.Fatalf("alice shows a message: %+v", m)
			}
		}

		// Policy "always": the next message is held, a new conversation
		// starts by itself, and the message leaves in it.
		again, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID(), Body: "after the restart"}, eme.OTR)
		if err != nil || !again.Held {
			t.Fatalf("alice's message after the restart: %+v, %v", again, err)
		}
		bob.col.wait(t, "the message after the restart", has(func(m *client.MessageEvent) bool {
			return m.Body == "after the restart" && m.Security.Mechanism == eme.OTR
		}))
		if !alice.otrPrivate(bob.c.JID()) {
			t.Fatal("no private conversation after the restart")
		}
		// Whatever alice's client got of bob's lost message was a notice.
		for _, ev := range alice.col.snapshot() {
			if m, ok := ev.(*client.MessageEvent); ok && m.Body == "in flight" {
				t.Fatalf("a message of the lost conversation was read: %+v", m)
			}
			if n, ok := ev.(*client.NoticeEvent); ok {
				t.Logf("alice's notice: %s (%s)", n.Text, n.Reason)
			}
		}
	})
}

// TestESessionAfterServerRestart: an Encrypted Session ends on both sides
// with a notice when a server restart loses the streams for good, and a
// message is then refused rather than sent outside a session. (A new
// session starts as the contact's policy says: a request that reaches the
// contact among what the server kept while it was offline waits for the
// user, as it may be stale.)
func TestESessionAfterServerRestart(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		alice := newPeer(t, srv, srv.AddUser(t, "alice", ""), options{es: true})
		bob := newPeer(t, srv, srv.AddUser(t, "bob", ""), options{es: true})
		subscribe(t, alice, bob)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		established := has(func(e *client.SecurityEvent) bool {
			return e.Mechanism == alice.es.Namespace() && e.Kind == esclient.KindEstablished
		})
		if _, err := alice.es.Start(ctx, bob.c.JID().Bare(), nil); err != nil {
			t.Fatal(err)
		}
		alice.col.wait(t, "alice's session", established)
		bob.col.wait(t, "bob's session", established)

		marks := []int{alice.col.mark(), bob.col.mark()}
		srv.Restart(t)
		for i, p := range []*peer{alice, bob} {
			p.col.wait(t, "the session's end", has(func(e *client.SecurityEvent) bool {
				return e.Mechanism == alice.es.Namespace() && e.Kind == esclient.KindTerminated && e.Text != ""
			}))
			// A stream after the restart (the first one matches too).
			p.col.wait(t, "a new stream", since(marks[i], has(func(e *client.ConnectionEvent) bool { return e.State == client.Connected && !e.Resumed })))
		}
		if _, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID(), Body: "no session"}, alice.es.Namespace()); !errors.Is(err, esclient.ErrNoSession) {
			t.Fatalf("a message without a session: %v", err)
		}
	})
}

// TestOTRUnreadableMessageFailsAtItsSender: a message sealed in an OTR
// conversation that its recipient no longer has (the recipient's client
// died and a new one logged in under the same address before the message
// reached it) is shown to the recipient as a notice, and its sender learns
// that this very message was not read: the recipient answers it with a
// message error carrying its id, and its fate is failed.
func TestOTRUnreadableMessageFailsAtItsSender(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		bobAcct := srv.AddUser(t, "bob", "")
		alice := newPeer(t, srv, srv.AddUser(t, "alice", ""), options{otr: true, otrKey: 4, otrManual: true})
		bob := newPeer(t, srv, bobAcct, options{otr: true, otrKey: 3, otrManual: true})
		subscribe(t, alice, bob)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		startPrivate(ctx, t, alice, bob)

		// Bob's connection dies; the server keeps his session for a
		// resumption, so alice's conversation goes on and her message
		// waits there for him.
		sent := sendToAway(ctx, t, alice, bob, "are you there")

		// Bob's process ends (the conversation with it) and a new one logs
		// in under the same address: the server hands it what waited.
		if err := bob.c.Close(); err != nil {
			t.Logf("closing bob offline: %v", err)
		}
		bob2 := newPeer(t, srv, bobAcct, options{otr: true, otrKey: 3, otrManual: true, st: bob.st})
		if !bob2.col.waitFor(30*time.Second, has(func(n *client.NoticeEvent) bool {
			return n.ID == sent.ID && n.Reason == eme.ReasonNoSession
		})) {
			for _, ev := range bob2.col.snapshot() {
				t.Logf("bob2: %T %+v", ev, ev)
			}
			for _, ev := range alice.col.snapshot() {
				t.Logf("alice: %T %+v", ev, ev)
			}
			t.Fatal("no notice")
		}
		alice.col.wait(t, "the fate of alice's message: failed, not read", has(func(f *client.FateEvent) bool {
			return f.ID == sent.ID && f.Fate == client.FateFailed && f.Condition == "not-acceptable"
		}))
		for _, ev := range bob2.col.snapshot() {
			if m, ok := ev.(*client.MessageEvent); ok && m.Body == "are you there" {
				t.Fatalf("the message was read: %+v", m)
			}
		}
	})
}

// startPrivate starts an OTR conversation from a to b and waits until
// both sides are private.
func startPrivate(ctx context.Context, t *testing.T, a, b *peer) {
	t.Helper()
	if err := a.otr.Start(ctx, b.c.JID()); err != nil {
		t.Fatal(err)
	}
	a.col.wait(t, a.c.JID().Localpart()+" private", otrEvent(otrclient.KindPrivate, b.c.JID()))
	b.col.wait(t, b.c.JID().Localpart()+" private", otrEvent(otrclient.KindPrivate, a.c.JID()))
}

// sendToAway takes to's connection down for good (its server keeps the
// session for a resumption, so from's conversation goes on), then sends
// body from "from" in the conversation, asking for a receipt, and waits
// until the server acknowledged it.
func sendToAway(ctx context.Context, t *testing.T, from, to *peer, body string) client.Sent {
	t.Helper()
	to.proxy.Refuse(true)
	to.proxy.Cut()
	to.col.wait(t, to.c.JID().Localpart()+" disconnected", has(func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected }))
	sent, err := from.c.Send(ctx, &client.Outgoing{To: to.c.JID(), Body: body, Receipt: true}, eme.OTR)
	if err != nil || sent.Held {
		t.Fatalf("%s's message: %+v, %v", from.c.JID().Localpart(), sent, err)
	}
	from.col.wait(t, "the message acknowledged", has(func(f *client.FateEvent) bool { return f.ID == sent.ID && f.Fate == client.FateAcked }))
	return sent
}
