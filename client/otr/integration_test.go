package otr_test

// OTR (XEP-0364) between Balcony clients through a real Prosody.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/otr/otrtest"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/xmltree"
)

// otrTestKeys are the DSA keys of the OTR engine's libotr test file.
var otrTestKeys = otrtest.Keys

// otrAccount is an account's persistent OTR state: key and store.
type otrAccount struct {
	key *engine.PrivateKey
	st  *store.Store
}

func newOTRAccount(t *testing.T, keyIndex int) *otrAccount {
	t.Helper()
	keys, err := otrTestKeys()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &otrAccount{key: keys[keyIndex], st: st}
}

// attachOTR registers an OTR mechanism for acct on c.
func attachOTR(t *testing.T, c *client.Client, acct *otrAccount, mod ...func(*otr.Config)) *otr.Mechanism {
	t.Helper()
	tag, err := acct.st.OTRInstanceTag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := otr.Config{Key: acct.key, InstanceTag: tag, Store: acct.st, Policy: otr.DefaultPolicy}
	for _, m := range mod {
		m(&cfg)
	}
	o, err := otr.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(o); err != nil {
		t.Fatal(err)
	}
	return o
}

// otrEvent waits for a security event of kind about peer.
func otrEvent(t *testing.T, c *client.Client, kind client.SecurityKind, peer jid.JID) *client.SecurityEvent {
	t.Helper()
	return clienttest.WaitFor(t, c, func(e *client.SecurityEvent) bool {
		return e.Mechanism == eme.OTR && e.Kind == kind && e.Peer.Equal(peer)
	})
}

// startOTR runs a manual start from a to b and waits for both ends.
func startOTR(t *testing.T, a *client.Client, ao *otr.Mechanism, b *client.Client) {
	t.Helper()
	if err := ao.Start(context.Background(), b.JID()); err != nil {
		t.Fatal(err)
	}
	otrEvent(t, a, "otr-private", b.JID())
	otrEvent(t, b, "otr-private", a.JID())
}

// noOTRInArchive fails if the account's archive holds an OTR message.
func noOTRInArchive(t *testing.T, c *client.Client, with jid.JID) {
	t.Helper()
	page, err := c.QueryArchive(context.Background(), client.ArchiveQuery{With: with})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		if k, _ := eme.ClassifyOTR(m.Message.ChildText(client.NSClient, "body")); k != eme.OTRNone || m.Message.Child(eme.NS, "encryption") != nil {
			t.Errorf("%s's archive holds an OTR message: %s", c.JID(), m.Message)
		}
	}
}

func TestIntegrationOTRConversation(t *testing.T) {
	clienttest.EachServer(t, integrationOTRConversation, servertest.WithoutCarbons)
}

