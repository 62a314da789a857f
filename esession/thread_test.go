package esession

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/balcony-im/balcony/xmltree"
)

func TestNewThreadID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewThreadID(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || strings.ContainsAny(id, "+/=") {
			t.Fatalf("id %q", id)
		}
		if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 16 {
			t.Fatalf("id %q does not decode to 16 bytes", id)
		}
		if seen[id] {
			t.Fatal("repeated id")
		}
		seen[id] = true
	}
	id, _ := NewThreadID(bytes.NewReader(bytes.Repeat([]byte{0xfb}, 16)))
	if id != "-_v7-_v7-_v7-_v7-_v7-w" {
		t.Errorf("id %q", id)
	}
	if _, err := NewThreadID(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Error("randomness failure ignored")
	}
}

func TestThreads(t *testing.T) {
	th := NewThreads(nil, 3)
	a, isNew, _ := th.Incoming("p", "t1")
	if a != "t1" || !isNew {
		t.Errorf("%q %v", a, isNew)
	}
	if _, isNew, _ := th.Incoming("p", "t1"); isNew {
		t.Error("known thread reported new")
	}
	// The same ThreadID from another peer is another conversation.
	if _, isNew, _ := th.Incoming("q", "t1"); !isNew {
		t.Error("thread shared across peers")
	}
	if out, _ := th.Outgoing("p"); out != "t1" {
		t.Errorf("outgoing %q", out)
	}
	th.Incoming("p", "t2")
	if out, _ := th.Outgoing("p"); out != "t2" {
		t.Errorf("current thread not followed: %q", out)
	}
	th.Incoming("r", "t3") // evicts the least recently used: q/t1
	if th.Known("q", "t1") || !th.Known("p", "t1") || !th.Known("r", "t3") {
		t.Error("eviction order")
	}
	th.End("p", "t2")
	if out, _ := th.Outgoing("p"); out == "t2" || out == "" {
		t.Errorf("ended thread reused: %q", out)
	}
	if strings.EqualFold("T1", "t1") && th.Known("p", "T1") {
		t.Error("ThreadIDs must compare exactly")
	}
}

// parseStanza parses raw XML as the client does, then reads it as a
// message.
func parseStanza(raw string) (*Inbound, error) {
	st, err := xmltree.Parse([]byte(raw), nil)
	if err != nil {
		return nil, err
	}
	return ParseMessage(st)
}

func TestParseMessage(t *testing.T) {
	in, err := parseStanza(`<message xmlns='jabber:client' from='a@b/c' type='chat'><thread parent='x'>th</thread><body>hi</body>` +
		`<c xmlns='` + NSStanzaEncryption + `'><data>AA==</data></c><amp xmlns='http://jabber.org/protocol/amp'/></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if in.From != "a@b/c" || in.Type != "chat" || in.Thread != "th" || in.C == nil || in.Feature != nil {
		t.Errorf("%+v", in)
	}
	if strings.Join(in.Other, ",") != "body,amp" {
		t.Errorf("other %v", in.Other)
	}
	for _, bad := range []string{
		`<iq xmlns='jabber:client'/>`,
		`<message xmlns='jabber:client'><thread>a</thread><thread>b</thread></message>`,
		`<message xmlns='jabber:client'><c xmlns='` + NSStanzaEncryption + `'/><c xmlns='` + NSStanzaEncryption + `'/></message>`,
		`<message xmlns='jabber:client'><thread><x/></thread></message>`,
		`<message xmlns='jabber:client'>`,
	} {
		if _, err := parseStanza(bad); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestOutboundStanza(t *testing.T) {
	o := Outbound{To: "b@c/d'e", Type: "chat", Thread: "t<1>", Payload: els(t, "<body>x</body>"), Encrypted: true, NoStore: true, NoCopy: true}
	in, err := ParseMessage(wire(t, o.Stanza()))
	if err != nil {
		t.Fatalf("%v\n%s", err, o.Stanza())
	}
	if in.Thread != "t<1>" || in.Type != "chat" {
		t.Errorf("%+v", in)
	}
	if strings.Join(in.Other, ",") != "body,encryption,amp,no-copy,no-permanent-store,private" {
		t.Errorf("other %v", in.Other)
	}
	if in.To != "b@c/d'e" {
		t.Errorf("to %q: %s", in.To, o.Stanza())
	}
}

func TestMessageBody(t *testing.T) {
	for in, want := range map[string]string{
		"<body>a &amp; b<![CDATA[<c>]]></body>":              "a & b<c>",
		"<x xmlns='urn:x'><body>no</body></x><body>y</body>": "y",
		"<body xmlns='urn:other'>no</body>":                  "",
		"<body/>":                                            "",
		"<body>a<b>skip</b>c</body>":                         "ac",
	} {
		got, _ := Message{Content: els(t, in)}.Body()
		if got != want {
			t.Errorf("Body(%q) = %q, want %q", in, got, want)
		}
	}
	if _, ok := (Message{Content: els(t, "<active xmlns='http://jabber.org/protocol/chatstates'/>")}).Body(); ok {
		t.Error("found a body in a chat state")
	}
}

func TestParseErrorPayload(t *testing.T) {
	p := errorPayload(CondNotAcceptable, []string{"modp", "ver"}, nil)
	if len(p) != 1 {
		t.Fatalf("%d elements", len(p))
	}
	e := wire(t, p[0])
	ne := parseError(e)
	if ne.Condition != CondNotAcceptable || strings.Join(ne.Fields, ",") != "modp,ver" {
		t.Errorf("%+v from %s", ne, e)
	}
	if e.AttrValue("code") != "406" || e.AttrValue("type") != "modify" {
		t.Errorf("%s", e)
	}
	if ne := parseError(els(t, "<error code='501'/>")[0]); ne.Condition != CondFeatureNotImplemented {
		t.Errorf("legacy code: %+v", ne)
	}
	if ne := parseError(els(t, "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>moved</text></error>")[0]); ne.Condition != "gone" || ne.Text != "moved" {
		t.Errorf("%+v", ne)
	}
	if ne := parseError(els(t, "<garbage/>")[0]); ne.Condition != "undefined-condition" {
		t.Errorf("%+v", ne)
	}
}

func TestCounter(t *testing.T) {
	c := counter{0: 0x12, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xfe}
	c.add(3)
	if c != (counter{0: 0x12, 7: 0x01, 15: 0x01}) {
		t.Errorf("carry: %x", c)
	}
	var top counter
	for i := range top {
		top[i] = 0xff
	}
	top.add(1)
	if top != (counter{}) {
		t.Errorf("no wrap at 2^128: %x", top)
	}
	if blocks(0) != 1 || blocks(1) != 1 || blocks(16) != 1 || blocks(17) != 2 {
		t.Error("blocks")
	}
	if responderCounter(counter{}) != (counter{0: 0x80}) || responderCounter(counter{0: 0x80}) != (counter{}) {
		t.Error("C_B = C_A xor 2^127")
	}
}

func TestKeyExhaustion(t *testing.T) {
	a, b := fuzzChannel()
	a.send.used = maxBlocks - 1
	if _, err := a.seal([]byte("<body>0123456789abcdef</body>")); !errors.Is(err, ErrKeyExhausted) {
		t.Errorf("seal past 2^32 blocks: %v", err)
	}
	c, err := a.seal([]byte("<b/>"))
	if err != nil {
		t.Fatal(err)
	}
	b.recv.used = maxBlocks
	if _, err := b.open(c); !errors.Is(err, ErrAuthentication) {
		t.Errorf("open past 2^32 blocks: %v", err)
	}
}
