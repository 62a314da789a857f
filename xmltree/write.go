package xmltree

import (
	"encoding/xml"
	"io"
	"unicode/utf8"
)

// written reports whether an attribute is written on output and whether
// with the xml prefix. Attributes in other namespaces are not used by any
// protocol Balcony speaks; they are dropped rather than written with a
// wrong prefix.
func written(n xml.Name) (ok, xmlPrefix bool) {
	switch n.Space {
	case "":
		return true, false
	case "xml", xmlURL:
		return true, true
	}
	return false, false
}

// TokenReader returns the tree as a token stream. Every element carries its
// namespace in Name.Space only where it differs from its parent's, so that
// an encoder writes each xmlns declaration once. inherited is the namespace
// in scope where the element is written (e.g. "jabber:client" for stanzas
// written into a client stream); pass "" when unknown. The tokens are
// taken when TokenReader is called: later changes to the tree do not
// show.
func (e *Element) TokenReader(inherited string) xml.TokenReader {
	toks := make([]xml.Token, 0, e.countTokens())
	return &sliceReader{toks: e.appendTokens(toks, inherited)}
}

func (e *Element) countTokens() int {
	n := 2
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			n += c.countTokens()
		case CharData:
			n++
		}
	}
	return n
}

func (e *Element) appendTokens(toks []xml.Token, inherited string) []xml.Token {
	start := xml.StartElement{Name: xml.Name{Local: e.Name.Local}}
	n := len(e.Attr)
	if e.Name.Space != inherited {
		n++
	}
	if n > 0 {
		start.Attr = make([]xml.Attr, 0, n)
	}
	if e.Name.Space != inherited {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: e.Name.Space})
	}
	for _, a := range e.Attr {
		ok, prefixed := written(a.Name)
		if !ok {
			continue
		}
		name := xml.Name{Local: a.Name.Local}
		if prefixed {
			name.Local = "xml:" + name.Local
		}
		start.Attr = append(start.Attr, xml.Attr{Name: name, Value: a.Value})
	}
	if len(start.Attr) == 0 {
		start.Attr = nil
	}
	toks = append(toks, start)
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			toks = c.appendTokens(toks, e.Name.Space)
		case CharData:
			toks = append(toks, xml.CharData(c))
		}
	}
	return append(toks, xml.EndElement{Name: xml.Name{Local: e.Name.Local}})
}

type sliceReader struct {
	toks []xml.Token
	i    int
}

func (r *sliceReader) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	t := r.toks[r.i]
	r.toks[r.i] = nil
	r.i++
	return t, nil
}

// Marshal returns the element as bytes with its namespace declared on the
// root (unless it is inherited). See AppendXML.
func (e *Element) Marshal(inherited string) []byte {
	return e.AppendXML(make([]byte, 0, e.sizeHint(inherited)), inherited)
}

// String returns Marshal("") as a string.
func (e *Element) String() string { return string(e.Marshal("")) }

// AppendXML appends the element to dst as XML and returns the extended
// buffer: the bytes that encoding/xml's Encoder writes for
// TokenReader(inherited). An element declares its namespace (xmlns="...")
// where it differs from the namespace in scope, inherited for the root;
// attributes in the xml namespace are written with the xml prefix and
// attributes in other namespaces are dropped. Text is escaped as by
// xml.EscapeText except that line feeds stay as they are; attribute
// values as by xml.EscapeText. Malformed UTF-8 and characters XML cannot
// carry (XML 1.0 §2.2) are written as U+FFFD. Elements are never written
// as empty-element tags. AppendXML panics on an element with an empty
// local name.
func (e *Element) AppendXML(dst []byte, inherited string) []byte {
	if e.Name.Local == "" {
		panic("xmltree: encoding a valid tree failed: xml: start tag with no name")
	}
	dst = append(dst, '<')
	dst = append(dst, e.Name.Local...)
	if e.Name.Space != inherited {
		dst = append(dst, ` xmlns="`...)
		dst = appendEscaped(dst, e.Name.Space, &attrSafe)
		dst = append(dst, '"')
	}
	for _, a := range e.Attr {
		ok, prefixed := written(a.Name)
		if !ok || !prefixed && a.Name.Local == "" {
			continue
		}
		dst = append(dst, ' ')
		if prefixed {
			dst = append(dst, "xml:"...)
		}
		dst = append(dst, a.Name.Local...)
		dst = append(dst, `="`...)
		dst = appendEscaped(dst, a.Value, &attrSafe)
		dst = append(dst, '"')
	}
	dst = append(dst, '>')
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			dst = c.AppendXML(dst, e.Name.Space)
		case CharData:
			dst = appendEscaped(dst, string(c), &textSafe)
		}
	}
	dst = append(dst, "</"...)
	dst = append(dst, e.Name.Local...)
	return append(dst, '>')
}

// sizeHint is the length of AppendXML's output when nothing needs
// escaping.
func (e *Element) sizeHint(inherited string) int {
	n := 2*len(e.Name.Local) + 5
	if e.Name.Space != inherited {
		n += len(e.Name.Space) + 9
	}
	for _, a := range e.Attr {
		n += len(a.Name.Local) + len(a.Value) + 8
	}
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			n += c.sizeHint(e.Name.Space)
		case CharData:
			n += len(c)
		}
	}
	return n
}

// textSafe and attrSafe mark the ASCII bytes written unchanged in text
// and in attribute values.
var textSafe, attrSafe [utf8.RuneSelf]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		switch c {
		case '"', '\'', '&', '<', '>':
		default:
			textSafe[c], attrSafe[c] = true, true
		}
	}
	textSafe['\n'] = true
}

// appendEscaped appends s with the escapes encoding/xml's Encoder uses.
func appendEscaped(dst []byte, s string, safe *[utf8.RuneSelf]bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		// Runs of ASCII that need no escape, 8 bytes at a time (see word).
		for ; i+8 <= len(s); i += 8 {
			x := word(s[i : i+8])
			if (x|below(x, 0x20)|hasByte(x, '<')|hasByte(x, '&')|hasByte(x, '>')|hasByte(x, '"')|hasByte(x, '\''))&highs != 0 {
				break
			}
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		var esc string
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			switch c {
			case '"':
				esc = "&#34;"
			case '\'':
				esc = "&#39;"
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				esc = "\uFFFD"
			}
			dst = append(dst, s[last:i]...)
			dst = append(dst, esc...)
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !badRune(r, size) {
			i += size
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, "\uFFFD"...)
		i += size
		last = i
	}
	return append(dst, s[last:]...)
}