func integrationOTRConversation(t *testing.T, srv *prosodytest.Server) {
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a := clienttest.Connect(t, srv, alice, "home")
	b := clienttest.Connect(t, srv, bob, "desk")
	ao := attachOTR(t, a, newOTRAccount(t, 4))
	bo := attachOTR(t, b, newOTRAccount(t, 3))
	ctx := context.Background()

	// No session: nothing is sent, in particular not in the clear.
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "too early"}, eme.OTR); !errors.Is(err, otr.ErrNoSession) {
		t.Fatalf("send without a session: %v", err)
	}
	startOTR(t, a, ao, b)
	st := ao.Status(ctx, b.JID())
	if st.State != otr.StatePrivateUnverified || st.Fingerprint != bo.Fingerprint().String() || st.SSID == "" || st.SSID != bo.Status(ctx, a.JID()).SSID {
		t.Fatalf("alice's status %+v", st)
	}

	// Messages both ways; the receipt comes after decryption.
	sent, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "hello <b>bob</b> &amp; all", Receipt: true}, eme.OTR)
	ids := sent.IDs
	if err != nil {
		t.Fatal(err)
	}
	m := clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body != "" })
	if m.Body != "hello bob & all" || m.Security.Mechanism != eme.OTR || m.Security.Verified || m.Security.Fingerprint != ao.Fingerprint().String() {
		t.Fatalf("bob got %+v", m)
	}
	r := clienttest.WaitFor(t, a, func(r *client.ReceiptEvent) bool { return true })
	if r.ID != ids[len(ids)-1] {
		t.Fatalf("receipt for %s, sent %v", r.ID, ids)
	}
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "hi alice"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "hi alice" || m.Security.State() != "unverified" {
		t.Fatalf("alice got %+v", m)
	}

	// SMP with a question, answered: both fingerprints become verified.
	if err := ao.StartSMP(ctx, b.JID(), "our street?", []byte("elm")); err != nil {
		t.Fatal(err)
	}
	q := otrEvent(t, b, "otr-smp-question", a.JID())
	if !strings.Contains(q.Text, "our street?") {
		t.Fatalf("question event %q", q.Text)
	}
	if err := bo.AnswerSMP(ctx, a.JID(), []byte("elm")); err != nil {
		t.Fatal(err)
	}
	otrEvent(t, b, "otr-smp-succeeded", a.JID())
	otrEvent(t, a, "otr-smp-succeeded", b.JID())
	if st := ao.Status(ctx, b.JID()); st.State != otr.StatePrivateVerified {
		t.Fatalf("alice's state after SMP: %v", st.State)
	}
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "verified now"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "verified now" || !m.Security.Verified {
		t.Fatalf("alice got %+v", m)
	}

	// Nothing of this is in either archive (no-permanent-store).
	noOTRInArchive(t, a, bob.JID)
	noOTRInArchive(t, b, alice.JID)

	// Bob goes offline: alice's session ends, without any presence
	// subscription (OTR sent directed presence).
	if a.Subscribed(b.JID()) {
		t.Fatal("test assumes no subscription")
	}
	b.Close()
	otrEvent(t, a, "otr-finished", b.JID())
	if st := ao.Status(ctx, b.JID()); st.State != otr.StatePlaintext {
		t.Fatalf("alice's state after bob left: %v", st.State)
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "gone?"}, eme.OTR); !errors.Is(err, otr.ErrNoSession) {
		t.Fatalf("send after bob left: %v", err)
	}
}

// nextVisible returns the next message, notice or security event.
func nextVisible(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	return clienttest.WaitFor(t, c, func(e client.Event) bool {
		switch e := e.(type) {
		case *client.MessageEvent:
			return e.Body != ""
		case *client.NoticeEvent, *client.SecurityEvent:
			return true
		}
		return false
	})
}

func TestIntegrationOTRCarbonsAndArchive(t *testing.T) {
	clienttest.EachServer(t, integrationOTRCarbonsAndArchive)
}

