package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// fakeMech is a mechanism whose payload is <fake xmlns='urn:xmpp:openpgp:0'>
// (it borrows OX's namespace so that detection attributes it).
type fakeMech struct {
	ns     string
	needs  Needs
	opened []*Incoming
	result *Opened
	err    error
}

func (f *fakeMech) Namespace() string { return f.ns }
func (f *fakeMech) Needs() Needs      { return f.needs }
func (f *fakeMech) Seal(ctx context.Context, out *Outgoing) (Sealed, error) {
	st := xmltree.New(NSClient, "message")
	st.Append(xmltree.New(f.ns, "openpgp").AppendText("c2VhbGVk"))
	return Sealed{Stanzas: []*xmltree.Element{st}}, nil
}
func (f *fakeMech) Open(ctx context.Context, in *Incoming) (*Opened, error) {
	f.opened = append(f.opened, in)
	return f.result, f.err
}

func newTestClient(t testing.TB) *Client {
	t.Helper()
	j := jid.MustParse("bob@example.org/desk")
	c, err := New(Config{JID: j, Password: "x", Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func inboundFrom(t *testing.T, raw string) *inbound {
	t.Helper()
	st, err := xmltree.Parse([]byte(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &inbound{st: st, from: jid.MustParse("alice@example.org/home"), to: jid.MustParse("bob@example.org/desk"), time: time.Unix(1700000000, 0)}
}

func TestDecorate(t *testing.T) {
	c := newTestClient(t)
	out := &Outgoing{To: jid.MustParse("alice@example.org/home"), Type: "chat", ID: "m1", Body: "hello", Receipt: true}
	for _, tc := range []struct {
		ns       string
		needs    Needs
		wantName bool
		wantBody string
	}{
		{eme.OX, Needs{FallbackBody: true, Hints: []string{"store"}}, false, eme.FallbackBody(eme.OX)},
		{eme.OTR, Needs{Hints: []string{"no-copy", "no-permanent-store"}, Private: true}, false, ""},
		{eme.ESession, Needs{FallbackBody: true, Hints: []string{"no-permanent-store"}}, true, eme.FallbackBody(eme.ESession)},
	} {
		st := xmltree.New(NSClient, "message")
		c.pipeline.decorate(st, out, tc.ns, tc.needs)
		enc := st.Child(eme.NS, "encryption")
		if enc == nil || enc.AttrValue("namespace") != tc.ns {
			t.Fatalf("%s: no EME tag: %s", tc.ns, st)
		}
		if _, has := enc.LookupAttr("name"); has != tc.wantName {
			t.Errorf("%s: name present = %v, want %v (XEP-0380 §3.2)", tc.ns, has, tc.wantName)
		}
		if got := st.ChildText(NSClient, "body"); got != tc.wantBody {
			t.Errorf("%s: body %q, want %q", tc.ns, got, tc.wantBody)
		}
		for _, h := range tc.needs.Hints {
			if st.Child(NSHints, h) == nil {
				t.Errorf("%s: hint %s missing", tc.ns, h)
			}
		}
		if (st.Child(NSCarbons, "private") != nil) != tc.needs.Private {
			t.Errorf("%s: private directive wrong", tc.ns)
		}
		if st.Child(NSReceipts, "request") == nil || st.Child(NSSID, "origin-id").AttrValue("id") != "m1" {
			t.Errorf("%s: receipt request or origin-id missing: %s", tc.ns, st)
		}
		if st.AttrValue("to") != "alice@example.org/home" || st.AttrValue("type") != "chat" || st.AttrValue("id") != "m1" {
			t.Errorf("%s: envelope %s", tc.ns, st)
		}
	}
}

// A message without text (a chat state, say) gets neither tag nor fallback
// body: other clients would show an "unreadable message" for nothing.
func TestDecorateBodyless(t *testing.T) {
	c := newTestClient(t)
	st := xmltree.New(NSClient, "message")
	st.Append(xmltree.New(eme.OX, "openpgp").AppendText("AAAA"))
	c.pipeline.decorate(st, &Outgoing{To: jid.MustParse("alice@example.org"), Type: "chat", ID: "m2"}, eme.OX, Needs{FallbackBody: true, Hints: []string{"store"}})
	if st.Child(eme.NS, "encryption") != nil || st.Child(NSClient, "body") != nil {
		t.Fatalf("body-less message decorated with a tag or fallback: %s", st)
	}
	if st.Child(NSHints, "store") == nil {
		t.Fatalf("hints still apply: %s", st)
	}
}

func TestSendNotEnabledHint(t *testing.T) {
	c := newTestClient(t)
	registerDisabled(t, c, &fakeMech{ns: eme.OX})
	_, err := c.Send(context.Background(), &Outgoing{To: jid.MustParse("alice@example.org"), Body: "x"}, eme.OX)
	ne, ok := errors.AsType[*NotEnabledError](err)
	if !ok || !errors.Is(err, ErrNotEnabled) || ne.Hint != (eme.Hint{Action: eme.ActionEnable, Mechanism: eme.OX, Peer: "alice@example.org"}) {
		t.Fatalf("got %v", err)
	}
}

func TestSendRefusesDowngrade(t *testing.T) {
	c := newTestClient(t)
	mustRegister(t, c, &fakeMech{ns: eme.OTR})
	to := jid.MustParse("alice@example.org")
	pol, err := eme.ParsePolicy("require:ox")
	if err != nil {
		t.Fatal(err)
	}
	c.pipeline.SetPolicy(to, pol)
	for _, mech := range []string{"", eme.OTR} {
		_, err := c.Send(context.Background(), &Outgoing{To: to, Body: "secret"}, mech)
		if !errors.Is(err, eme.ErrDowngrade) {
			t.Errorf("send with %q: %v, want a downgrade error", mech, err)
		}
	}
	// Not connected: an accepted mechanism gets past the policy and fails
	// only at the network.
	mustRegister(t, c, &fakeMech{ns: eme.OX})
	if _, err := c.Send(context.Background(), &Outgoing{To: to, Body: "x"}, eme.OX); !errors.Is(err, ErrNotConnected) {
		t.Errorf("send with OX: %v", err)
	}
}

func TestOpenRouting(t *testing.T) {
	const alice = `from="alice@example.org/home" to="bob@example.org/desk" type="chat" id="i1"`
	cases := []struct {
		name    string
		raw     string
		setup   func(c *Client, f *fakeMech)
		notice  string // expected NoticeEvent reason, "" for a message
		body    string // expected message body
		opened  bool   // the mechanism's Open was called
		secMech string
	}{
		{name: "plaintext", raw: `<message xmlns="jabber:client" ` + alice + `><body>hi</body></message>`, body: "hi"},
		{name: "body imitating a notice stays a message",
			raw:  `<message xmlns="jabber:client" ` + alice + `><body>This message was encrypted with OTR (urn:xmpp:otr:0) and could not be decrypted.</body></message>`,
			body: "This message was encrypted with OTR (urn:xmpp:otr:0) and could not be decrypted."},
		{name: "unknown tagged mechanism",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>please upgrade</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:example:new"/></message>`,
			notice: "not-supported"},
		{name: "OMEMO not supported",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>fallback</body><encrypted xmlns="urn:xmpp:omemo:2"><header sid="1"/><payload>AAAA</payload></encrypted></message>`,
			notice: "not-supported"},
		{name: "registered but disabled",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>fallback</body><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`,
			setup:  func(c *Client, f *fakeMech) { c.pipeline.setEnabled(eme.OX, false) },
			notice: "not-enabled"},
		{name: "opened",
			raw: `<message xmlns="jabber:client" ` + alice + `><body>fallback text</body><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:openpgp:0"/></message>`,
			setup: func(c *Client, f *fakeMech) {
				f.result = &Opened{Body: "the real text", Security: Security{Verified: true}}
			},
			body: "the real text", opened: true, secMech: eme.OX},
		{name: "body-less encrypted message still yields an event",
			raw:   `<message xmlns="jabber:client" ` + alice + `><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`,
			setup: func(c *Client, f *fakeMech) { f.result = &Opened{Body: "inside"} },
			body:  "inside", opened: true, secMech: eme.OX},
		{name: "open fails with a reason",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>fallback</body><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`,
			setup:  func(c *Client, f *fakeMech) { f.err = &OpenError{Reason: eme.ReasonNoKey} },
			notice: "no-key", opened: true},
		{name: "open fails without a reason",
			raw:    `<message xmlns="jabber:client" ` + alice + `><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`,
			setup:  func(c *Client, f *fakeMech) { f.err = errors.New("boom") },
			notice: "malformed", opened: true},
		{name: "tag and payload disagree",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>x</body><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:omemo:2"/></message>`,
			notice: "disagreement"},
		{name: "OTR query with OTR off asks to enable it",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>?OTRv3?</body></message>`,
			setup:  func(c *Client, f *fakeMech) { registerDisabled(t, c, &fakeMech{ns: eme.OTR}) },
			notice: "session-requested"},
		{name: "OTR data message without OTR support",
			raw:    `<message xmlns="jabber:client" ` + alice + `><body>?OTR:AAMDAAAAAQ==.</body></message>`,
			notice: "not-supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t)
			f := &fakeMech{ns: eme.OX}
			mustRegister(t, c, f)
			if tc.setup != nil {
				tc.setup(c, f)
			}
			ev := c.pipeline.open(context.Background(), inboundFrom(t, tc.raw))
			if len(f.opened) > 0 != tc.opened {
				t.Errorf("Open called %d times, want called = %v", len(f.opened), tc.opened)
			}
			switch ev := ev.(type) {
			case *NoticeEvent:
				if tc.notice == "" {
					t.Fatalf("got notice %q, want message", ev.Text)
				}
				if ev.Reason.String() != tc.notice {
					t.Errorf("reason %q, want %q (%s)", ev.Reason, tc.notice, ev.Text)
				}
				if strings.Contains(ev.Text, "fallback") || strings.Contains(ev.Text, "please upgrade") {
					t.Errorf("notice shows the fallback body: %s", ev.Text)
				}
				if ev.Text == "" || ev.From.String() != "alice@example.org/home" {
					t.Errorf("notice %+v", ev)
				}
			case *MessageEvent:
				if tc.notice != "" {
					t.Fatalf("got message %q, want notice %s", ev.Body, tc.notice)
				}
				if ev.Body != tc.body {
					t.Errorf("body %q, want %q", ev.Body, tc.body)
				}
				if ev.Security.Mechanism != tc.secMech {
					t.Errorf("security mechanism %q, want %q", ev.Security.Mechanism, tc.secMech)
				}
			default:
				t.Fatalf("got %T", ev)
			}
		})
	}
}

func TestIncomingPolicyWarning(t *testing.T) {
	c := newTestClient(t)
	pol, _ := eme.ParsePolicy("require:ox")
	c.pipeline.SetPolicy(jid.MustParse("alice@example.org"), pol)
	ev := c.pipeline.open(context.Background(), inboundFrom(t, `<message xmlns="jabber:client" type="chat"><body>in the clear</body></message>`))
	m, ok := ev.(*MessageEvent)
	if !ok || m.Body != "in the clear" || len(m.Security.Warnings) == 0 || m.Security.State() != "plaintext" {
		t.Fatalf("got %#v", ev)
	}
}

func TestCapsHashXEP0115Example(t *testing.T) {
	// XEP-0115 §5.2 simple generation example.
	ids := []Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}}
	features := []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"}
	if got := CapsHash(ids, features); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("CapsHash = %s", got)
	}
}

// Body-less control messages of a mechanism Balcony does not support or
// has not enabled (an empty OMEMO message that completes a session, a key
// transport) are not messages: no notice, unlike those with a payload.
func TestControlMessagesOfUnsupportedMechanisms(t *testing.T) {
	c := newTestClient(t)
	registerDisabled(t, c, &fakeMech{ns: eme.OTR})
	for _, tc := range []struct {
		name, raw string
		reason    string // "" for no event
	}{
		{"omemo 0.3 key transport", `<message xmlns="jabber:client" type="chat"><encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="7"><key rid="9" prekey="true">AAAA</key><iv>AAAAAAAAAAAAAAAA</iv></header></encrypted><store xmlns="urn:xmpp:hints"/></message>`, ""},
		{"omemo 2 empty message", `<message xmlns="jabber:client" type="chat"><encrypted xmlns="urn:xmpp:omemo:2"><header sid="7"><keys jid="bob@example.org"><key rid="9">AAAA</key></keys></header></encrypted></message>`, ""},
		{"omemo 0.3 with payload", `<message xmlns="jabber:client" type="chat"><encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="7"><key rid="9">AAAA</key><iv>AAAAAAAAAAAAAAAA</iv></header><payload>AAAA</payload></encrypted><body>I sent you an OMEMO encrypted message</body></message>`, "not-supported"},
		{"omemo 2 payload without body", `<message xmlns="jabber:client" type="chat"><encrypted xmlns="urn:xmpp:omemo:2"><header sid="7"><keys jid="bob@example.org"><key rid="9">AAAA</key></keys></header><payload>AAAA</payload></encrypted></message>`, "not-supported"},
		{"tagged otr query, otr disabled", `<message xmlns="jabber:client" type="chat"><body>?OTRv3?</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"/></message>`, "session-requested"},
		{"otr query, otr disabled", `<message xmlns="jabber:client" type="chat"><body>?OTRv3?</body></message>`, "session-requested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := c.pipeline.open(context.Background(), inboundFrom(t, tc.raw))
			if tc.reason == "" {
				if ev != nil {
					t.Fatalf("control message produced %#v", ev)
				}
				return
			}
			n, ok := ev.(*NoticeEvent)
			if !ok || n.Reason.String() != tc.reason {
				t.Fatalf("got %#v, want a %s notice", ev, tc.reason)
			}
		})
	}
}

// Notices the client itself makes (a forged or malformed carbon, an
// invalid sender, a stanza that does not parse) are in the user's
// language, like those of the mechanisms.
func TestClientNoticesTranslated(t *testing.T) {
	c := newTestClient(t)
	c.Pipeline().SetLanguage("de")
	for _, tc := range []struct {
		raw, reason, want string
	}{
		{`<message xmlns="jabber:client" from="mallory@evil.example/x" type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="alice@example.org/a"><body>x</body></message></forwarded></received></message>`,
			"forged-carbon", "Eine Nachricht, die vorgibt, eine Kopie Ihrer eigenen Unterhaltung zu sein, kam von “mallory@evil.example/x”"},
		{`<message xmlns="jabber:client" from="bob@example.org" type="chat"><received xmlns="urn:xmpp:carbons:2"/></message>`,
			"malformed-carbon", "Eine fehlerhafte Kopie einer Nachricht"},
		{`<message xmlns="jabber:client" from="@@@" type="chat"><body>x</body></message>`,
			"invalid-sender", "Eine Nachricht mit ungültiger Absenderadresse"},
	} {
		st, err := xmltree.Parse([]byte(tc.raw), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.process(st)
		ev := <-c.Events()
		n, ok := ev.(*NoticeEvent)
		if !ok || n.Reason.String() != tc.reason || !strings.HasPrefix(n.Text, tc.want) {
			t.Errorf("got %#v, want a %s notice starting %q", ev, tc.reason, tc.want)
		}
	}
}

// A stanza error's condition is one of RFC 6120's or undefined-condition,
// and its text is bounded: both are remote input.
func TestStanzaErrorBounded(t *testing.T) {
	huge := strings.Repeat("x", 50000)
	st, err := xmltree.Parse([]byte(`<message xmlns="jabber:client" type="error"><error type="cancel"><`+huge[:300]+` xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">`+huge+`</text></error></message>`), nil)
	if err != nil {
		t.Fatal(err)
	}
	se := parseStanzaError(st).(*StanzaError)
	if se.Condition != "undefined-condition" || len(se.Text) > maxErrorText+4 {
		t.Fatalf("condition %.40q, text of %d bytes", se.Condition, len(se.Text))
	}
}

func mustRegister(t testing.TB, c *Client, m Mechanism) {
	t.Helper()
	if err := c.Register(m); err != nil {
		t.Fatal(err)
	}
}

// registerDisabled registers m and disables it, as a mechanism without
// what it needs (a key) does in Attach.
func registerDisabled(t testing.TB, c *Client, m Mechanism) {
	t.Helper()
	mustRegister(t, c, m)
	c.pipeline.setEnabled(m.Namespace(), false)
}
