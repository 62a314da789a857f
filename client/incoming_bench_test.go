package client

import (
	"bytes"
	"encoding/xml"
	"testing"

	"github.com/balcony-im/balcony/xmltree"
)

// The incoming path, raw stanza bytes to the event a user sees, against
// one parse of the same stanza measured in the same run (and, for OTR,
// the engine's own cost). "parse" is xmltree over encoding/xml's token
// stream, the way the read loop builds every stanza; "path" adds
// everything the client does until the event is queued.

func parseStanza(tb testing.TB, raw []byte) *xmltree.Element {
	d := xml.NewDecoder(bytes.NewReader(raw))
	tok, err := d.Token()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := xmltree.FromTokens(d, tok.(xml.StartElement), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func BenchmarkIncomingPlaintext(b *testing.B) {
	raw := []byte(`<message xmlns="jabber:client" from="alice@example.org/home" to="bob@example.org/desk" type="chat" id="m1"><body>Hello Bob, this is a plaintext message of ordinary length for a chat.</body><active xmlns="http://jabber.org/protocol/chatstates"/><origin-id xmlns="urn:xmpp:sid:0" id="m1"/></message>`)
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			parseStanza(b, raw)
		}
	})
	b.Run("path", func(b *testing.B) {
		c := newTestClient(b)
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			c.Inject(parseStanza(b, raw))
			if ev := <-c.Events(); ev.(*MessageEvent).Body == "" {
				b.Fatal("no message event")
			}
		}
	})
}
