package ox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"unicode/utf8"
)

// fastReader is a token reader for the simple XML that OX implementations
// actually exchange: elements with unprefixed names, default namespace
// declarations, unprefixed and xml: attributes, text with the predefined and
// numeric character references. It produces the same tokens as
// encoding/xml.Decoder with Strict set (names with namespaces resolved the
// same way, DefaultSpace included) and is several times faster. On anything
// else, including every well-formedness error, it returns errSlow, and the
// caller starts over with encoding/xml, whose verdict is authoritative. The
// fuzz tests check that whatever the fast path accepts, the slow path accepts
// with the same result.
type fastReader struct {
	b       []byte
	i       int
	stack   []fastFrame
	pending bool // an empty-element tag still owes its end element
	buf     []byte
	attrs   []xml.Attr
}

type fastFrame struct {
	local, ns string
}

var errSlow = errors.New("ox: XML needs the full parser")

func newFastReader(b []byte, defaultNS string) *fastReader {
	r := &fastReader{b: b}
	r.stack = append(make([]fastFrame, 0, 8), fastFrame{ns: defaultNS})
	return r
}

func (r *fastReader) Token() (xml.Token, error) {
	if r.pending {
		r.pending = false
		f := r.stack[len(r.stack)-1]
		r.stack = r.stack[:len(r.stack)-1]
		return xml.EndElement{Name: xml.Name{Space: f.ns, Local: f.local}}, nil
	}
	if r.i >= len(r.b) {
		if len(r.stack) > 1 {
			return nil, errSlow
		}
		return nil, io.EOF
	}
	if r.b[r.i] != '<' {
		return r.text()
	}
	if r.i+1 >= len(r.b) {
		return nil, errSlow
	}
	switch r.b[r.i+1] {
	case '/':
		return r.endTag()
	case '?', '!':
		return nil, errSlow
	}
	return r.startTag()
}

func (r *fastReader) text() (xml.Token, error) {
	end := bytes.IndexByte(r.b[r.i:], '<')
	if end < 0 {
		end = len(r.b) - r.i
	}
	raw := r.b[r.i : r.i+end]
	r.i += end
	if bytes.Contains(raw, []byte("]]>")) {
		return nil, errSlow
	}
	if bytes.IndexByte(raw, '&') < 0 {
		if !plainText(raw) {
			return nil, errSlow
		}
		return xml.CharData(raw), nil
	}
	out, ok := r.unescape(raw)
	if !ok {
		return nil, errSlow
	}
	return xml.CharData(out), nil
}

// plainText reports whether raw holds only characters that encoding/xml
// passes through unchanged: valid XML characters other than '\r' (which it
// normalises) and '&' and '<' (which have meaning).
func plainText(raw []byte) bool {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' || c == '&' || c == '<' {
				return false
			}
			i++
			continue
		}
		rn, n := utf8.DecodeRune(raw[i:])
		if !isXMLChar(rn, n) {
			return false
		}
		i += n
	}
	return true
}

// unescape resolves character references in raw into a fresh buffer.
func (r *fastReader) unescape(raw []byte) ([]byte, bool) {
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			if !plainText(raw) {
				return nil, false
			}
			return append(out, raw...), true
		}
		if !plainText(raw[:amp]) {
			return nil, false
		}
		out = append(out, raw[:amp]...)
		raw = raw[amp+1:]
		semi := bytes.IndexByte(raw, ';')
		if semi < 1 || semi > 10 {
			return nil, false
		}
		ref := string(raw[:semi])
		raw = raw[semi+1:]
		switch ref {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			rn, ok := charRef(ref)
			if !ok {
				return nil, false
			}
			out = utf8.AppendRune(out, rn)
		}
	}
	return out, true
}

// charRef decodes the body of a numeric character reference ("#65",
// "#x41"). Only characters that are not white space or '\r' are accepted,
// to stay clear of normalisation differences.
func charRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if digits == "" || len(digits) > 7 {
		return 0, false
	}
	var v rune
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d rune
		switch {
		case c >= '0' && c <= '9':
			d = rune(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = rune(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = rune(c-'A') + 10
		default:
			return 0, false
		}
		v = v*rune(base) + d
	}
	if v < 0x20 || !isXMLChar(v, utf8.RuneLen(v)) {
		return 0, false
	}
	return v, true
}

