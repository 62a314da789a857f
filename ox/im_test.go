package ox

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

// stanzaChildren reads the children of a message stanza the way a client
// positioned inside the stanza would.
func stanzaChildren(t testing.TB, stanza string) []Child {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(stanza))
	d.DefaultSpace = NSClient
	if _, err := d.Token(); err != nil { // <message>
		t.Fatal(err)
	}
	children, err := ReadChildren(d)
	if err != nil {
		t.Fatal(err)
	}
	return children
}

func TestEffectiveChildren(t *testing.T) {
	// XEP-0374 example 3, plus unencrypted children a server or an attacker
	// may add.
	outer := stanzaChildren(t, `<message to='juliet@example.org' from='romeo@example.net/orchard' type='chat'>
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
	payload := []byte(`<body xmlns="jabber:server">Wherefore art thou?</body>` +
		`<replace xmlns="urn:xmpp:message-correct:0" id="real"/>` +
		`<active xmlns="http://jabber.org/protocol/chatstates"/>`)
	got, err := EffectiveChildren(payload, outer)
	if err != nil {
		t.Fatal(err)
	}
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
			t.Logf("%v %v %s", c.Name, c.Protected, c.XML)
		}
		t.Fatalf("%d children, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Name != w.name || got[i].Protected != w.protected || !bytes.Contains(got[i].XML, []byte(w.contains)) {
			t.Errorf("%d: %v protected=%v %s", i, got[i].Name, got[i].Protected, got[i].XML)
		}
	}

	// A payload without a body (a chat state) still drops the fallback body.
	got, err = EffectiveChildren([]byte(`<composing xmlns="http://jabber.org/protocol/chatstates"/>`), outer)
	if err != nil {
		t.Fatal(err)
	}
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
	got, err = EffectiveChildren(c.Payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != (xml.Name{Space: NSClient, Local: "body"}) ||
		string(got[0].XML) != `<body xmlns="jabber:client">hi <b xmlns="urn:xmpp:openpgp:0">x</b></body>` {
		t.Errorf("%+v %s", got, got[0].XML)
	}

	if _, err := EffectiveChildren([]byte("<unclosed>"), nil); err == nil {
		t.Error("bad payload accepted")
	}
}

func TestParseChildren(t *testing.T) {
	got, err := ParseChildren([]byte(` <a/> text <b xmlns='urn:b'><c/></b> `), "urn:default")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name.Space != "urn:default" || string(got[1].XML) != `<b xmlns="urn:b"><c/></b>` {
		t.Errorf("%+v", got)
	}
	for _, in := range []string{`<a>`, `<a/></b>`, `<a/></b><c/>`, `<a x="1" x="2"/>`} {
		if _, err := ParseChildren([]byte(in), ""); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if got, err := ParseChildren(nil, ""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v %v", got, err)
	}
}

func TestFallbackBody(t *testing.T) {
	if !strings.Contains(FallbackBody, "XEP-0373") || NSEME != NS || NSHints != "urn:xmpp:hints" {
		t.Error("constants")
	}
}
