// Package xmltree is a small, strict XML element tree for the Encrypted
// Sessions negotiation: a parser over encoding/xml raw tokens with its own
// namespace resolution and size limits, a serialiser, and the XEP-0116 §8.2
// normaliser (character data between elements removed, then Canonical XML
// without namespaces).
//
// The parser accepts one element and nothing else: no XML declaration, no
// processing instructions, comments or DTDs, only the five predefined entity
// references, UTF-8 only, every prefix bound. These are the rules RFC 6120
// §11.1 places on XMPP streams.
package xmltree

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// NSXML is the namespace bound to the reserved "xml" prefix.
const NSXML = "http://www.w3.org/XML/1998/namespace"

// Attr is an attribute with its namespace resolved. Namespace declarations
// (xmlns, xmlns:p) are not kept as attributes.
type Attr struct {
	Space, Local, Value string
}

// Node is an *Element or a Text.
type Node interface{ isNode() }

// Text is decoded character data (CDATA sections included).
type Text string

func (Text) isNode() {}

// Element is an XML element with its namespace resolved.
type Element struct {
	Space, Local string
	Attr         []Attr
	Children     []Node
}

func (*Element) isNode() {}

// Limits bounds the work Parse does on untrusted input.
type Limits struct {
	MaxBytes    int // length of the input
	MaxDepth    int // element nesting, the root being depth 1
	MaxElements int // elements in the tree
	MaxAttrs    int // attributes (declarations included) on one element
}

// DefaultLimits suit a negotiation form or a message stanza.
var DefaultLimits = Limits{MaxBytes: 256 << 10, MaxDepth: 32, MaxElements: 4096, MaxAttrs: 32}

// SyntaxError reports input that is not acceptable XML.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return "xmltree: " + e.Msg }

func syntaxErr(format string, a ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, a...)}
}

type frame struct {
	el    *Element
	raw   xml.Name // as written, for matching the end tag
	scope map[string]string
	def   string
}

// Parse parses exactly one element (surrounding whitespace allowed). The
// root element's unprefixed names are in defaultNS unless it declares
// another default namespace.
func Parse(b []byte, defaultNS string, lim Limits) (*Element, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	if len(b) > lim.MaxBytes {
		return nil, syntaxErr("input longer than %d bytes", lim.MaxBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = nil
	d.CharsetReader = nil
	var (
		stack    []frame
		root     *Element
		elements int
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, syntaxErr("%s", se.Msg)
			}
			return nil, syntaxErr("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, syntaxErr("more than one root element")
			}
			elements++
			if elements > lim.MaxElements {
				return nil, syntaxErr("more than %d elements", lim.MaxElements)
			}
			if len(stack)+1 > lim.MaxDepth {
				return nil, syntaxErr("nested deeper than %d", lim.MaxDepth)
			}
			if len(t.Attr) > lim.MaxAttrs {
				return nil, syntaxErr("more than %d attributes", lim.MaxAttrs)
			}
			parentScope, parentDef := map[string]string(nil), defaultNS
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				parentScope, parentDef = top.scope, top.def
			}
			el, scope, def, err := resolve(t, parentScope, parentDef)
			if err != nil {
				return nil, err
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1].el
				p.Children = append(p.Children, el)
			} else {
				root = el
			}
			stack = append(stack, frame{el: el, raw: t.Name, scope: scope, def: def})
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, syntaxErr("unexpected end element")
			}
			top := stack[len(stack)-1]
			if top.raw != t.Name {
				return nil, syntaxErr("element <%s> closed by </%s>", qname(top.raw), qname(t.Name))
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					return nil, syntaxErr("character data outside the element")
				}
				continue
			}
			p := stack[len(stack)-1].el
			if n := len(p.Children); n > 0 {
				if prev, ok := p.Children[n-1].(Text); ok {
					p.Children[n-1] = prev + Text(t)
					continue
				}
			}
			p.Children = append(p.Children, Text(t))
		case xml.Comment:
			return nil, syntaxErr("comments are not allowed")
		case xml.ProcInst:
			return nil, syntaxErr("processing instructions are not allowed")
		case xml.Directive:
			return nil, syntaxErr("DTDs and directives are not allowed")
		}
	}
	if len(stack) != 0 {
		return nil, syntaxErr("unexpected end of input")
	}
	if root == nil {
		return nil, syntaxErr("no element")
	}
	return root, nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// resolve applies the namespace declarations of t and resolves its names.
