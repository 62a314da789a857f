package ox

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// Every parser of untrusted input has a fuzz target here. Run as normal
// tests they check the seed corpus; run with -fuzz they search for inputs
// that crash, disagree between the fast and the full XML path, or do not
// survive a round trip.

func slowReader(b []byte, defaultNS string) tokens {
	d := newDecoder(bytes.NewReader(b))
	d.DefaultSpace = defaultNS
	return &stdTokens{r: d}
}

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

func sameContent(a, b *Content) bool {
	if a.Kind != b.Kind || !a.Time.Equal(b.Time) || a.Rpad != b.Rpad || !bytes.Equal(a.Payload, b.Payload) || len(a.To) != len(b.To) {
		return false
	}
	for i := range a.To {
		if !a.To[i].Equal(b.To[i]) {
			return false
		}
	}
	return true
}

func FuzzParseContent(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, fastErr := parseContent(newFastReader(b, ""))
		slow, slowErr := parseContent(slowReader(b, ""))
		if fastErr == nil {
			if slowErr != nil {
				t.Fatalf("fast path accepts what encoding/xml rejects (%v):\n%q", slowErr, b)
			}
			if !sameContent(fast, slow) {
				t.Fatalf("fast and full parsers disagree on %q:\n%+v\n%+v", b, fast, slow)
			}
		}
		c, err := ParseContent(b)
		if err != nil {
			return
		}
		// Whatever parses must marshal and parse back to the same content
		// (the time with the second precision Balcony sends).
		m, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed content does not marshal: %v\n%q", err, b)
		}
		c2, err := ParseContent(m)
		if err != nil {
			t.Fatalf("marshalled content does not parse: %v\n%q", err, m)
		}
		c.Time = c.Time.Truncate(time.Second)
		if !sameContent(c, c2) {
			t.Fatalf("round trip changed content:\n%+v\n%+v", c, c2)
		}
		// The payload children are self-contained.
		if _, err := ParseChildren(c.Payload, ""); err != nil {
			t.Fatalf("payload children do not parse: %v\n%q", err, c.Payload)
		}
	})
}

func FuzzParseChildren(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, fastErr := readChildren(newFastReader(b, NSClient))
		slow, slowErr := readChildren(slowReader(b, NSClient))
		if fastErr == nil && slowErr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast and full parsers disagree on %q:\n%+v\n%+v", b, fast, slow)
		}
		if fastErr == nil && slowErr != nil {
			t.Fatalf("fast path accepts what encoding/xml rejects (%v): %q", slowErr, b)
		}
		children, err := ParseChildren(b, NSClient)
		if err != nil {
			return
		}
		var joined []byte
		for _, c := range children {
			again, err := ParseChildren(c.XML, "urn:example:elsewhere")
			if err != nil || len(again) != 1 || again[0].Name != c.Name || !bytes.Equal(again[0].XML, c.XML) {
				t.Fatalf("child not self-contained: %q -> %v %+v", c.XML, err, again)
			}
			joined = append(joined, c.XML...)
		}
		if _, err := EffectiveChildren(joined, children); err != nil {
			t.Fatalf("EffectiveChildren: %v", err)
		}
	})
}

func FuzzParseElement(f *testing.F) {
	xmlSeeds(f)
	f.Add(Element{Data: []byte{0x85, 0x01, 0x02}}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		data, err := ParseElement(b)
		if err != nil {
			return
		}
		var e Element
		if err := decodeOneTokens(slowReader(b, ""), e.decode); err != nil || !bytes.Equal(e.Data, data) {
			t.Fatalf("fast and full parsers disagree on %q: %v", b, err)
		}
		again, err := ParseElement(Element{Data: data}.Marshal())
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzParsePEP(f *testing.F) {
	xmlSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParsePublicKeysList(b); err == nil {
			out, err := xml.Marshal(PublicKeysList{Keys: Merge(l.Keys, l.Keys...)})
			if err != nil {
				t.Fatal(err)
			}
			l2, err := ParsePublicKeysList(out)
			if err != nil || len(l2.Keys) != len(l.Keys) {
				t.Fatalf("metadata list round trip: %v\n%s", err, out)
			}
			for i, k := range l2.Keys {
				if k.Fingerprint != l.Keys[i].Fingerprint || !l.Contains(k.Fingerprint) {
					t.Fatalf("entry %d changed: %+v", i, k)
				}
			}
		}
		if p, err := ParsePubKey(b); err == nil {
			out, err := xml.Marshal(PubKey{Data: p.Data})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := ParsePubKey(out)
			if err != nil || !bytes.Equal(p2.Data, p.Data) {
				t.Fatalf("pubkey round trip: %v", err)
			}
		}
		if d, err := ParseSecretKey(b); err == nil {
			out, err := xml.Marshal(SecretKey{Data: d})
			if err != nil {
				t.Fatal(err)
			}
			if d2, err := ParseSecretKey(out); err != nil || !bytes.Equal(d2, d) {
				t.Fatalf("secretkey round trip: %v", err)
			}
		}
	})
}

// FuzzOpen feeds arbitrary OpenPGP messages to the opener: it must never
// panic, and whatever it returns content for must be consistent.
func FuzzOpen(f *testing.F) {
	k := keys(f)
	c := Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Payload: []byte("<body>hi</body>")}
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
