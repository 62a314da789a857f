package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/otr"
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
			c.process(parseStanza(b, raw))
			if ev := <-c.Events(); ev.(*MessageEvent).Body == "" {
				b.Fatal("no message event")
			}
		}
	})
}

// otrDataMessages returns n OTR data messages from alice's conversation
// to bob's mechanism, whose conversation with alice is private.
func otrDataMessages(b *testing.B, bob *OTR, n int) [][]byte {
	alice, err := otr.NewConversation(otr.Config{PrivateKey: testKey(b, 1), Policy: otr.PolicyManual})
	if err != nil {
		b.Fatal(err)
	}
	aliceJID := jid.MustParse("alice@example.org/home")
	var toBob [][]byte
	bob.sendFn = func(_ context.Context, _ jid.JID, sts []*xmltree.Element) error {
		for _, st := range sts {
			r, err := alice.Receive([]byte(st.ChildText(NSClient, "body")))
			if err != nil {
				return err
			}
			toBob = append(toBob, r.ToSend...)
		}
		return nil
	}
	deliver := func(msg []byte) {
		st := xmltree.New(NSClient, "message", "from", aliceJID.String(), "type", "chat").Append(xmltree.New(NSClient, "body").AppendText(string(msg)))
		in := &Incoming{Stanza: st, From: aliceJID, To: bob.c.JID()}
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
	if alice.State() != otr.Encrypted {
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
	newBob := func(b *testing.B) (*Client, *OTR) {
		c := newTestClient(b)
		o, err := NewOTR(c, OTRConfig{Key: testKey(b, 0), InstanceTag: 0x1234, Policy: otr.PolicyManual})
		if err != nil {
			b.Fatal(err)
		}
		c.Pipeline().Register(o, true, "")
		return c, o
	}
	const pool = 4096
	b.Run("parse", func(b *testing.B) {
		_, o := newBob(b)
		msgs := otrDataMessages(b, o, 64)
		i := 0
		for b.Loop() {
			parseStanza(b, msgs[i%len(msgs)])
			i++
		}
	})
	b.Run("engine", func(b *testing.B) {
		// The engine alone: the same messages' bodies to a conversation.
		_, o := newBob(b)
		msgs := otrDataMessages(b, o, pool)
		conv := o.peers["alice@example.org/home"].current
		bodies := make([][]byte, len(msgs))
		for i, m := range msgs {
			bodies[i] = []byte(parseStanza(b, m).ChildText(NSClient, "body"))
		}
		i := 0
		for b.Loop() {
			if i == len(bodies) {
				b.StopTimer()
				_, o = newBob(b)
				msgs = otrDataMessages(b, o, pool)
				conv = o.peers["alice@example.org/home"].current
				for j, m := range msgs {
					bodies[j] = []byte(parseStanza(b, m).ChildText(NSClient, "body"))
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
		msgs := otrDataMessages(b, o, pool)
		i := 0
		for b.Loop() {
			if i == len(msgs) {
				b.StopTimer()
				c, o = newBob(b)
				msgs = otrDataMessages(b, o, pool)
				i = 0
				b.StartTimer()
			}
			c.process(parseStanza(b, msgs[i]))
			ev := <-c.Events()
			if m, isMsg := ev.(*MessageEvent); !isMsg || m.Body == "" {
				b.Fatalf("event %#v", ev)
			}
			i++
		}
	})
}
