package client

import (
	"testing"
	"time"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// FuzzIncomingMessage feeds arbitrary stanzas through the whole incoming
// path (carbons and archive unwrapping, detection, mechanisms, notices):
// it must never panic, and a message with a body is never delivered as a
// message whose text is an encrypted payload's fallback.
func FuzzIncomingMessage(f *testing.F) {
	for _, s := range []string{
		`<message xmlns="jabber:client" from="a@b/c" type="chat"><body>hi</body></message>`,
		`<message xmlns="jabber:client" from="a@b/c"><body>fallback</body><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`,
		`<message xmlns="jabber:client" from="bob@example.org"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="x@y/z"><body>?OTR:AAMD.</body></message></forwarded></received></message>`,
		`<message xmlns="jabber:client" from="a@b/c"><body>?OTRv3?</body></message>`,
		`<message xmlns="jabber:client" from="a@b/c" type="error"><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
		`<message xmlns="jabber:client" from="a@b"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="1"/></items></event></message>`,
		`<message xmlns="jabber:client" from="a@b/c"><c xmlns="http://www.xmpp.org/extensions/xep-0200.html#ns"><data>AA</data><mac>AA</mac></c></message>`,
		`<message xmlns="jabber:client" from="a@b/c"><encryption xmlns="urn:xmpp:eme:0" namespace="urn:x" name="&#x202e;evil"/><body>b</body></message>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := xmltree.Parse(b, &xmltree.Limits{MaxDepth: 32, MaxNodes: 2000, MaxBytes: 1 << 16})
		if err != nil || st.Name.Space != NSClient || st.Name.Local != "message" {
			return
		}
		c := newTestClient(t)
		mustRegister(t, c, &fakeMech{ns: eme.OX, result: &Opened{Body: "opened"}})
		c.process(st)
		c.inbox.close()
		c.events.close()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ev, ok := <-c.out:
				if !ok {
					return
				}
				if m, isMsg := ev.(*MessageEvent); isMsg && m.Security.Mechanism == "" {
					det, err := eme.Detect(st.Marshal(""))
					if err == nil && det.Encrypted && st.Child(NSCarbons, "received") == nil && st.Child(NSCarbons, "sent") == nil {
						t.Fatalf("encrypted message delivered as plaintext %q: %s", m.Body, b)
					}
				}
			case <-deadline:
				t.Fatal("events not closed")
			}
		}
	})
}
