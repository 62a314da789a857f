package client

import (
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// Fuzz targets for what the client reads from others without a round trip
// of its own: presence, PEP notifications, stanza errors, IQ requests and
// roster pushes. wire_fuzz_test.go has those for answers to our requests.
// Seeds are stanzas as real servers and clients send them (the examples of
// RFC 6121 and the XEPs) and hostile ones.

// fuzzLimits are what the stream reader allows a stanza in these targets.
var fuzzLimits = &xmltree.Limits{MaxDepth: 32, MaxNodes: 2000, MaxBytes: 1 << 16}

// fuzzStanza parses a stanza in jabber:client named local, or returns nil.
func fuzzStanza(raw []byte, local string) *xmltree.Element {
	st, err := xmltree.Parse(raw, fuzzLimits)
	if err != nil || st.Name.Space != NSClient || st.Name.Local != local {
		return nil
	}
	return st
}

// mark ends the events of one fuzz input.
type mark struct{}

func (*mark) event() {}

// eventsOf runs fn on the processing side of c and returns the events it
// emitted, in order: those of fn itself and of the stanzas fn queued.
func eventsOf(t testing.TB, c *Client, fn func()) []Event {
	t.Helper()
	fn()
	m := &mark{}
	c.inbox.push(inboxItem{fn: func() { c.emit(m) }})
	var evs []Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.out:
			if ev == Event(m) {
				return evs
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatal("events of one stanza not delivered within 10 s")
		}
	}
}

// account is the JID of every fuzzing client (see newTestClient).
var account = jid.MustParse("bob@example.org/desk")

// fromOf is what RFC 6120 §8.1.2.1 makes of a stanza's from: the account's
// bare JID when absent or empty, ok false when it is not a JID.
func fromOf(st *xmltree.Element) (jid.JID, bool) {
	f := st.AttrValue("from")
	if f == "" {
		return account.Bare(), true
	}
	j, err := jid.Parse(f)
	return j, err == nil
}

