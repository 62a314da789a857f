package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// bindResource is the client side of RFC 6120 §7 resource binding that
// requests a given resourcepart (empty: let the server choose).
// mellium's BindResource takes the resource from the stream's local
// address, which the server's stream header has already replaced by the
// bare JID, so a requested resource would be lost.
func bindResource(resource string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			id := NewID()
			iq := xmltree.New(NSClient, "iq", "type", "set", "id", id)
			b := xmltree.New(nsBind, "bind")
			if resource != "" {
				b.Append(xmltree.New(nsBind, "resource").AppendText(resource))
			}
			iq.Append(b)
			w := session.TokenWriter()
			defer w.Close()
			if _, err := xmlstream.Copy(w, iq.TokenReader(NSClient)); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			r := session.TokenReader()
			defer r.Close()
			var start xml.StartElement
			for {
				tok, err := r.Token()
				if err != nil {
					return 0, nil, fmt.Errorf("client: reading the bind result: %w", err)
				}
				if s, ok := tok.(xml.StartElement); ok {
					start = s
					break
				}
			}
			resp, err := xmltree.FromTokens(r, start, nil)
			if err != nil {
				return 0, nil, err
			}
			if resp.Name.Local != "iq" || resp.AttrValue("id") != id {
				return 0, nil, errors.New("client: unexpected answer to resource binding")
			}
			if resp.AttrValue("type") == "error" {
				return 0, nil, fmt.Errorf("client: resource binding refused: %w", parseStanzaError(resp))
			}
			rb := resp.Child(nsBind, "bind")
			if rb == nil {
				return 0, nil, errors.New("client: bind result without a JID")
			}
			j, err := jid.Parse(rb.ChildText(nsBind, "jid"))
			if err != nil {
				return 0, nil, fmt.Errorf("client: bind result: %w", err)
			}
			session.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}
