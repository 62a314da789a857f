package ox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/internal/fuzzmin"
	"github.com/balcony-im/balcony/xmltree"
)

// Every parser of untrusted input has a fuzz target here. Run as normal
// tests they check the seed corpus; run with -fuzz they search for inputs
// that crash, take more than the limits allow, disagree between a fast
// path and the full one, or do not survive a round trip.

// TestMain lets the fuzzer explore: see internal/fuzzmin.
func TestMain(m *testing.M) {
	flag.Parse()
	fuzzmin.Default(fuzzMinimizeExecs)
	os.Exit(m.Run())
}

// fuzzMinimizeExecs is the default -fuzzminimizetime of the package's
// targets, whose inputs are kilobyte messages or keys: a thousand
// executions, a second or less.
const fuzzMinimizeExecs = 1000

func xmlSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "xep", "*.xml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='a@b'/><time stamp='2020-01-21T10:46:21Z'/><rpad>x</rpad><payload><body xmlns='jabber:client' xml:lang='en'>hi &amp; &#x263a; &#65;</body></payload></signcrypt>`,
		`<sign xmlns="urn:xmpp:openpgp:0"><to jid="a@b/c"/><time stamp="2020-01-21T12:46:21+0200"/><payload><x xmlns="urn:x" a='1' b="2"><y xmlns=""/></x></payload></sign>`,
		`<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-21T10:46:21Z'/><payload><body>no namespace</body></payload></crypt>`,
		`<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-21T10:46:21Z'/><payload><p:x xmlns:p='urn:p'/></payload></crypt>`,
		`<crypt xmlns='urn:xmpp:openpgp:0'><time stamp='2020-01-21T10:46:21Z'/><payload><![CDATA[x]]><!-- c --><?pi x?></payload></crypt>`,
		"<crypt xmlns='urn:xmpp:openpgp:0'>\r\n<time stamp='2020-01-21T10:46:21Z'/><payload><a b='x\ty'>\r</a></payload></crypt>",
		`<openpgp xmlns='urn:xmpp:openpgp:0'>aGVsbG8=</openpgp>`,
		`<public-keys-list xmlns='urn:xmpp:openpgp:0'><pubkey-metadata v4-fingerprint='1357b01865b2503c18453d208cac2a9678548e35'/></public-keys-list>`,
		`<a><b></a></b>`, `<a x='1' x='2'/>`, `<a/><b/>`, `</a>`, `<a`, `<a b=c/>`, `&amp;`,
	} {
		f.Add([]byte(s))
	}
}

func sameContent(t testing.TB, a, b *Content) bool {
	if a.Kind != b.Kind || !a.Time.Equal(b.Time) || a.Rpad != b.Rpad || payloadXML(t, a.Payload) != payloadXML(t, b.Payload) || len(a.To) != len(b.To) {
		return false
	}
	for i := range a.To {
		if !a.To[i].Equal(b.To[i]) {
			return false
		}
	}
	return true
}

// checkLimits fails unless the tree of a parsed content element keeps
// within contentLimits: depth and nodes.
func checkLimits(t *testing.T, c *Content) {
	t.Helper()
	nodes := 0
	var walk func(e *xmltree.Element, depth int)
	walk = func(e *xmltree.Element, depth int) {
		if depth > contentLimits.MaxDepth {
			t.Fatalf("payload element at depth %d", depth)
		}
		for _, n := range e.Children {
			nodes++
			if c, ok := n.(*xmltree.Element); ok {
				walk(c, depth+1)
			}
		}
	}
	for _, e := range c.Payload {
		nodes++
		walk(e, 3) // below the content element and <payload/>
	}
	if nodes > contentLimits.MaxNodes {
		t.Fatalf("%d payload nodes", nodes)
	}
}

// selfContained fails unless a payload child's encoding, parsed on its
// own, is the same element: it declares every namespace it uses.
func selfContained(t *testing.T, e *xmltree.Element) {
	t.Helper()
	x := childXML(t, e)
	again, err := xmltree.Parse([]byte(x), nil)
	if err != nil || childXML(t, again) != x || again.Name != e.Name {
		t.Fatalf("child not self-contained: %q -> %v", x, err)
	}
}

func FuzzParseContent(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContent(b)
		if err != nil {
			if _, ok := errors.AsType[*ParseError](err); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		checkLimits(t, c)
		// Whatever parses must marshal and parse back to the same content
		// (the time with the second precision Balcony sends), and marshal
		// again to the same bytes.
		m, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed content does not marshal: %v\n%q", err, b)
		}
		c2, err := ParseContent(m)
		if err != nil {
			t.Fatalf("marshalled content does not parse: %v\n%q", err, m)
		}
		c.Time = c.Time.Truncate(time.Second)
		if !sameContent(t, c, c2) {
			t.Fatalf("round trip changed content:\n%+v\n%+v", c, c2)
		}
		if m2, err := c2.Marshal(); err != nil || !bytes.Equal(m, m2) {
			t.Fatalf("marshalled again differently: %v\n%q\n%q", err, m, m2)
		}
		// The payload children are self-contained.
		for _, e := range c.Payload {
			selfContained(t, e)
		}
		checkEffective(t, c.Payload, c.Payload)
	})
}

