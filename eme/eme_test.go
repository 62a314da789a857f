package eme

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmlstream"
)

// readTestdata reads a file below testdata/.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canon returns the element read from r (up to its end) as comparable
// lines: start elements with sorted attributes (namespace declarations
// dropped, since they are resolved into names), end elements, and
// non-blank text, trimmed.
func canon(t testing.TB, r xml.TokenReader) []string {
	t.Helper()
	var out []string
	depth := 0
	for {
		tok, err := r.Token()
		if err == io.EOF && tok == nil {
			break
		}
		if err != nil && err != io.EOF {
			t.Fatalf("canon: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			var attrs []string
			for _, a := range tk.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, fmt.Sprintf("%s|%s=%q", a.Name.Space, a.Name.Local, a.Value))
			}
			slices.Sort(attrs)
			out = append(out, fmt.Sprintf("<{%s}%s %s>", tk.Name.Space, tk.Name.Local, strings.Join(attrs, " ")))
		case xml.EndElement:
			depth--
			out = append(out, fmt.Sprintf("</{%s}%s>", tk.Name.Space, tk.Name.Local))
		case xml.CharData:
			if s := strings.TrimSpace(string(tk)); s != "" {
				out = append(out, "text:"+s)
			}
		}
		if depth == 0 && len(out) > 0 {
			break
		}
	}
	return out
}

// children returns the tokens of each direct child of the root of doc with
// the given name.
func children(t testing.TB, doc []byte, name xml.Name) [][]xml.Token {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	var out [][]xml.Token
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && tk.Name == name {
				toks := []xml.Token{stripNS(tk)}
				for inner := 1; inner > 0; {
					tok, err := d.Token()
					if err != nil {
						t.Fatal(err)
					}
					switch tk := tok.(type) {
					case xml.StartElement:
						inner++
						tok = stripNS(tk)
					case xml.EndElement:
						inner--
					}
					toks = append(toks, xml.CopyToken(tok))
				}
				depth--
				out = append(out, toks)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// stripNS copies a start element without its namespace declarations,
// which the decoder has already resolved into names.
func stripNS(start xml.StartElement) xml.StartElement {
	out := xml.StartElement{Name: start.Name}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		out.Attr = append(out.Attr, a)
	}
	return out
}

type sliceReader struct{ toks []xml.Token }

func (r *sliceReader) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	tok := r.toks[0]
	r.toks = r.toks[1:]
	return tok, nil
}

var encName = xml.Name{Space: NS, Local: "encryption"}

// TestXEPExamples runs every example of XEP-0380 as a round-trip vector:
// each <encryption/> element is unmarshalled, marshalled again and
// compared with the original; the messages are detected; the disco result
// carries exactly the feature this package advertises.
func TestXEPExamples(t *testing.T) {
	tests := []struct {
		file      string
		tags      []Encryption
		mechanism string
		otr       OTRKind
		message   bool
		feature   bool
	}{
		{file: "example1.xml", tags: []Encryption{{Namespace: OTR}}, mechanism: OTR, otr: OTRQuery, message: true},
		{file: "example2.xml", tags: []Encryption{{Namespace: OX}}, mechanism: OX, message: true},
		{file: "example3.xml"},
		{file: "example4.xml", feature: true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			doc := readTestdata(t, "xep0380/"+tc.file)
			var got []Encryption
			for _, toks := range children(t, doc, encName) {
				orig := canon(t, &sliceReader{toks: toks})
				var e Encryption
				if err := xml.Unmarshal(encode(t, toks), &e); err != nil {
					t.Fatalf("unmarshal: %v", err)
				}
				got = append(got, e)
				out, err := xml.Marshal(e)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				again := canon(t, xml.NewDecoder(bytes.NewReader(out)))
				if !slices.Equal(orig, again) {
					t.Errorf("round trip changed the element:\n got %q\nwant %q", again, orig)
				}
			}
			if !slices.Equal(got, tc.tags) {
				t.Errorf("tags = %+v, want %+v", got, tc.tags)
			}

			d, err := Detect(doc)
			if !tc.message {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Detect of a non-message: err = %v, want *ParseError", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Detect: %v", err)
				}
				if !d.Encrypted || d.Mechanism != tc.mechanism || d.Disagreement != nil || d.OTR != tc.otr {
					t.Errorf("Detect = %+v, want encrypted with %s, OTR %v, no disagreement", d, tc.mechanism, tc.otr)
				}
				if !slices.Equal(d.Tags, tc.tags) {
					t.Errorf("Detect tags = %+v, want %+v", d.Tags, tc.tags)
				}
			}

			if tc.feature {
				query := children(t, doc, xml.Name{Space: "http://jabber.org/protocol/disco#info", Local: "query"})
				if len(query) != 1 {
					t.Fatalf("found %d disco#info queries, want 1", len(query))
				}
				var q struct {
					Features []struct {
						Var string `xml:"var,attr"`
					} `xml:"http://jabber.org/protocol/disco#info feature"`
				}
				if err := xml.NewTokenDecoder(&sliceReader{toks: query[0]}).Decode(&q); err != nil {
					t.Fatal(err)
				}
				if len(q.Features) != 1 || q.Features[0].Var != Feature.Var {
					t.Fatalf("features = %+v, want exactly %q", q.Features, Feature.Var)
				}
				out, err := xml.Marshal(Feature)
				if err != nil {
					t.Fatal(err)
				}
				var f struct {
					XMLName xml.Name
					Var     string `xml:"var,attr"`
				}
				if err := xml.Unmarshal(out, &f); err != nil {
					t.Fatal(err)
				}
				if f.XMLName.Space != "http://jabber.org/protocol/disco#info" || f.XMLName.Local != "feature" || f.Var != "urn:xmpp:eme:0" {
					t.Errorf("Feature marshals as %s", out)
				}
			}
		})
	}
}

