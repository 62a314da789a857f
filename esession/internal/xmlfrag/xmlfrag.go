// Package xmlfrag is a fast, allocation-light XML lexer and well-formedness
// checker for the per-stanza path of XEP-0200: reading a received <c/>
// element and checking that decrypted stanza content parses, as the spec
// requires before the content is used (XEP-0200 §7 step 6).
//
// It accepts the XML that RFC 6120 §11.1 allows in a stream and nothing
// more: elements, attributes, character data, CDATA sections, the five
// predefined entity references and character references, UTF-8 only, every
// prefix bound. It is deliberately stricter than encoding/xml in two ways:
// names are limited to ASCII name characters, and comments, processing
// instructions and DTDs are rejected. Content it accepts is accepted by
// encoding/xml too (checked by a differential fuzz test).
package xmlfrag

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// NSXML is the namespace bound to the "xml" prefix.
const NSXML = "http://www.w3.org/XML/1998/namespace"

// NSXMLNS is the namespace of namespace declarations.
const NSXMLNS = "http://www.w3.org/2000/xmlns/"

// ErrSyntax is returned for any input that is not acceptable XML. The
// callers turn it into a session termination; the detail is not needed.
var ErrSyntax = errors.New("xmlfrag: malformed XML")

// Kind is a token kind.
type Kind uint8

// Token kinds.
const (
	StartTag Kind = iota + 1
	EndTag
	Text  // character data, possibly with references
	CDATA // the content of a CDATA section
)

// Attr is a raw attribute. Value is as written between the quotes.
type Attr struct {
	Prefix, Local []byte
	Value         []byte
	HasRef        bool // Value contains references
}

// Token is one lexical item. Its slices alias the input and the lexer's
// buffers and are valid until the next call to Next.
type Token struct {
	Kind          Kind
	Prefix, Local []byte // tags
	Attrs         []Attr // start tags
	Empty         bool   // start tag closed with "/>"
	Data          []byte // Text and CDATA: the raw content
	HasRef        bool   // Text contains references
	Start, End    int    // offsets of the token in the input
}

// Lexer splits XML content into tokens, checking the lexical rules.
type Lexer struct {
	b     []byte
	pos   int
	attrs []Attr
	// RawText skips the character checks of text tokens (not of CDATA or
	// attribute values): a caller that checks text against a narrower
	// alphabet itself, such as base64, need not pay for them twice. Text
	// may then hold anything but '<'.
	RawText bool
}

// Reset starts lexing b.
func (l *Lexer) Reset(b []byte) {
	l.b, l.pos = b, 0
	l.attrs = l.attrs[:0]
}

// maxAttrs bounds the attributes on one element.
const maxAttrs = 64