func integrationOTRCarbonsAndArchive(t *testing.T, srv *prosodytest.Server) {
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a1 := clienttest.Connect(t, srv, alice, "one")
	a2 := clienttest.Connect(t, srv, alice, "two")
	b := clienttest.Connect(t, srv, bob, "desk")
	aliceAcct := newOTRAccount(t, 4)
	a1o := attachOTR(t, a1, aliceAcct)
	a2o := attachOTR(t, a2, aliceAcct)
	bo := attachOTR(t, b, newOTRAccount(t, 3))
	ctx := context.Background()
	startOTR(t, a1, a1o, b)

	// OTR messages carry <private/>: the second resource gets no copy.
	if _, err := b.Send(ctx, &client.Outgoing{To: a1.JID(), Body: "for one only"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Send(ctx, &client.Outgoing{To: b.JID(), Body: "from one"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, a1, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "for one only" {
		t.Fatalf("a1 got %q", m.Body)
	}
	clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "from one" })
	if _, err := b.Send(ctx, &client.Outgoing{To: a1.JID(), Body: "marker 1"}, ""); err != nil {
		t.Fatal(err)
	}
	if ev, ok := nextVisible(t, a2).(*client.MessageEvent); !ok || ev.Body != "marker 1" || ev.Origin.Carbon != client.CarbonReceived {
		t.Fatalf("a2 saw %#v before the marker", ev)
	}
	clienttest.WaitFor(t, a1, func(m *client.MessageEvent) bool { return m.Body == "marker 1" })

	// A client that sets neither <private/> nor hints: the copies reach a2
	// (carbon) and the archive, and are never read or fed to OTR there.
	sealed, err := bo.Seal(ctx, &client.Outgoing{To: a1.JID(), Body: "unhinted", ID: client.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	query := xmltree.New(client.NSClient, "message", "to", a1.JID().String(), "type", "chat", "id", client.NewID())
	query.Append(xmltree.New(client.NSClient, "body").AppendText("?OTRv23?"))
	for _, st := range append(sealed.Stanzas, query) {
		if err := b.SendElement(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if m := clienttest.WaitFor(t, a1, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "unhinted" {
		t.Fatalf("a1 got %q", m.Body)
	}
	n, ok := nextVisible(t, a2).(*client.NoticeEvent)
	if !ok || n.Origin.Carbon != client.CarbonReceived || n.Reason != eme.ReasonNoKey || n.Namespace != eme.OTR {
		t.Fatalf("a2 got %#v for the carbon of an OTR message", n)
	}
	// The query inside the carbon was silently ignored: the next thing a2
	// sees is the marker, and it has no OTR state.
	if _, err := b.Send(ctx, &client.Outgoing{To: a1.JID(), Body: "marker 2"}, ""); err != nil {
		t.Fatal(err)
	}
	if ev, ok := nextVisible(t, a2).(*client.MessageEvent); !ok || ev.Body != "marker 2" {
		t.Fatalf("a2 saw %#v before the marker", ev)
	}
	if s := a2o.Sessions(ctx); len(s) != 0 {
		t.Fatalf("a2 has OTR sessions %+v", s)
	}

	// The archive holds exactly the two unhinted OTR messages; history
	// shows the encrypted one as a notice, never as text.
	page, err := a2.QueryArchive(ctx, client.ArchiveQuery{With: bob.JID})
	if err != nil {
		t.Fatal(err)
	}
	otrBodies := 0
	for _, m := range page.Messages {
		if k, _ := eme.ClassifyOTR(m.Message.ChildText(client.NSClient, "body")); k != eme.OTRNone {
			otrBodies++
		}
	}
	if otrBodies != 2 {
		t.Fatalf("archive holds %d OTR messages, want the 2 sent without hints", otrBodies)
	}
	hist := clienttest.History(t, a2, bob.JID, client.HistoryOptions{})
	notices := 0
	for _, ev := range hist {
		switch ev := ev.(type) {
		case *client.MessageEvent:
			if strings.Contains(ev.Body, "?OTR") || ev.Security.Encrypted() {
				t.Fatalf("history shows %+v", ev)
			}
		case *client.NoticeEvent:
			if !ev.Origin.Archived || ev.Namespace != eme.OTR {
				t.Fatalf("history notice %+v", ev)
			}
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("history has %d OTR notices, want 1: %#v", notices, hist)
	}
}

func TestIntegrationOTRReconnectAndReAKE(t *testing.T) {
	clienttest.EachServer(t, integrationOTRReconnectAndReAKE, servertest.WithoutCarbons)
}

func integrationOTRReconnectAndReAKE(t *testing.T, srv *prosodytest.Server) {
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a := clienttest.Connect(t, srv, alice, "home")
	ao := attachOTR(t, a, newOTRAccount(t, 4))
	bobAcct := newOTRAccount(t, 3)
	b1 := clienttest.Connect(t, srv, bob, "desk")
	attachOTR(t, b1, bobAcct)
	clienttest.Subscribe(t, a, b1)
	ctx := context.Background()
	startOTR(t, a, ao, b1)

	// Bob's client restarts: the session ends with his presence, and a new
	// one starts with the restarted client (same key and instance tag).
	b1.Close()
	otrEvent(t, a, "otr-finished", b1.JID())
	b2 := clienttest.Connect(t, srv, bob, "desk")
	b2o := attachOTR(t, b2, bobAcct)
	clienttest.WaitFor(t, a, func(p *client.PresenceEvent) bool { return p.Available && p.From.Equal(b2.JID()) })
	startOTR(t, a, ao, b2)
	if _, err := a.Send(ctx, &client.Outgoing{To: b2.JID(), Body: "welcome back"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b2, func(m *client.MessageEvent) bool { return m.Body == "welcome back" })

	// Bob's client loses its OTR state while staying online: alice's next
	// message is unreadable. Bob sees a notice (no text, no receipt), alice
	// is told, and the session restarts by itself.
	b2o.Shutdown()
	sentLost, err := a.Send(ctx, &client.Outgoing{To: b2.JID(), Body: "lost", Receipt: true}, eme.OTR)
	lost := sentLost.IDs
	if err != nil {
		t.Fatal(err)
	}
	n := clienttest.WaitFor(t, b2, func(n *client.NoticeEvent) bool { return true })
	if n.Reason != eme.ReasonNoSession || !strings.Contains(n.Text, "being started") {
		t.Fatalf("bob's notice %+v", n)
	}
	otrEvent(t, a, "otr-error", b2.JID())
	otrEvent(t, a, "otr-private", b2.JID())
	otrEvent(t, b2, "otr-private", a.JID())
	if sa, sb := ao.Status(ctx, b2.JID()), b2o.Status(ctx, a.JID()); sa.State != otr.StatePrivateUnverified || sa.SSID != sb.SSID {
		t.Fatalf("after the re-AKE: alice %+v, bob %+v", sa, sb)
	}
	sent, err := a.Send(ctx, &client.Outgoing{To: b2.JID(), Body: "again", Receipt: true}, eme.OTR)
	ids := sent.IDs
	if err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b2, func(m *client.MessageEvent) bool { return m.Body == "again" })
	r := clienttest.WaitFor(t, a, func(r *client.ReceiptEvent) bool { return true })
	if r.ID == lost[0] || r.ID != ids[0] {
		t.Fatalf("receipt for %s: the unreadable message %s must not be acknowledged, the readable %s must", r.ID, lost[0], ids[0])
	}
	noOTRInArchive(t, a, bob.JID)
}

// TestIntegrationOTRStreamEnd: a stream that ends and cannot be resumed
// (here: without stream management) ends the OTR sessions it carried.
func TestIntegrationOTRStreamEnd(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a := clienttest.Connect(t, srv, alice, "home", func(c *client.Config) {
		c.Reconnect = true
		c.MinBackoff = 50 * time.Millisecond
		c.DisableStreamManagement = true
	})
	ao := attachOTR(t, a, newOTRAccount(t, 4))
	b := clienttest.Connect(t, srv, bob, "desk")
	bo := attachOTR(t, b, newOTRAccount(t, 3))
	startOTR(t, a, ao, b)
	// Our stream ends: our sessions end (XEP-0364 §5.2), and the peer's
	// too when the server reports us offline.
	if err := a.Disconnect(); err != nil {
		t.Fatal(err)
	}
	otrEvent(t, a, "otr-finished", b.JID())
	otrEvent(t, b, "otr-finished", a.JID())
	clienttest.WaitFor(t, a, func(e *client.ConnectionEvent) bool { return e.State == client.Connected })
	if s := ao.Sessions(context.Background()); len(s) != 0 {
		t.Fatalf("sessions after reconnect: %+v", s)
	}
	if s := bo.Sessions(context.Background()); len(s) != 0 {
		t.Fatalf("bob's sessions: %+v", s)
	}
}

// TestIntegrationOTRResumed: a connection cut under stream management is
// resumed, and the OTR session it carried goes on untouched on both
// sides: no session ends, no new key exchange, messages flow both ways.
func TestIntegrationOTRResumed(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a := clienttest.Connect(t, srv, alice, "home", func(c *client.Config) {
		c.Reconnect = true
		c.MinBackoff = 10 * time.Millisecond
	})
	ao := attachOTR(t, a, newOTRAccount(t, 4))
	b := clienttest.Connect(t, srv, bob, "desk")
	attachOTR(t, b, newOTRAccount(t, 3))
	startOTR(t, a, ao, b)
	before := ao.Sessions(context.Background())
	if len(before) != 1 || before[0].SSID == "" {
		t.Fatalf("sessions %+v", before)
	}
	if err := a.Disconnect(); err != nil {
		t.Fatal(err)
	}
	// Nothing ends on alice's side until the stream is back, resumed.
	for {
		ev := clienttest.WaitFor[client.Event](t, a, nil)
		if se, ok := ev.(*client.SecurityEvent); ok && se.Mechanism == eme.OTR {
			t.Fatalf("OTR event across a resumed stream: %+v", se)
		}
		if ce, ok := ev.(*client.ConnectionEvent); ok && ce.State == client.Connected {
			if !ce.Resumed {
				t.Fatalf("not resumed: %+v", ce)
			}
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "after the cut"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "after the cut" }); m.Security.Mechanism != eme.OTR {
		t.Fatalf("bob got %+v", m.Security)
	}
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "still private"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body == "still private" }); m.Security.Mechanism != eme.OTR {
		t.Fatalf("alice got %+v", m.Security)
	}
	if after := ao.Sessions(context.Background()); len(after) != 1 || after[0].SSID != before[0].SSID || after[0].State != before[0].State {
		t.Fatalf("session before %+v, after %+v", before, after)
	}
}