// encode writes tokens as XML.
func encode(t testing.TB, toks []xml.Token) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(enc, &sliceReader{toks: toks}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		in   Encryption
		want string
	}{
		{Encryption{Namespace: OTR}, `<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"></encryption>`},
		{Encryption{Namespace: ESession, Name: "Encrypted Sessions"}, `<encryption xmlns="urn:xmpp:eme:0" namespace="http://www.xmpp.org/extensions/xep-0200.html#ns" name="Encrypted Sessions"></encryption>`},
		{Encryption{Namespace: "urn:example:a&b", Name: `"<x>"`}, `<encryption xmlns="urn:xmpp:eme:0" namespace="urn:example:a&amp;b" name="&#34;&lt;x&gt;&#34;"></encryption>`},
	}
	for _, tc := range tests {
		out, err := xml.Marshal(tc.in)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", tc.in, err)
		}
		if string(out) != tc.want {
			t.Errorf("Marshal(%+v) = %s, want %s", tc.in, out, tc.want)
		}
		var back Encryption
		if err := xml.Unmarshal(out, &back); err != nil || back != tc.in {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", out, back, err, tc.in)
		}
		// Inside a message, through the struct field of a payload.
		type msg struct {
			XMLName xml.Name     `xml:"jabber:client message"`
			Enc     []Encryption `xml:"urn:xmpp:eme:0 encryption"`
		}
		out, err = xml.Marshal(msg{Enc: []Encryption{tc.in}})
		if err != nil {
			t.Fatal(err)
		}
		var m msg
		if err := xml.Unmarshal(out, &m); err != nil || len(m.Enc) != 1 || m.Enc[0] != tc.in {
			t.Errorf("message round trip of %s = %+v, %v", out, m.Enc, err)
		}
	}

	if _, err := xml.Marshal(Encryption{Name: "no namespace"}); !errors.Is(err, ErrMissingNamespace) {
		t.Errorf("Marshal without namespace: err = %v, want ErrMissingNamespace", err)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{`<encryption xmlns='urn:xmpp:eme:0'/>`, ErrMissingNamespace},
		{`<encryption xmlns='urn:xmpp:eme:0' namespace=''/>`, ErrMissingNamespace},
		{`<encryption xmlns='urn:xmpp:eme:0' name='OTR'/>`, ErrMissingNamespace},
		{`<encryption xmlns='urn:xmpp:eme:0' xmlns:p='urn:example' p:namespace='urn:xmpp:otr:0'/>`, ErrMissingNamespace},
		{`<encryption xmlns='urn:xmpp:eme:0' namespace='` + strings.Repeat("a", MaxNamespaceLen+1) + `'/>`, ErrTooLarge},
		{`<encryption xmlns='urn:xmpp:eme:1' namespace='urn:xmpp:otr:0'/>`, nil},
		{`<encrypted xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>`, nil},
	}
	for _, tc := range tests {
		var e Encryption
		err := xml.Unmarshal([]byte(tc.in), &e)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Unmarshal(%.60s): err = %v, want *ParseError", tc.in, err)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Unmarshal(%.60s): err = %v, want %v", tc.in, err, tc.want)
		}
		if e != (Encryption{}) {
			t.Errorf("Unmarshal(%.60s) stored %+v on error", tc.in, e)
		}
	}

	// Children are skipped; the first of repeated attributes wins; the
	// longest accepted namespace is accepted.
	var e Encryption
	long := strings.Repeat("a", MaxNamespaceLen)
	in := `<encryption xmlns='urn:xmpp:eme:0' namespace='` + long + `' name='n'><child/>text</encryption>`
	if err := xml.Unmarshal([]byte(in), &e); err != nil || e.Namespace != long || e.Name != "n" {
		t.Errorf("Unmarshal with children = %+v, %v", e, err)
	}
}

