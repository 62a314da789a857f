package xmltree

// The implementation Parse, FromTokens and Marshal had before the
// byte-level parser and writer, kept as the reference that the
// differential tests and fuzz targets compare against. It is
// encoding/xml's Decoder and Encoder with the checks FromTokens adds.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"unicode"
)

// refParse parses exactly one element from b. Leading and trailing whitespace
// is allowed; anything else is an error.
func refParse(b []byte, lim *Limits) (*Element, error) {
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
			el, err := refFromTokens(d, t, lim)
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

// refFromTokens reads the content of start (already consumed) from r up to and
// including its end element and returns the tree. Comments and processing
// instructions are dropped; directives are rejected.
func refFromTokens(r xml.TokenReader, start xml.StartElement, lim *Limits) (*Element, error) {
	l := DefaultLimits
	if lim != nil {
		l = *lim
	}
	budget := l.MaxBytes
	nodes := 0
	if !refValidName(start) {
		return nil, errors.New("xmltree: invalid element or attribute name")
	}
	root := refNewFromStart(start)
	budget -= refSizeOf(start)
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
			if !refValidName(t) {
				return nil, errors.New("xmltree: invalid element or attribute name")
			}
			el := refNewFromStart(t)
			budget -= refSizeOf(t)
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

// refValidName reports whether the local names of an element and its
// attributes are XML NCNames (encoding/xml accepts some that are not, such
// as a local part starting with a digit after a prefix).
func refValidName(s xml.StartElement) bool {
	if !refNCName(s.Name.Local) {
		return false
	}
	for _, a := range s.Attr {
		if !refNCName(a.Name.Local) {
			return false
		}
	}
	return true
}

func refNCName(s string) bool {
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

func refSizeOf(s xml.StartElement) int {
	n := len(s.Name.Local) + len(s.Name.Space)
	for _, a := range s.Attr {
		n += len(a.Name.Local) + len(a.Name.Space) + len(a.Value)
	}
	return n
}

func refNewFromStart(s xml.StartElement) *Element {
	e := &Element{Name: s.Name}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		e.Attr = append(e.Attr, a)
	}
	return e
}

func refAppendTokens(e *Element, toks *[]xml.Token, inherited string) {
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
			refAppendTokens(c, toks, e.Name.Space)
		case CharData:
			*toks = append(*toks, xml.CharData(c))
		}
	}
	*toks = append(*toks, xml.EndElement{Name: xml.Name{Local: e.Name.Local}})
}

// refMarshal returns the element as bytes with its namespace declared on the
// root (unless it is inherited).
func refMarshal(e *Element, inherited string) []byte {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	var toks []xml.Token
	refAppendTokens(e, &toks, inherited)
	for _, t := range toks {
		if err := enc.EncodeToken(t); err != nil {
			panic("xmltree: encoding a valid tree failed: " + err.Error())
		}
	}
	if err := enc.Flush(); err != nil {
		panic("xmltree: " + err.Error())
	}
	return buf.Bytes()
}
