package esession_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/xmltree"
)

const nsES = engine.NSStanzaEncryption

// connectES logs an account in with the Encrypted Sessions mechanism
// registered and enabled.
func connectES(t *testing.T, srv *prosodytest.Server, acct prosodytest.Account, resource string, cfg esession.Config) (*client.Client, *esession.Mechanism) {
	t.Helper()
	return connectESTo(t, srv.Server(), acct, resource, cfg)
}

// connectESTo is connectES for any test server (servertest.Each).
func connectESTo(t *testing.T, srv *servertest.Server, acct servertest.Account, resource string, cfg esession.Config) (*client.Client, *esession.Mechanism) {
	t.Helper()
	es, err := esession.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := clienttest.ConnectTo(t, srv, acct, resource, func(c *client.Client) {
		if err := c.Register(es); err != nil {
			t.Fatal(err)
		}
	})
	return c, es
}

func securityEvent(kind client.SecurityKind) func(*client.SecurityEvent) bool {
	return func(e *client.SecurityEvent) bool { return e.Kind == kind && e.Mechanism == nsES }
}

// establish starts a session from a to b, waits until both sides have
// it, and returns both established events.
func establish(t *testing.T, a *client.Client, ae *esession.Mechanism, b *client.Client) (*client.SecurityEvent, *client.SecurityEvent, esession.Info) {
	t.Helper()
	ctx := context.Background()
	info, err := ae.Start(ctx, b.JID().Bare(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "requested" || info.Peer != b.JID().String() || !info.Initiator || len(info.Thread) != 22 {
		t.Fatalf("after Start: %+v (the only resource online should be chosen)", info)
	}
	eb := clienttest.WaitFor(t, b, securityEvent(esession.KindEstablished))
	ea := clienttest.WaitFor(t, a, securityEvent(esession.KindEstablished))
	if !ea.Peer.Equal(b.JID()) || !eb.Peer.Equal(a.JID()) {
		t.Fatalf("established with %s and %s", ea.Peer, eb.Peer)
	}
	if ea.Fingerprint == "" || ea.Fingerprint != eb.Fingerprint || len(ea.Fingerprint) != 5 {
		t.Fatalf("SAS %q and %q", ea.Fingerprint, eb.Fingerprint)
	}
	got, err := ae.SAS(b.JID().Bare())
	if err != nil || got.State != "active" || got.SAS != ea.Fingerprint || got.Thread != info.Thread {
		t.Fatalf("SAS(): %+v, %v", got, err)
	}
	return ea, eb, got
}

// exchange sends a message each way and checks how it arrives.
func exchange(t *testing.T, a, b *client.Client, text string, sas, thread string, verified bool) {
	t.Helper()
	ctx := context.Background()
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		body := text + " from " + from.JID().Localpart()
		if _, err := from.Send(ctx, &client.Outgoing{To: to.JID().Bare(), Body: body}, nsES); err != nil {
			t.Fatal(err)
		}
		m := clienttest.WaitFor(t, to, func(m *client.MessageEvent) bool { return m.Body != "" })
		sec := m.Security
		if m.Body != body || !m.From.Equal(from.JID()) || m.Thread != thread {
			t.Fatalf("%s got %q from %s on thread %q", to.JID(), m.Body, m.From, m.Thread)
		}
		if sec.Mechanism != nsES || sec.Verified != verified || sec.Fingerprint != sas || len(sec.Warnings) > 0 {
			t.Fatalf("security of %q: %+v", body, sec)
		}
	}
}

// TestIntegrationESession runs two clients through Prosody: negotiation,
// equal SAS, messages both ways, SAS confirmation, termination, a second
// session recognised through the retained secret, and a tampered stanza.
func TestIntegrationESession(t *testing.T) {
	clienttest.EachServer(t, integrationESession, servertest.WithoutCarbons)
}

func integrationESession(t *testing.T, srv *prosodytest.Server) {
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	aSecrets, bSecrets := &engine.MemorySecrets{}, &engine.MemorySecrets{}
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{Secrets: aSecrets})
	b, be := connectES(t, srv, bob, "phone", esession.Config{Secrets: bSecrets, AcceptPolicy: esession.AcceptSubscribed})
	ctx := context.Background()
	for _, c := range []*client.Client{a, b} {
		f := strings.Join(c.Features(), " ")
		if !strings.Contains(f, engine.FeatureESession) || !strings.Contains(f, engine.FormTypeSSN) {
			t.Fatalf("features %s", f)
		}
	}
	clienttest.Subscribe(t, a, b)

	// Session 1: bob accepts automatically (alice is subscribed), nobody
	// has retained secrets, the session is not verified.
	ea, eb, s1 := establish(t, a, ae, b)
	if s1.Verified || s1.SecretMatched || s1.ContinuityBroken || !strings.Contains(ea.Text, "NOT authenticated") ||
		!strings.Contains(eb.Text, "in order") {
		t.Fatalf("first session: %+v\n%s", s1, ea.Text)
	}
	if !ae.Usable(ctx, b.JID().Bare()) || !be.Usable(ctx, a.JID()) || ae.Usable(ctx, a.JID()) {
		t.Fatal("Usable does not reflect the established session")
	}
	exchange(t, a, b, "hello", s1.SAS, s1.Thread, false)

	// Both compare the SAS and confirm it.
	for _, x := range []struct {
		c  *client.Client
		es *esession.Mechanism
		p  *client.Client
	}{{a, ae, b}, {b, be, a}} {
		info, err := x.es.ConfirmSAS(x.p.JID().Bare(), s1.SAS, "")
		if err != nil || !info.Verified {
			t.Fatalf("ConfirmSAS: %+v %v", info, err)
		}
		v := clienttest.WaitFor(t, x.c, securityEvent(esession.KindVerified))
		if v.Fingerprint != s1.SAS {
			t.Fatalf("verified event %+v", v)
		}
	}
	exchange(t, a, b, "verified now", s1.SAS, s1.Thread, true)

	// Alice ends it: bob sees the terminate, alice the acknowledgement.
	// End reports "ending" even when bob's acknowledgement comes at once
	// (it once reported "ended" in CI, on ejabberd).
	info, err := ae.End(ctx, b.JID().Bare())
	if err != nil || info.State != "ending" {
		t.Fatalf("End: %+v %v", info, err)
	}
	if tb := clienttest.WaitFor(t, b, securityEvent(esession.KindTerminated)); !strings.Contains(tb.Text, "ended the Encrypted Session") {
		t.Fatalf("bob: %s", tb.Text)
	}
	clienttest.WaitFor(t, a, securityEvent(esession.KindTerminated))
	for _, x := range []struct {
		es   *esession.Mechanism
		peer *client.Client
	}{{ae, b}, {be, a}} {
		got, err := x.es.WaitFor(ctx, x.peer.JID(), s1.Thread, func(i esession.Info) bool { return true })
		if err != nil || got.State != "ended" || got.EndReason == "" {
			t.Fatalf("after the end: %+v %v", got, err)
		}
	}
	_, err = a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "too late"}, nsES)
	if !errors.Is(err, esession.ErrNoSession) || !strings.Contains(err.Error(), "the last one has ended (terminated)") {
		t.Fatalf("send after the end: %v", err)
	}

	// Session 2: the retained secret from session 1 matches on both sides
	// and its chain was confirmed, so the session is verified at once.
	ea, eb, s2 := establish(t, a, ae, b)
	if s2.Thread == s1.Thread || !s2.Verified || !s2.SecretMatched || s2.ContinuityBroken {
		t.Fatalf("second session: %+v", s2)
	}
	if !strings.Contains(ea.Text, "chain") || !strings.Contains(eb.Text, "chain") {
		t.Fatalf("established texts: %q, %q", ea.Text, eb.Text)
	}
	for _, c := range []*client.Client{a, b} {
		clienttest.WaitFor(t, c, securityEvent(esession.KindVerified))
	}
	if bi, err := be.SAS(a.JID()); err != nil || !bi.Verified || bi.SAS != s2.SAS {
		t.Fatalf("bob's view: %+v %v", bi, err)
	}
	exchange(t, a, b, "second", s2.SAS, s2.Thread, true)

	// A tampered <c/>: bob ends the session and shows a notice; his error
	// answer ends it at alice's side too.
	sealed, err := ae.Seal(ctx, &client.Outgoing{To: b.JID(), Body: "altered on the way"})
	st := sealed.Stanzas
	if err != nil || len(st) != 1 {
		t.Fatal(err)
	}
	data := st[0].Child(nsES, "c").Child(nsES, "data")
	text := data.Text()
	flip := "B"
	if text[0] == 'B' {
		flip = "C"
	}
	data.Children = []xmltree.Node{xmltree.CharData(flip + text[1:])}
	if err := a.SendElement(ctx, st[0]); err != nil {
		t.Fatal(err)
	}
	tb := clienttest.WaitFor(t, b, securityEvent(esession.KindTerminated))
	if !strings.Contains(tb.Text, "failed authentication") {
		t.Fatalf("bob: %s", tb.Text)
	}
	n := clienttest.WaitFor(t, b, func(n *client.NoticeEvent) bool { return true })
	if n.Reason != eme.ReasonVerificationFailed || n.Namespace != nsES || strings.Contains(n.Text, "altered on the way") {
		t.Fatalf("notice %+v", n)
	}
	fa := clienttest.WaitFor(t, a, securityEvent(esession.KindFailed))
	if !strings.Contains(fa.Text, "not-acceptable") {
		t.Fatalf("alice: %s", fa.Text)
	}
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "after tampering"}, nsES); !errors.Is(err, esession.ErrNoSession) {
		t.Fatalf("bob sent after the session failed: %v", err)
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "after tampering"}, nsES); !errors.Is(err, esession.ErrNoSession) {
		t.Fatalf("alice sent after the session failed: %v", err)
	}

	// Session 3: the failed session 2 still replaced the retained secret,
	// and its chain stays verified. Alice goes offline: Close sends the
	// encrypted terminate while the stream still works (XEP-0217 §6).
	_, _, s3 := establish(t, a, ae, b)
	if !s3.Verified || !s3.SecretMatched {
		t.Fatalf("third session: %+v", s3)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if tb := clienttest.WaitFor(t, b, securityEvent(esession.KindTerminated)); !strings.Contains(tb.Text, "ended the Encrypted Session") {
		t.Fatalf("bob: %s", tb.Text)
	}
	if st := ae.Status(); st[len(st)-1].State != "ended" {
		t.Fatalf("alice after Close: %+v", st[len(st)-1])
	}
}