func TestNewTag(t *testing.T) {
	for _, m := range Mechanisms() {
		tag := NewTag(m.Namespace)
		if tag.Namespace != m.Namespace {
			t.Errorf("NewTag(%s).Namespace = %q", m.Namespace, tag.Namespace)
		}
		// XEP-0380 §3.2 and §4: no name for listed mechanisms, a name for
		// the others.
		if m.Listed && tag.Name != "" {
			t.Errorf("NewTag(%s) sends name %q for a listed mechanism", m.Namespace, tag.Name)
		}
		if !m.Listed && tag.Name == "" {
			t.Errorf("NewTag(%s) sends no name for an unlisted mechanism", m.Namespace)
		}
	}
	if tag := NewTag("urn:example:unknown"); tag.Name != "" {
		t.Errorf("NewTag(unknown) invented name %q", tag.Name)
	}
	if tag := NewTag(ESession); tag.Name != "Encrypted Sessions" {
		t.Errorf("NewTag(ESession).Name = %q", tag.Name)
	}
}

// TestMechanismTable checks the table against XEP-0380 §3.2 as published.
func TestMechanismTable(t *testing.T) {
	spec := string(readTestdata(t, "xep0380/xep-0380.xml"))
	start := strings.Index(spec, "<section2 topic='Protocols Supported'")
	end := strings.Index(spec[start:], "</table>")
	if start < 0 || end < 0 {
		t.Fatal("table of XEP-0380 §3.2 not found")
	}
	rows := regexp.MustCompile(`(?s)<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>`).FindAllStringSubmatch(spec[start:start+end], -1)
	if len(rows) != 6 {
		t.Fatalf("found %d rows in XEP-0380 §3.2, want 6", len(rows))
	}
	var listed []Mechanism
	for _, m := range Mechanisms() {
		if m.Listed {
			listed = append(listed, m)
		}
	}
	if len(listed) != len(rows) {
		t.Fatalf("%d listed mechanisms, XEP-0380 lists %d", len(listed), len(rows))
	}
	for i, row := range rows {
		if listed[i].Name != row[1] || listed[i].Namespace != row[2] {
			t.Errorf("listed mechanism %d = %q %q, XEP-0380 says %q %q", i, listed[i].Name, listed[i].Namespace, row[1], row[2])
		}
		if m, ok := Lookup(row[2]); !ok || m != listed[i] {
			t.Errorf("Lookup(%q) = %+v, %v", row[2], m, ok)
		}
	}
	// ESessions is known and not listed.
	m, ok := Lookup(ESession)
	if !ok || m.Listed || m.Namespace != "http://www.xmpp.org/extensions/xep-0200.html#ns" {
		t.Errorf("Lookup(ESession) = %+v, %v", m, ok)
	}
	if _, ok := Lookup("urn:xmpp:otr:0 "); ok {
		t.Error("Lookup is not exact")
	}
	// Mechanisms returns a copy.
	ms := Mechanisms()
	ms[0].Name = "changed"
	if m, _ := Lookup(OTR); m.Name != "OTR" {
		t.Error("Mechanisms exposes the table")
	}
	// Short names are unique and every rank is above plaintext.
	seen := map[string]bool{}
	for _, m := range Mechanisms() {
		if seen[m.Short] || m.Short == "" {
			t.Errorf("short name %q repeated or empty", m.Short)
		}
		seen[m.Short] = true
		if m.Rank <= RankPlaintext {
			t.Errorf("%s ranks as plaintext", m.Name)
		}
	}
}

func TestDisplayName(t *testing.T) {
	if got := DisplayName(OTR, "Evil Plugin"); got != "OTR" {
		t.Errorf("DisplayName(OTR, remote) = %q: a remote name was used for a known namespace", got)
	}
	if got := DisplayName(ESession, "Something"); got != "Encrypted Sessions" {
		t.Errorf("DisplayName(ESession, remote) = %q", got)
	}
	if got := DisplayName("urn:example:x", "Example Crypt"); got != "“Example Crypt”" {
		t.Errorf("DisplayName(unknown, name) = %q", got)
	}
	if got := DisplayName("urn:example:x", ""); got != "" {
		t.Errorf("DisplayName(unknown, \"\") = %q", got)
	}
}

func TestFallbackBody(t *testing.T) {
	if got := FallbackBody(OTR); got != "" {
		t.Errorf("FallbackBody(OTR) = %q; the OTR body must not be replaced", got)
	}
	for _, m := range Mechanisms() {
		if m.Namespace == OTR {
			continue
		}
		fb := FallbackBody(m.Namespace)
		if !strings.Contains(fb, m.Name) || !strings.Contains(fb, m.Namespace) {
			t.Errorf("FallbackBody(%s) = %q, want the name and namespace", m.Namespace, fb)
		}
		// The fallback body of a tagged message is never shown as the
		// message: Detect reports the message as encrypted.
		stanza := `<message xmlns='jabber:client'><body>` + fb + `</body>` + encTag(NewTag(m.Namespace)) + `</message>`
		d, err := Detect([]byte(stanza))
		if err != nil || !d.Encrypted || d.OTR != OTRNone {
			t.Errorf("Detect(fallback for %s) = %+v, %v", m.Namespace, d, err)
		}
	}
	if got := FallbackBody("urn:example:x"); got != "This message is encrypted." {
		t.Errorf("FallbackBody(unknown) = %q", got)
	}
}

// encTag marshals a tag for use in test stanzas.
func encTag(e Encryption) string {
	out, err := xml.Marshal(e)
	if err != nil {
		panic(err)
	}
	return string(out)
}