// name scans an unprefixed ASCII name.
func (r *fastReader) name() (string, bool) {
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
			r.i > start && (c >= '0' && c <= '9' || c == '-' || c == '.') {
			r.i++
			continue
		}
		break
	}
	if r.i == start {
		return "", false
	}
	return string(r.b[start:r.i]), true
}

func (r *fastReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n':
			r.i++
			continue
		}
		return
	}
}

func (r *fastReader) startTag() (xml.Token, error) {
	if len(r.stack) > maxDepth {
		return nil, errSlow
	}
	r.i++ // '<'
	local, ok := r.name()
	if !ok {
		return nil, errSlow
	}
	ns := r.stack[len(r.stack)-1].ns
	attrs := r.attrs[:0]
	for {
		before := r.i
		r.space()
		if r.i >= len(r.b) {
			return nil, errSlow
		}
		switch r.b[r.i] {
		case '>':
			r.i++
		case '/':
			if r.i+1 >= len(r.b) || r.b[r.i+1] != '>' {
				return nil, errSlow
			}
			r.i += 2
			r.pending = true
		default:
			if r.i == before {
				return nil, errSlow // attributes must be separated by white space
			}
			aname, ok := r.name()
			if !ok {
				return nil, errSlow
			}
			space := ""
			if r.i < len(r.b) && r.b[r.i] == ':' {
				if aname != "xml" {
					return nil, errSlow
				}
				r.i++
				if aname, ok = r.name(); !ok {
					return nil, errSlow
				}
				space = xmlURL
			}
			if r.i >= len(r.b) || r.b[r.i] != '=' {
				return nil, errSlow
			}
			r.i++
			if r.i >= len(r.b) || r.b[r.i] != '"' && r.b[r.i] != '\'' {
				return nil, errSlow
			}
			q := r.b[r.i]
			r.i++
			end := bytes.IndexByte(r.b[r.i:], q)
			if end < 0 {
				return nil, errSlow
			}
			raw := r.b[r.i : r.i+end]
			r.i += end + 1
			// Attribute values with white space other than ' ' or with
			// references take the slow path.
			if bytes.ContainsAny(raw, "<&\t\n\r") || !plainText(raw) {
				return nil, errSlow
			}
			a := xml.Attr{Name: xml.Name{Space: space, Local: aname}, Value: string(raw)}
			for _, b := range attrs {
				if b.Name == a.Name {
					return nil, errSlow
				}
			}
			if space == "" && aname == "xmlns" {
				ns = a.Value
			}
			attrs = append(attrs, a)
			continue
		}
		break
	}
	r.attrs = attrs
	r.stack = append(r.stack, fastFrame{local: local, ns: ns})
	var out []xml.Attr
	if len(attrs) > 0 {
		out = make([]xml.Attr, len(attrs))
		copy(out, attrs)
	}
	return xml.StartElement{Name: xml.Name{Space: ns, Local: local}, Attr: out}, nil
}

func (r *fastReader) endTag() (xml.Token, error) {
	r.i += 2 // "</"
	local, ok := r.name()
	if !ok {
		return nil, errSlow
	}
	r.space()
	if r.i >= len(r.b) || r.b[r.i] != '>' {
		return nil, errSlow
	}
	r.i++
	if len(r.stack) < 2 || r.stack[len(r.stack)-1].local != local {
		return nil, errSlow
	}
	f := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	return xml.EndElement{Name: xml.Name{Space: f.ns, Local: f.local}}, nil
}

// parseXML runs parse over b, first with the fast reader and, if that fails
// in any way, again with a strict encoding/xml.Decoder.
func parseXML[T any](b []byte, defaultNS string, parse func(xml.TokenReader) (T, error)) (T, error) {
	if v, err := parse(newFastReader(b, defaultNS)); err == nil {
		return v, nil
	}
	d := newDecoder(bytes.NewReader(b))
	d.DefaultSpace = defaultNS
	return parse(d)
}

// skip consumes the rest of the current element.
func skip(r xml.TokenReader) error {
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}
