package ox

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
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
	attrs   []xml.Attr
	tok     token
	frames  [8]fastFrame
}

type fastFrame struct {
	local, ns string
}

var errSlow = errors.New("ox: XML needs the full parser")

func newFastReader(b []byte, defaultNS string) *fastReader {
	r := &fastReader{b: b}
	r.stack = append(r.frames[:0], fastFrame{ns: defaultNS})
	return r
}

// token is one XML token, filled in place by a tokens reader so that
// reading allocates nothing per token. Its attr and text may alias the
// reader's buffers and are valid only until the next call.
type token struct {
	kind   tokKind
	name   xml.Name   // tokStart, tokEnd
	attr   []xml.Attr // tokStart
	text   []byte     // tokText
	target string     // tokProcInst
}

type tokKind uint8

const (
	tokStart tokKind = iota + 1
	tokEnd
	tokText
	tokComment
	tokProcInst
	tokDirective
)

// tokens is what the parsers in this package read. next returns a token
// owned by the reader, valid until the following call.
type tokens interface {
	next() (*token, error)
}

// stdTokens adapts any xml.TokenReader, such as an encoding/xml.Decoder.
type stdTokens struct {
	r   xml.TokenReader
	tok token
}

func (s *stdTokens) next() (*token, error) {
	tok, err := s.r.Token()
	if err != nil {
		return nil, err
	}
	t := &s.tok
	switch v := tok.(type) {
	case xml.StartElement:
		*t = token{kind: tokStart, name: v.Name, attr: v.Attr}
	case xml.EndElement:
		*t = token{kind: tokEnd, name: v.Name}
	case xml.CharData:
		*t = token{kind: tokText, text: v}
	case xml.Comment:
		*t = token{kind: tokComment}
	case xml.ProcInst:
		*t = token{kind: tokProcInst, target: v.Target}
	case xml.Directive:
		*t = token{kind: tokDirective}
	default:
		return nil, fmt.Errorf("ox: unexpected XML token %T", tok)
	}
	return t, nil
}

func startToken(s xml.StartElement) *token {
	return &token{kind: tokStart, name: s.Name, attr: s.Attr}
}

func (r *fastReader) next() (*token, error) {
	if err := r.read(&r.tok); err != nil {
		return nil, err
	}
	return &r.tok, nil
}

func (r *fastReader) read(t *token) error {
	if r.pending {
		r.pending = false
		f := r.stack[len(r.stack)-1]
		r.stack = r.stack[:len(r.stack)-1]
		*t = token{kind: tokEnd, name: xml.Name{Space: f.ns, Local: f.local}}
		return nil
	}
	if r.i >= len(r.b) {
		if len(r.stack) > 1 {
			return errSlow
		}
		return io.EOF
	}
	if r.b[r.i] != '<' {
		return r.text(t)
	}
	if r.i+1 >= len(r.b) {
		return errSlow
	}
	switch r.b[r.i+1] {
	case '/':
		return r.endTag(t)
	case '?', '!':
		return errSlow
	}
	return r.startTag(t)
}

func (r *fastReader) text(t *token) error {
	end := bytes.IndexByte(r.b[r.i:], '<')
	if end < 0 {
		end = len(r.b) - r.i
	}
	raw := r.b[r.i : r.i+end]
	r.i += end
	if bytes.Contains(raw, []byte("]]>")) {
		return errSlow
	}
	if bytes.IndexByte(raw, '&') < 0 {
		if !plainText(raw) {
			return errSlow
		}
		*t = token{kind: tokText, text: raw}
		return nil
	}
	out, ok := r.unescape(raw)
	if !ok {
		return errSlow
	}
	*t = token{kind: tokText, text: out}
	return nil
}

