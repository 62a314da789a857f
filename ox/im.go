package ox

import (
	"slices"

	"github.com/balcony-im/balcony/xmltree"
)

// NSXHTMLIM is the namespace of XHTML-IM (XEP-0071) message markup.
const NSXHTMLIM = "http://jabber.org/protocol/xhtml-im"

// Child is one direct child element of a stanza, as [EffectiveChildren]
// returns it.
type Child struct {
	*xmltree.Element

	// Protected reports that the element came from the verified <payload/> of
	// an OX content element rather than from the unencrypted stanza. Only
	// protected children may be shown as what the sender wrote.
	Protected bool
}

// EffectiveChildren applies the XEP-0374 §2.2 processing rule: the children of
// the verified <payload/> are processed as if they were direct children of the
// stanza. It returns the payload children (Protected set) followed by the
// stanza's own children (outer) that are still meaningful, in order.
//
// The payload wins: an unencrypted child with the same qualified name as a
// payload child is dropped. The <openpgp/> element itself and every
// unencrypted message text alternative (<body/> in jabber:client or
// jabber:server, XHTML-IM <html/>) are always dropped: they are the fallback
// for clients without OX, never what the sender wrote. A <body/> in the
// payload in jabber:server, or without a namespace of its own (which puts it
// in urn:xmpp:openpgp:0), is normalised to jabber:client: it is returned as
// a shallow copy in that namespace whose descendants keep theirs. Every
// other child is returned as given, not copied.
//
// Call it only with the payload of an opened message; whether that message
// was verified is a separate decision (see [Opened.Verified]).
func EffectiveChildren(payload, outer []*xmltree.Element) []Child {
	out := make([]Child, 0, len(payload)+len(outer))
	for _, e := range payload {
		if e == nil {
			continue
		}
		if e.Name.Local == "body" && (e.Name.Space == NSServer || e.Name.Space == NS) {
			body := *e
			body.Name.Space = NSClient
			// Appending to the copy must not write into the original's
			// spare capacity.
			body.Attr, body.Children = slices.Clip(body.Attr), slices.Clip(body.Children)
			e = &body
		}
		out = append(out, Child{Element: e, Protected: true})
	}
	protected := len(out)
outer:
	for _, e := range outer {
		switch {
		case e == nil:
			continue
		case e.Name.Space == NS && e.Name.Local == "openpgp":
			continue
		case e.Name.Local == "body" && (e.Name.Space == NSClient || e.Name.Space == NSServer || e.Name.Space == ""):
			continue
		case e.Name.Local == "html" && e.Name.Space == NSXHTMLIM:
			continue
		}
		for _, p := range out[:protected] {
			if p.Name == e.Name {
				continue outer
			}
		}
		out = append(out, Child{Element: e})
	}
	return out
}
