package ox

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/xmltree"
)

// stanzaChildren returns the children of a message stanza, as the client
// reads it from its stream.
func stanzaChildren(t testing.TB, stanza string) []*xmltree.Element {
	t.Helper()
	return mustParse(t, []byte(stanza)).Elements()
}

func TestEffectiveChildren(t *testing.T) {
	// XEP-0374 example 3, plus unencrypted children a server or an attacker
	// may add.
	outer := stanzaChildren(t, `<message xmlns='jabber:client' to='juliet@example.org' from='romeo@example.net/orchard' type='chat'>
  <body>This message is encrypted using OpenPGP.</body>
  <body xml:lang='de'>Diese Nachricht ist verschlüsselt.</body>
  <store xmlns='urn:xmpp:hints'/>
  <encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>
  <openpgp xmlns='urn:xmpp:openpgp:0'>AAAA</openpgp>
  <replace xmlns='urn:xmpp:message-correct:0' id='forged'/>
  <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>fake</body></html>
  <thread>t1</thread>
  <stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='juliet@example.org'/>
</message>`)
	if len(outer) != 9 {
		t.Fatalf("%d outer children", len(outer))
	}
	payload := payloadOf(t, `<body xmlns="jabber:server">Wherefore art thou?</body>`+
		`<replace xmlns="urn:xmpp:message-correct:0" id="real"/>`+
		`<active xmlns="http://jabber.org/protocol/chatstates"/>`)
	got := EffectiveChildren(payload, outer)
	want := []struct {
		name      xml.Name
		protected bool
		contains  string
	}{
		{xml.Name{Space: NSClient, Local: "body"}, true, `<body xmlns="jabber:client">Wherefore art thou?</body>`},
		{xml.Name{Space: "urn:xmpp:message-correct:0", Local: "replace"}, true, `id="real"`},
		{xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: "active"}, true, ``},
		{xml.Name{Space: NSHints, Local: "store"}, false, ``},
		{xml.Name{Space: "urn:xmpp:eme:0", Local: "encryption"}, false, `namespace="urn:xmpp:openpgp:0"`},
		{xml.Name{Space: NSClient, Local: "thread"}, false, `t1`},
		{xml.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"}, false, ``},
	}
	if len(got) != len(want) {
		for _, c := range got {
			t.Logf("%v %v %s", c.Name, c.Protected, childXML(t, c.Element))
		}
		t.Fatalf("%d children, want %d", len(got), len(want))
	}
	for i, w := range want {
		if x := childXML(t, got[i].Element); got[i].Name != w.name || got[i].Protected != w.protected || !strings.Contains(x, w.contains) {
			t.Errorf("%d: %v protected=%v %s", i, got[i].Name, got[i].Protected, x)
		}
	}

	// A payload without a body (a chat state) still drops the fallback body.
	got = EffectiveChildren(payloadOf(t, `<composing xmlns="http://jabber.org/protocol/chatstates"/>`), outer)
	for _, c := range got {
		if c.Name.Local == "body" || c.Name.Local == "openpgp" || c.Name.Local == "html" {
			t.Errorf("unencrypted %v kept", c.Name)
		}
		if c.Name.Local == "replace" && c.Protected {
			t.Error("unencrypted replace marked protected")
		}
	}

	// A body that inherited the OX namespace from a sender that forgot
	// xmlns is still a body.
	c, err := ParseContent([]byte(`<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='2020-01-21T10:46:21Z'/><payload><body>hi <b>x</b></body></payload></signcrypt>`))
	if err != nil {
		t.Fatal(err)
	}
	got = EffectiveChildren(c.Payload, nil)
	if len(got) != 1 || got[0].Name != (xml.Name{Space: NSClient, Local: "body"}) ||
		childXML(t, got[0].Element) != `<body xmlns="jabber:client">hi <b xmlns="urn:xmpp:openpgp:0">x</b></body>` {
		t.Errorf("%+v %s", got, childXML(t, got[0].Element))
	}
	// The content element is left as it was.
	if c.Payload[0].Name.Space != NS || got[0].Element == c.Payload[0] {
		t.Errorf("payload changed: %v", c.Payload[0].Name)
	}
}

// The children of <payload/> as ParseContent reads them.
func TestContentPayloadChildren(t *testing.T) {
	content := func(payload string) string {
		return `<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-21T10:46:21Z'/><payload xmlns:d='urn:default'>` + payload + `</payload></crypt>`
	}
	c, err := ParseContent([]byte(content(` <d:a/> text <b xmlns='urn:b'><c/></b> `)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Payload; len(got) != 2 || got[0].Name.Space != "urn:default" || childXML(t, got[1]) != `<b xmlns="urn:b"><c/></b>` {
		t.Errorf("%+v", got)
	}
	for _, in := range []string{`<a>`, `<a/></b>`, `<a/></b><c/>`, `<a x="1" x="2"/>`} {
		if _, err := ParseContent([]byte(content(in))); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if c, err := ParseContent([]byte(content(""))); err != nil || len(c.Payload) != 0 {
		t.Errorf("empty: %v %v", c, err)
	}
}

func TestFallbackBody(t *testing.T) {
	if !strings.Contains(FallbackBody, "XEP-0373") || NSEME != NS || NSHints != "urn:xmpp:hints" {
		t.Error("constants")
	}
}
