package esession_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/xmltree"
)

// TestIntegrationPresenceAndIQ: a session that negotiated presence and iq
// stanzas (XEP-0200 §4) carries them encrypted, in order with the
// messages: presence arrives with its show and status, an iq request is
// answered by the client and the answer comes back encrypted. A session
// that did not negotiate them refuses to send them.
func TestIntegrationPresenceAndIQ(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	cfg := esession.Config{Stanzas: []string{engine.StanzaPresence, engine.StanzaIQ}, AcceptPolicy: esession.AcceptSubscribed}
	a, ae := connectES(t, srv, alice, "laptop", cfg)
	b, be := connectES(t, srv, bob, "phone", cfg)
	clienttest.Subscribe(t, a, b)
	_, _, info := establish(t, a, ae, b)
	if len(info.Stanzas) != 3 || !info.SharePresence {
		t.Fatalf("session %+v", info)
	}
	ctx := context.Background()
	if err := ae.SendPresence(ctx, b.JID(), "away", "in a meeting"); err != nil {
		t.Fatal(err)
	}
	p := clienttest.WaitFor(t, b, func(p *client.PresenceEvent) bool { return p.Mechanism != "" })
	if p.Mechanism != nsES || p.Show != "away" || p.Status != "in a meeting" || !p.From.Equal(a.JID()) || !p.Available {
		t.Fatalf("encrypted presence %+v", p)
	}
	// A message between, then an iq: every stanza in the one counter
	// sequence.
	exchange(t, a, b, "between", info.SAS, info.Thread, false)
	typ, content, err := be.IQ(ctx, a.JID(), "get", xmltree.New("http://jabber.org/protocol/disco#info", "query"))
	if err != nil || typ != "result" || len(content) != 1 || content[0].Name.Local != "query" {
		t.Fatalf("encrypted disco: %q %v %v", typ, content, err)
	}
	if !strings.Contains(string(content[0].Marshal("")), engine.FeatureESession) {
		t.Fatalf("disco answer %s", content[0].Marshal(""))
	}
	// A request the client does not know gets its error: the condition
	// in the clear beside an empty <c/> (XEP-0200 §4), so that the
	// counters stay in step.
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	typ, _, err = be.IQ(tctx, a.JID(), "get", xmltree.New("urn:example:unknown", "q"))
	var se *client.StanzaError
	if typ != "error" || !errors.As(err, &se) || se.Condition != "service-unavailable" {
		t.Fatalf("unknown request: %q, %v", typ, err)
	}
	exchange(t, a, b, "still in order", info.SAS, info.Thread, false)

	// Without presence in the session, it is refused before anything is
	// sealed.
	c, ce := connectES(t, srv, srv.AddUser(t, "carol", ""), "pad", esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a, c)
	establish(t, c, ce, a)
	if err := ce.SendPresence(ctx, a.JID(), "dnd", ""); !errors.Is(err, esession.ErrNotNegotiated) {
		t.Fatalf("presence without the session carrying it: %v", err)
	}
}

// TestIntegrationContinueAndRenegotiate: the logging parameter is
// renegotiated (XEP-0155 §6) and both are told; then alice moves the
// session to another of her resources (XEP-0155 §5): the contact agrees,
// the session is handed over with its keys and goes on there, and the
// old resource can no longer use it.
func TestIntegrationContinueAndRenegotiate(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	b, be := connectES(t, srv, bob, "phone", esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a, b)
	_, _, info := establish(t, a, ae, b)
	ctx := context.Background()

	if _, err := ae.Renegotiate(ctx, b.JID(), engine.LoggingMustNot); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{a, b} {
		ev := clienttest.WaitFor(t, c, securityEvent(esession.KindRenegotiated))
		if !strings.Contains(ev.Text, "renegotiated") || !strings.Contains(ev.Text, "mustnot") {
			t.Fatalf("%s: %s", c.JID(), ev.Text)
		}
	}
	if bi, _ := be.SAS(a.JID()); bi.Logging != engine.LoggingMustNot {
		t.Fatalf("bob's session after the renegotiation %+v", bi)
	}
	exchange(t, a, b, "renegotiated", info.SAS, info.Thread, false)

	// Alice's desk resource is online; she moves the session there.
	d, de := connectES(t, srv, alice, "desk", esession.Config{})
	clienttest.WaitFor(t, b, func(p *client.PresenceEvent) bool { return p.Available && p.From.Equal(d.JID()) })
	if _, err := ae.Continue(ctx, b.JID(), "desk"); err != nil {
		t.Fatal(err)
	}
	mv := clienttest.WaitFor(t, b, securityEvent(esession.KindMoved))
	if !strings.Contains(mv.Text, "alice@localhost/desk") {
		t.Fatalf("bob: %s", mv.Text)
	}
	ev := clienttest.WaitFor(t, a, securityEvent(esession.KindMoved))
	if !strings.Contains(ev.Text, "alice@localhost/desk") {
		t.Fatalf("alice: %s", ev.Text)
	}
	state, hi, err := ae.Handover(b.JID())
	if err != nil || hi.State != "ended" {
		t.Fatalf("Handover: %+v, %v", hi, err)
	}
	adopted, err := de.Adopt(ctx, state)
	clear(state)
	if err != nil || adopted.State != "active" || adopted.Thread != info.Thread || adopted.SAS != info.SAS || adopted.Peer != b.JID().String() {
		t.Fatalf("Adopt: %+v, %v", adopted, err)
	}
	clienttest.WaitFor(t, d, securityEvent(esession.KindMoved))
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "from the laptop"}, nsES); !errors.Is(err, esession.ErrNoSession) {
		t.Fatalf("the old resource sent in a moved session: %v", err)
	}
	exchange(t, d, b, "from the desk", info.SAS, info.Thread, false)
}

// TestIntegrationPlainThreads: plain chats get XEP-0201 threads: a
// conversation keeps one thread per contact, and the contact's replies
// continue it.
func TestIntegrationPlainThreads(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{})
	b, be := connectES(t, srv, bob, "phone", esession.Config{})
	ctx := context.Background()
	th := ae.PlainThread(b.JID())
	if len(th) != 22 || ae.PlainThread(b.JID().Bare()) != th {
		t.Fatalf("thread %q is not kept per contact", th)
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "plain hello", Thread: th}, ""); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "plain hello" }); m.Thread != th {
		t.Fatalf("bob got thread %q, want %q", m.Thread, th)
	}
	reply := be.PlainThread(a.JID())
	if reply != th {
		t.Fatalf("bob's reply thread %q, want alice's %q", reply, th)
	}
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "plain reply", Thread: reply}, ""); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body == "plain reply" }); m.Thread != th {
		t.Fatalf("alice got thread %q", m.Thread)
	}
	ae.EndPlainThread(b.JID())
	if next := ae.PlainThread(b.JID()); next == th || len(next) != 22 {
		t.Fatalf("a new conversation keeps thread %q", next)
	}
}
