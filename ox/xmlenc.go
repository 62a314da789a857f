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
func appendElement(dst []byte, r tokens, start *token, outerNS string, force bool) ([]byte, error) {
	type open struct{ ns, local string }
	var stackBuf [8]open
	stack := stackBuf[:0]
	var err error
	if dst, err = appendStart(dst, start.name, start.attr, outerNS, force); err != nil {
		return dst, err
	}
	stack = append(stack, open{start.name.Space, start.name.Local})
	pending := true // the last start tag still lacks its closing '>'
	var t *token
	for len(stack) > 0 {
		var err error
		if t, err = r.next(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
		switch t.kind {
		case tokStart:
			if len(stack) >= maxDepth {
				return dst, errXMLDepth
			}
			if pending {
				dst = append(dst, '>')
			}
			if dst, err = appendStart(dst, t.name, t.attr, stack[len(stack)-1].ns, false); err != nil {
				return dst, err
			}
			stack = append(stack, open{t.name.Space, t.name.Local})
			pending = true
		case tokEnd:
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
		case tokText:
			if len(t.text) == 0 {
				continue
			}
			if pending {
				dst = append(dst, '>')
				pending = false
			}
			if dst, err = appendText(dst, t.text); err != nil {
				return dst, err
			}
		case tokComment, tokProcInst:
			// Comments and processing instructions carry no meaning here.
		default:
			return dst, errors.New("ox: unexpected XML directive")
		}
	}
	return dst, nil
}

// appendStart writes a start tag without its closing '>'.
func appendStart(dst []byte, name xml.Name, attrs []xml.Attr, parentNS string, force bool) ([]byte, error) {
	if !isName(name.Local) {
		return dst, fmt.Errorf("ox: invalid XML element name %q", name.Local)
	}
	dst = append(dst, '<')
	dst = append(dst, name.Local...)
	if force || name.Space != parentNS {
		dst = append(dst, ` xmlns="`...)
		var err error
		if dst, err = appendAttrValue(dst, name.Space); err != nil {
			return dst, err
		}
		dst = append(dst, '"')
	}
	prefixes := 0
	for i, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue // namespace declarations are regenerated
		}
		if !isName(a.Name.Local) {
			return dst, fmt.Errorf("ox: invalid XML attribute name %q", a.Name.Local)
		}
		for _, b := range attrs[:i] {
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

// textSafe marks the ASCII bytes that appendText and appendAttrValue copy
// unchanged.
var textSafe, attrSafe [utf8.RuneSelf]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		textSafe[c], attrSafe[c] = true, true
	}
	textSafe['\t'], textSafe['\n'] = true, true
	textSafe['&'], textSafe['<'], textSafe['>'] = false, false, false
	attrSafe['&'], attrSafe['<'], attrSafe['"'] = false, false, false
}

func appendText(dst []byte, s []byte) ([]byte, error) {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf && textSafe[s[i]] {
			i++
		}
		dst = append(dst, s[:i]...)
		if s = s[i:]; len(s) == 0 {
			break
		}
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
		i := 0
		for i < len(s) && s[i] < utf8.RuneSelf && attrSafe[s[i]] {
			i++
		}
		dst = append(dst, s[:i]...)
		if s = s[i:]; len(s) == 0 {
			break
		}
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