// Next reads the next token into t. It returns io.EOF at the end of the
// input and ErrSyntax for malformed input.
func (l *Lexer) Next(t *Token) error {
	b := l.b
	if l.pos >= len(b) {
		return io.EOF
	}
	start := l.pos
	*t = Token{Start: start}
	if b[start] != '<' {
		var end int
		var hasRef bool
		if l.RawText {
			end = bytes.IndexByte(b[start:], '<')
			if end < 0 {
				end = len(b)
			} else {
				end += start
			}
			hasRef = bytes.IndexByte(b[start:end], '&') >= 0
		} else {
			var err error
			if end, hasRef, err = scanText(b, start); err != nil {
				return err
			}
		}
		t.Kind, t.Data, t.HasRef, t.End = Text, b[start:end], hasRef, end
		l.pos = end
		return nil
	}
	p := start + 1
	if p >= len(b) {
		return ErrSyntax
	}
	switch b[p] {
	case '/':
		p++
		prefix, local, n, err := qname(b, p)
		if err != nil {
			return err
		}
		p = skipSpace(b, n)
		if p >= len(b) || b[p] != '>' {
			return ErrSyntax
		}
		t.Kind, t.Prefix, t.Local, t.End = EndTag, prefix, local, p+1
		l.pos = p + 1
		return nil
	case '!':
		const open = "<![CDATA["
		if !bytes.HasPrefix(b[start:], []byte(open)) {
			return ErrSyntax // comments and DTDs are not allowed
		}
		p = start + len(open)
		end := bytes.Index(b[p:], []byte("]]>"))
		if end < 0 {
			return ErrSyntax
		}
		data := b[p : p+end]
		if _, err := checkText(data, false); err != nil {
			return err
		}
		t.Kind, t.Data, t.End = CDATA, data, p+end+3
		l.pos = t.End
		return nil
	case '?':
		return ErrSyntax // processing instructions are not allowed
	}
	prefix, local, p, err := qname(b, p)
	if err != nil {
		return err
	}
	l.attrs = l.attrs[:0]
	for {
		q := skipSpace(b, p)
		if q >= len(b) {
			return ErrSyntax
		}
		if b[q] == '>' {
			p = q + 1
			break
		}
		if b[q] == '/' {
			if q+1 >= len(b) || b[q+1] != '>' {
				return ErrSyntax
			}
			t.Empty = true
			p = q + 2
			break
		}
		if q == p {
			return ErrSyntax // attributes must be preceded by white space
		}
		aprefix, alocal, r, err := qname(b, q)
		if err != nil {
			return err
		}
		r = skipSpace(b, r)
		if r >= len(b) || b[r] != '=' {
			return ErrSyntax
		}
		r = skipSpace(b, r+1)
		if r >= len(b) || (b[r] != '\'' && b[r] != '"') {
			return ErrSyntax
		}
		quote := b[r]
		end := bytes.IndexByte(b[r+1:], quote)
		if end < 0 {
			return ErrSyntax
		}
		val := b[r+1 : r+1+end]
		if bytes.IndexByte(val, '<') >= 0 {
			return ErrSyntax
		}
		hasRef, err := checkText(val, false)
		if err != nil {
			return err
		}
		if len(l.attrs) == maxAttrs {
			return ErrSyntax
		}
		for _, a := range l.attrs {
			if bytes.Equal(a.Local, alocal) && bytes.Equal(a.Prefix, aprefix) {
				return ErrSyntax // duplicate attribute
			}
		}
		l.attrs = append(l.attrs, Attr{Prefix: aprefix, Local: alocal, Value: val, HasRef: hasRef})
		p = r + 1 + end + 1
	}
	t.Kind, t.Prefix, t.Local, t.Attrs, t.End = StartTag, prefix, local, l.attrs, p
	l.pos = p
	return nil
}

func skipSpace(b []byte, p int) int {
	for p < len(b) {
		switch b[p] {
		case ' ', '\t', '\r', '\n':
			p++
		default:
			return p
		}
	}
	return p
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isNameChar(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// ncname reads an ASCII NCName at p and returns its end.
func ncname(b []byte, p int) (int, error) {
	if p >= len(b) || !isNameStart(b[p]) {
		return 0, ErrSyntax
	}
	p++
	for p < len(b) && isNameChar(b[p]) {
		p++
	}
	return p, nil
}

// qname reads prefix:local or local.
func qname(b []byte, p int) (prefix, local []byte, end int, err error) {
	e, err := ncname(b, p)
	if err != nil {
		return nil, nil, 0, err
	}
	if e < len(b) && b[e] == ':' {
		e2, err := ncname(b, e+1)
		if err != nil {
			return nil, nil, 0, err
		}
		return b[p:e], b[e+1 : e2], e2, nil
	}
	return nil, b[p:e], e, nil
}

// plain marks the bytes that need no attention in text: printable ASCII
// other than '&', '>' and '<', and tab, newline and carriage return.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = true
	}
	t['&'], t['>'], t['<'] = false, false, false
	t['\t'], t['\n'], t['\r'] = true, true, true
	return t
}()

// scanText finds the end of the character data starting at b[start] (the
// next '<' or the end of b), checking it as checkText does, in one pass.
func scanText(b []byte, start int) (end int, hasRef bool, err error) {
	i := start
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i == len(b) || b[i] == '<' {
			return i, hasRef, nil
		}
		switch c := b[i]; {
		case c == '&':
			n, err := checkRef(b[i:])
			if err != nil {
				return 0, false, err
			}
			hasRef = true
			i += n
		case c == '>':
			if i-start >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				return 0, false, ErrSyntax
			}
			i++
		case c < utf8.RuneSelf:
			return 0, false, ErrSyntax // a control character
		default:
			r, n := utf8.DecodeRune(b[i:])
			if !isChar(r) || (r == utf8.RuneError && n == 1) {
				return 0, false, ErrSyntax
			}
			i += n
		}
	}
}

