package xmlfrag

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestValidateAccepts(t *testing.T) {
	type top struct{ Space, Local string }
	cases := map[string][]top{
		``:                                 nil,
		`   `:                              nil,
		`<body>Hello, Bob!</body>        `: {{Space: "jabber:client", Local: "body"}},
		`<body>a &lt;&gt;&amp;&apos;&quot; &#65;&#x42;</body><active xmlns='http://jabber.org/protocol/chatstates'/>`: {
			{Space: "jabber:client", Local: "body"}, {Space: "http://jabber.org/protocol/chatstates", Local: "active"}},
		`<p:x xmlns:p='urn:p' p:a="1" b='2'><p:y/>t<![CDATA[<not a tag> ]] ]]></p:x>`: {{Space: "urn:p", Local: "x"}},
		`<a xml:lang='en'>é€𝄞</a >`:                                                   {{Space: "jabber:client", Local: "a"}},
		`<a xmlns=''/><b xmlns='urn:b'><c xmlns=''/></b>`:                             {{Space: "", Local: "a"}, {Space: "urn:b", Local: "b"}},
		`<feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='submit'/></feature>`: {
			{Space: "http://jabber.org/protocol/feature-neg", Local: "feature"}},
	}
	var c Checker
	for in, want := range cases {
		tops, err := c.Validate([]byte(in), "jabber:client", 8, nil)
		if err != nil {
			t.Errorf("Validate(%q): %v", in, err)
			continue
		}
		if len(tops) != len(want) {
			t.Errorf("Validate(%q): %d top elements, want %d", in, len(tops), len(want))
			continue
		}
		for i := range want {
			if string(tops[i].Space) != want[i].Space || string(tops[i].Local) != want[i].Local {
				t.Errorf("Validate(%q): top %d = %+v, want %+v", in, i, tops[i], want[i])
			}
			el := in[tops[i].Start:tops[i].End]
			if !strings.HasPrefix(el, "<") || !strings.HasSuffix(el, ">") {
				t.Errorf("Validate(%q): span %q", in, el)
			}
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for _, in := range []string{
		`<a>`, `</a>`, `<a></b>`, `<a><b></a></b>`, `<p:a></a>`, `<a></p:a>`,
		`<!-- c -->`, `<?pi?>`, `<!DOCTYPE x>`, `<![CDATA[x`, `<a>&nbsp;</a>`, `<a>&#0;</a>`,
		`<a>&#xD800;</a>`, `<a>&#x110000;</a>`, `<a>&;</a>`, `<a>&#;</a>`, `<a>&#x;</a>`, `<a>& </a>`,
		`<a>]]></a>`, "<a>\x00</a>", "<a>\x1b</a>", "<a>\xff</a>", "<a>\xef\xbf\xbe</a>", "<a>\xed\xa0\x80</a>",
		`<a b='1' b='2'/>`, `<a b='<'/>`, `<a b=1/>`, `<a b/>`, `<a b='1'c='2'/>`, `<a/ >`, `< a/>`,
		`<1a/>`, `<a:b:c/>`, `<:a/>`, `<a:/>`, `<é/>`, `<p:a/>`, `<a p:b='1'/>`, `<xmlns:a/>`,
		`<a xmlns:p=''/>`, `<a xmlns:xmlns='urn:x'/>`, `<a xmlns:xml='urn:x'/>`, `<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>`,
		`<a xmlns='http://www.w3.org/XML/1998/namespace'/>`, `<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>`,
		`<a><b><c><d/></c></b></a>`, `<`, `<a`, `<a b='1`, `</a`, `<a>text`,
	} {
		var c Checker
		if _, err := c.Validate([]byte(in), "jabber:client", 3, nil); !errors.Is(err, ErrSyntax) {
			t.Errorf("Validate(%q) = %v, want ErrSyntax", in, err)
		}
	}
}

func TestAppendDecoded(t *testing.T) {
	got := string(AppendDecoded(nil, []byte("a&lt;b&#x20AC;&#65;&amp;amp;")))
	if got != "a<b€A&amp;" {
		t.Errorf("got %q", got)
	}
}

func TestLexerTokens(t *testing.T) {
	var l Lexer
	l.Reset([]byte(`<c xmlns='u'> <data a="x&amp;y">QUJD</data></c>`))
	var kinds []Kind
	var tok Token
	for {
		err := l.Next(&tok)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, tok.Kind)
		if tok.Kind == StartTag && string(tok.Local) == "data" {
			if len(tok.Attrs) != 1 || !tok.Attrs[0].HasRef || string(AppendDecoded(nil, tok.Attrs[0].Value)) != "x&y" {
				t.Errorf("attrs %+v", tok.Attrs)
			}
		}
	}
	want := []Kind{StartTag, Text, StartTag, Text, EndTag, EndTag}
	if len(kinds) != len(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds %v, want %v", kinds, want)
		}
	}
}

// encodingXMLAccepts reports whether encoding/xml parses the content inside
// a stanza wrapper.
func encodingXMLAccepts(content []byte) bool {
	doc := append(append([]byte("<message xmlns='jabber:client'>"), content...), "</message>"...)
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`<body>Hello, Bob!</body>        `,
		`<body>a &lt;&#x42;</body><active xmlns='http://jabber.org/protocol/chatstates'/>`,
		`<p:x xmlns:p='urn:p' p:a="1"><p:y/>t<![CDATA[<z>]]></p:x>`,
		`<a xml:lang='en'>é</a>`,
		`<feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='submit'><field var='terminate'><value>1</value></field></x></feature>`,
		`<a><!-- c --></a>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var c Checker
		tops, err := c.Validate(in, "jabber:client", 16, nil)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if !encodingXMLAccepts(in) {
			t.Fatalf("accepted content that encoding/xml rejects: %q", in)
		}
		last := 0
		for _, tp := range tops {
			if tp.Start < last || tp.End <= tp.Start || tp.End > len(in) {
				t.Fatalf("bad span %+v in %q", tp, in)
			}
			last = tp.End
			// Each top-level element is itself valid content.
			var c2 Checker
			if sub, err := c2.Validate(in[tp.Start:tp.End], "jabber:client", 16, nil); err != nil {
				t.Fatalf("span %q does not validate: %v", in[tp.Start:tp.End], err)
			} else if len(sub) != 1 {
				t.Fatalf("span %q has %d top elements", in[tp.Start:tp.End], len(sub))
			}
		}
	})
}