func resolve(t xml.StartElement, parent map[string]string, def string) (*Element, map[string]string, string, error) {
	scope := parent
	copied := false
	seen := make(map[xml.Name]bool, len(t.Attr))
	for _, a := range t.Attr {
		if seen[a.Name] {
			return nil, nil, "", syntaxErr("duplicate attribute %s", qname(a.Name))
		}
		seen[a.Name] = true
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == NSXML {
				return nil, nil, "", syntaxErr("the xml namespace cannot be the default")
			}
			def = a.Value
		case a.Name.Space == "xmlns":
			p := a.Name.Local
			if p == "xmlns" || (p == "xml") != (a.Value == NSXML) || a.Value == "" {
				return nil, nil, "", syntaxErr("bad declaration of prefix %q", p)
			}
			if !copied {
				n := make(map[string]string, len(parent)+1)
				for k, v := range parent {
					n[k] = v
				}
				scope, copied = n, true
			}
			scope[p] = a.Value
		}
	}
	lookup := func(prefix string) (string, bool) {
		if prefix == "xml" {
			return NSXML, true
		}
		v, ok := scope[prefix]
		return v, ok
	}
	el := &Element{Local: t.Name.Local}
	if t.Name.Space == "" {
		el.Space = def
	} else {
		if t.Name.Space == "xmlns" {
			return nil, nil, "", syntaxErr("element with the xmlns prefix")
		}
		ns, ok := lookup(t.Name.Space)
		if !ok {
			return nil, nil, "", syntaxErr("unbound prefix %q", t.Name.Space)
		}
		el.Space = ns
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		at := Attr{Local: a.Name.Local, Value: a.Value}
		if a.Name.Space != "" {
			ns, ok := lookup(a.Name.Space)
			if !ok {
				return nil, nil, "", syntaxErr("unbound prefix %q", a.Name.Space)
			}
			at.Space = ns
		}
		for _, b := range el.Attr {
			if b.Space == at.Space && b.Local == at.Local {
				return nil, nil, "", syntaxErr("duplicate attribute %s", at.Local)
			}
		}
		el.Attr = append(el.Attr, at)
	}
	return el, scope, def, nil
}

// AttrValue returns the value of the unqualified attribute local.
func (e *Element) AttrValue(local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Space == "" && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Elements returns the child elements in document order.
func (e *Element) Elements() []*Element {
	var out []*Element
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok {
			out = append(out, el)
		}
	}
	return out
}

// Child returns the first child element with the given name, or nil.
func (e *Element) Child(space, local string) *Element {
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok && el.Space == space && el.Local == local {
			return el
		}
	}
	return nil
}

// Text returns the concatenated character data directly inside e.
func (e *Element) Text() string {
	var sb strings.Builder
	for _, c := range e.Children {
		if t, ok := c.(Text); ok {
			sb.WriteString(string(t))
		}
	}
	return sb.String()
}

// HasElements reports whether e has element children.
func (e *Element) HasElements() bool {
	for _, c := range e.Children {
		if _, ok := c.(*Element); ok {
			return true
		}
	}
	return false
}

// New returns an element with the given name and unqualified attributes
// given as name, value pairs.
func New(space, local string, attrs ...string) *Element {
	if len(attrs)%2 != 0 {
		panic("xmltree: odd attribute list")
	}
	e := &Element{Space: space, Local: local}
	for i := 0; i < len(attrs); i += 2 {
		e.Attr = append(e.Attr, Attr{Local: attrs[i], Value: attrs[i+1]})
	}
	return e
}

// Add appends children and returns e.
func (e *Element) Add(children ...Node) *Element {
	e.Children = append(e.Children, children...)
	return e
}

// AddText appends a text child and returns e.
func (e *Element) AddText(s string) *Element {
	e.Children = append(e.Children, Text(s))
	return e
}

// Marshal serialises e. Namespaces are declared with xmlns attributes where
// an element's namespace differs from its parent's (parentNS for the
// root); attributes in a namespace other than xml: get a prefix declared on
// their element; attributes use single quotes.
func (e *Element) Marshal(parentNS string) []byte {
	var b bytes.Buffer
	e.write(&b, parentNS)
	return b.Bytes()
}

