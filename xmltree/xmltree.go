// Package xmltree is Balcony's one XML element type: a small,
// namespace-aware tree that holds one stanza (or any XML payload) at a
// time. The XMPP layer builds each incoming stanza into a tree once, from
// the stream's tokens (FromTokens), with size and depth limits; detection
// (package eme), every mechanism and every engine that takes XML work on
// that tree, and outgoing stanzas are built as trees and written back as
// tokens (TokenReader) or bytes (Marshal) with minimal namespace
// declarations.
//
// It exists because stanza processing needs random access to a whole
// stanza (detection, unwrapping carbons and archive results, replacing an
// encrypted payload by its plaintext) while encoding/xml only streams. It
// is public so that a mechanism or a payload can be written outside this
// module: every exported API of Balcony that takes or returns XML uses
// *Element.
//
// # Model
//
// An Element has a resolved name (Name.Space is the namespace URI, never a
// prefix), attributes and children, which are *Element or CharData nodes.
// Namespace declarations are not kept as attributes; on output each
// element declares its namespace where it differs from its parent's.
// Attributes in namespaces other than none and xml are dropped on output
// (no protocol Balcony speaks uses them). Comments are dropped while
// parsing; processing instructions (other than an XML declaration before
// the element) and DTDs are refused, as XMPP forbids them (RFC 6120
// §11.1).
//
// # Concurrency
//
// An Element is a plain value: it is not safe for concurrent mutation,
// and readers must not run while it is changed. Copy gives an independent
// deep copy.
package xmltree

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// Limits bound what a parser accepts from an untrusted peer.
type Limits struct {
	MaxDepth int // nesting depth, default 64
	MaxNodes int // elements plus text nodes, default 20000
	MaxBytes int // total bytes of names, attribute values and text, default 1 MiB
}

// DefaultLimits are used when a nil *Limits is given.
var DefaultLimits = Limits{MaxDepth: 64, MaxNodes: 20000, MaxBytes: 1 << 20}

// ErrLimit reports input that exceeds the parser's limits.
var ErrLimit = errors.New("xmltree: input exceeds limits")

// Element is an XML element. Name.Space is the resolved namespace URI;
// namespace declarations are not kept as attributes.
type Element struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []Node
}

// Node is an *Element or a CharData.
type Node interface{ node() }

// CharData is text content.
type CharData string

func (*Element) node() {}
func (CharData) node() {}

// New returns an element with the given namespace, local name and
// attributes given as name, value pairs.
func New(space, local string, attrs ...string) *Element {
	e := &Element{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.SetAttr(attrs[i], attrs[i+1])
	}
	return e
}

// AttrValue returns the value of the un-namespaced attribute local, or "".
func (e *Element) AttrValue(local string) string {
	v, _ := e.LookupAttr(local)
	return v
}

// LookupAttr returns the un-namespaced attribute local and whether it exists.
func (e *Element) LookupAttr(local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// SetAttr sets (or, with an empty value, keeps as empty) an un-namespaced attribute.
func (e *Element) SetAttr(local, value string) *Element {
	for i, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			e.Attr[i].Value = value
			return e
		}
	}
	e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	return e
}

// RemoveAttr deletes an un-namespaced attribute.
func (e *Element) RemoveAttr(local string) {
	out := e.Attr[:0]
	for _, a := range e.Attr {
		if !(a.Name.Space == "" && a.Name.Local == local) {
			out = append(out, a)
		}
	}
	e.Attr = out
}

// Append adds children and returns e.
func (e *Element) Append(children ...Node) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// AppendText adds a text node.
func (e *Element) AppendText(s string) *Element {
	if s != "" {
		e.Children = append(e.Children, CharData(s))
	}
	return e
}

// Elements returns the child elements in order.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok {
			out = append(out, el)
		}
	}
	return out
}

// Child returns the first child element with the namespace and local name,
// or nil. An empty space matches any namespace.
func (e *Element) Child(space, local string) *Element {
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok && el.Name.Local == local && (space == "" || el.Name.Space == space) {
			return el
		}
	}
	return nil
}

// ChildrenNamed returns all child elements with the namespace and local name.
func (e *Element) ChildrenNamed(space, local string) []*Element {
	var out []*Element
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok && el.Name.Local == local && (space == "" || el.Name.Space == space) {
			out = append(out, el)
		}
	}
	return out
}

// RemoveChildren deletes every child element for which drop returns true.
func (e *Element) RemoveChildren(drop func(*Element) bool) {
	out := e.Children[:0]
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok && drop(el) {
			continue
		}
		out = append(out, c)
	}
	clear(e.Children[len(out):])
	e.Children = out
}

// Text returns the concatenated direct text content.
func (e *Element) Text() string {
	var b strings.Builder
	for _, c := range e.Children {
		if t, ok := c.(CharData); ok {
			b.WriteString(string(t))
		}
	}
	return b.String()
}

// ChildText returns the text of the first matching child, or "".
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// Copy returns a deep copy.
func (e *Element) Copy() *Element {
	if e == nil {
		return nil
	}
	n := &Element{Name: e.Name, Attr: append([]xml.Attr(nil), e.Attr...)}
	n.Children = make([]Node, 0, len(e.Children))
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			n.Children = append(n.Children, c.Copy())
		default:
			n.Children = append(n.Children, c)
		}
	}
	return n
}

