package ox

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/balcony-im/balcony/xmltree"
)

// This file writes the content element, the bytes that get signed and
// encrypted. They are written here rather than by xmltree's AppendXML
// because they must stay what every Balcony release has signed: empty
// elements as empty-element tags, text escaped with &amp; &lt; &gt; and
// &#xD; only, attribute values with &amp; &lt; &quot; &#x9; &#xA; and
// &#xD;, attributes in other namespaces kept under generated prefixes, and
// every payload child declaring its namespace so that it keeps its meaning
// wherever it is put. The writer refuses what XML cannot carry (a name
// that is not an NCName, a character outside XML's Char production, a
// repeated attribute), so nothing in a payload can end the <payload/>
// element or change the rest of the content element.

const (
	xmlURL = "http://www.w3.org/XML/1998/namespace"

	// maxDepth bounds the nesting of a payload child that Marshal writes.
	maxDepth = 128
)

var errXMLDepth = errors.New("ox: XML nested too deeply")

// appendElement writes e and its descendants. parentNS is the default
// namespace in effect where e is placed; e declares its own namespace
// where it differs, and always with force. depth is e's depth below the
// first element written.
func appendElement(dst []byte, e *xmltree.Element, parentNS string, force bool, depth int) ([]byte, error) {
	if e == nil {
		return dst, errors.New("ox: nil XML element")
	}
	if depth >= maxDepth {
		return dst, errXMLDepth
	}
	dst, err := appendStart(dst, e, parentNS, force)
	if err != nil {
		return dst, err
	}
	open := true // the start tag still lacks its closing '>'
	for _, n := range e.Children {
		switch n := n.(type) {
		case *xmltree.Element:
			if open {
				dst, open = append(dst, '>'), false
			}
			if dst, err = appendElement(dst, n, e.Name.Space, false, depth+1); err != nil {
				return dst, err
			}
		case xmltree.CharData:
			if len(n) == 0 {
				continue
			}
			if open {
				dst, open = append(dst, '>'), false
			}
			if dst, err = appendText(dst, string(n)); err != nil {
				return dst, err
			}
		}
	}
	if open {
		return append(dst, "/>"...), nil
	}
	dst = append(dst, "</"...)
	dst = append(dst, e.Name.Local...)
	return append(dst, '>'), nil
}

// isDecl reports whether an attribute is a namespace declaration, which
// the writer makes itself.
func isDecl(n xml.Name) bool {
	return n.Space == "xmlns" || n.Space == "" && n.Local == "xmlns"
}

// checkStart checks what appendStart writes of e without writing it: the
// names and that no attribute is repeated. ParseContent applies it to
// every payload element, so that whatever parses can be marshalled.
func checkStart(e *xmltree.Element) error {
	if !isName(e.Name.Local) {
		return fmt.Errorf("ox: invalid XML element name %q", e.Name.Local)
	}
	for i, a := range e.Attr {
		if isDecl(a.Name) {
			continue
		}
		if !isName(a.Name.Local) {
			return fmt.Errorf("ox: invalid XML attribute name %q", a.Name.Local)
		}
		for _, b := range e.Attr[:i] {
			if b.Name == a.Name {
				return fmt.Errorf("ox: duplicate XML attribute %q", a.Name.Local)
			}
		}
	}
	return nil
}

