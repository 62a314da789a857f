package xmltree

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Parse, Marshal and FromTokens against the encoding/xml implementation
// in ref_test.go: the same verdict (accepted, refused, ErrLimit), the
// same tree, the same bytes.

// tricky are inputs at the edges of what encoding/xml accepts in strict
// mode and of what Parse adds to it.
var tricky = []string{
	``, ` `, `text`, `<a>`, `<a></b>`, `<a/><b/>`, `<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`, `<a>&unknown;</a>`,
	`<a/>`, `<a />`, `<a/ >`, `<a></a >`, `<a></ a>`, `< a/>`, `<a></a\t>`, `<a\n/>`, `<a\r\nb="1"/>`,
	`<a b="1"c="2"/>`, `<a b='1'/>`, `<a b=1/>`, `<a b/>`, `<a b = "1" />`, `<a b="1" b="2"/>`, `<a b="<"/>`,
	`<a b=">"/>`, `<a b="]]>"/>`, `<a b="'"/>`, `<a b='"'/>`, `<a>]]></a>`, `<a>]]</a>`, `<a>]</a>`, `<a>]&#93;></a>`, `<a>]]]></a>`,
	`<a>&lt;&gt;&amp;&apos;&quot;</a>`, `<a>&#65;&#x41;</a>`, `<a>&#X41;</a>`, `<a>&#x;</a>`, `<a>&#;</a>`, `<a>&#0;</a>`,
	`<a>&#x10FFFF;</a>`, `<a>&#x110000;</a>`, `<a>&#xD800;</a>`, `<a>&#xDFFF;</a>`, `<a>&#xFFFE;</a>`, `<a>&#xFFFD;</a>`, `<a>&#9;&#10;&#13;</a>`,
	`<a>&#0000000065;</a>`, `<a>&#99999999999999999999999;</a>`, `<a>&#x0000000000000041;</a>`, `<a>&lt</a>`, `<a>&</a>`, `<a>&amp</a>`,
	`<a>&ltx;</a>`, `<a>&LT;</a>`, `<a>&#x41g;</a>`, `<a>&#xx41;</a>`, `<a>& amp;</a>`, `<a b="&#13;&#10;"/>`, `<a b="&lt;"/>`, `<a b="&x;"/>`,
	"<a>x\r\ny\rz\r\r\n</a>", "<a b=\"x\r\ny\r\"/>", "<a><![CDATA[x\r\ny\r]]></a>", "<a>\r</a>", "<a>&#13;\n</a>", "<a>\r&amp;\n</a>",
	"<a>x\r<!---->\ny</a>", "<a>\t\n</a>", "<a b=\"\t\n\"/>",
	`<a><![CDATA[]]></a>`, `<a><![CDATA[<b>&amp;]]></a>`, `<a>x<![CDATA[y]]>z</a>`, `<a><b/><![CDATA[]]><c/></a>`, `<a><![CDATA[]]]]></a>`,
	`<a><![cdata[x]]></a>`, `<a><![CDATA[x</a>`, `<a><![CDATA[x]]]></a>`, `<a><![C</a>`,
	`<a><!-- c --></a>`, `<a><!-- c -- d --></a>`, `<a><!----></a>`, `<a><!---></a>`, `<a><!--->--></a>`, `<a><!-- x ---></a>`,
	`<a>x<!--c-->y</a>`, `<!-- c --><a/><!-- d -->`, `<a><!- x --></a>`, `<a><!--`, `<a><!-- x --`,
	`<?xml version="1.0"?><a/>`, `<?xml version="1.1"?><a/>`, `<?xml version='1.0' encoding='UTF-8'?><a/>`, `<?xml encoding="latin1"?><a/>`,
	`<?xml encoding="utf-8"?><a/>`, `<?xml encoding="Utf-8"?><a/>`, `<?xml version=1.1?><a/>`, `<?xml version=1.1 version="1.0"?><a/>`,
	`<?xml version="1.0?><a/>`, `<?xml versionversion="2"?><a/>`, `<?xml version=?><a/>`, `<?xml version=`, `<?xml encoding=""?><a/>`,
	`<a><?xml version="2.0"?></a>`, `<a/><?xml version="2.0"?>`, `<?XML version="2.0"?><a/>`, `<?xml?><a/>`, `<?xmlx version="2"?><a/>`,
	`<? a?><a/>`, `<?a?><a/>`, `<?a b?c?><a/>`, `<?a`, `<?a?`, `<?1?><a/>`, `<?a:b:c?><a/>`, `<?a>?><a/>`, `<a><?p x?>y</a>`,
	`<!DOCTYPE a><a/>`, `<a><!DOCTYPE a></a>`, `<a/><!DOCTYPE a>`, `<a><!ELEMENT></a>`, `<!>`, `<a><!`, `<!-x--><a/>`,
	`<a xmlns="urn:x"><b/><xmlns/></a>`, `<p:a/>`, `<p:a xmlns:p="urn:p"/>`, `<a xmlns:p="urn:p"><p:b p:c="1" c="2"/></a>`,
	`<a xmlns:p=""><p:b p:c="1"/></a>`, `<a xmlns=""/>`, `<a xmlns="u"><b xmlns=""><c/></b><d/></a>`, `<xmlns:a/>`, `<xml:a/>`,
	`<a xml:lang="en"/>`, `<a xmlns:xml="foo" xml:lang="en"/>`, `<a p:xmlns="1" xmlns:p=""/>`, `<a xmlns:q="xmlns" q:b="1"/>`,
	`<a xmlns:p="1" xmlns:p="2"><p:b/></a>`, `<a xmlns:p="1"><b xmlns:p="2"><p:c/></b><p:d/></a>`, `<a xmlns:xmlns="x"><xmlns:b/></a>`,
	`<a:b:c/>`, `<a:/>`, `<:a/>`, `<a b:="1"/>`, `<a :b="1"/>`, `<a xmlns:="x"/>`, `<a xmlns:0="x"/>`, `<a><A:0/></a>`, `<a 0="1"/>`,
	`<a:b c:d:e="1"/>`, `<é/>`, `<aé/>`, "<a\u00a0/>", `<a·b/>`, "<a\xffb/>", "<a\u0300/>", "<\u0300/>", "<p:\u00b7/>", "<a\u00b7/>",
	`<p:a xmlns:p="1"></q:a>`, `<p:a xmlns:p="1" xmlns:q="1"></q:a>`, `<a></a:>`, `<a></:a>`, `<a.b-c_d/>`, `<_a/>`, `<-a/>`, `<.a/>`,
	"\u00a0<a/>", "<a/>\u3000", "\u0085<a/>", `&#32;<a/>`, `<a/>&#32;`, `&#65;<a/>`, `<![CDATA[ ]]><a/>`, `<a/><![CDATA[x]]>`, `<![CDATA[]]><a/>`,
	"\ufeff<a/>", "<a/>\x00", "<a>\x00</a>", "<a>\x0b</a>", "<a>\x7f</a>", "<a>\u0080\u009f</a>", "<a>\xff</a>", "<a>\xed\xa0\x80</a>", "<a>\xe2\x82</a>",
	"<a>\uFFFE</a>", "<a>\uFFFF</a>", "<a>\uFFFD</a>", "<a>\U0010FFFF</a>", "<a b=\"\x01\"/>", "<a><!-- \x00\xff --></a>", "<a><?p \x00\xff?></a>",
	"<a><![CDATA[\x00]]></a>", "<a><![CDATA[\xff]]></a>", "\x00<a/>", " \t\r\n<a/>\n", "\v<a/>",
	`<a>x`, `<a b="1`, `<a b=`, `<a b`, `<a`, `<`, `</a>`, `<a></a></a>`, `<a>x</a>y`, `<a></a>&amp;`, `<a/>]]>`, `]]><a/>`, `<a/></a>`,
	`<a/><b`, `<a/><`, `<a/><!-- x`, `<a/><?x`, `<a>&#65`, `<a>&#x`, `<a>&`, `<a>&l`, `<a b="&`, `<a b='x"/>`,
	`<message xmlns="jabber:client" to="a@b" type="chat"><body>hi &amp; bye</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"/></message>`,
	`<a><b><c><d><e><f/></e></d></c></b></a>`, `<a>1<b/>2<c/>3</a>`, `<a>x<b>y</b>z<!--q-->w</a>`,
}

