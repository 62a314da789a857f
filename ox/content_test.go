package ox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// findElement returns the first element named name in the document b.
func findElement(t testing.TB, b []byte, name xml.Name) *xmltree.Element {
	t.Helper()
	var find func(e *xmltree.Element) *xmltree.Element
	find = func(e *xmltree.Element) *xmltree.Element {
		if e.Name == name {
			return e
		}
		for _, c := range e.Elements() {
			if f := find(c); f != nil {
				return f
			}
		}
		return nil
	}
	if e := find(mustParse(t, b)); e != nil {
		return e
	}
	t.Fatalf("element {%s}%s not found", name.Space, name.Local)
	return nil
}

func TestXEP0373Example2Signcrypt(t *testing.T) {
	c, err := ParseContent(readTestdata(t, "xep/xep0373-ex02.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Signcrypt {
		t.Errorf("kind %v", c.Kind)
	}
	if len(c.To) != 1 || c.To[0].String() != "juliet@example.org" {
		t.Errorf("to %v", c.To)
	}
	want := time.Date(2014, 7, 10, 15, 6, 0, 0, time.UTC)
	if !c.Time.Equal(want) {
		t.Errorf("time %v, want %v", c.Time, want)
	}
	if strings.TrimSpace(c.Rpad) != "f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv" {
		t.Errorf("rpad %q", c.Rpad)
	}
	children := c.Payload
	if len(children) != 1 || children[0].Name != (xml.Name{Space: NSClient, Local: "body"}) {
		t.Fatalf("payload children %+v", children)
	}
	if !strings.Contains(childXML(t, children[0]), "This is a secret message.") {
		t.Errorf("body %s", childXML(t, children[0]))
	}
}

func TestContentRoundTrip(t *testing.T) {
	payload := `<body xml:lang="en">a &lt;b&gt; &amp; "c" 'd' ]]&gt; ☃</body>` +
		`<active xmlns="http://jabber.org/protocol/chatstates"/>` +
		`<x xmlns="urn:example:x" xmlns:p="urn:example:p" p:attr="v&#10;w" plain="1"><y><z xmlns="">t</z></y></x>`
	for _, kind := range []Kind{Signcrypt, Sign, Crypt} {
		t.Run(kind.String(), func(t *testing.T) {
			c := Content{
				Kind:    kind,
				To:      []jid.JID{jid.MustParse("juliet@example.org"), jid.MustParse("romeo@example.net")},
				Time:    time.Date(2020, 1, 21, 10, 46, 21, 0, time.UTC),
				Rpad:    "pad-_0",
				Payload: payloadOf(t, payload),
			}
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseContent(b)
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if got.Kind != kind || len(got.To) != 2 || !got.To[1].Equal(c.To[1]) || !got.Time.Equal(c.Time) || got.Rpad != c.Rpad {
				t.Errorf("got %+v", got)
			}
			// Parsing normalises the payload; a second round trip is stable.
			b2, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Errorf("not stable:\n%s\n%s", b, b2)
			}
			children := got.Payload
			names := []xml.Name{
				{Space: NSClient, Local: "body"},
				{Space: "http://jabber.org/protocol/chatstates", Local: "active"},
				{Space: "urn:example:x", Local: "x"},
			}
			if len(children) != len(names) {
				t.Fatalf("children %+v", children)
			}
			for i, n := range names {
				if children[i].Name != n {
					t.Errorf("child %d: %v, want %v", i, children[i].Name, n)
				}
			}
			// The nested element in no namespace keeps it, the prefixed
			// attribute keeps its namespace, and the text survives, also
			// when the child is encoded on its own.
			d := xml.NewDecoder(strings.NewReader(childXML(t, children[2])))
			var zSpace, attr string
			for {
				tok, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if s, ok := tok.(xml.StartElement); ok {
					if s.Name.Local == "z" {
						zSpace = s.Name.Space
					}
					for _, a := range s.Attr {
						if a.Name.Local == "attr" {
							attr = a.Name.Space + " " + a.Value
						}
					}
				}
			}
			if zSpace != "" || attr != "urn:example:p v\nw" {
				t.Errorf("z namespace %q, attr %q in %s", zSpace, attr, childXML(t, children[2]))
			}
			if x := childXML(t, children[0]); !strings.Contains(x, `xml:lang="en"`) || !strings.Contains(x, `☃`) {
				t.Errorf("body %s", x)
			}
		})
	}
}