// WriteTo appends the serialisation of e to b, as Marshal does.
func (e *Element) WriteTo(b *bytes.Buffer, parentNS string) { e.write(b, parentNS) }

func (e *Element) write(b *bytes.Buffer, parentNS string) {
	b.WriteByte('<')
	b.WriteString(e.Local)
	if e.Space != parentNS {
		b.WriteString(" xmlns='")
		escapeAttr(b, e.Space, '\'')
		b.WriteByte('\'')
	}
	for i, a := range e.Attr {
		b.WriteByte(' ')
		switch a.Space {
		case "":
		case NSXML:
			b.WriteString("xml:")
		default:
			// a prefix of our own, declared on this element
			p := "a" + strconv.Itoa(i)
			b.WriteString("xmlns:" + p + "='")
			escapeAttr(b, a.Space, '\'')
			b.WriteString("' " + p + ":")
		}
		b.WriteString(a.Local)
		b.WriteString("='")
		escapeAttr(b, a.Value, '\'')
		b.WriteByte('\'')
	}
	if len(e.Children) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, c := range e.Children {
		switch c := c.(type) {
		case *Element:
			c.write(b, e.Space)
		case Text:
			escapeText(b, string(c))
		}
	}
	b.WriteString("</")
	b.WriteString(e.Local)
	b.WriteByte('>')
}

// Canonical appends the XEP-0116 §8.2 normalised form of e to b: character
// data between elements removed (an element with element children keeps
// none of its text), then Canonical XML (W3C C14N 1.0) with no namespace
// declarations and no prefixes: attributes sorted and double-quoted, empty
// elements as start-end pairs, C14N escaping of text and attribute values.
func Canonical(b *bytes.Buffer, e *Element) { canonical(b, e, false) }

// CanonicalSelfClosing is Canonical with one deviation: an element with no
// content is written "<name attrs />", as Gajim 0.12 to 0.16 did.
func CanonicalSelfClosing(b *bytes.Buffer, e *Element) { canonical(b, e, true) }

func canonical(b *bytes.Buffer, e *Element, selfClose bool) {
	b.WriteByte('<')
	b.WriteString(e.Local)
	attrs := e.Attr
	if len(attrs) > 1 {
		attrs = append([]Attr(nil), attrs...)
		// C14N: attributes without a namespace first, then by namespace
		// URI and local name.
		sort.Slice(attrs, func(i, j int) bool {
			if attrs[i].Space != attrs[j].Space {
				return attrs[i].Space < attrs[j].Space
			}
			return attrs[i].Local < attrs[j].Local
		})
	}
	for _, a := range attrs {
		b.WriteByte(' ')
		if a.Space == NSXML {
			b.WriteString("xml:")
		}
		b.WriteString(a.Local)
		b.WriteString(`="`)
		c14nAttr(b, a.Value)
		b.WriteByte('"')
	}
	if selfClose && e.Text() == "" && !e.HasElements() {
		b.WriteString(" />")
		return
	}
	b.WriteByte('>')
	if e.HasElements() {
		for _, c := range e.Children {
			if el, ok := c.(*Element); ok {
				canonical(b, el, selfClose)
			}
		}
	} else {
		for _, c := range e.Children {
			if t, ok := c.(Text); ok {
				c14nText(b, string(t))
			}
		}
	}
	b.WriteString("</")
	b.WriteString(e.Local)
	b.WriteByte('>')
}

// CanonicalContent returns the normalised content of e: the concatenated
// Canonical forms of its child elements. This is the "normalized content"
// of a data form that XEP-0116 and XEP-0217 MAC.
func CanonicalContent(e *Element) []byte {
	var b bytes.Buffer
	for _, c := range e.Children {
		if el, ok := c.(*Element); ok {
			Canonical(&b, el)
		}
	}
	return b.Bytes()
}

func c14nText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func c14nAttr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func escapeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func escapeAttr(b *bytes.Buffer, s string, quote byte) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\'':
			if quote == '\'' {
				b.WriteString("&apos;")
			} else {
				b.WriteByte(c)
			}
		case '"':
			if quote == '"' {
				b.WriteString("&quot;")
			} else {
				b.WriteByte(c)
			}
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

// Escape appends s to b escaped for character data.
func Escape(b *bytes.Buffer, s string) { escapeText(b, s) }
