package xmltree

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// messageStanza is a typical chat message as it arrives: about 400
// bytes, a few namespaces, an escaped character.
const messageStanza = `<message xmlns="jabber:client" from="alice@example.org/laptop" to="bob@example.net/phone" type="chat" id="5f3a9c2e-1b7d-4e8a-9f0c-2d6e8b4a1c3f" xml:lang="en"><body>Hi Bob, are we still on for lunch tomorrow? I&apos;ll bring the notes from Tuesday&apos;s meeting.</body><active xmlns="http://jabber.org/protocol/chatstates"/><request xmlns="urn:xmpp:receipts"/><origin-id xmlns="urn:xmpp:sid:0" id="5f3a9c2e-1b7d"/></message>`

// nestedStanza is about 4 KB: an archived, forwarded, encrypted message
// with a data form, the kind of nesting MAM and carbons produce.
func nestedStanza() string {
	var b strings.Builder
	b.WriteString(`<message xmlns="jabber:client" from="bob@example.net" to="bob@example.net/phone" id="mam1">`)
	b.WriteString(`<result xmlns="urn:xmpp:mam:2" queryid="q29302" id="28482-98726-73623">`)
	b.WriteString(`<forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2024-01-15T10:20:30Z"/>`)
	b.WriteString(`<message from="alice@example.org/laptop" to="bob@example.net/phone" type="chat" id="m-0042">`)
	b.WriteString(`<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="27183">`)
	for i := range 6 {
		fmt.Fprintf(&b, `<key rid="%d" prekey="%v">MwohBYI/Y2m+Ue7hXXB3Ztr5p2MFBk3qXp8L1xFzCJwuvmZKEAAYACIwkxQmVzJzlyRQXsdSh1G+9m2Vy8cDcTbBAXXlHy0DBlFtLkJzXkA7Uf+8SUFuOfxSEJtR6R3s=</key>`, 1000+i, i%2 == 0)
	}
	b.WriteString(`<iv>cSJRMoEwPx+3Zrw7</iv></header><payload>`)
	b.WriteString(strings.Repeat("QkFMQ09OWSBtZXNzYWdlIHBheWxvYWQgZm9yIGJlbmNobWFya2luZw", 12))
	b.WriteString(`</payload></encrypted><encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl" name="OMEMO"/>`)
	b.WriteString(`<body>I sent you an OMEMO encrypted message but your client doesn&apos;t seem to support that.</body>`)
	b.WriteString(`<x xmlns="jabber:x:data" type="form"><title>Lunch &amp; notes</title>`)
	for i := range 8 {
		fmt.Fprintf(&b, `<field var="option-%d" type="list-single" label="Option %d &lt;%d&gt;"><value>choice %d</value><option label="yes"><value>y</value></option><option label="no"><value>n</value></option></field>`, i, i, i, i)
	}
	b.WriteString(`</x><store xmlns="urn:xmpp:hints"/><origin-id xmlns="urn:xmpp:sid:0" id="m-0042"/></message></forwarded></result></message>`)
	return b.String()
}

// payloadStanza is an encrypted payload: 4 KB of base64 in one element.
func payloadStanza() string {
	return `<openpgp xmlns="urn:xmpp:openpgp:0">` + strings.Repeat("hQIMA3TX1Cl4PmxOAQ/+Kk2bC7vWRUy9dLYkJ3fN0qXr+8aZmT5oHgQeP1sWcVjE6nIuD4tA", 56) + `</openpgp>`
}

var benchNames = []string{"message", "nested4k", "payload4k"}

func benchInputs(tb testing.TB) [][]byte {
	tb.Helper()
	return [][]byte{[]byte(messageStanza), []byte(nestedStanza()), []byte(payloadStanza())}
}

// The benchmarks run the byte-level Parse and AppendXML against the
// encoding/xml implementation they replace (ref), on the same input in
// the same run.
func BenchmarkParse(b *testing.B) {
	for i, in := range benchInputs(b) {
		name := benchNames[i]
		b.Run(name+"/fast", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(in, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/ref", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := refParse(in, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The live stream's path: encoding/xml's tokens into FromTokens.
		for _, ft := range []struct {
			name string
			f    func(xml.TokenReader, xml.StartElement, *Limits) (*Element, error)
		}{{"fromtokens", FromTokens}, {"fromtokens-ref", refFromTokens}} {
			b.Run(name+"/"+ft.name, func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					d := xml.NewDecoder(bytes.NewReader(in))
					tok, _ := d.Token()
					if _, err := ft.f(d, tok.(xml.StartElement), nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	for i, in := range benchInputs(b) {
		name := benchNames[i]
		e, err := Parse(in, nil)
		if err != nil {
			b.Fatal(err)
		}
		n := int64(len(e.Marshal("")))
		b.Run(name+"/fast", func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				e.Marshal("")
			}
		})
		b.Run(name+"/append", func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			buf := make([]byte, 0, 2*n)
			for b.Loop() {
				buf = e.AppendXML(buf[:0], "")
			}
		})
		b.Run(name+"/ref", func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				refMarshal(e, "")
			}
		})
	}
}

// speedup runs fast and ref b.N times each, interleaved in rounds so
// that a loaded machine slows both alike, and reports the fastest
// round's time per operation of each and the median of ref/fast.
func speedup(b *testing.B, fast, ref func()) {
	b.Helper()
	rounds := min(b.N, 15)
	var ratios []float64
	bestF, bestR := math.Inf(1), math.Inf(1)
	b.ResetTimer()
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		t0 := time.Now()
		for range n {
			fast()
		}
		t1 := time.Now()
		for range n {
			ref()
		}
		f, g := float64(t1.Sub(t0))/float64(n), float64(time.Since(t1))/float64(n)
		bestF, bestR = min(bestF, f), min(bestR, g)
		ratios = append(ratios, g/f)
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(bestF, "ns/op-fast")
	b.ReportMetric(bestR, "ns/op-ref")
	b.ReportMetric(ratios[len(ratios)/2], "x-speedup")
}

// BenchmarkSpeedup reports how many times faster Parse and Marshal are
// than the encoding/xml implementation, measured side by side.
func BenchmarkSpeedup(b *testing.B) {
	for i, in := range benchInputs(b) {
		name := benchNames[i]
		b.Run("parse/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			speedup(b, func() { Parse(in, nil) }, func() { refParse(in, nil) })
		})
		e, _ := Parse(in, nil)
		b.Run("marshal/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			speedup(b, func() { e.Marshal("") }, func() { refMarshal(e, "") })
		})
	}
}
