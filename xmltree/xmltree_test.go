package xmltree

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTripNamespaces(t *testing.T) {
	in := `<message xmlns="jabber:client" to="a@b" type="chat"><body>hi &amp; bye</body><encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"/><x xmlns="jabber:x:data"><field var="a"><value>1</value></field></x></message>`
	e, err := Parse([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name.Space != "jabber:client" || e.Child("jabber:client", "body").Text() != "hi & bye" {
		t.Fatalf("bad parse: %#v", e)
	}
	if v := e.Child("urn:xmpp:eme:0", "encryption").AttrValue("namespace"); v != "urn:xmpp:otr:0" {
		t.Fatalf("namespace attr = %q", v)
	}
	if e.Child("jabber:x:data", "x").Child("jabber:x:data", "field").ChildText("jabber:x:data", "value") != "1" {
		t.Fatal("nested namespace lost")
	}
	out := e.Marshal("")
	e2, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("reparse %s: %v", out, err)
	}
	if !bytes.Equal(e2.Marshal(""), out) {
		t.Fatalf("not stable:\n%s\n%s", out, e2.Marshal(""))
	}
	// inherited namespace is not redeclared on the root, children keep theirs
	inner := string(e.Marshal("jabber:client"))
	if !strings.HasPrefix(inner, `<message to=`) || !strings.Contains(inner, `<encryption xmlns="urn:xmpp:eme:0"`) || strings.Contains(inner, `<body xmlns`) {
		t.Fatalf("namespaces: %s", inner)
	}
}

func TestRejects(t *testing.T) {
	for _, in := range []string{
		``, `text`, `<a>`, `<a></b>`, `<a/><b/>`, `<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`, `<a>&unknown;</a>`,
	} {
		if _, err := Parse([]byte(in), nil); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	if _, err := Parse([]byte(deep), nil); !errors.Is(err, ErrLimit) {
		t.Errorf("deep: %v", err)
	}
	big := "<a>" + strings.Repeat("x", 2<<20) + "</a>"
	if _, err := Parse([]byte(big), nil); !errors.Is(err, ErrLimit) {
		t.Errorf("big: %v", err)
	}
	many := "<a>" + strings.Repeat("<b/>", 30) + "</a>"
	if _, err := Parse([]byte(many), &Limits{MaxDepth: 5, MaxNodes: 10, MaxBytes: 1000}); !errors.Is(err, ErrLimit) {
		t.Errorf("many: %v", err)
	}
}

func TestEditing(t *testing.T) {
	m := New("jabber:client", "message", "to", "x@y", "type", "chat")
	m.Append(New("jabber:client", "body").AppendText("a<b"))
	m.Append(New("urn:xmpp:hints", "store"))
	m.RemoveChildren(func(e *Element) bool { return e.Name.Space == "urn:xmpp:hints" })
	if len(m.Elements()) != 1 {
		t.Fatal("RemoveChildren")
	}
	c := m.Copy()
	c.Child("", "body").Children = []Node{CharData("changed")}
	if m.ChildText("", "body") != "a<b" {
		t.Fatal("Copy is shallow")
	}
	m.SetAttr("type", "normal")
	m.RemoveAttr("to")
	if m.AttrValue("type") != "normal" || m.AttrValue("to") != "" {
		t.Fatal("attrs")
	}
	if got := string(m.Marshal("jabber:client")); got != `<message type="normal"><body>a&lt;b</body></message>` {
		t.Fatalf("got %s", got)
	}
}

func TestXMLLangAttribute(t *testing.T) {
	e, err := Parse([]byte(`<body xmlns="jabber:client" xml:lang="de">Hallo</body>`), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := string(e.Marshal(""))
	if !strings.Contains(out, `xml:lang="de"`) {
		t.Fatalf("xml:lang lost: %s", out)
	}
	d := xml.NewDecoder(strings.NewReader(out))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<message xmlns="jabber:client"><body>x</body></message>`))
	f.Add([]byte(`<a xmlns:p="urn:p"><p:b p:c="1"/></a>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b, &Limits{MaxDepth: 16, MaxNodes: 500, MaxBytes: 1 << 14})
		if err != nil {
			return
		}
		out := e.Marshal("")
		e2, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("output does not reparse: %v\n%s", err, out)
		}
		if !bytes.Equal(e2.Marshal(""), out) {
			t.Fatalf("unstable:\n%s\n%s", out, e2.Marshal(""))
		}
	})
}

// eofReader returns its last token together with io.EOF, as xml.TokenReader
// implementations may.
type eofReader struct{ toks []xml.Token }

func (r *eofReader) Token() (xml.Token, error) {
	t := r.toks[0]
	r.toks = r.toks[1:]
	if len(r.toks) == 0 {
		return t, io.EOF
	}
	return t, nil
}

func TestFromTokensLastTokenWithEOF(t *testing.T) {
	start := xml.StartElement{Name: xml.Name{Space: "jabber:client", Local: "iq"}}
	r := &eofReader{toks: []xml.Token{xml.CharData("x"), start.End()}}
	e, err := FromTokens(r, start, nil)
	if err != nil || e.Text() != "x" {
		t.Fatalf("got %v, %v", e, err)
	}
	r = &eofReader{toks: []xml.Token{xml.CharData("x")}}
	if _, err := FromTokens(r, start, nil); err == nil {
		t.Fatal("truncated input accepted")
	}
}