func TestContentMarshalRejectsInjection(t *testing.T) {
	deep := xmltree.New(NSClient, "x")
	for e, i := deep, 0; i < maxDepth; i++ {
		c := xmltree.New(NSClient, "x")
		e.Append(c)
		e = c
	}
	cyclic := xmltree.New(NSClient, "loop")
	cyclic.Append(cyclic)
	repeated := xmltree.New(NSClient, "body", "a", "1")
	repeated.Attr = append(repeated.Attr, repeated.Attr[0])
	for name, p := range map[string]*xmltree.Element{
		"markup in a name":           xmltree.New(NSClient, `payload><to jid="mallory@evil.example"/><payload`),
		"markup in an attribute":     xmltree.New(NSClient, "body", `jid="x"/><to`, "y"),
		"prefixed name":              xmltree.New(NSClient, "p:body"),
		"empty name":                 xmltree.New(NSClient, ""),
		"invalid character in text":  body("\x01"),
		"invalid UTF-8 in text":      body("\xff"),
		"invalid character in value": xmltree.New(NSClient, "body", "a", "\x00"),
		"invalid character in xmlns": xmltree.New("urn:\x01", "body"),
		"repeated attribute":         repeated,
		"nested too deeply":          deep,
		"cycle":                      cyclic,
		"nil":                        nil,
	} {
		c := Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Time: t0, Payload: []*xmltree.Element{body("ok"), p}}
		if b, err := c.Marshal(); err == nil {
			t.Errorf("%s: accepted: %s", name, b)
		}
	}
	// Text that looks like markup stays text.
	c := Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Time: t0,
		Payload: []*xmltree.Element{body(`</body></payload><to jid="mallory@evil.example"/><payload><body>`)}}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseContent(b)
	if err != nil || len(got.To) != 1 || len(got.Payload) != 1 || got.Payload[0].Text() != c.Payload[0].Text() {
		t.Errorf("%v %+v\n%s", err, got, b)
	}
	c = Content{Kind: Signcrypt, Time: t0, Rpad: "\x00"}
	if _, err := c.Marshal(); err == nil {
		t.Error("invalid rpad character accepted")
	}
	if _, err := (&Content{Kind: 9, Time: t0}).Marshal(); err == nil {
		t.Error("invalid kind accepted")
	}
	if _, err := (&Content{Kind: Crypt}).Marshal(); err == nil {
		t.Error("zero time accepted")
	}
}

func TestParseContentErrors(t *testing.T) {
	const head = `<signcrypt xmlns='urn:xmpp:openpgp:0'>`
	const tm = `<time stamp='2020-01-21T10:46:21Z'/>`
	const pl = `<payload/>`
	for name, in := range map[string]string{
		"empty":            ``,
		"no time":          head + pl + `</signcrypt>`,
		"two times":        head + tm + tm + pl + `</signcrypt>`,
		"no stamp":         head + `<time/>` + pl + `</signcrypt>`,
		"bad stamp":        head + `<time stamp='yesterday'/>` + pl + `</signcrypt>`,
		"no zone":          head + `<time stamp='2020-01-21T10:46:21'/>` + pl + `</signcrypt>`,
		"no payload":       head + tm + `</signcrypt>`,
		"two payloads":     head + tm + pl + pl + `</signcrypt>`,
		"two rpads":        head + tm + `<rpad/><rpad/>` + pl + `</signcrypt>`,
		"rpad child":       head + tm + `<rpad><x/></rpad>` + pl + `</signcrypt>`,
		"to without jid":   head + `<to/>` + tm + pl + `</signcrypt>`,
		"to with bad jid":  head + `<to jid='@'/>` + tm + pl + `</signcrypt>`,
		"wrong namespace":  `<signcrypt xmlns='urn:xmpp:openpgp:1'>` + tm + pl + `</signcrypt>`,
		"wrong element":    `<openpgp xmlns='urn:xmpp:openpgp:0'/>`,
		"two elements":     head + tm + pl + `</signcrypt>` + head + tm + pl + `</signcrypt>`,
		"text after":       head + tm + pl + `</signcrypt>x`,
		"text before":      `x` + head + tm + pl + `</signcrypt>`,
		"doctype":          `<!DOCTYPE signcrypt>` + head + tm + pl + `</signcrypt>`,
		"unclosed":         head + tm + pl,
		"mismatched":       head + tm + pl + `</sign>`,
		"not utf-8":        head + tm + "<rpad>\xff</rpad>" + pl + `</signcrypt>`,
		"entity":           head + tm + `<rpad>&foo;</rpad>` + pl + `</signcrypt>`,
		"bad payload text": head + tm + "<payload><body>\x01</body></payload></signcrypt>",
		"payload repeats":  head + tm + `<payload><a x="1" x='2'/></payload></signcrypt>`,
		"payload unclosed": head + tm + `<payload><a></payload></signcrypt>`,
		"payload stray":    head + tm + `<payload><a/></b></payload></signcrypt>`,
		"payload pi":       head + tm + `<payload><?pi x?></payload></signcrypt>`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseContent([]byte(in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want *ParseError", err)
			}
		})
	}
}