// checkTree applies checkStart to e and its descendants.
func checkTree(e *xmltree.Element) error {
	if err := checkStart(e); err != nil {
		return err
	}
	for _, n := range e.Children {
		if c, ok := n.(*xmltree.Element); ok {
			if err := checkTree(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendStart writes a start tag without its closing '>'.
func appendStart(dst []byte, e *xmltree.Element, parentNS string, force bool) ([]byte, error) {
	if err := checkStart(e); err != nil {
		return dst, err
	}
	dst = append(dst, '<')
	dst = append(dst, e.Name.Local...)
	var err error
	if force || e.Name.Space != parentNS {
		dst = append(dst, ` xmlns="`...)
		if dst, err = appendAttrValue(dst, e.Name.Space); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
	}
	prefixes := 0
	for _, a := range e.Attr {
		if isDecl(a.Name) {
			continue
		}
		dst = append(dst, ' ')
		switch a.Name.Space {
		case "":
		case xmlURL, "xml":
			dst = append(dst, "xml:"...)
		default:
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			dst = append(dst, "xmlns:"...)
			dst = append(dst, p...)
			dst = append(dst, `="`...)
			if dst, err = appendAttrValue(dst, a.Name.Space); err != nil {
				return dst, err
			}
			dst = append(dst, `" `...)
			dst = append(dst, p...)
			dst = append(dst, ':')
		}
		dst = append(dst, a.Name.Local...)
		dst = append(dst, `="`...)
		if dst, err = appendAttrValue(dst, a.Value); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
	}
	return dst, nil
}

// textSafe and attrSafe mark the ASCII bytes that appendText and
// appendAttrValue copy unchanged.
var textSafe, attrSafe [utf8.RuneSelf]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		textSafe[c], attrSafe[c] = true, true
	}
	textSafe['\t'], textSafe['\n'] = true, true
	textSafe['&'], textSafe['<'], textSafe['>'] = false, false, false
	attrSafe['&'], attrSafe['<'], attrSafe['"'] = false, false, false
}

func appendText(dst []byte, s string) ([]byte, error) {
	return appendEscaped(dst, s, &textSafe, "ox: invalid character in XML text")
}

func appendAttrValue(dst []byte, s string) ([]byte, error) {
	return appendEscaped(dst, s, &attrSafe, "ox: invalid character in XML attribute")
}

func appendEscaped(dst []byte, s string, safe *[utf8.RuneSelf]bool, invalid string) ([]byte, error) {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf && safe[s[i]] {
			i++
		}
		dst = append(dst, s[:i]...)
		if s = s[i:]; len(s) == 0 {
			break
		}
		r, n := utf8.DecodeRuneInString(s)
		if !isXMLChar(r, n) {
			return dst, errors.New(invalid)
		}
		var esc string
		switch r {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			dst = append(dst, s[:n]...)
		}
		dst = append(dst, esc...)
		s = s[n:]
	}
	return dst, nil
}

// isXMLChar reports whether r (decoded from n bytes) is a character allowed
// in XML 1.0 documents.
func isXMLChar(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return false
	}
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// isName reports whether s is an XML NCName (a Name without colons), by
// the fifth edition of XML 1.0.
func isName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i, r := range s {
		if i == 0 {
			if !isNameStart(r) {
				return false
			}
			continue
		}
		if !isNameStart(r) && !(r == '-' || r == '.' || r >= '0' && r <= '9' || r == 0xB7 ||
			r >= 0x0300 && r <= 0x036F || r >= 0x203F && r <= 0x2040) {
			return false
		}
	}
	return true
}

func isNameStart(r rune) bool {
	return r >= 'A' && r <= 'Z' || r == '_' || r >= 'a' && r <= 'z' ||
		r >= 0xC0 && r <= 0xD6 || r >= 0xD8 && r <= 0xF6 || r >= 0xF8 && r <= 0x2FF ||
		r >= 0x370 && r <= 0x37D || r >= 0x37F && r <= 0x1FFF || r >= 0x200C && r <= 0x200D ||
		r >= 0x2070 && r <= 0x218F || r >= 0x2C00 && r <= 0x2FEF || r >= 0x3001 && r <= 0xD7FF ||
		r >= 0xF900 && r <= 0xFDCF || r >= 0xFDF0 && r <= 0xFFFD || r >= 0x10000 && r <= 0xEFFFF
}

// sizeHint is about what appendElement writes for e when nothing needs
// escaping, so that the content element is written into one buffer (and
// no copy of the plaintext is left behind by growing it).
func sizeHint(e *xmltree.Element, depth int) int {
	if e == nil || depth >= maxDepth {
		return 0
	}
	n := 2*len(e.Name.Local) + len(e.Name.Space) + 14
	for _, a := range e.Attr {
		n += len(a.Name.Space) + len(a.Name.Local) + len(a.Value) + 24
	}
	for _, c := range e.Children {
		switch c := c.(type) {
		case *xmltree.Element:
			n += sizeHint(c, depth+1)
		case xmltree.CharData:
			n += len(c)
		}
	}
	return n
}