// FuzzPresence feeds presence stanzas to the client. An available or
// unavailable presence from a valid address gives one PresenceEvent that
// says what the stanza says, and the client remembers the resource as
// available exactly when the presence was; a subscription request or answer
// gives one SubscriptionEvent naming the bare JID; anything else
// (probe, error, unknown types, invalid addresses) gives nothing.
func FuzzPresence(f *testing.F) {
	for _, s := range []string{
		// RFC 6121 §4.2.2, §4.7: initial presence with show, status and
		// priority, and XEP-0115 caps as Conversations and Gajim send them.
		`<presence xmlns="jabber:client" from="juliet@example.com/balcony" to="romeo@example.net/orchard" xml:lang="en"><show>away</show><status>be right back</status><priority>1</priority></presence>`,
		`<presence xmlns='jabber:client' from='alice@example.org/Conversations.x4n1'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://conversations.im' ver='sGj2nS0iwT/Yq+KbUJOPvsEGwMQ='/><x xmlns='vcard-temp:x:update'><photo/></x><idle xmlns='urn:xmpp:idle:1' since='2026-03-14T15:00:00Z'/></presence>`,
		`<presence xmlns="jabber:client" from="romeo@example.net/orchard" type="unavailable"><status>gone home</status></presence>`,
		`<presence xmlns="jabber:client" from="juliet@example.com" type="subscribe"/>`,
		`<presence xmlns="jabber:client" from="juliet@example.com/balcony" type="subscribed"/>`,
		`<presence xmlns="jabber:client" from="juliet@example.com" type="unsubscribe"/>`,
		`<presence xmlns="jabber:client" from="juliet@example.com" type="unsubscribed"/>`,
		`<presence xmlns="jabber:client" from="example.com" type="probe"/>`,
		`<presence xmlns="jabber:client" from="juliet@example.com" type="error"><error type="cancel"><remote-server-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></presence>`,
		`<presence xmlns="jabber:client"><status xml:lang="en">hi</status><status xml:lang="de">hallo</status></presence>`,
		`<presence xmlns="jabber:client" from="bob@example.org/phone"><priority>-129</priority></presence>`,
		`<presence xmlns="jabber:client" from="a@b/c"><priority> 99999999999999999999 </priority><show>xa</show><show>dnd</show></presence>`,
		`<presence xmlns="jabber:client" from="@@invalid"/>`,
		`<presence xmlns="jabber:client" from="a@b/c" type="bogus"/>`,
		`<presence xmlns="jabber:client" from="a@b/c"><c xmlns="http://jabber.org/protocol/caps"/><c xmlns="http://jabber.org/protocol/caps" ver="second"/></presence>`,
	} {
		f.Add([]byte(s))
	}
	c := newTestClient(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := fuzzStanza(raw, "presence")
		if st == nil {
			return
		}
		from, fromOK := fromOf(st)
		c.presence.mu.Lock()
		_, known := c.presence.peers[from.String()]
		full := len(c.presence.peers) >= maxPresences
		c.presence.mu.Unlock()
		evs := eventsOf(t, c, func() { c.process(st) })
		typ := st.AttrValue("type")
		switch {
		case !fromOK || !slices.Contains([]string{"", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed"}, typ):
			if len(evs) != 0 {
				t.Fatalf("%d events for %s", len(evs), raw)
			}
		case typ != "" && typ != "unavailable":
			if len(evs) != 1 {
				t.Fatalf("%d events for %s", len(evs), raw)
			}
			sub, ok := evs[0].(*SubscriptionEvent)
			if !ok || sub.Type != typ || !sub.From.Equal(from.Bare()) {
				t.Fatalf("%#v for %s", evs[0], raw)
			}
		default:
			if len(evs) != 1 {
				t.Fatalf("%d events for %s", len(evs), raw)
			}
			p, ok := evs[0].(*PresenceEvent)
			if !ok {
				t.Fatalf("%T for %s", evs[0], raw)
			}
			if !p.From.Equal(from) || p.Available != (typ == "") ||
				p.Show != st.ChildText(NSClient, "show") || p.Status != st.ChildText(NSClient, "status") {
				t.Fatalf("%+v for %s", p, raw)
			}
			if n, err := strconv.Atoi(strings.TrimSpace(st.ChildText(NSClient, "priority"))); err == nil && p.Priority != n || err != nil && p.Priority != 0 {
				t.Fatalf("priority %d for %s", p.Priority, raw)
			}
			if caps := st.Child(NSCaps, "c"); caps != nil && (p.CapsVer != caps.AttrValue("ver") || p.CapsNode != caps.AttrValue("node") || p.CapsHash != caps.AttrValue("hash")) ||
				caps == nil && p.CapsVer+p.CapsNode+p.CapsHash != "" {
				t.Fatalf("caps %+v for %s", p, raw)
			}
			// The resource is remembered as available exactly when it
			// is, unless the table is full and it is new.
			if got := c.Available(from); got != p.Available && (known || !full) {
				t.Fatalf("Available(%s) = %v after %s", from, got, raw)
			}
		}
	})
}

// pepNodes are nodes with a handler in FuzzPEP: OX public keys
// (XEP-0373 §4.4) and OMEMO device lists (XEP-0384).
var pepNodes = []string{"urn:xmpp:openpgp:0:public-keys", "urn:xmpp:omemo:2:devices"}

// FuzzPEP feeds messages carrying XEP-0163 notifications. A notification
// (an <event/> with <items/>, not a carbon, not an error) from a bare JID
// gives one PEPEvent with the node, the items (id and first payload) and
// the retractions it lists, after the node's handler saw the same event;
// one from a full JID is no notification. A notification that also
// carries a body is delivered as a message as well: nothing is dropped.
func FuzzPEP(f *testing.F) {
	for _, s := range []string{
		// XEP-0373 §4.4 public key list, as Prosody forwards it.
		`<message xmlns="jabber:client" from="juliet@example.org" to="romeo@example.net/orchard" type="headline" id="new-key"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:openpgp:0:public-keys"><item id="current"><public-keys-list xmlns="urn:xmpp:openpgp:0"><pubkey-metadata v4-fingerprint="1357B01865B2503C18453D208CAC2A9678548E35" date="2018-03-01T15:26:12Z"/></public-keys-list></item></items></event><addresses xmlns="http://jabber.org/protocol/address"><address type="replyto" jid="juliet@example.org/balcony"/></addresses></message>`,
		// XEP-0384 device list, as ejabberd sends it with a delay.
		`<message xmlns="jabber:client" from="juliet@example.org" to="romeo@example.net/orchard"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:omemo:2:devices"><item id="current"><devices xmlns="urn:xmpp:omemo:2"><device id="12345"/><device id="4223" label="Gajim on Ubuntu Linux"/></devices></item></items></event><delay xmlns="urn:xmpp:delay" from="example.org" stamp="2026-03-14T15:09:26Z"/></message>`,
		// XEP-0060 §7.2 retraction and §12.16 notifications without payload.
		`<message xmlns="jabber:client" from="juliet@example.org"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:omemo:2:devices"><retract id="current"/></items></event></message>`,
		`<message xmlns="jabber:client" from="juliet@example.org"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="princely_musings"><item id="ae890ac52d0df67ed7cfdf51b644e901"/></items></event></message>`,
		`<message xmlns="jabber:client"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:openpgp:0:public-keys"><item id="current"><public-keys-list xmlns="urn:xmpp:openpgp:0"/></item></items></event></message>`,
		`<message xmlns="jabber:client" from="juliet@example.org"><event xmlns="http://jabber.org/protocol/pubsub#event"><purge node="urn:xmpp:omemo:2:devices"/></event></message>`,
		// From a full JID, with a body, from a server, as a carbon, an error.
		`<message xmlns="jabber:client" from="mallory@evil.example/x"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:openpgp:0:public-keys"><item id="current"/></items></event></message>`,
		`<message xmlns="jabber:client" from="juliet@example.org"><body>read me too</body><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item/><item id="2"><a/><b/></item></items></event></message>`,
		`<message xmlns="jabber:client" from="pubsub.example.org"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="1"><x xmlns="urn:x"/></item></items><items node="second"/></event></message>`,
		`<message xmlns="jabber:client" from="bob@example.org"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="juliet@example.org"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"/></event></message></forwarded></received></message>`,
		`<message xmlns="jabber:client" from="juliet@example.org" type="error"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"/></event></message>`,
	} {
		f.Add([]byte(s))
	}
	c := newTestClient(f)
	var handled []*PEPEvent
	for _, node := range pepNodes {
		c.HandlePEP(node, func(ev *PEPEvent) { handled = append(handled, ev) })
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := fuzzStanza(raw, "message")
		if st == nil {
			return
		}
		handled = handled[:0]
		evs := eventsOf(t, c, func() { c.process(st) })
		var pep []*PEPEvent
		others := 0
		for _, ev := range evs {
			if p, ok := ev.(*PEPEvent); ok {
				pep = append(pep, p)
			} else {
				others++
			}
		}
		from, fromOK := fromOf(st)
		ev := st.Child(NSPubSubEvent, "event")
		notification := fromOK && st.AttrValue("type") != "error" && ev != nil && ev.Child(NSPubSubEvent, "items") != nil &&
			st.Child(NSCarbons, "received") == nil && st.Child(NSCarbons, "sent") == nil
		if !notification || from.Resourcepart() != "" {
			if len(pep) != 0 || len(handled) != 0 {
				t.Fatalf("%d PEP events, %d handled, for %s", len(pep), len(handled), raw)
			}
			return
		}
		if len(pep) != 1 {
			t.Fatalf("%d PEP events for %s", len(pep), raw)
		}
		p, items := pep[0], ev.Child(NSPubSubEvent, "items")
		if !p.From.Equal(from.Bare()) || p.Node != items.AttrValue("node") {
			t.Fatalf("%+v for %s", p, raw)
		}
		want := items.ChildrenNamed(NSPubSubEvent, "item")
		if len(p.Items) != len(want) {
			t.Fatalf("%d items, want %d: %s", len(p.Items), len(want), raw)
		}
		for i, it := range want {
			first := it.Elements()
			if p.Items[i].ID != it.AttrValue("id") || len(first) == 0 && p.Items[i].Payload != nil || len(first) > 0 && p.Items[i].Payload != first[0] {
				t.Fatalf("item %d: %+v for %s", i, p.Items[i], raw)
			}
		}
		if r := items.ChildrenNamed(NSPubSubEvent, "retract"); len(p.Retracted) != len(r) {
			t.Fatalf("retracted %v for %s", p.Retracted, raw)
		}
		if slices.Contains(pepNodes, p.Node) != (len(handled) == 1) || len(handled) == 1 && handled[0] != p {
			t.Fatalf("handler saw %d events for node %q", len(handled), p.Node)
		}
		if st.Child(NSClient, "body") != nil && others == 0 {
			t.Fatalf("the body of a notification was dropped: %s", raw)
		}
	})
}