func TestParseContentTolerance(t *testing.T) {
	// Unknown elements are ignored, white space and an XML declaration
	// around the element are fine, <rpad/> is optional and <to/> may be
	// absent (that is a receiver check, not a parse error).
	in := "<?xml version='1.0' encoding='UTF-8'?>\n" +
		`<crypt xmlns='urn:xmpp:openpgp:0'><future xmlns='urn:example'/><unknown/>` +
		`<time stamp=' 2020-01-21T12:46:21.123456+0200 '/><payload/></crypt>` + "\n"
	c, err := ParseContent([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2020, 1, 21, 10, 46, 21, 123456000, time.UTC)
	if c.Kind != Crypt || len(c.To) != 0 || !c.Time.Equal(want) || len(c.Payload) != 0 {
		t.Errorf("got %+v", c)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2014, 7, 10, 15, 6, 0, 0, time.UTC)
	for _, s := range []string{
		"2014-07-10T15:06:00Z",
		"2014-07-10T17:06:00+02:00",
		"2014-07-10T17:06:00+0200", // as sent by Profanity
		"2014-07-10T13:36:00-01:30",
		"2014-07-10T15:06:00.000Z",
		" 2014-07-10T15:06:00Z\n",
	} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{
		"", "2014-07-10", "2014-07-10T15:06:00", "2014-07-10 15:06:00Z", "2014-07-10T15:06Z",
		"2014-13-10T15:06:00Z", "2014-07-10T15:06:00+2", "2014-07-10T25:06:00Z", "now",
		"2014-07-10T15:06:00Zjunk",
	} {
		if got, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) = %v, want error", s, got)
		}
	}
	if s := FormatTime(time.Date(2014, 7, 10, 17, 6, 0, 999, time.FixedZone("x", 7200))); s != "2014-07-10T15:06:00Z" {
		t.Errorf("FormatTime = %s", s)
	}
}

func TestRpad(t *testing.T) {
	r := mrand.NewChaCha8([32]byte{7})
	lengths := map[int]bool{}
	minLen, maxLen := maxRpad, 0
	for range 2000 {
		p, err := newRpad(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []byte(p) {
			if strings.IndexByte(rpadAlphabet, c) < 0 {
				t.Fatalf("character %q outside the alphabet", c)
			}
		}
		lengths[len(p)] = true
		minLen, maxLen = min(minLen, len(p)), max(maxLen, len(p))
	}
	if minLen < 1 || maxLen > maxRpad || len(lengths) < 200 {
		t.Errorf("lengths %d..%d, %d distinct", minLen, maxLen, len(lengths))
	}
	if _, err := newRpad(bytes.NewReader(nil)); err == nil {
		t.Error("no error from an empty random source")
	}
}

func TestKindString(t *testing.T) {
	for k, s := range map[Kind]string{Signcrypt: "signcrypt", Sign: "sign", Crypt: "crypt", 0: "Kind(0)"} {
		if k.String() != s {
			t.Errorf("%d: %s", k, k.String())
		}
	}
}