// TestIntegrationESessionUnsubscribed: a request from a contact without a
// presence subscription is never answered automatically; the user
// declines or accepts it by hand.
func TestIntegrationESessionUnsubscribed(t *testing.T) {
	srv := prosodytest.Start(t)
	carol, bob := srv.AddUser(t, "carol", ""), srv.AddUser(t, "bob", "")
	c, ce := connectES(t, srv, carol, "tablet", esession.Config{})
	b, be := connectES(t, srv, bob, "phone", esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	ctx := context.Background()

	// Carol sees no presence of bob's: she names his resource.
	info, err := ce.Start(ctx, b.JID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := clienttest.WaitFor(t, b, securityEvent(esession.KindRequest))
	if !req.Peer.Equal(c.JID()) || !strings.Contains(req.Text, "no presence subscription") {
		t.Fatalf("request event %+v", req)
	}
	if st := be.Status(); len(st) != 1 || st[0].State != "asking" || st[0].Initiator {
		t.Fatalf("bob's sessions: %+v", st)
	}
	// Had bob answered, the answer would reach carol before this message.
	if _, err := b.Send(ctx, &client.Outgoing{To: c.JID(), Body: "plain marker"}, ""); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, c, func(m *client.MessageEvent) bool { return m.Body == "plain marker" })
	if got, _ := ce.WaitFor(ctx, b.JID(), info.Thread, func(esession.Info) bool { return true }); got.State != "requested" {
		t.Fatalf("carol's request was answered automatically: %+v", got)
	}

	if _, err := be.Decline(ctx, c.JID().Bare(), "not now"); err != nil {
		t.Fatal(err)
	}
	d := clienttest.WaitFor(t, c, securityEvent(esession.KindDeclined))
	if !strings.Contains(d.Text, "not now") {
		t.Fatalf("declined: %s", d.Text)
	}
	if _, err := be.Accept(ctx, c.JID(), nil); !errors.Is(err, esession.ErrNoSession) {
		t.Fatalf("accepting a declined request: %v", err)
	}

	// Second request: bob accepts by hand.
	if _, err := ce.Start(ctx, b.JID(), nil); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b, securityEvent(esession.KindRequest))
	if _, err := be.Accept(ctx, c.JID().Bare(), nil); err != nil {
		t.Fatal(err)
	}
	eb := clienttest.WaitFor(t, b, securityEvent(esession.KindEstablished))
	ec := clienttest.WaitFor(t, c, securityEvent(esession.KindEstablished))
	if eb.Fingerprint != ec.Fingerprint {
		t.Fatalf("SAS %q and %q", eb.Fingerprint, ec.Fingerprint)
	}
	if _, err := ce.Start(ctx, b.JID(), nil); !errors.Is(err, esession.ErrExists) {
		t.Fatalf("second Start while active: %v", err)
	}

	// A plaintext message on the session's thread is shown with a warning,
	// never as protected.
	ci, _ := ce.SAS(b.JID())
	plain := xmltree.New(client.NSClient, "message", "to", b.JID().String(), "type", "chat", "id", client.NewID())
	plain.Append(xmltree.New(client.NSClient, "body").AppendText("in the clear"))
	plain.Append(xmltree.New(client.NSClient, "thread").AppendText(ci.Thread))
	if err := c.SendElement(ctx, plain); err != nil {
		t.Fatal(err)
	}
	m := clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "in the clear" })
	if m.Security.Encrypted() || len(m.Security.Warnings) != 1 || m.Security.Warnings[0].Message.ID != eme.MsgESClearOnThread || !strings.Contains(m.Security.Warnings[0].Text, "not protected") {
		t.Fatalf("plaintext on the session thread: %+v", m.Security)
	}
	// A <c/> on an unknown thread is a notice, and the session goes on.
	forged := xmltree.New(client.NSClient, "message", "to", b.JID().String(), "type", "chat", "id", client.NewID())
	forged.Append(xmltree.New(client.NSClient, "thread").AppendText("unknown-thread"))
	forged.Append(xmltree.New(nsES, "c").Append(
		xmltree.New(nsES, "data").AppendText("AAAA"), xmltree.New(nsES, "mac").AppendText("AAAA")))
	if err := c.SendElement(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if n := clienttest.WaitFor(t, b, func(n *client.NoticeEvent) bool { return true }); n.Reason != eme.ReasonNoSession {
		t.Fatalf("notice %+v", n)
	}
	exchange(t, c, b, "still fine", ci.SAS, ci.Thread, false)

	// Bob's stream drops without a terminate: his sessions end with it.
	// Carol learns it from the unavailable presence that follows the
	// directed presence the session sent, although they have no
	// subscription; XEP-0155 §9.4: her session is kept (bob may come
	// back), and she is told, never silently.
	if err := b.Disconnect(); err != nil {
		t.Fatal(err)
	}
	lost := clienttest.WaitFor(t, b, securityEvent(esession.KindTerminated))
	if !strings.Contains(lost.Text, "connection was lost") || !lost.Peer.Equal(c.JID()) {
		t.Fatalf("bob: %+v", lost)
	}
	gone := clienttest.WaitFor(t, c, securityEvent(esession.KindPeerOffline))
	if !strings.Contains(gone.Text, "went offline") || !strings.Contains(gone.Text, "is kept") || !gone.Peer.Equal(b.JID()) {
		t.Fatalf("carol: %+v", gone)
	}
	if st := be.Status(); st[len(st)-1].State != "ended" {
		t.Fatalf("bob's sessions: %+v", st)
	}
	if st := ce.Status(); st[len(st)-1].State != "active" {
		t.Fatalf("carol's session: %+v", st)
	}
}