// checkText checks characters and references. In character data (text)
// the sequence "]]>" is not allowed.
func checkText(b []byte, text bool) (hasRef bool, err error) {
	for i := 0; i < len(b); {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				n, err := checkRef(b[i:])
				if err != nil {
					return false, err
				}
				hasRef = true
				i += n
				continue
			case c == '>' && text && i >= 2 && b[i-1] == ']' && b[i-2] == ']':
				return false, ErrSyntax
			case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
				return false, ErrSyntax
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if !isChar(r) || (r == utf8.RuneError && n == 1) {
			return false, ErrSyntax
		}
		i += n
	}
	return hasRef, nil
}

func isChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// checkRef checks the reference at the start of b and returns its length.
func checkRef(b []byte) (int, error) {
	end := bytes.IndexByte(b, ';')
	if end < 2 || end > 12 {
		return 0, ErrSyntax
	}
	_, ok := refValue(b[1:end])
	if !ok {
		return 0, ErrSyntax
	}
	return end + 1, nil
}

// refValue returns the character a reference name (between & and ;)
// stands for.
func refValue(name []byte) (rune, bool) {
	switch string(name) {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	if len(name) < 2 || name[0] != '#' {
		return 0, false
	}
	var r rune
	digits := name[1:]
	if digits[0] == 'x' {
		digits = digits[1:]
		if len(digits) == 0 || len(digits) > 6 {
			return 0, false
		}
		for _, c := range digits {
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = c - 'A' + 10
			default:
				return 0, false
			}
			r = r<<4 | rune(v)
		}
	} else {
		if len(digits) == 0 || len(digits) > 7 {
			return 0, false
		}
		for _, c := range digits {
			if c < '0' || c > '9' {
				return 0, false
			}
			r = r*10 + rune(c-'0')
		}
	}
	return r, isChar(r)
}

// AppendDecoded appends raw character data (text or an attribute value
// already checked by the lexer) to dst with its references replaced.
func AppendDecoded(dst, raw []byte) []byte {
	for {
		i := bytes.IndexByte(raw, '&')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		raw = raw[i:]
		end := bytes.IndexByte(raw, ';')
		r, _ := refValue(raw[1:end])
		dst = utf8.AppendRune(dst, r)
		raw = raw[end+1:]
	}
}

// Scope tracks namespace declarations while lexing, and checks that every
// prefix is bound and declared correctly (Namespaces in XML 1.0 §3).
type Scope struct {
	binds []binding
	depth int
	buf   []byte
	def   string // the default namespace of the last Reset, and its bytes
	defB  []byte
}

type binding struct {
	prefix []byte // nil for the default namespace
	uri    []byte
	depth  int
}

// Reset empties the scope and sets the default namespace for unprefixed
// elements at depth 0.
func (s *Scope) Reset(defaultNS string) {
	if s.defB == nil || s.def != defaultNS {
		s.def, s.defB = defaultNS, []byte(defaultNS)
	}
	s.binds = append(s.binds[:0], binding{prefix: nil, uri: s.defB, depth: 0})
	s.depth = 0
}

// Depth returns the number of open elements.
func (s *Scope) Depth() int { return s.depth }

