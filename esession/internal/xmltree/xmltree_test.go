package xmltree

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseResolvesNamespaces(t *testing.T) {
	in := `<m xmlns='jabber:client' xmlns:p='urn:p' a='1'>
  <p:q p:b='2' xml:lang='en'>t&amp;x<![CDATA[<y>]]></p:q>
  <r xmlns='urn:r'><s/></r>
</m>`
	e, err := Parse([]byte(in), "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Space != "jabber:client" || e.Local != "m" {
		t.Fatalf("root %q %q", e.Space, e.Local)
	}
	if v, _ := e.AttrValue("a"); v != "1" {
		t.Errorf("attr a = %q", v)
	}
	q := e.Child("urn:p", "q")
	if q == nil {
		t.Fatal("no p:q")
	}
	if q.Text() != "t&x<y>" {
		t.Errorf("text %q", q.Text())
	}
	if len(q.Attr) != 2 || q.Attr[0].Space != "urn:p" || q.Attr[1].Space != NSXML {
		t.Errorf("attrs %+v", q.Attr)
	}
	r := e.Child("urn:r", "r")
	if r == nil || r.Child("urn:r", "s") == nil {
		t.Fatal("default namespace not inherited")
	}
	if len(e.Elements()) != 2 {
		t.Errorf("elements %d", len(e.Elements()))
	}
}

func TestParseRejects(t *testing.T) {
	long := "<a>" + strings.Repeat("<b>", 40) + strings.Repeat("</b>", 40) + "</a>"
	many := "<a>" + strings.Repeat("<b/>", 20) + "</a>"
	cases := map[string]string{
		"comment":       `<a><!-- x --></a>`,
		"pi":            `<a><?pi x?></a>`,
		"decl":          `<?xml version='1.0'?><a/>`,
		"doctype":       `<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>`,
		"entity":        `<a>&nbsp;</a>`,
		"unbound":       `<p:a/>`,
		"unbound attr":  `<a p:x='1'/>`,
		"mismatch":      `<a></b>`,
		"two roots":     `<a/><b/>`,
		"text outside":  `x<a/>`,
		"trailing text": `<a/>x`,
		"unclosed":      `<a>`,
		"empty":         ``,
		"dup attr":      `<a x='1' x='2'/>`,
		"dup expanded":  `<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>`,
		"bad utf8":      "<a>\xff</a>",
		"ctrl char":     "<a>\x01</a>",
		"xmlns prefix":  `<xmlns:a/>`,
		"empty prefix":  `<a xmlns:p=''/>`,
		"rebind xml":    `<a xmlns:xml='urn:x'/>`,
		"deep":          long,
		"many":          many,
		"unquoted":      `<a x=1/>`,
		"latin1":        `<?xml version='1.0' encoding='ISO-8859-1'?><a/>`,
	}
	lim := Limits{MaxBytes: 1 << 10, MaxDepth: 32, MaxElements: 10, MaxAttrs: 8}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in), "", lim)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, want a *SyntaxError", in, err)
			}
		})
	}
	if _, err := Parse(bytes.Repeat([]byte(" "), 2000), "", lim); err == nil {
		t.Error("over-long input accepted")
	}
}

func TestCanonical(t *testing.T) {
	in := `<x xmlns='jabber:x:data' type='form'>
	<field var='FORM_TYPE' type="hidden">
		<value>urn:xmpp:ssn</value>
	</field>
	<field type='boolean' var='accept'><value>1</value><required/></field>
	<field var='t' label='a&quot;b&#9;c'>
	  junk between<value> keep  &lt;this&gt; &amp; </value>
	</field>
</x>`
	e, err := Parse([]byte(in), "jabber:client", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(CanonicalContent(e))
	want := `<field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field>` +
		`<field type="boolean" var="accept"><value>1</value><required></required></field>` +
		`<field label="a&quot;b&#x9;c" var="t"><value> keep  &lt;this&gt; &amp; </value></field>`
	if got != want {
		t.Errorf("canonical\n got %s\nwant %s", got, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	e := New("jabber:x:data", "x", "type", "submit").Add(
		New("jabber:x:data", "field", "var", "a'b").Add(
			New("jabber:x:data", "value").AddText("1 < 2 & \"q\"\r")),
		New("urn:other", "y"),
	)
	out := e.Marshal("jabber:client")
	back, err := Parse(out, "jabber:client", Limits{})
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !bytes.Equal(CanonicalContent(back), CanonicalContent(e)) {
		t.Errorf("round trip changed the tree:\n%s\n%s", CanonicalContent(back), CanonicalContent(e))
	}
	if back.Elements()[1].Space != "urn:other" {
		t.Error("namespace of y lost")
	}
	if back.Elements()[0].Elements()[0].Text() != "1 < 2 & \"q\"\r" {
		t.Errorf("text %q", back.Elements()[0].Elements()[0].Text())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='form'><field var='a'><value>1</value></field></x>`,
		`<a xmlns:p='u'><p:b p:c='d'>e&lt;</p:b><![CDATA[x]]></a>`,
		`<a><b/><c>text</c></a>`,
		`<a x='&#x41;&#65;'/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := Parse(in, "jabber:client", Limits{MaxBytes: 4096, MaxDepth: 16, MaxElements: 256, MaxAttrs: 16})
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		// Marshal then parse again must give the same canonical form.
		out := e.Marshal("jabber:client")
		back, err := Parse(out, "jabber:client", Limits{MaxBytes: 1 << 20, MaxDepth: 16, MaxElements: 256, MaxAttrs: 16})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		var b1, b2 bytes.Buffer
		Canonical(&b1, e)
		Canonical(&b2, back)
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("canonical form changed:\n%s\n%s", b1.Bytes(), b2.Bytes())
		}
	})
}