// FuzzStanzaError reads the <error/> of arbitrary stanzas (RFC 6120 §8.3).
// The condition is always one RFC 6120 §8.3.3 defines and, unless
// undefined-condition, one the error names; the text is the error's text,
// cut to maxErrorText bytes of valid UTF-8 and an ellipsis; a message error
// gives one ErrorEvent saying the same.
func FuzzStanzaError(f *testing.F) {
	for _, s := range []string{
		// RFC 6120 §8.3.2 and §8.3.3 examples; XEP-0060 §7.1.3.6.
		`<iq xmlns="jabber:client" from="im.example.com" id="ixc3v1b9" to="juliet@im.example.com/balcony" type="error"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
		`<message xmlns="jabber:client" from="romeo@example.net" id="ud7n1f4h" to="juliet@example.com/balcony" type="error"><thread>t1</thread><error type="cancel" by="example.net"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">no such user</text></error></message>`,
		`<iq xmlns="jabber:client" type="error" from="pubsub.shakespeare.lit" id="publish1"><error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><precondition-not-met xmlns="http://jabber.org/protocol/pubsub#errors"/></error></iq>`,
		`<iq xmlns="jabber:client" type="error" id="x"><error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">` + strings.Repeat("é", 600) + `</text></error></iq>`,
		`<message xmlns="jabber:client" type="error"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
		`<message xmlns="jabber:client" type="error" from="a@b/c"><error type="cancel"><made-up xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">&#x202e;gnirts</text></error></message>`,
		`<message xmlns="jabber:client" type="error" from="a@b/c"/>`,
		`<iq xmlns="jabber:client" type="error"><error><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">only text</text></error></iq>`,
	} {
		f.Add([]byte(s))
	}
	c := newTestClient(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if d := DefinedCondition(string(raw)); !stanzaConditions[d] || (d == string(raw)) != stanzaConditions[string(raw)] {
			t.Fatalf("DefinedCondition(%q) = %q", raw, d)
		}
		st, err := xmltree.Parse(raw, fuzzLimits)
		if err != nil || st.Name.Space != NSClient {
			return
		}
		se, ok := parseStanzaError(st).(*StanzaError)
		if !ok {
			t.Fatalf("%T", parseStanzaError(st))
		}
		e := st.Child("", "error")
		if !stanzaConditions[se.Condition] ||
			se.Condition != "undefined-condition" && (e == nil || e.Child(NSStanzas, se.Condition) == nil) {
			t.Fatalf("condition %q for %s", se.Condition, raw)
		}
		if len(se.Text) > maxErrorText+len("…") || !utf8.ValidString(se.Text) {
			t.Fatalf("text of %d bytes, valid UTF-8 %v", len(se.Text), utf8.ValidString(se.Text))
		}
		if se.Text != "" && !slices.ContainsFunc(e.ChildrenNamed(NSStanzas, "text"), func(x *xmltree.Element) bool {
			return strings.HasPrefix(x.Text(), strings.TrimSuffix(se.Text, "…"))
		}) {
			t.Fatalf("text %q is not the error's", se.Text)
		}
		if len(se.Error()) > len("stanza error: ")+len("remote-server-not-found")+len(": ")+maxErrorText+len("…") {
			t.Fatalf("Error() of %d bytes", len(se.Error()))
		}
		if st.Name.Local != "message" || st.AttrValue("type") != "error" {
			return
		}
		evs := eventsOf(t, c, func() { c.process(st) })
		if _, fromOK := fromOf(st); !fromOK {
			return // a notice about an invalid sender
		}
		if len(evs) != 1 {
			t.Fatalf("%d events for %s", len(evs), raw)
		}
		if ee, ok := evs[0].(*ErrorEvent); !ok || ee.Condition != se.Condition || ee.Text != se.Text {
			t.Fatalf("%#v for %s", evs[0], raw)
		}
	})
}