// Push enters the element t (a start tag): it applies its declarations and
// checks its prefixes. It returns the element's namespace, valid until the
// element is popped.
func (s *Scope) Push(t *Token) ([]byte, error) {
	s.depth++
	for i := range t.Attrs {
		a := &t.Attrs[i]
		var prefix []byte
		switch {
		case a.Prefix == nil && string(a.Local) == "xmlns":
			prefix = nil
		case string(a.Prefix) == "xmlns":
			prefix = a.Local
		default:
			continue
		}
		uri := a.Value
		if a.HasRef {
			s.buf = AppendDecoded(s.buf[:0], a.Value)
			uri = append([]byte(nil), s.buf...)
		}
		isXMLURI := string(uri) == NSXML
		if string(uri) == NSXMLNS {
			return nil, ErrSyntax
		}
		if prefix == nil {
			if isXMLURI {
				return nil, ErrSyntax
			}
		} else {
			if string(prefix) == "xmlns" || len(uri) == 0 || (string(prefix) == "xml") != isXMLURI {
				return nil, ErrSyntax
			}
		}
		s.binds = append(s.binds, binding{prefix: prefix, uri: uri, depth: s.depth})
	}
	if string(t.Prefix) == "xmlns" {
		return nil, ErrSyntax
	}
	ns, ok := s.lookup(t.Prefix)
	if !ok {
		return nil, ErrSyntax
	}
	for i := range t.Attrs {
		a := &t.Attrs[i]
		if a.Prefix == nil || string(a.Prefix) == "xmlns" {
			continue
		}
		u1, ok := s.lookup(a.Prefix)
		if !ok {
			return nil, ErrSyntax
		}
		// No two attributes with the same expanded name.
		for j := range i {
			b := &t.Attrs[j]
			if b.Prefix == nil || string(b.Prefix) == "xmlns" || !bytes.Equal(a.Local, b.Local) {
				continue
			}
			if u2, _ := s.lookup(b.Prefix); bytes.Equal(u1, u2) {
				return nil, ErrSyntax
			}
		}
	}
	return ns, nil
}

// Pop leaves the innermost element.
func (s *Scope) Pop() {
	for len(s.binds) > 1 && s.binds[len(s.binds)-1].depth == s.depth {
		s.binds = s.binds[:len(s.binds)-1]
	}
	s.depth--
}

func (s *Scope) lookup(prefix []byte) ([]byte, bool) {
	if string(prefix) == "xml" {
		return []byte(NSXML), true
	}
	for i := len(s.binds) - 1; i >= 0; i-- {
		b := s.binds[i]
		if (prefix == nil) == (b.prefix == nil) && bytes.Equal(b.prefix, prefix) {
			return b.uri, true
		}
	}
	return nil, false
}

// Top is a top-level element of validated content. Space and Local alias
// the input or the checker's buffers: they are valid until the next
// Validate.
type Top struct {
	Space, Local []byte
	Start, End   int // offsets of the whole element in the input
}

// Checker validates content; its zero value is ready to use and it reuses
// its buffers across calls. It is not safe for concurrent use.
type Checker struct {
	lex   Lexer
	scope Scope
	stack []tagName
}

type tagName struct{ prefix, local []byte }

// Validate checks that b is well-formed element content (what may appear
// between a stanza's start and end tags) in which unprefixed elements are
// in defaultNS, with elements nested at most maxDepth deep. It appends the
// top-level elements to tops and returns it.
func (c *Checker) Validate(b []byte, defaultNS string, maxDepth int, tops []Top) ([]Top, error) {
	c.lex.Reset(b)
	c.scope.Reset(defaultNS)
	c.stack = c.stack[:0]
	var t Token
	for {
		err := c.lex.Next(&t)
		if err == io.EOF {
			break
		}
		if err != nil {
			return tops, err
		}
		switch t.Kind {
		case StartTag:
			if len(c.stack) == maxDepth {
				return tops, ErrSyntax
			}
			ns, err := c.scope.Push(&t)
			if err != nil {
				return tops, err
			}
			if len(c.stack) == 0 {
				tops = append(tops, Top{Space: ns, Local: t.Local, Start: t.Start, End: t.End})
			}
			if t.Empty {
				c.scope.Pop()
				continue
			}
			c.stack = append(c.stack, tagName{t.Prefix, t.Local})
		case EndTag:
			if len(c.stack) == 0 {
				return tops, ErrSyntax
			}
			top := c.stack[len(c.stack)-1]
			if !bytes.Equal(top.prefix, t.Prefix) || !bytes.Equal(top.local, t.Local) || (top.prefix == nil) != (t.Prefix == nil) {
				return tops, ErrSyntax
			}
			c.stack = c.stack[:len(c.stack)-1]
			c.scope.Pop()
			if len(c.stack) == 0 {
				tops[len(tops)-1].End = t.End
			}
		}
	}
	if len(c.stack) != 0 {
		return tops, ErrSyntax
	}
	return tops, nil
}