// limitSets are the limits each input is parsed under: small ones reach
// every limit from several sides.
var limitSets = []*Limits{
	nil, {}, {MaxDepth: 1, MaxNodes: 1, MaxBytes: 5}, {MaxDepth: 2, MaxNodes: 3, MaxBytes: 20},
	{MaxDepth: 3, MaxNodes: 10, MaxBytes: 100}, {MaxDepth: 64, MaxNodes: 0, MaxBytes: 1 << 20}, {MaxDepth: 1, MaxNodes: 20000, MaxBytes: 1 << 20},
}

// checkParse fails t unless Parse and refParse agree on b under lim.
func checkParse(t *testing.T, b []byte, lim *Limits) {
	t.Helper()
	got, gerr := Parse(b, lim)
	want, werr := refParse(b, lim)
	if (gerr == nil) != (werr == nil) || errors.Is(gerr, ErrLimit) != errors.Is(werr, ErrLimit) {
		t.Fatalf("Parse(%q, %+v):\n got error %v\nwant error %v", b, lim, gerr, werr)
	}
	if gerr != nil {
		var se *SyntaxError
		if !errors.Is(gerr, ErrLimit) && !errors.As(gerr, &se) {
			t.Fatalf("Parse(%q): error %v is not a *SyntaxError", b, gerr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(%q, %+v):\n got %s\nwant %s", b, lim, dump(got), dump(want))
	}
}

// dump shows a tree with every detail reflect.DeepEqual compares.
func dump(e *Element) string {
	var b strings.Builder
	var walk func(e *Element)
	walk = func(e *Element) {
		fmt.Fprintf(&b, "<{%q}%q attr=%#v", e.Name.Space, e.Name.Local, e.Attr)
		if e.Children == nil {
			b.WriteString(" nil")
		}
		b.WriteString(">")
		for _, c := range e.Children {
			switch c := c.(type) {
			case *Element:
				walk(c)
			case CharData:
				fmt.Fprintf(&b, "%q", string(c))
			}
		}
		b.WriteString("</>")
	}
	walk(e)
	return b.String()
}

func TestParseMatchesReference(t *testing.T) {
	for _, in := range tricky {
		for _, lim := range limitSets {
			checkParse(t, []byte(in), lim)
		}
	}
	for _, in := range benchInputs(t) {
		for _, lim := range limitSets {
			checkParse(t, in, lim)
		}
	}
}

// TestLimitsMatchReference walks every limit across its range on inputs
// where the limits meet syntax errors and invalid names in the same
// place.
func TestLimitsMatchReference(t *testing.T) {
	ins := []string{
		`<a xmlns="u" b="cd"><e f="g">hi<!---->there<h/><p:i/><![CDATA[x]]></e>tail<j></j></a>`,
		`<a><b><c><d/></c></b><b:0/></a>`, `<a><b><c>text</c><d x="1" 0="2"/></b></a>`, `<a><b/><c/>&x;</a>`,
		`<a>xxxxxxxx<b y="zzzz"/>&#0;</a>`, `<a><b>x</b><c>`, `<abc def="ghi"/>`, `<a><b c=>`, `<a><b/><![CDATA[x]]>]]></a>`,
	}
	for _, in := range ins {
		for d := 0; d < 6; d++ {
			for n := 0; n < 10; n++ {
				for m := 0; m < len(in)+60; m += 3 {
					checkParse(t, []byte(in), &Limits{MaxDepth: d, MaxNodes: n, MaxBytes: m})
				}
			}
		}
	}
}

func FuzzParseDiff(f *testing.F) {
	for _, in := range tricky {
		f.Add([]byte(in), uint8(64), uint16(20000), uint32(1<<20))
	}
	f.Add([]byte(`<a><b><c/></b></a>`), uint8(2), uint16(1), uint32(10))
	f.Fuzz(func(t *testing.T, b []byte, depth uint8, nodes uint16, size uint32) {
		checkParse(t, b, nil)
		checkParse(t, b, &Limits{MaxDepth: int(depth % 70), MaxNodes: int(nodes % 600), MaxBytes: int(size % (1 << 16))})
	})
}

// checkMarshal fails t unless Marshal and AppendXML write what
// refMarshal writes, TokenReader gives the reference tokens, and all
// panic alike.
func checkMarshal(t *testing.T, e *Element, inherited string) {
	t.Helper()
	want, wpanic := catch(func() []byte { return refMarshal(e, inherited) })
	got, gpanic := catch(func() []byte { return e.Marshal(inherited) })
	if wpanic != gpanic {
		t.Fatalf("Marshal(%q) of %s: panic %q, reference %q", inherited, dump(e), gpanic, wpanic)
	}
	if wpanic != "" {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal(%q) of %s:\n got %q\nwant %q", inherited, dump(e), got, want)
	}
	if got := e.AppendXML([]byte("prefix"), inherited); string(got) != "prefix"+string(want) {
		t.Fatalf("AppendXML: %q", got)
	}
	if inherited == "" && e.String() != string(want) {
		t.Fatalf("String: %q", e.String())
	}
	var wantToks []xml.Token
	refAppendTokens(e, &wantToks, inherited)
	r := e.TokenReader(inherited)
	for i := 0; ; i++ {
		tok, err := r.Token()
		if err == io.EOF {
			if i != len(wantToks) {
				t.Fatalf("TokenReader: %d tokens, want %d", i, len(wantToks))
			}
			break
		}
		if i >= len(wantToks) || !reflect.DeepEqual(tok, wantToks[i]) {
			t.Fatalf("TokenReader token %d: %#v", i, tok)
		}
	}
}

func catch(f func() []byte) (b []byte, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	return f(), ""
}

// awkward holds strings with everything that needs escaping or that XML
// cannot carry.
var awkward = []string{
	"", "plain", `"'&<>`, "a\tb\nc\rd", "\r\n", "\x00\x01\x08\x0b\x0c\x1f\x7f", "\u0080\u0085\u00a0", "\uFFFD\uFFFE\uFFFF",
	"\xff", "x\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\U0010FFFF", "]]>", "&amp;", "é\xe2\x82x",
}

func TestMarshalMatchesReference(t *testing.T) {
	for _, in := range tricky {
		if e, err := refParse([]byte(in), nil); err == nil {
			for _, inh := range []string{"", "urn:x", "u"} {
				checkMarshal(t, e, inh)
			}
		}
	}
	for _, s := range awkward {
		for _, inh := range []string{"", s} {
			checkMarshal(t, built(s, s, s, s, s, 0xff), inh)
			checkMarshal(t, built("urn:x", "m", "a", s, s, 0xff), inh)
		}
	}
	for flags := range 256 {
		checkMarshal(t, built("urn:x", "m", "k", "v\n\"", "t<\r", uint8(flags)), "urn:x")
	}
	checkMarshal(t, New("u", ""), "")
	checkMarshal(t, New("u", "a").Append(New("u", "")), "")
	checkMarshal(t, &Element{Name: xml.Name{Local: "a"}, Children: []Node{nil, CharData(""), otherNode{}}}, "")
}

// otherNode is a Node type of another package's making.
type otherNode struct{ *Element }

// built makes a tree from fuzzed strings; the bits of flags choose what
// goes in.
func built(space, local, attr, value, text string, flags uint8) *Element {
	e := New(space, local)
	if flags&1 != 0 {
		e.SetAttr(attr, value)
	}
	if flags&2 != 0 {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: xmlURL, Local: attr}, Value: value})
	}
	if flags&4 != 0 {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: "xml", Local: ""}, Value: value})
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: "urn:other", Local: attr}, Value: value})
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: ""}, Value: value})
	}
	if flags&8 != 0 {
		e.AppendText(text)
	}
	if flags&16 != 0 {
		e.Append(New(space, local+"c").AppendText(text).AppendText(text))
	}
	if flags&32 != 0 {
		e.Append(New(text, "d", "x", text))
	}
	if flags&64 != 0 {
		e.Append(New("", "e"), CharData(""))
	}
	if flags&128 != 0 {
		e.Append(New(value, local))
	}
	return e
}

