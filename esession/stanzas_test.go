package esession

import (
	"errors"
	"testing"
)

// deliverStanza is deliver for any stanza kind.
func deliverStanza(t testing.TB, o Outbound, from string, m *Manager) (Result, error) {
	t.Helper()
	in, err := ParseStanza(wire(t, o.Stanza()))
	if err != nil {
		t.Fatalf("ParseStanza: %v\n%s", err, o.Stanza().Marshal(""))
	}
	in.From = from
	return m.Receive(in)
}

func TestPresenceAndIQ(t *testing.T) {
	a := newParty(t, aliceJID, Config{Stanzas: []string{StanzaPresence, StanzaIQ}})
	b := newParty(t, bobJID, Config{Stanzas: []string{StanzaIQ, StanzaPresence}})
	sa, sb, _, _ := negotiate(t, a, b)
	// A message, then an encrypted presence and an iq, in one counter
	// stream.
	exchange(t, sa, aliceJID, b.m, "before")
	p, err := sa.SealStanza(StanzaPresence, "", els(t, "<show>away</show><status>lunch</status>")...)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stanza(); st.Name.Local != "presence" || st.Child(nsClient, "thread") != nil || st.Child(NSStanzaEncryption, "c") == nil {
		t.Fatalf("presence %s", st)
	}
	r, err := deliverStanza(t, p, aliceJID, b.m)
	if err != nil {
		t.Fatal(err)
	}
	m := eventOf[Message](t, r)
	if m.Kind != StanzaPresence || m.Session != sb || len(m.Content) != 2 || m.Content[1].Text() != "lunch" {
		t.Fatalf("presence received %+v", m)
	}
	q, err := sb.SealStanza(StanzaIQ, "get", els(t, "<query xmlns='jabber:iq:version'/>")...)
	if err != nil {
		t.Fatal(err)
	}
	q.ID = "v1"
	r, err = deliverStanza(t, q, bobJID, a.m)
	if err != nil {
		t.Fatal(err)
	}
	if m := eventOf[Message](t, r); m.Kind != StanzaIQ || m.Type != "get" || m.ID != "v1" || m.Content[0].Name.Space != "jabber:iq:version" {
		t.Fatalf("iq received %+v", m)
	}
	exchange(t, sa, aliceJID, b.m, "after")
	// Presence without <c/> is not the engine's.
	r, _ = deliverStanza(t, Outbound{Kind: StanzaPresence, To: bobJID}, aliceJID, b.m)
	if !r.Unhandled {
		t.Error("plain presence handled")
	}
	// From another resource: nobody's.
	p2, _ := sa.SealStanza(StanzaPresence, "", els(t, "<show>dnd</show>")...)
	r, _ = deliverStanza(t, p2, "alice@example.org/other", b.m)
	eventOf[Rejected](t, r)

	// A session that negotiated messages only refuses both ways.
	c := newParty(t, aliceJID, Config{})
	d := newParty(t, bobJID, Config{Stanzas: []string{StanzaPresence}})
	sc, _, _, _ := negotiate(t, c, d)
	if _, err := sc.SealStanza(StanzaPresence, ""); !errors.Is(err, ErrNotSupported) {
		t.Errorf("presence in a message-only session: %v", err)
	}
	if sc.Params().Stanzas[0] != StanzaMessage || len(sc.Params().Stanzas) != 1 {
		t.Errorf("stanzas %v", sc.Params().Stanzas)
	}
	r, _ = deliverStanza(t, p2, aliceJID, d.m)
	eventOf[Rejected](t, r)
}
