package form

import (
	"encoding/xml"
	"slices"
	"strings"

	"github.com/balcony-im/balcony/xmltree"
)

// nsXML is the namespace of the reserved "xml" prefix.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// isXMLNS reports whether an attribute's namespace is the xml prefix's
// (encoding/xml resolves it to the URI; a tree built by hand may say
// "xml").
func isXMLNS(space string) bool { return space == nsXML || space == "xml" }

// AppendNormalized appends the XEP-0116 §8.2 normalised form of e to dst:
// character data between elements removed (an element with element
// children keeps none of its text), then Canonical XML (W3C C14N 1.0)
// without namespace declarations or prefixes: attributes sorted (those
// without a namespace first, then by namespace and local name) and
// double-quoted, empty elements as start-end pairs, text and attribute
// values with the C14N escapes. This is what XEP-0116 and XEP-0217 hash,
// MAC and sign, and what a peer computes from the bytes it sent, so it
// depends only on the tree: the quoting, attribute order, prefixes and
// whitespace between elements of the received XML do not change it.
//
// With selfClosing set, an element with no content is written
// "<name attrs />" instead, as Gajim 0.12 to 0.16 did.
func AppendNormalized(dst []byte, e *xmltree.Element, selfClosing bool) []byte {
	dst = append(dst, '<')
	dst = append(dst, e.Name.Local...)
	attrs := e.Attr
	if len(attrs) > 1 {
		attrs = slices.Clone(attrs)
		slices.SortFunc(attrs, func(a, b xml.Attr) int {
			if c := strings.Compare(a.Name.Space, b.Name.Space); c != 0 {
				return c
			}
			return strings.Compare(a.Name.Local, b.Name.Local)
		})
	}
	for _, a := range attrs {
		dst = append(dst, ' ')
		if isXMLNS(a.Name.Space) {
			dst = append(dst, "xml:"...)
		}
		dst = append(dst, a.Name.Local...)
		dst = append(dst, `="`...)
		dst = appendC14N(dst, a.Value, true)
		dst = append(dst, '"')
	}
	hasElements, hasText := false, false
	for _, c := range e.Children {
		switch c := c.(type) {
		case *xmltree.Element:
			hasElements = true
		case xmltree.CharData:
			hasText = hasText || c != ""
		}
	}
	if selfClosing && !hasElements && !hasText {
		return append(dst, " />"...)
	}
	dst = append(dst, '>')
	for _, c := range e.Children {
		switch c := c.(type) {
		case *xmltree.Element:
			dst = AppendNormalized(dst, c, selfClosing)
		case xmltree.CharData:
			if !hasElements {
				dst = appendC14N(dst, string(c), false)
			}
		}
	}
	dst = append(dst, "</"...)
	dst = append(dst, e.Name.Local...)
	return append(dst, '>')
}

// appendC14N appends s with the escapes of Canonical XML 1.0 for text or,
// with attr set, for an attribute value.
func appendC14N(dst []byte, s string, attr bool) []byte {
	for i := 0; i < len(s); i++ {
		var r string
		switch c := s[i]; {
		case c == '&':
			r = "&amp;"
		case c == '<':
			r = "&lt;"
		case c == '>' && !attr:
			r = "&gt;"
		case c == '"' && attr:
			r = "&quot;"
		case c == '\t' && attr:
			r = "&#x9;"
		case c == '\n' && attr:
			r = "&#xA;"
		case c == '\r':
			r = "&#xD;"
		default:
			dst = append(dst, c)
			continue
		}
		dst = append(dst, r...)
	}
	return dst
}