func FuzzMarshalDiff(f *testing.F) {
	for _, in := range tricky {
		f.Add([]byte(in), "", "v", "t", uint8(0xff))
	}
	for _, s := range awkward {
		f.Add([]byte(`<a xmlns="u"><b/></a>`), "u", s, s, uint8(0x5b))
	}
	f.Fuzz(func(t *testing.T, b []byte, inherited, value, text string, flags uint8) {
		if e, err := refParse(b, nil); err == nil {
			checkMarshal(t, e, inherited)
			checkMarshal(t, e, e.Name.Space)
		}
		checkMarshal(t, built(inherited, "m", "a", value, text, flags), inherited)
		checkMarshal(t, built(value, text, value, text, value, flags), inherited)
	})
}

// replay hands out recorded tokens: CharData cut into pieces of at most
// cut bytes (0: whole), the last token with io.EOF if eofLast, then err.
type replay struct {
	toks    []xml.Token
	err     error
	eofLast bool
}

func record(b []byte, cut int) (xml.StartElement, *replay, bool) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return start, nil, false
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s.Copy()
			break
		}
	}
	r := &replay{}
	for {
		tok, err := d.Token()
		if err != nil {
			r.err = err
			return start, r, true
		}
		tok = xml.CopyToken(tok)
		if c, ok := tok.(xml.CharData); ok && cut > 0 {
			for len(c) > cut {
				r.toks = append(r.toks, c[:cut])
				c = c[cut:]
			}
			tok = c
		}
		r.toks = append(r.toks, tok)
	}
}