// TestIntegrationESessionConfirmBySAS: confirming names the SAS the user
// compared. A session that started after the user read the SAS (here a
// second one with the same contact) has another SAS and stays unverified;
// a SAS that no session has confirms nothing.
func TestIntegrationESessionConfirmBySAS(t *testing.T) {
	clienttest.EachServer(t, integrationESessionConfirmBySAS)
}

func integrationESessionConfirmBySAS(t *testing.T, srv *prosodytest.Server) {
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{Secrets: &engine.MemorySecrets{}, AcceptPolicy: esession.AcceptSubscribed})
	b, _ := connectES(t, srv, bob, "phone", esession.Config{Secrets: &engine.MemorySecrets{}, AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a, b)
	_, _, s1 := establish(t, a, ae, b) // alice reads this SAS...
	// ...and meanwhile a request from another resource of bob's account
	// is accepted automatically (bob is subscribed): a second session.
	b2, be2 := connectES(t, srv, bob, "tablet", esession.Config{Secrets: &engine.MemorySecrets{}})
	clienttest.WaitFor(t, b2, func(p *client.PresenceEvent) bool { return p.Available && p.From.Equal(a.JID()) })
	_, _, s2 := establish(t, b2, be2, a)
	if s1.SAS == s2.SAS {
		t.Skip("two sessions drew the same SAS (one chance in 28^5)")
	}
	if _, err := ae.ConfirmSAS(b.JID().Bare(), "zzzzz", ""); !errors.Is(err, esession.ErrSASMismatch) {
		t.Fatalf("confirming a SAS no session has: %v", err)
	}
	if _, err := ae.ConfirmSAS(b.JID().Bare(), s1.SAS, s2.Thread); !errors.Is(err, esession.ErrSASMismatch) {
		t.Fatalf("confirming a SAS on another session's thread: %v", err)
	}
	info, err := ae.ConfirmSAS(b.JID().Bare(), strings.ToUpper(s1.SAS), "")
	if err != nil || info.Thread != s1.Thread || !info.Verified {
		t.Fatalf("ConfirmSAS(s1): %+v %v", info, err)
	}
	for _, st := range ae.Status() {
		if st.Thread == s2.Thread && st.Verified {
			t.Fatalf("the newer session was verified by the older one's SAS: %+v", st)
		}
		if st.Thread == s1.Thread && !st.Verified {
			t.Fatalf("the confirmed session is not verified: %+v", st)
		}
	}
}