// rosterPushFrom reports whether RFC 6121 §2.1.6 lets a roster push with
// this from attribute through: none, or the account's bare JID.
func rosterPushFrom(from string) bool {
	if from == "" {
		return true
	}
	j, err := jid.Parse(from)
	return err == nil && j.Resourcepart() == "" && j.Equal(account.Bare())
}

// FuzzIncomingIQ feeds IQ requests (get and set, as the read loop hands
// them over) to the client. Every request gets one answer: a result or an
// error with the request's id, addressed back to the sender. A roster push
// from anyone but the account itself is refused and changes nothing (RFC
// 6121 §2.1.6); one from the account updates the roster as it says and
// emits the roster. Nothing else emits an event.
func FuzzIncomingIQ(f *testing.F) {
	for _, s := range []string{
		// RFC 6121 §2.1.6 roster pushes: from no one (the server), from the
		// account, a removal; and spoofed ones.
		`<iq xmlns="jabber:client" id="a78b4q6ha463" to="bob@example.org/desk" type="set"><query xmlns="jabber:iq:roster" ver="ver14"><item jid="nurse@example.com" name="Nurse" subscription="none"><group>Servants</group></item></query></iq>`,
		`<iq xmlns="jabber:client" from="bob@example.org" id="b89c5r7ib574" type="set"><query xmlns="jabber:iq:roster"><item jid="nurse@example.com" subscription="both" ask="subscribe"/></query></iq>`,
		`<iq xmlns="jabber:client" id="hm4hs97y" type="set"><query xmlns="jabber:iq:roster"><item jid="nurse@example.com" subscription="remove"/></query></iq>`,
		`<iq xmlns="jabber:client" from="mallory@evil.example/x" id="spoof" type="set"><query xmlns="jabber:iq:roster"><item jid="mallory@evil.example" subscription="both"/></query></iq>`,
		`<iq xmlns="jabber:client" from="bob@example.org/phone" id="own-resource" type="set"><query xmlns="jabber:iq:roster"><item jid="mallory@evil.example" subscription="from"/></query></iq>`,
		`<iq xmlns="jabber:client" from="example.org" id="server" type="set"><query xmlns="jabber:iq:roster"><item jid="mallory@evil.example" subscription="from"/></query></iq>`,
		`<iq xmlns="jabber:client" from="BOB@example.org" id="case" type="set"><query xmlns="jabber:iq:roster"><item jid="x@y"/><item jid="@bad"/><item/></query></iq>`,
		// XEP-0030 and XEP-0115 §6.2 queries, XEP-0199 ping, XEP-0092.
		`<iq xmlns="jabber:client" from="juliet@example.com/balcony" id="disco1" to="bob@example.org/desk" type="get"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
		`<iq xmlns="jabber:client" from="juliet@example.com/balcony" id="disco2" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="https://balcony.im#wrong"/></iq>`,
		`<iq xmlns="jabber:client" from="example.org" id="c2s1" to="bob@example.org/desk" type="get"><ping xmlns="urn:xmpp:ping"/></iq>`,
		`<iq xmlns="jabber:client" from="juliet@example.com/balcony" id="version_1" type="get"><query xmlns="jabber:iq:version"/></iq>`,
		`<iq xmlns="jabber:client" from="juliet@example.com/balcony" id="u1" type="get"><vCard xmlns="vcard-temp"/></iq>`,
		`<iq xmlns="jabber:client" from="juliet@example.com/balcony" id="two" type="get"><ping xmlns="urn:xmpp:ping"/><ping xmlns="urn:xmpp:ping"/></iq>`,
		`<iq xmlns="jabber:client" id="none" type="set"/>`,
	} {
		f.Add([]byte(s))
	}
	c := newTestClient(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := fuzzStanza(raw, "iq")
		if st == nil || st.AttrValue("type") != "get" && st.AttrValue("type") != "set" {
			return
		}
		before := c.Roster()
		var resp *xmltree.Element
		evs := eventsOf(t, c, func() { resp = c.handleIQ(st) })
		if resp.Name.Space != NSClient || resp.Name.Local != "iq" || resp.AttrValue("id") != st.AttrValue("id") ||
			resp.AttrValue("to") != st.AttrValue("from") || resp.AttrValue("type") != "result" && resp.AttrValue("type") != "error" {
			t.Fatalf("answer %s to %s", resp, raw)
		}
		if _, err := xmltree.Parse(resp.Marshal(""), nil); err != nil {
			t.Fatalf("answer does not parse back: %v", err)
		}
		payload := st.Elements()
		push := st.AttrValue("type") == "set" && len(payload) == 1 && payload[0].Name == xml.Name{Space: NSRoster, Local: "query"}
		if !push || !rosterPushFrom(st.AttrValue("from")) {
			if len(evs) != 0 || !slices.EqualFunc(before, c.Roster(), sameItem) {
				t.Fatalf("%d events, roster changed, by %s", len(evs), raw)
			}
			if push && resp.AttrValue("type") != "error" {
				t.Fatalf("roster push from %q accepted", st.AttrValue("from"))
			}
			return
		}
		if resp.AttrValue("type") != "result" || len(evs) != 1 {
			t.Fatalf("roster push answered %s with %d events", resp, len(evs))
		}
		re, ok := evs[0].(*RosterEvent)
		if !ok || !slices.EqualFunc(re.Items, c.Roster(), sameItem) {
			t.Fatalf("%#v", evs[0])
		}
		// The last word on each contact in the push is the roster's.
		last := map[string]*xmltree.Element{}
		for _, it := range payload[0].ChildrenNamed(NSRoster, "item") {
			if j, err := jid.Parse(it.AttrValue("jid")); err == nil {
				last[j.Bare().String()] = it
			}
		}
		for contact, it := range last {
			i := slices.IndexFunc(re.Items, func(r RosterItem) bool { return r.JID.String() == contact })
			switch sub := it.AttrValue("subscription"); {
			case sub == "remove" && i >= 0:
				t.Fatalf("%s not removed", contact)
			case sub != "remove" && (i < 0 || re.Items[i].Name != it.AttrValue("name") || re.Items[i].Subscription != cmpOr(sub, "none")):
				t.Fatalf("%s: %+v", contact, re.Items)
			}
		}
	})
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sameItem(a, b RosterItem) bool {
	return a.JID.Equal(b.JID) && a.Name == b.Name && a.Subscription == b.Subscription && a.Ask == b.Ask && slices.Equal(a.Groups, b.Groups)
}

// An encrypted message inside a PEP notification is still a message:
// whatever carries a payload a mechanism would read is delivered.
func TestPEPNotificationWithPayload(t *testing.T) {
	c := newTestClient(t)
	st, err := xmltree.Parse([]byte(`<message xmlns="jabber:client" from="juliet@example.org"><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"/></event></message>`), nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := eventsOf(t, c, func() { c.process(st) })
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	if n, ok := evs[1].(*NoticeEvent); !ok || n.Namespace != eme.OX {
		t.Fatalf("%#v", evs[1])
	}
}
