package ox

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// This file holds a small XML writer that turns a stream of namespace-resolved
// tokens (as produced by encoding/xml.Decoder.Token) back into bytes. Each
// element it writes is self-contained: it declares its own namespace, so it
// keeps its meaning wherever it is embedded. That is what lets the <payload/>
// children of a content element be handed to the client as stanza children.

const (
	xmlURL = "http://www.w3.org/XML/1998/namespace"

	// maxDepth bounds the nesting of elements in anything parsed here.
	maxDepth = 128
)

var errXMLDepth = errors.New("ox: XML nested too deeply")

// appendElement writes the element that start opens, reading its content from
// r up to and including the matching end element. outerNS is the default
// namespace in effect where the output is placed; the element declares its own
// namespace unless it is the same and force is false.
func appendElement(dst []byte, r xml.TokenReader, start xml.StartElement, outerNS string, force bool) ([]byte, error) {
	type open struct{ ns, local string }
	stack := make([]open, 0, 8)
	var err error
	if dst, err = appendStart(dst, start, outerNS, force); err != nil {
		return dst, err
	}
	stack = append(stack, open{start.Name.Space, start.Name.Local})
	pending := true // the last start tag still lacks its closing '>'
	for len(stack) > 0 {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return dst, errXMLDepth
			}
			if pending {
				dst = append(dst, '>')
			}
			if dst, err = appendStart(dst, t, stack[len(stack)-1].ns, false); err != nil {
				return dst, err
			}
			stack = append(stack, open{t.Name.Space, t.Name.Local})
			pending = true
		case xml.EndElement:
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if pending {
				dst = append(dst, "/>"...)
				pending = false
				continue
			}
			dst = append(dst, "</"...)
			dst = append(dst, top.local...)
			dst = append(dst, '>')
		case xml.CharData:
			if len(t) == 0 {
				continue
			}
			if pending {
				dst = append(dst, '>')
				pending = false
			}
			if dst, err = appendText(dst, t); err != nil {
				return dst, err
			}
		case xml.Comment, xml.ProcInst:
			// Comments and processing instructions carry no meaning here.
		default:
			return dst, fmt.Errorf("ox: unexpected XML token %T", tok)
		}
	}
	return dst, nil
}

// appendStart writes a start tag without its closing '>'.
func appendStart(dst []byte, start xml.StartElement, parentNS string, force bool) ([]byte, error) {
	if !isName(start.Name.Local) {
		return dst, fmt.Errorf("ox: invalid XML element name %q", start.Name.Local)
	}
	dst = append(dst, '<')
	dst = append(dst, start.Name.Local...)
	if force || start.Name.Space != parentNS {
		dst = append(dst, ` xmlns="`...)
		var err error
		if dst, err = appendAttrValue(dst, start.Name.Space); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
	}
	prefixes := 0
	for i, a := range start.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue // namespace declarations are regenerated
		}
		if !isName(a.Name.Local) {
			return dst, fmt.Errorf("ox: invalid XML attribute name %q", a.Name.Local)
		}
		for _, b := range start.Attr[:i] {
			if b.Name == a.Name {
				return dst, fmt.Errorf("ox: duplicate XML attribute %q", a.Name.Local)
			}
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
			var err error
			if dst, err = appendAttrValue(dst, a.Name.Space); err != nil {
				return dst, err
			}
			dst = append(dst, `" `...)
			dst = append(dst, p...)
			dst = append(dst, ':')
		}
		dst = append(dst, a.Name.Local...)
		dst = append(dst, `="`...)
		var err error
		if dst, err = appendAttrValue(dst, a.Value); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
	}
	return dst, nil
}

func appendText(dst []byte, s []byte) ([]byte, error) {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if !isXMLChar(r, n) {
			return dst, errors.New("ox: invalid character in XML text")
		}
		switch r {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		default:
			dst = append(dst, s[:n]...)
		}
		s = s[n:]
	}
	return dst, nil
}

func appendAttrValue(dst []byte, s string) ([]byte, error) {
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if !isXMLChar(r, n) {
			return dst, errors.New("ox: invalid character in XML attribute")
		}
		switch r {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\t':
			dst = append(dst, "&#x9;"...)
		case '\n':
			dst = append(dst, "&#xA;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		default:
			dst = append(dst, s[:n]...)
		}
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

// isName reports whether s is an XML NCName (a Name without colons).
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

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// newDecoder returns a strict decoder for untrusted input.
func newDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.Strict = true
	return d
}