// plainText reports whether raw holds only characters that encoding/xml
// passes through unchanged: valid XML characters other than '\r' (which it
// normalises) and '&' and '<' (which have meaning).
func plainText(raw []byte) bool {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			if !textSafe[c] && c != '>' {
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

// plainAttr reports whether an attribute value holds only characters that
// encoding/xml passes through unchanged.
func plainAttr(raw []byte) bool {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			if !attrSafe[c] {
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
	return intern(r.b[start:r.i]), true
}

// intern returns the names and values that OX messages are made of without
// allocating.
func intern(b []byte) string {
	switch string(b) {
	case "signcrypt":
		return "signcrypt"
	case "sign":
		return "sign"
	case "crypt":
		return "crypt"
	case "to":
		return "to"
	case "jid":
		return "jid"
	case "time":
		return "time"
	case "stamp":
		return "stamp"
	case "rpad":
		return "rpad"
	case "payload":
		return "payload"
	case "openpgp":
		return "openpgp"
	case "body":
		return "body"
	case "xmlns":
		return "xmlns"
	case "lang":
		return "lang"
	case NS:
		return NS
	case NSClient:
		return NSClient
	}
	return string(b)
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

func (r *fastReader) startTag(t *token) error {
	if len(r.stack) > maxDepth {
		return errSlow
	}
	r.i++ // '<'
	local, ok := r.name()
	if !ok {
		return errSlow
	}
	ns := r.stack[len(r.stack)-1].ns
	attrs := r.attrs[:0]
	for {
		before := r.i
		r.space()
		if r.i >= len(r.b) {
			return errSlow
		}
		switch r.b[r.i] {
		case '>':
			r.i++
		case '/':
			if r.i+1 >= len(r.b) || r.b[r.i+1] != '>' {
				return errSlow
			}
			r.i += 2
			r.pending = true
		default:
			if r.i == before {
				return errSlow // attributes must be separated by white space
			}
			aname, ok := r.name()
			if !ok {
				return errSlow
			}
			space := ""
			if r.i < len(r.b) && r.b[r.i] == ':' {
				if aname != "xml" {
					return errSlow
				}
				r.i++
				if aname, ok = r.name(); !ok {
					return errSlow
				}
				space = xmlURL
			}
			if r.i >= len(r.b) || r.b[r.i] != '=' {
				return errSlow
			}
			r.i++
			if r.i >= len(r.b) || r.b[r.i] != '"' && r.b[r.i] != '\'' {
				return errSlow
			}
			q := r.b[r.i]
			r.i++
			end := bytes.IndexByte(r.b[r.i:], q)
			if end < 0 {
				return errSlow
			}
			raw := r.b[r.i : r.i+end]
			r.i += end + 1
			// Attribute values with white space other than ' ', with
			// references or with a '"' take the slow path.
			if !plainAttr(raw) {
				return errSlow
			}
			a := xml.Attr{Name: xml.Name{Space: space, Local: aname}, Value: intern(raw)}
			for _, b := range attrs {
				if b.Name == a.Name {
					return errSlow
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
	*t = token{kind: tokStart, name: xml.Name{Space: ns, Local: local}, attr: attrs}
	return nil
}

func (r *fastReader) endTag(t *token) error {
	r.i += 2 // "</"
	local, ok := r.name()
	if !ok {
		return errSlow
	}
	r.space()
	if r.i >= len(r.b) || r.b[r.i] != '>' {
		return errSlow
	}
	r.i++
	if len(r.stack) < 2 || r.stack[len(r.stack)-1].local != local {
		return errSlow
	}
	f := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	*t = token{kind: tokEnd, name: xml.Name{Space: f.ns, Local: f.local}}
	return nil
}

// parseXML runs parse over b, first with the fast reader and, if that fails
// in any way, again with a strict encoding/xml.Decoder.
func parseXML[T any](b []byte, defaultNS string, parse func(tokens) (T, error)) (T, error) {
	if v, err := parse(newFastReader(b, defaultNS)); err == nil {
		return v, nil
	}
	d := newDecoder(bytes.NewReader(b))
	d.DefaultSpace = defaultNS
	return parse(&stdTokens{r: d})
}

// skip consumes the rest of the current element.
func skip(r tokens) error {
	var t *token
	depth := 1
	for depth > 0 {
		var err error
		if t, err = r.next(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		switch t.kind {
		case tokStart:
			depth++
		case tokEnd:
			depth--
		}
	}
	return nil
}
