package client

import (
	"bytes"
	"encoding/xml"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/cputime"

	"github.com/balcony-im/balcony/xmltree"
)

// The incoming path, raw stanza bytes to the event a user sees, against
// one parse of the same stanza measured in the same run (and, for OTR,
// the engine's own cost). "parse" is xmltree over encoding/xml's token
// stream, the way the read loop builds every stanza; "path" adds
// everything the client does until the event is queued. Both are timed
// in the same loop, one block after the other, by CPU time, and "x-parse"
// is their ratio (target: at most 1.5), one stanza at a time (each
// goroutine of the path woken for it) and in a stream ("x-parse-stream").

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
	c := newTestClient(b)
	var parse, path, stream time.Duration
	for b.Loop() {
		// A block of parses, then a block of stanzas through the client,
		// timed by the process's CPU time, so that neither other
		// processes nor scheduling delays weigh on one more than on the
		// other.
		t0 := cputime.Process()
		for range block {
			parseStanza(b, raw)
		}
		t1 := cputime.Process()
		for range block {
			c.Inject(parseStanza(b, raw))
			if ev := <-c.Events(); ev.(*MessageEvent).Body == "" {
				b.Fatal("no message event")
			}
		}
		t2 := cputime.Process()
		// The same stanzas arriving in a stream: each stage finds work
		// waiting instead of being woken for every stanza.
		for range block {
			c.Inject(parseStanza(b, raw))
		}
		for range block {
			if ev := <-c.Events(); ev.(*MessageEvent).Body == "" {
				b.Fatal("no message event")
			}
		}
		parse += t1 - t0
		path += t2 - t1
		stream += cputime.Process() - t2
	}
	n := float64(b.N * block)
	b.ReportMetric(float64(parse.Nanoseconds())/n, "parse-ns/msg")
	b.ReportMetric(float64(path.Nanoseconds())/n, "path-ns/msg")
	b.ReportMetric(float64(path)/float64(parse), "x-parse")
	b.ReportMetric(float64(stream)/float64(parse), "x-parse-stream")
}

// block is the number of stanzas timed together in the incoming
// benchmarks (one op is a block).
const block = 64