func (r *replay) clone() *replay {
	c := *r
	return &c
}

func (r *replay) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, r.err
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	if len(r.toks) == 0 && r.eofLast {
		return t, io.EOF
	}
	return t, nil
}

func checkFromTokens(t *testing.T, b []byte, cut int, eofLast bool, lim *Limits) {
	t.Helper()
	start, r, ok := record(b, cut)
	if !ok {
		return
	}
	r.eofLast = eofLast
	got, gerr := FromTokens(r.clone(), start, lim)
	want, werr := refFromTokens(r.clone(), start, lim)
	if (gerr == nil) != (werr == nil) || errors.Is(gerr, ErrLimit) != errors.Is(werr, ErrLimit) {
		t.Fatalf("FromTokens(%q): error %v, reference %v", b, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("FromTokens(%q):\n got %s\nwant %s", b, dump(got), dump(want))
	}
}

func TestFromTokensMatchesReference(t *testing.T) {
	for _, in := range tricky {
		for _, lim := range limitSets {
			for _, cut := range []int{0, 1, 3} {
				checkFromTokens(t, []byte(in), cut, false, lim)
				checkFromTokens(t, []byte(in), cut, true, lim)
			}
		}
	}
}

func FuzzFromTokensDiff(f *testing.F) {
	for _, in := range tricky {
		f.Add([]byte(in), uint8(0), false, uint8(64), uint16(20000), uint32(1<<20))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint8, eofLast bool, depth uint8, nodes uint16, size uint32) {
		checkFromTokens(t, b, int(cut%8), eofLast, &Limits{MaxDepth: int(depth % 70), MaxNodes: int(nodes % 600), MaxBytes: int(size % (1 << 16))})
	})
}

