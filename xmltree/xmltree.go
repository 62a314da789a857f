// Package xmltree is Balcony's one XML element type: a small,
// namespace-aware tree that holds one stanza (or any XML payload) at a
// time, read and written by its own parser and writer for the subset of
// XML 1.0 and Namespaces in XML 1.0 (W3C Recommendations) that XMPP uses
// (RFC 6120 §11). The XMPP layer builds each incoming stanza into a tree
// once, from the stream's tokens (FromTokens), with size and depth limits;
// detection (package eme), every mechanism and every engine that takes XML
// work on that tree, and outgoing stanzas are built as trees and written
// back as tokens (TokenReader) or bytes (Marshal, AppendXML) with minimal
// namespace declarations. Payloads that travel as bytes, such as the
// decrypted content of an encrypted stanza, are read with Parse.
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
// # What Parse accepts
//
// Parse accepts exactly what encoding/xml's Decoder accepts in strict mode
// with no entity map, with the checks FromTokens adds, for one element;
// it is a byte-level parser of its own that the tests compare with that
// implementation. In detail:
//
//   - UTF-8 only: malformed UTF-8 and characters outside XML's Char
//     production are errors in text and attribute values, also when a
//     character reference produces them (a reference to a surrogate code
//     point gives U+FFFD, as in encoding/xml). Comments and the XML
//     declaration are skipped without checking their characters.
//   - The five predefined entities and decimal or hexadecimal (lowercase
//     x) character references; any other reference is an error. CDATA
//     sections are text. CR LF and lone CR in text and attribute values
//     become LF; other white space in attribute values is kept as is.
//   - An XML declaration, allowed only before the element, may only give
//     version 1.0 and encoding UTF-8 (in any case). Any other processing
//     instruction, a document type declaration or any other <!...> is an
//     error.
//   - Before the element only white space (Unicode White_Space, after
//     references are expanded, CDATA included), comments and XML
//     declarations; after it white space and comments.
//   - Names follow XML 1.0's Name production; element and attribute
//     names have at most one colon and their local part must be an
//     NCName. Attributes need not be separated by white space, and a
//     repeated attribute is kept twice, as encoding/xml has it.
//   - Namespaces: the xml prefix is always its namespace; a prefix that is
//     not declared is an error nowhere: it stands for itself in
//     Name.Space, as encoding/xml leaves it. xmlns attributes declare;
//     an element named xmlns keeps no namespace.
//
// # Limits
//
// Limits bound what one tree may take from an untrusted peer, checked as
// the input is read: MaxDepth the nesting of elements (the root is depth
// 1), MaxNodes the elements below the root plus the text pieces (each run
// of character data and each CDATA section counts, merged or not),
// MaxBytes the bytes of element and attribute names, their namespace
// URIs, attribute values (namespace declarations included) and text,
// after references are expanded. Input beyond a limit gives ErrLimit; a
// zero field of a non-nil *Limits is a limit of zero. The input's own
// length is the caller's to bound. Parse and FromTokens count alike.
//
// # Memory
//
// A parsed tree keeps one copy of the input: names, attribute values and
// text that needed no change are substrings of it, and all elements,
// attributes and child lists are carved from a few allocations, so any
// part of a tree that is kept keeps the rest alive. Copy, or rebuilding
// with New, detaches a part.
//
// # Concurrency
//
// An Element is a plain value: it is not safe for concurrent mutation,
// and readers must not run while it is changed. Copy gives an independent
// deep copy. Parse, FromTokens and the writers may run concurrently on
// different inputs and trees, and the writers concurrently on one tree
// that nobody changes.
package xmltree

import (
	"encoding/xml"
	"errors"
	"strings"
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
