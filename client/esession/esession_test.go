package esession

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// newOfflineESession returns a client that never connects, with the
// Encrypted Sessions mechanism registered.
func newOfflineESession(t *testing.T) (*client.Client, *Mechanism) {
	t.Helper()
	c, err := client.New(client.Config{JID: jid.MustParse("alice@example.org/laptop"), Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	es, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(es); err != nil {
		t.Fatal(err)
	}
	return c, es
}

// fromPeer parses an engine stanza as received from the peer.
func fromPeer(t *testing.T, o engine.Outbound, from string) *client.Incoming {
	t.Helper()
	st, err := xmltree.Parse(o.Stanza().Marshal(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SetAttr("from", from)
	return &client.Incoming{Stanza: st, From: jid.MustParse(from), To: jid.MustParse("alice@example.org/laptop"), Time: time.Now()}
}

func TestESessionFeaturesAndNoSession(t *testing.T) {
	c, es := newOfflineESession(t)
	f := c.Features()
	if !slices.Contains(f, engine.FeatureESession) || !slices.Contains(f, engine.FormTypeSSN) {
		t.Fatalf("features %q", f)
	}
	if es.Usable(context.Background(), jid.MustParse("bob@example.org")) {
		t.Fatal("usable without a session")
	}
	_, err := es.Seal(context.Background(), &client.Outgoing{To: jid.MustParse("bob@example.org"), Body: "hi"})
	if !errors.Is(err, ErrNoSession) {
		t.Fatalf("Seal without a session: %v", err)
	}
	for name, f := range map[string]func() error{
		"SAS":     func() error { _, err := es.SAS(jid.MustParse("bob@example.org")); return err },
		"Confirm": func() error { _, err := es.ConfirmSAS(jid.MustParse("bob@example.org"), "abcde", ""); return err },
		"End":     func() error { _, err := es.End(context.Background(), jid.MustParse("bob@example.org")); return err },
		"Accept": func() error {
			_, err := es.Accept(context.Background(), jid.MustParse("bob@example.org"), nil)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrNoSession) {
			t.Errorf("%s without a session: %v", name, err)
		}
	}
	if n := es.MessageError(&client.ErrorEvent{From: jid.MustParse("bob@example.org/x"), ID: "nope", Condition: "not-acceptable"}); n != nil {
		t.Fatalf("an unrelated error stanza produced events: %+v", n)
	}
}

// TestESessionCopies: carbons and archived copies never reach the engine.
// A copy of a request is an KindCopy event (or nothing, from the
// archive); a copy of a <c/> a notice; the live request is the one that
// counts.
func TestESessionCopies(t *testing.T) {
	c, es := newOfflineESession(t)
	bob, err := engine.NewManager(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, req, err := bob.Start("alice@example.org/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	const from = "bob@example.org/phone"

	for _, o := range []client.Origin{{Carbon: client.CarbonReceived}, {Carbon: client.CarbonSent}, {Archived: true, Delayed: true}} {
		in := fromPeer(t, req, from)
		in.Origin = o
		if ev := c.Pipeline().Receive(context.Background(), in); ev != nil {
			t.Fatalf("copy %+v delivered %#v", o, ev)
		}
	}
	if st := es.Status(); len(st) != 0 {
		t.Fatalf("a copy fed the engine: %+v", st)
	}
	// The carbons produced KindCopy events, the archive copy nothing.
	for range 2 {
		ev := nextEvent(t, c)
		se, ok := ev.(*client.SecurityEvent)
		if !ok || se.Kind != KindCopy || se.Mechanism != engine.NSStanzaEncryption {
			t.Fatalf("event %#v", ev)
		}
	}

	// A carbon copy of an encrypted stanza: a notice, never content.
	cEl := `<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><data>AAAAAAAAAAAAAAAAAAAAAA==</data><mac>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=</mac></c>`
	enc := engine.Outbound{To: "alice@example.org/laptop", Type: "chat", Thread: "t1", Payload: contentOf(t, cEl), Encrypted: true}
	for _, o := range []client.Origin{{Carbon: client.CarbonReceived}, {Archived: true}} {
		in := fromPeer(t, enc, from)
		in.Origin = o
		n, ok := c.Pipeline().Receive(context.Background(), in).(*client.NoticeEvent)
		if !ok || n.Reason != eme.ReasonNoSession || n.Namespace != engine.NSStanzaEncryption {
			t.Fatalf("copy of a <c/>: %#v", n)
		}
	}
	// The same stanza live: no session has that thread.
	n, ok := c.Pipeline().Receive(context.Background(), fromPeer(t, enc, from)).(*client.NoticeEvent)
	if !ok || n.Reason != eme.ReasonNoSession {
		t.Fatalf("<c/> without a session: %#v", n)
	}

	// The live request waits for the user (no subscription, policy ask).
	if ev := c.Pipeline().Receive(context.Background(), fromPeer(t, req, from)); ev != nil {
		t.Fatalf("request delivered %#v", ev)
	}
	ev := nextEvent(t, c)
	if se, ok := ev.(*client.SecurityEvent); !ok || se.Kind != KindRequest || se.Peer.String() != from {
		t.Fatalf("event %#v", ev)
	}
	st := es.Status()
	if len(st) != 1 || st[0].State != "asking" || st[0].Peer != from || st[0].Initiator {
		t.Fatalf("status %+v", st)
	}
	// The contact goes offline: the request is dropped.
	evs := es.Presence(context.Background(), &client.PresenceEvent{From: jid.MustParse(from)})
	if len(evs) != 1 || evs[0].Kind != KindTerminated || es.Status()[0].State != "ended" {
		t.Fatalf("after the contact left: %+v %+v", evs, es.Status())
	}
}

// nextEvent returns the next event the client emits.
func nextEvent(t *testing.T, c *client.Client) client.Event {
	t.Helper()
	select {
	case ev := <-c.Events():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

// contentOf parses stanza children given as XML text.
func contentOf(t *testing.T, x string) []*xmltree.Element {
	t.Helper()
	st, err := xmltree.Parse([]byte("<message xmlns='jabber:client'>"+x+"</message>"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Elements()
}

func TestMessageContent(t *testing.T) {
	body, rest := messageContent(contentOf(t, `<body>a &amp; b</body><active xmlns='http://jabber.org/protocol/chatstates'/>`))
	if body != "a & b" || len(rest) != 1 || rest[0].Name.Local != "active" {
		t.Fatalf("%q %v", body, rest)
	}
	if body, rest := messageContent(contentOf(t, "<x xmlns='urn:example'/>")); body != "" || len(rest) != 1 {
		t.Fatalf("%q %v", body, rest)
	}
}