// TestParseDetails pins down behaviour that Parse keeps from encoding/xml
// and that a reader of the package doc might not expect.
func TestParseDetails(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<p:a/>`, `<{"p"}"a" attr=[]xml.Attr(nil) nil></>`},
		{`<a>&#xD800;</a>`, "<{\"\"}\"a\" attr=[]xml.Attr(nil)>\"\uFFFD\"</>"},
		{"\u00a0<a/>\u3000", `<{""}"a" attr=[]xml.Attr(nil) nil></>`},
		{`<a b="1"c="2" b="3"/>`, `<{""}"a" attr=[]xml.Attr{xml.Attr{Name:xml.Name{Space:"", Local:"b"}, Value:"1"}, xml.Attr{Name:xml.Name{Space:"", Local:"c"}, Value:"2"}, xml.Attr{Name:xml.Name{Space:"", Local:"b"}, Value:"3"}} nil></>`},
		{`<a xmlns="u"><xmlns/></a>`, `<{"u"}"a" attr=[]xml.Attr(nil)><{""}"xmlns" attr=[]xml.Attr(nil) nil></></>`},
		{"<a b=\"\r\n\t\">x\r\ny\rz</a>", `<{""}"a" attr=[]xml.Attr{xml.Attr{Name:xml.Name{Space:"", Local:"b"}, Value:"\n\t"}}>"x\ny\nz"</>`},
		{`<a><![CDATA[]]></a>`, `<{""}"a" attr=[]xml.Attr(nil)>""</>`},
		{`<a>x<!--c-->y<![CDATA[<z>]]>&amp;</a>`, `<{""}"a" attr=[]xml.Attr(nil)>"xy<z>&"</>`},
		{`<?xml version="1.0"?><!--c--><a/><!--d-->`, `<{""}"a" attr=[]xml.Attr(nil) nil></>`},
		{`<a xmlns:p="urn:p" xml:lang="en" p:q="1"/>`, `<{""}"a" attr=[]xml.Attr{xml.Attr{Name:xml.Name{Space:"http://www.w3.org/XML/1998/namespace", Local:"lang"}, Value:"en"}, xml.Attr{Name:xml.Name{Space:"urn:p", Local:"q"}, Value:"1"}} nil></>`},
	} {
		e, err := Parse([]byte(tc.in), nil)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := dump(e); got != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in  string
		off int
	}{
		{`<a>&x;</a>`, 3}, {`<a>]]></a>`, 3}, {"<a>\x01</a>", 3}, {`<a/>x`, 4}, {`<a></b>`, 5}, {`<!DOCTYPE a><a/>`, 0},
		{`<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, 2 + len(`xml `)}, {`<a:b:c/>`, 6},
	} {
		_, err := Parse([]byte(tc.in), nil)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset < tc.off {
			t.Errorf("Parse(%q): %v, want a *SyntaxError at byte %d or later", tc.in, err, tc.off)
		}
	}
}

func TestAppendXMLEscapes(t *testing.T) {
	e := New("urn:\"x\"", "m", "k", "\"'&<>\t\n\r\x00\xff\uFFFE")
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Space: xmlURL, Local: "lang"}, Value: "en"}, xml.Attr{Name: xml.Name{Space: "urn:y", Local: "z"}, Value: "dropped"})
	e.AppendText("\"'&<>\t\n\r\x00\xed\xa0\x80é]]>")
	e.Append(New("urn:\"x\"", "c"), New("", "d"))
	want := `<m xmlns="urn:&#34;x&#34;" k="&#34;&#39;&amp;&lt;&gt;&#x9;&#xA;&#xD;\uFFFD\uFFFD\uFFFD" xml:lang="en">` +
		"&#34;&#39;&amp;&lt;&gt;&#x9;\n&#xD;\uFFFD\uFFFD\uFFFD\uFFFDé]]&gt;" + `<c></c><d xmlns=""></d></m>`
	want = strings.ReplaceAll(want, `\uFFFD`, "\uFFFD")
	if got := string(e.AppendXML([]byte("x"), "")); got != "x"+want {
		t.Fatalf("got  %q\nwant %q", got, "x"+want)
	}
	if got := string(e.Marshal("urn:\"x\"")); !strings.HasPrefix(got, `<m k=`) {
		t.Fatalf("inherited namespace declared again: %s", got)
	}
}

// RFC 6120 §11.1: XMPP forbids processing instructions; only an XML
// declaration before the element is accepted.
func TestProcessingInstructionsRefused(t *testing.T) {
	for _, in := range []string{`<?p?><a/>`, `<a><?p x?></a>`, `<a/><?p?>`, `<a/><?xml version="1.0"?>`, `<a><b><?xml version="1.0"?></b></a>`} {
		if _, err := Parse([]byte(in), nil); err == nil {
			t.Errorf("Parse(%q) accepted a processing instruction", in)
		}
		d := xml.NewDecoder(strings.NewReader(in))
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if s, ok := tok.(xml.StartElement); ok {
				if _, err := FromTokens(d, s, nil); err == nil && strings.Contains(in[strings.Index(in, "<a"):], "<?") && !strings.HasSuffix(in, "?>") {
					t.Errorf("FromTokens(%q) accepted a processing instruction", in)
				}
				break
			}
		}
	}
}