// TestNameTables checks isName, which follows encoding/xml's name rules,
// against encoding/xml for every rune as the first and as a later
// character of a name.
func TestNameTables(t *testing.T) {
	accepts := func(name string) bool {
		d := xml.NewDecoder(strings.NewReader("<" + name + " />"))
		tok, err := d.RawToken()
		s, ok := tok.(xml.StartElement)
		if err != nil || !ok {
			return false
		}
		got := s.Name.Local
		if s.Name.Space != "" {
			got = s.Name.Space + ":" + s.Name.Local
		}
		return got == name
	}
	step := rune(1)
	if testing.Short() {
		step = 97
	}
	for r := rune(0); r <= utf8.MaxRune; r += step {
		if !utf8.ValidRune(r) {
			continue
		}
		for _, name := range []string{string(r), "a" + string(r), "a" + string(r) + "b"} {
			if got, want := isName(name), accepts(name); got != want {
				t.Fatalf("isName(%q) = %v, encoding/xml %v", name, got, want)
			}
		}
	}
	for _, name := range []string{"\xff", "a\xff", "a\xed\xa0\x80", "a\xc3"} {
		if isName(name) || accepts(name) {
			t.Fatalf("%q accepted", name)
		}
	}
}

// TestParseConcurrent parses and writes from several goroutines at once,
// which share the parser pool, and checks every result; run it with
// -race.
func TestParseConcurrent(t *testing.T) {
	ins := append(benchInputs(t), []byte(`<a xmlns:p="u">x&amp;<p:b c="&lt;"/>y</a>`), []byte(`<a>&bad;</a>`))
	want := make([]string, len(ins))
	for i, in := range ins {
		if e, err := refParse(in, nil); err == nil {
			want[i] = string(refMarshal(e, ""))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(ins)
				e, err := Parse(ins[i], nil)
				got := ""
				if err == nil {
					got = e.String()
				}
				if got != want[i] {
					errs <- fmt.Errorf("input %d: got %q, want %q (%v)", i, got, want[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWordBoundaries puts every byte value at every position of a run of
// text and of an attribute value longer than the 8-byte words that
// Parse and AppendXML test at once.
func TestWordBoundaries(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			b := []byte(strings.Repeat("abcdefgh", 3))
			b[pos] = byte(c)
			s := string(b)
			for _, in := range []string{"<a>" + s + "</a>", `<a b="` + s + `"/>`, "<a b='" + s + "'/>", "<a><![CDATA[" + s + "]]></a>"} {
				checkParse(t, []byte(in), nil)
			}
			checkMarshal(t, New("u", "a", "b", s).AppendText(s), "")
		}
	}
}
