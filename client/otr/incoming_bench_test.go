package otr

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/cputime"

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
	// Two private conversations with alice, one read by the engine alone
	// and one through the whole client, each message of the second timed
	// right after one parse of it and one engine-only decryption of the
	// first's, blocks of each timed by the process's CPU time, so that neither
	// other processes nor scheduling delays weigh on one more than on another. Target:
	// path at most 1.5x (parse + engine).
	const pool = 4096
	var (
		c                        *client.Client
		msgs, bodies             [][]byte
		conv                     *engine.Conversation
		i                        int
		parse, eng, path, stream time.Duration
	)
	refill := func() {
		c1, o1 := newBob(b)
		other := otrDataMessages(b, c1, o1, pool)
		conv = o1.peers["alice@example.org/home"].current
		bodies = bodies[:0]
		for _, m := range other {
			bodies = append(bodies, []byte(parseStanza(b, m).ChildText(client.NSClient, "body")))
		}
		var o2 *Mechanism
		c, o2 = newBob(b)
		msgs = otrDataMessages(b, c, o2, pool)
		i = 0
	}
	refill()
	for b.Loop() {
		if i+2*block > len(msgs) {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
		t0 := cputime.Process()
		for j := range block {
			parseStanza(b, msgs[i+j])
		}
		t1 := cputime.Process()
		for j := range block {
			if _, err := conv.Receive(bodies[i+j]); err != nil {
				b.Fatal(err)
			}
		}
		t2 := cputime.Process()
		for j := range block {
			c.Inject(parseStanza(b, msgs[i+j]))
			ev := <-c.Events()
			if m, isMsg := ev.(*client.MessageEvent); !isMsg || m.Body == "" {
				b.Fatalf("event %#v", ev)
			}
		}
		t3 := cputime.Process()
		for j := range block {
			c.Inject(parseStanza(b, msgs[i+block+j]))
		}
		for range block {
			ev := <-c.Events()
			if m, isMsg := ev.(*client.MessageEvent); !isMsg || m.Body == "" {
				b.Fatalf("event %#v", ev)
			}
		}
		parse += t1 - t0
		eng += t2 - t1
		path += t3 - t2
		stream += cputime.Process() - t3
		i += 2 * block
	}
	n := float64(b.N * block)
	b.ReportMetric(float64(parse.Nanoseconds())/n, "parse-ns/msg")
	b.ReportMetric(float64(eng.Nanoseconds())/n, "engine-ns/msg")
	b.ReportMetric(float64(path.Nanoseconds())/n, "path-ns/msg")
	b.ReportMetric(float64(path)/float64(parse+eng), "x-limit")
	b.ReportMetric(float64(stream)/float64(parse+eng), "x-limit-stream")
}

// block is the number of messages timed together (one op is a block).
const block = 64
