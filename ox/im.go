package ox

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// NSXHTMLIM is the namespace of XHTML-IM (XEP-0071) message markup.
const NSXHTMLIM = "http://jabber.org/protocol/xhtml-im"

// Child is one direct child element of a stanza.
type Child struct {
	// Name is the qualified name of the element.
	Name xml.Name

	// XML is the element's encoding. It declares its own namespace, so it can
	// be inserted into any stanza or parsed on its own.
	XML []byte

	// Protected reports that the element came from the verified <payload/> of
	// an OX content element rather than from the unencrypted stanza. Only
	// protected children may be shown as what the sender wrote.
	Protected bool
}

// ReadChildren reads sibling elements from r until r ends or an end element
// closes their parent, and returns them in document order. Text between the
// elements is ignored. It works on an encoding/xml.Decoder as well as on any
// other namespace-resolving token reader (for example a mellium xmlstream
// reader positioned inside a stanza).
func ReadChildren(r xml.TokenReader) ([]Child, error) {
	return readChildren(&stdTokens{r: r})
}

func readChildren(r tokens) ([]Child, error) {
	var out []Child
	var t *token
	for {
		var err error
		t, err = r.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case tokStart:
			name := t.name
			b, err := appendElement(nil, r, t, "", true)
			if err != nil {
				return nil, err
			}
			out = append(out, Child{Name: name, XML: b})
		case tokEnd:
			return out, nil
		case tokText, tokComment, tokProcInst:
		default:
			return nil, errors.New("ox: unexpected XML directive")
		}
	}
}

// ParseChildren parses a sequence of sibling elements, such as
// [Content].Payload. Elements without a namespace declaration are put in
// defaultNS.
func ParseChildren(fragment []byte, defaultNS string) ([]Child, error) {
	children, err := parseXML(fragment, defaultNS, func(r tokens) ([]Child, error) {
		children, err := readChildren(r)
		if err != nil {
			return nil, err
		}
		// readChildren stops at a stray end element; anything after it is
		// an error.
		if _, err := r.next(); err != io.EOF {
			return nil, errors.New("unexpected content after the elements")
		}
		return children, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ox: parsing children: %w", err)
	}
	return children, nil
}

// EffectiveChildren applies the XEP-0374 §2.2 processing rule: the children of
// the verified <payload/> are processed as if they were direct children of the
// stanza. It returns the payload children (Protected set) followed by the
// stanza's own children that are still meaningful, in order.
//
// The payload wins: an unencrypted child with the same qualified name as a
// payload child is dropped. The <openpgp/> element itself and every
// unencrypted message text alternative (<body/> in jabber:client or
// jabber:server, XHTML-IM <html/>) are always dropped: they are the fallback
// for clients without OX, never what the sender wrote. A <body/> in the
// payload in jabber:server, or without a namespace of its own (which puts it
// in urn:xmpp:openpgp:0), is normalised to jabber:client.
//
// Call it only with the payload of an opened message; whether that message
// was verified is a separate decision (see [Opened.Verified]).
func EffectiveChildren(payload []byte, outer []Child) ([]Child, error) {
	inner, err := ParseChildren(payload, NSClient)
	if err != nil {
		return nil, err
	}
	out := make([]Child, 0, len(inner)+len(outer))
	for _, c := range inner {
		if c.Name.Local == "body" && (c.Name.Space == NSServer || c.Name.Space == NS) {
			if c, err = renamespace(c, NSClient); err != nil {
				return nil, err
			}
		}
		c.Protected = true
		out = append(out, c)
	}
	protected := len(out)
outer:
	for _, c := range outer {
		switch {
		case c.Name.Space == NS && c.Name.Local == "openpgp":
			continue
		case c.Name.Local == "body" && (c.Name.Space == NSClient || c.Name.Space == NSServer || c.Name.Space == ""):
			continue
		case c.Name.Local == "html" && c.Name.Space == NSXHTMLIM:
			continue
		}
		for _, p := range out[:protected] {
			if p.Name == c.Name {
				continue outer
			}
		}
		c.Protected = false
		out = append(out, c)
	}
	return out, nil
}

// renamespace re-encodes a child with its top-level element moved to ns.
// Descendants that inherited the old namespace keep it (they declare it).
func renamespace(c Child, ns string) (Child, error) {
	return parseXML(c.XML, "", func(d tokens) (Child, error) {
		var t *token
		var err error
		if t, err = d.next(); err != nil {
			return c, err
		}
		if t.kind != tokStart {
			return c, errors.New("ox: child does not start with an element")
		}
		// Descendants are written relative to the new namespace, so ones
		// that were in the old default namespace get an explicit declaration.
		name := xml.Name{Space: ns, Local: t.name.Local}
		out, err := appendStart(nil, name, t.attr, "", true)
		if err != nil {
			return c, err
		}
		out = append(out, '>')
		for {
			var err error
			if t, err = d.next(); err != nil {
				return c, err
			}
			switch t.kind {
			case tokEnd:
				out = append(out, "</"...)
				out = append(out, name.Local...)
				out = append(out, '>')
				return Child{Name: name, XML: out, Protected: c.Protected}, nil
			case tokStart:
				if out, err = appendElement(out, d, t, ns, false); err != nil {
					return c, err
				}
			case tokText:
				if out, err = appendText(out, t.text); err != nil {
					return c, err
				}
			}
		}
	})
}