// Parse parses exactly one element from b. Leading and trailing whitespace
// is allowed; anything else is an error.
func Parse(b []byte, lim *Limits) (*Element, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = nil
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return nil, errors.New("xmltree: no element")
			}
			return nil, fmt.Errorf("xmltree: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := FromTokens(d, t, lim)
			if err != nil {
				return nil, err
			}
			for {
				tok, err := d.Token()
				if err == io.EOF {
					return el, nil
				}
				if err != nil {
					return nil, fmt.Errorf("xmltree: %w", err)
				}
				switch t := tok.(type) {
				case xml.CharData:
					if len(bytes.TrimSpace(t)) != 0 {
						return nil, errors.New("xmltree: trailing data")
					}
				case xml.Comment:
				default:
					return nil, errors.New("xmltree: trailing data")
				}
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, errors.New("xmltree: text before element")
			}
		case xml.Directive:
			return nil, errors.New("xmltree: directives (DTDs) are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, errors.New("xmltree: processing instructions are not allowed")
			}
		case xml.Comment:
		default:
			return nil, errors.New("xmltree: unexpected token")
		}
	}
}

// FromTokens reads the content of start (already consumed) from r up to and
// including its end element and returns the tree. Comments are dropped;
// processing instructions and directives are refused.
func FromTokens(r xml.TokenReader, start xml.StartElement, lim *Limits) (*Element, error) {
	l := DefaultLimits
	if lim != nil {
		l = *lim
	}
	budget := l.MaxBytes
	nodes := 0
	if !validName(start) {
		return nil, errors.New("xmltree: invalid element or attribute name")
	}
	root := newFromStart(start)
	budget -= sizeOf(start)
	stack := []*Element{root}
	for len(stack) > 0 {
		if budget < 0 || nodes > l.MaxNodes {
			return nil, ErrLimit
		}
		tok, err := r.Token()
		if tok == nil || (err != nil && err != io.EOF) {
			// A TokenReader may return the last token together with io.EOF.
			if err == nil || err == io.EOF {
				return nil, errors.New("xmltree: unexpected end of input")
			}
			return nil, fmt.Errorf("xmltree: %w", err)
		}
		if _, isEnd := tok.(xml.EndElement); err == io.EOF && (!isEnd || len(stack) != 1) {
			return nil, errors.New("xmltree: unexpected end of input")
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= l.MaxDepth {
				return nil, ErrLimit
			}
			if !validName(t) {
				return nil, errors.New("xmltree: invalid element or attribute name")
			}
			el := newFromStart(t)
			budget -= sizeOf(t)
			nodes++
			top.Children = append(top.Children, el)
			stack = append(stack, el)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			budget -= len(t)
			nodes++
			if n := len(top.Children); n > 0 {
				if prev, ok := top.Children[n-1].(CharData); ok {
					top.Children[n-1] = prev + CharData(t)
					continue
				}
			}
			top.Children = append(top.Children, CharData(string(t)))
		case xml.Directive:
			return nil, errors.New("xmltree: directives (DTDs) are not allowed")
		case xml.ProcInst:
			// RFC 6120 §11.1: no processing instructions in XMPP.
			return nil, errors.New("xmltree: processing instructions are not allowed")
		}
	}
	return root, nil
}

// validName reports whether the local names of an element and its
// attributes are XML NCNames (encoding/xml accepts some that are not, such
// as a local part starting with a digit after a prefix).
func validName(s xml.StartElement) bool {
	if !ncName(s.Name.Local) {
		return false
	}
	for _, a := range s.Attr {
		if !ncName(a.Name.Local) {
			return false
		}
	}
	return true
}

func ncName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)):
		default:
			return false
		}
	}
	return true
}

func sizeOf(s xml.StartElement) int {
	n := len(s.Name.Local) + len(s.Name.Space)
	for _, a := range s.Attr {
		n += len(a.Name.Local) + len(a.Name.Space) + len(a.Value)
	}
	return n
}

func newFromStart(s xml.StartElement) *Element {
	e := &Element{Name: s.Name}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		e.Attr = append(e.Attr, a)
	}
	return e
}

// TokenReader returns the tree as a token stream. Every element carries its
// namespace in Name.Space only where it differs from its parent's, so that
// an encoder writes each xmlns declaration once. inherited is the namespace
// in scope where the element is written (e.g. "jabber:client" for stanzas
// written into a client stream); pass "" when unknown.
func (e *Element) TokenReader(inherited string) xml.TokenReader {
	var toks []xml.Token
	e.appendTokens(&toks, inherited)
	return &sliceReader{toks: toks}
}

func (e *Element) appendTokens(toks *[]xml.Token, inherited string) {
	start := xml.StartElement{Name: xml.Name{Local: e.Name.Local}}
	if e.Name.Space != inherited {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: e.Name.Space})
	}
	for _, a := range e.Attr {
		if a.Name.Space == "" || a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
			name := a.Name
			if name.Space != "" {
				name = xml.Name{Local: "xml:" + name.Local}
			}
			start.Attr = append(start.Attr, xml.Attr{Name: name, Value: a.Value})
		}
		// Attributes in other namespaces are not used by any protocol Balcony
		// speaks; they are dropped rather than written with a wrong prefix.
	}
	*toks = append(*toks, start)
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			c.appendTokens(toks, e.Name.Space)
		case CharData:
			*toks = append(*toks, xml.CharData(c))
		}
	}
	*toks = append(*toks, xml.EndElement{Name: xml.Name{Local: e.Name.Local}})
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
	r.i++
	return t, nil
}

// Marshal returns the element as bytes with its namespace declared on the
// root (unless it is inherited).
func (e *Element) Marshal(inherited string) []byte {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	r := e.TokenReader(inherited)
	for {
		t, err := r.Token()
		if err != nil {
			break
		}
		if err := enc.EncodeToken(t); err != nil {
			panic("xmltree: encoding a valid tree failed: " + err.Error())
		}
	}
	if err := enc.Flush(); err != nil {
		panic("xmltree: " + err.Error())
	}
	return buf.Bytes()
}

// String returns Marshal("") as a string.
func (e *Element) String() string { return string(e.Marshal("")) }
