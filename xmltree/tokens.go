package xmltree

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// FromTokens reads the content of start (already consumed) from r up to and
// including its end element and returns the tree. Comments and processing
// instructions are dropped; directives are rejected. The names of start
// and of every element and attribute must be NCNames; the limits count
// as in Parse. FromTokens trusts r for well-formedness (matching end
// elements, characters, namespace resolution): an xml.Decoder in strict
// mode provides it.
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
	var stackBuf [16]*Element
	stack := append(stackBuf[:0], root)
	// text holds the character data that follows the top element's last
	// child, merged into one node when the next child or the end comes.
	var text textBuilder
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
			if c, ok := text.take(); ok {
				top.Children = append(top.Children, c)
			}
			top.Children = append(top.Children, el)
			stack = append(stack, el)
		case xml.EndElement:
			if c, ok := text.take(); ok {
				top.Children = append(top.Children, c)
			}
			stack[len(stack)-1] = nil
			stack = stack[:len(stack)-1]
		case xml.CharData:
			budget -= len(t)
			nodes++
			text.addBytes(t)
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

func sizeOf(s xml.StartElement) int {
	n := len(s.Name.Local) + len(s.Name.Space)
	for _, a := range s.Attr {
		n += len(a.Name.Local) + len(a.Name.Space) + len(a.Value)
	}
	return n
}

// isDecl reports whether a resolved attribute name is a namespace
// declaration, which the tree does not keep.
func isDecl(n xml.Name) bool {
	return n.Space == "xmlns" || n.Space == "" && n.Local == "xmlns"
}

func newFromStart(s xml.StartElement) *Element {
	e := &Element{Name: s.Name}
	n := 0
	for _, a := range s.Attr {
		if !isDecl(a.Name) {
			n++
		}
	}
	if n > 0 {
		e.Attr = make([]xml.Attr, 0, n)
		for _, a := range s.Attr {
			if !isDecl(a.Name) {
				e.Attr = append(e.Attr, a)
			}
		}
	}
	return e
}

// textBuilder merges adjacent character data, copying once when there is
// only one piece.
type textBuilder struct {
	state int // 0 none, 1 str, 2 buf
	str   string
	buf   []byte
}

func (t *textBuilder) addBytes(b []byte) {
	switch t.state {
	case 0:
		t.str, t.state = string(b), 1
	case 1:
		t.buf = append(append(t.buf[:0], t.str...), b...)
		t.state = 2
	default:
		t.buf = append(t.buf, b...)
	}
}

// take returns the merged text and whether there was any.
func (t *textBuilder) take() (CharData, bool) {
	switch t.state {
	case 0:
		return "", false
	case 1:
		t.state = 0
		s := t.str
		t.str = ""
		return CharData(s), true
	}
	t.state = 0
	return CharData(t.buf), true
}
