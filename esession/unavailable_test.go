package esession

import (
	"bytes"
	"testing"
)

// XEP-0155 §9.4: by default the session survives the peer's unavailable
// presence, and the user is told.
func TestPeerUnavailableKeepsSession(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, _, _, _ := negotiate(t, a, b)
	res := a.m.PeerUnavailable(bobJID)
	if len(res.Out) != 0 {
		t.Fatalf("sent %d stanzas", len(res.Out))
	}
	ev := eventOf[PeerWentOffline](t, res)
	if ev.Session != sa || ev.Terminated {
		t.Errorf("event %+v", ev)
	}
	if sa.State() != StateActive {
		t.Fatal("session ended")
	}
	o, err := sa.Seal(els(t, "<body>still here</body>")...)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := eventOf[Message](t, deliver(t, o, aliceJID, b.m, true)).Body(); body != "still here" {
		t.Errorf("body %q", body)
	}
	// A request waiting for the user is discarded even so: its sender
	// is gone and no session exists yet.
	c := newParty(t, "carol@example.net/x", Config{})
	_, mr, _ := c.m.Start("alice@example.org", nil)
	req := eventOf[RequestReceived](t, deliver(t, mr, "carol@example.net/x", a.m, false)).Session
	r := a.m.PeerUnavailable("carol@example.net/x")
	if ev := eventOf[PeerWentOffline](t, r); !ev.Terminated || req.State() != StateEnded || len(r.Out) != 0 {
		t.Errorf("pending request: %+v %v %#v", ev, req.State(), r.Out)
	}
	eventOf[Terminated](t, r)
	// Another resource of the peer, or another peer, concerns no session.
	for _, j := range []string{"bob@example.com/phone", bobBare, "carol@example.net/x"} {
		if r := a.m.PeerUnavailable(j); len(r.Events) != 0 || len(r.Out) != 0 {
			t.Errorf("%s: %#v", j, r)
		}
	}
}

// With TerminateOnUnavailable the session is terminated explicitly (never
// closed silently): an encrypted terminate is sent and the keys wiped.
func TestPeerUnavailableTerminates(t *testing.T) {
	a := newParty(t, aliceJID, Config{OnUnavailable: TerminateOnUnavailable})
	b := newParty(t, bobJID, Config{})
	sa, sb, _, _ := negotiate(t, a, b)
	pa := probe(sa)
	res := a.m.PeerUnavailable(bobJID)
	if len(res.Out) != 1 || !res.Out[0].Encrypted || res.Out[0].To != bobJID || bytes.Contains(payloadXML(res.Out[0]), []byte("terminate")) {
		t.Fatalf("out %#v", res.Out)
	}
	if ev := eventOf[PeerWentOffline](t, res); !ev.Terminated {
		t.Errorf("event %+v", ev)
	}
	if te := eventOf[Terminated](t, res); te.ByPeer || te.Err != nil || te.Reason != "peer went offline" {
		t.Errorf("terminated %+v", te)
	}
	pa.check(t)
	// The peer, if it kept its state, reads an ordinary terminate.
	r := deliver(t, res.Out[0], aliceJID, b.m, true)
	if te := eventOf[Terminated](t, r); !te.ByPeer || sb.State() != StateEnded {
		t.Errorf("peer: %+v", te)
	}

	// A plain session and a pending negotiation get a plain terminate; a
	// request waiting for the user is discarded.
	c := newParty(t, aliceJID, Config{OnUnavailable: TerminateOnUnavailable})
	d := newParty(t, bobJID, Config{AutoAccept: true})
	sp, m1, _ := c.m.Start(bobJID, &StartOptions{Plain: true})
	r2 := deliver(t, m1, aliceJID, d.m, true)
	deliver(t, r2.Out[0], bobJID, c.m, true)
	se, _, _ := c.m.Start(bobJID, nil)
	e := newParty(t, "erin@example.net/x", Config{})
	_, mr, _ := e.m.Start("alice@example.org", nil)
	req := eventOf[RequestReceived](t, deliver(t, mr, "erin@example.net/x", c.m, false)).Session
	res = c.m.PeerUnavailable(bobJID)
	if len(res.Out) != 2 || sp.State() != StateEnded || se.State() != StateEnded {
		t.Fatalf("out %#v, states %v %v", res.Out, sp.State(), se.State())
	}
	for _, o := range res.Out {
		if o.Encrypted || !bytes.Contains(payloadXML(o), []byte("terminate")) {
			t.Errorf("not a plain terminate: %s", o.Payload)
		}
	}
	if req.State() == StateEnded {
		t.Error("another peer's request ended")
	}
	res = c.m.PeerUnavailable("erin@example.net/x")
	if len(res.Out) != 0 || req.State() != StateEnded {
		t.Errorf("request: out %#v state %v", res.Out, req.State())
	}
	eventOf[Terminated](t, res)
}
