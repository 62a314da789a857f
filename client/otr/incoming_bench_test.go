package otr

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/xmltree"
)

// The incoming path of an OTR data message, raw stanza bytes to the event
// the user sees, against one parse of the same stanza and the engine's
// own cost, measured in the same run (see client/incoming_bench_test.go
// for plaintext).

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

// otrDataMessages returns n OTR data messages from alice's conversation
// to bob's mechanism, whose conversation with alice is private.
func otrDataMessages(b *testing.B, c *client.Client, bob *Mechanism, n int) [][]byte {
	alice, err := engine.NewConversation(engine.Config{PrivateKey: testKey(b, 1), Policy: engine.PolicyManual})
	if err != nil {
		b.Fatal(err)
	}
	aliceJID := jid.MustParse("alice@example.org/home")
	var toBob [][]byte
	bob.sendFn = func(_ context.Context, _ jid.JID, sts []*xmltree.Element) error {
		for _, st := range sts {
			r, err := alice.Receive([]byte(st.ChildText(client.NSClient, "body")))
			if err != nil {
				return err
			}
			toBob = append(toBob, r.ToSend...)
		}
		return nil
	}
	deliver := func(msg []byte) {
		st := xmltree.New(client.NSClient, "message", "from", aliceJID.String(), "type", "chat").Append(xmltree.New(client.NSClient, "body").AppendText(string(msg)))
		in := &client.Incoming{Stanza: st, From: aliceJID, To: c.JID()}
		if _, err := bob.Open(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	toBob = append(toBob, alice.QueryMessage())
	for len(toBob) > 0 {
		m := toBob[0]
		toBob = toBob[1:]
		deliver(m)
	}
	if alice.State() != engine.Encrypted {
		b.Fatal("no private conversation")
	}
	var out [][]byte
	for i := range n {
		msgs, err := alice.Send([]byte(fmt.Sprintf("Hello Bob, this is private message number %d of ordinary length.", i)))
		if err != nil || len(msgs) != 1 {
			b.Fatal(err)
		}
		out = append(out, []byte(`<message xmlns="jabber:client" from="alice@example.org/home" to="bob@example.org/desk" type="chat" id="o`+fmt.Sprint(i)+`"><body>`+string(msgs[0])+`</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"/><no-copy xmlns="urn:xmpp:hints"/><no-permanent-store xmlns="urn:xmpp:hints"/><private xmlns="urn:xmpp:carbons:2"/></message>`))
	}
	return out
}

func BenchmarkIncomingOTR(b *testing.B) {
	newBob := func(b *testing.B) (*client.Client, *Mechanism) {
		c, err := client.New(client.Config{JID: jid.MustParse("bob@example.org/desk"), Password: "x"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		o, err := New(Config{Key: testKey(b, 0), InstanceTag: 0x1234, Policy: engine.PolicyManual})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Register(o); err != nil {
			b.Fatal(err)
		}
		return c, o
	}
	const pool = 4096
	b.Run("parse", func(b *testing.B) {
		c, o := newBob(b)
		msgs := otrDataMessages(b, c, o, 64)
		i := 0
		for b.Loop() {
			parseStanza(b, msgs[i%len(msgs)])
			i++
		}
	})
	b.Run("engine", func(b *testing.B) {
		// The engine alone: the same messages' bodies to a conversation.
		c, o := newBob(b)
		msgs := otrDataMessages(b, c, o, pool)
		conv := o.peers["alice@example.org/home"].current
		bodies := make([][]byte, len(msgs))
		for i, m := range msgs {
			bodies[i] = []byte(parseStanza(b, m).ChildText(client.NSClient, "body"))
		}
		i := 0
		for b.Loop() {
			if i == len(bodies) {
				b.StopTimer()
				c, o = newBob(b)
				msgs = otrDataMessages(b, c, o, pool)
				conv = o.peers["alice@example.org/home"].current
				for j, m := range msgs {
					bodies[j] = []byte(parseStanza(b, m).ChildText(client.NSClient, "body"))
				}
				i = 0
				b.StartTimer()
			}
			if _, err := conv.Receive(bodies[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("path", func(b *testing.B) {
		c, o := newBob(b)
		msgs := otrDataMessages(b, c, o, pool)
		i := 0
		for b.Loop() {
			if i == len(msgs) {
				b.StopTimer()
				c, o = newBob(b)
				msgs = otrDataMessages(b, c, o, pool)
				i = 0
				b.StartTimer()
			}
			c.Inject(parseStanza(b, msgs[i]))
			ev := <-c.Events()
			if m, isMsg := ev.(*client.MessageEvent); !isMsg || m.Body == "" {
				b.Fatalf("event %#v", ev)
			}
			i++
		}
	})
}