// checkEffective runs EffectiveChildren and checks what it returns: the
// payload first, protected, then the outer children that survive the
// XEP-0374 §2.2 rules; the inputs are left as they were.
func checkEffective(t *testing.T, payload, outer []*xmltree.Element) {
	t.Helper()
	before := payloadXML(t, payload) + payloadXML(t, outer)
	got := EffectiveChildren(payload, outer)
	if len(got) < len(payload) {
		t.Fatalf("%d children for %d payload elements", len(got), len(payload))
	}
	for i, e := range payload {
		c := got[i]
		if !c.Protected {
			t.Fatalf("payload child %d not protected", i)
		}
		if c.Element != e && !(c.Name == xml.Name{Space: NSClient, Local: "body"} && e.Name.Local == "body" && len(c.Children) == len(e.Children)) {
			t.Fatalf("payload child %d changed: %+v", i, c.Element)
		}
		selfContained(t, c.Element)
	}
	for _, c := range got[len(payload):] {
		fallback := c.Name.Local == "body" && (c.Name.Space == NSClient || c.Name.Space == NSServer || c.Name.Space == "")
		if c.Protected || fallback || c.Name == (xml.Name{Space: NS, Local: "openpgp"}) || c.Name == (xml.Name{Space: NSXHTMLIM, Local: "html"}) {
			t.Fatalf("outer child %v kept (protected %v)", c.Name, c.Protected)
		}
		for _, p := range got[:len(payload)] {
			if p.Name == c.Name {
				t.Fatalf("outer child %v kept beside a protected one", c.Name)
			}
		}
	}
	if after := payloadXML(t, payload) + payloadXML(t, outer); after != before {
		t.Fatalf("inputs changed:\n%s\n%s", before, after)
	}
}

// FuzzEffectiveChildren takes the children of any element as both the
// payload and the unencrypted children of a stanza.
func FuzzEffectiveChildren(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmltree.Parse(b, nil)
		if err != nil {
			return
		}
		children := el.Elements()
		for _, e := range children {
			if checkTree(e) != nil {
				return // not a payload ParseContent would accept
			}
		}
		checkEffective(t, children, children)
		checkEffective(t, nil, children)
	})
}

func FuzzParseElement(f *testing.F) {
	xmlSeeds(f)
	f.Add([]byte(Element{Data: []byte{0x85, 0x01, 0x02}}.Element().String()))
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmltree.Parse(b, nil)
		if err != nil {
			return
		}
		data, err := ParseElement(el)
		if err != nil {
			return
		}
		if full, err := elementData(el); err != nil || !bytes.Equal(full, data) {
			t.Fatalf("fast and full paths disagree on %q: %v", b, err)
		}
		again, err := parseXML(Element{Data: data}.Element().Marshal(""), ParseElement)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzParsePEP(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		el, err := xmltree.Parse(b, nil)
		if err != nil {
			return
		}
		if l, err := ParsePublicKeysList(el); err == nil {
			out := PublicKeysList{Keys: Merge(l.Keys, l.Keys...)}.Element().Marshal("")
			l2, err := parseXML(out, ParsePublicKeysList)
			if err != nil || len(l2.Keys) != len(l.Keys) {
				t.Fatalf("metadata list round trip: %v\n%s", err, out)
			}
			for i, k := range l2.Keys {
				if k.Fingerprint != l.Keys[i].Fingerprint || !l.Contains(k.Fingerprint) {
					t.Fatalf("entry %d changed: %+v", i, k)
				}
			}
		}
		if p, err := ParsePubKey(el); err == nil {
			out := PubKey{Data: p.Data}.Element().Marshal("")
			p2, err := parseXML(out, ParsePubKey)
			if err != nil || !bytes.Equal(p2.Data, p.Data) {
				t.Fatalf("pubkey round trip: %v", err)
			}
		}
		if d, err := ParseSecretKey(el); err == nil {
			out := SecretKey{Data: d}.Element().Marshal("")
			if d2, err := parseXML(out, ParseSecretKey); err != nil || !bytes.Equal(d2, d) {
				t.Fatalf("secretkey round trip: %v", err)
			}
		}
	})
}

// FuzzOpen feeds arbitrary OpenPGP messages to the opener: it must never
// panic, and whatever it returns content for must be consistent.
func FuzzOpen(f *testing.F) {
	k := keys(f)
	c := Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Payload: []*xmltree.Element{body("hi")}}
	f.Add(sealFor(f, c, k.alice, k.bob, k.alice))
	c.Kind = Sign
	f.Add(sealFor(f, c, k.alice))
	c.Kind = Crypt
	f.Add(sealFor(f, c, nil, k.bob))
	f.Add([]byte{0xc1, 0x0e})
	o := opener(f, k.bob)
	params := OpenParams{From: aliceJID, To: bobJID, SenderKeys: []*Key{k.alice.Public()}, Require: Signcrypt, Time: t0}
	f.Fuzz(func(t *testing.T, msg []byte) {
		op, err := o.Open(msg, params)
		if err != nil {
			if op != nil {
				t.Fatal("content returned with an error")
			}
			return
		}
		if op.Verified && (op.Signer == nil || op.Content.Kind != Signcrypt || !op.Encrypted || !op.Signed) {
			t.Fatalf("verified without a signer or with the wrong kind: %+v", op)
		}
	})
}

func FuzzParseKeys(f *testing.F) {
	k := keys(f)
	pub, _ := k.alice.MarshalPublic(true)
	sec, _ := k.bob.MarshalSecret()
	f.Add(pub)
	f.Add(sec)
	armored, _ := Armor(pub)
	f.Add(armored)
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseBounded(t, b)
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k.Fingerprint()) != 40 {
				t.Fatalf("fingerprint %q", k.Fingerprint())
			}
			pub, err := k.MarshalPublic(true)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseKeys(pub)
			if err != nil || len(again) != 1 || again[0].Fingerprint() != k.Fingerprint() {
				t.Fatalf("minimal export does not parse back: %v", err)
			}
		}
	})
}
