package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// SendElement writes a stanza tree to the stream as it is, in order with
// every other stanza (under the pipeline's send lock), without any
// decoration: for raw stanzas. Mechanisms send through their Host. The
// tree's root must be a message, presence or iq in jabber:client (or with
// an empty namespace).
func (c *Client) SendElement(ctx context.Context, st *xmltree.Element) error {
	c.pipeline.sendMu.Lock()
	defer c.pipeline.sendMu.Unlock()
	return c.pipeline.write(ctx, st)
}

func sendTree(ctx context.Context, sess *xmpp.Session, st *xmltree.Element) error {
	if st.Name.Space == "" {
		st.Name.Space = NSClient
	}
	if st.Name.Space != NSClient {
		return fmt.Errorf("client: refusing to send a %s element in namespace %q", st.Name.Local, st.Name.Space)
	}
	return sess.Send(ctx, st.TokenReader(NSClient))
}

// IQ sends an IQ (type get or set) and returns the response's tree. An
// error response is returned as a *StanzaError.
func (c *Client) IQ(ctx context.Context, iq *xmltree.Element) (*xmltree.Element, error) {
	sess, err := c.session()
	if err != nil {
		return nil, err
	}
	if iq.Name.Space == "" {
		iq.Name.Space = NSClient
	}
	if iq.AttrValue("id") == "" {
		iq.SetAttr("id", NewID())
	}
	rc, err := sess.SendIQ(ctx, iq.TokenReader(NSClient))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tok, err := rc.Token()
	if err != nil {
		return nil, fmt.Errorf("client: reading IQ response: %w", err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errors.New("client: malformed IQ response")
	}
	resp, err := xmltree.FromTokens(rc, start, nil)
	if err != nil {
		return nil, err
	}
	if resp.AttrValue("type") == "error" {
		return resp, parseStanzaError(resp)
	}
	return resp, nil
}

// StanzaError is an XMPP stanza error (RFC 6120 §8.3).
type StanzaError struct {
	Type      string
	Condition string
	Text      string
	// AppConditions lists application-specific condition elements, e.g.
	// "http://jabber.org/protocol/pubsub#errors precondition-not-met".
	AppConditions []xml.Name
}

func (e *StanzaError) Error() string {
	s := "stanza error: " + e.Condition
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Has reports whether the error carries the application condition local in
// namespace space.
func (e *StanzaError) Has(space, local string) bool {
	for _, n := range e.AppConditions {
		if n.Space == space && n.Local == local {
			return true
		}
	}
	return false
}

// stanzaConditions are the defined conditions of RFC 6120 §8.3.3.
var stanzaConditions = map[string]bool{
	"bad-request": true, "conflict": true, "feature-not-implemented": true, "forbidden": true, "gone": true,
	"internal-server-error": true, "item-not-found": true, "jid-malformed": true, "not-acceptable": true,
	"not-allowed": true, "not-authorized": true, "policy-violation": true, "recipient-unavailable": true,
	"redirect": true, "registration-required": true, "remote-server-not-found": true,
	"remote-server-timeout": true, "resource-constraint": true, "service-unavailable": true,
	"subscription-required": true, "undefined-condition": true, "unexpected-request": true,
}

// DefinedCondition returns name if it is a defined stanza error condition,
// and "undefined-condition" for anything else a remote entity wrote.
func DefinedCondition(name string) string {
	if stanzaConditions[name] {
		return name
	}
	return "undefined-condition"
}

// maxErrorText bounds the <text/> of a stanza error kept in events.
const maxErrorText = 1024

func parseStanzaError(st *xmltree.Element) error {
	e := st.Child("", "error")
	if e == nil {
		return &StanzaError{Condition: "undefined-condition"}
	}
	se := &StanzaError{Type: e.AttrValue("type")}
	for _, ch := range e.Elements() {
		switch {
		case ch.Name.Space == NSStanzas && ch.Name.Local == "text":
			se.Text = ch.Text()
			if len(se.Text) > maxErrorText {
				se.Text = strings.ToValidUTF8(se.Text[:maxErrorText], "") + "…"
			}
		case ch.Name.Space == NSStanzas && se.Condition == "":
			se.Condition = DefinedCondition(ch.Name.Local)
		default:
			se.AppConditions = append(se.AppConditions, ch.Name)
		}
	}
	if se.Condition == "" {
		se.Condition = "undefined-condition"
	}
	return se
}

// errorReply builds an IQ error response to req.
func errorReply(req *xmltree.Element, typ, condition string) *xmltree.Element {
	resp := xmltree.New(NSClient, "iq", "type", "error", "id", req.AttrValue("id"))
	if from := req.AttrValue("from"); from != "" {
		resp.SetAttr("to", from)
	}
	e := xmltree.New(NSClient, "error", "type", typ)
	e.Append(xmltree.New(NSStanzas, condition))
	return resp.Append(e)
}

func resultReply(req *xmltree.Element, payload ...*xmltree.Element) *xmltree.Element {
	resp := xmltree.New(NSClient, "iq", "type", "result", "id", req.AttrValue("id"))
	if from := req.AttrValue("from"); from != "" {
		resp.SetAttr("to", from)
	}
	for _, p := range payload {
		resp.Append(p)
	}
	return resp
}

// handleStanza runs on the read loop: it answers IQ requests inline (they
// need no network round trip), collects MAM results for pending queries
// and hands every other stanza to the processing goroutine.
func (c *Client) handleStanza(sess *xmpp.Session, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := xmltree.FromTokens(t, *start, nil)
	if err != nil {
		c.cfg.logger().Warn("unparsable stanza", "err", err)
		if start.Name.Local == "message" {
			// Nothing is dropped silently: the user learns that a message
			// from this sender could not be read.
			var from jid.JID
			var id string
			for _, a := range start.Attr {
				if a.Name.Local == "from" && a.Name.Space == "" {
					from, _ = jid.Parse(a.Value)
				}
				if a.Name.Local == "id" && a.Name.Space == "" {
					id = a.Value
				}
			}
			c.emit(c.pipeline.clientNotice(eme.Notice{Reason: eme.ReasonUnreadable, Detail: err.Error()}, from, id))
		}
		return nil
	}
	if st.Name.Space != NSClient {
		return nil
	}
	switch st.Name.Local {
	case "iq":
		if _, ok := c.pipeline.stanzaOpener(st); ok {
			// Protected by a mechanism: in order with the sender's
			// messages, through the lanes.
			c.inbox.push(inboxItem{st: st})
			return nil
		}
		typ := st.AttrValue("type")
		if typ != "get" && typ != "set" {
			return nil
		}
		resp := c.handleIQ(st)
		_, err := xmlstream.Copy(t, resp.TokenReader(NSClient))
		return err
	case "message":
		if c.mam.collect(c, st) {
			return nil
		}
	}
	c.inbox.push(inboxItem{st: st})
	return nil
}

// fromOrAccount returns the stanza's from address; an absent or empty from
// means the user's own account (RFC 6120 §8.1.2.1).
func (c *Client) fromOrAccount(st *xmltree.Element) (jid.JID, error) {
	f := st.AttrValue("from")
	if f == "" {
		return c.JID().Bare(), nil
	}
	return c.jids.parse(f)
}

func (c *Client) handleIQ(st *xmltree.Element) *xmltree.Element {
	payload := st.Elements()
	if len(payload) != 1 {
		return errorReply(st, "modify", "bad-request")
	}
	p := payload[0]
	typ := st.AttrValue("type")
	switch {
	case typ == "get" && p.Name.Space == NSDiscoInfo && p.Name.Local == "query":
		return c.disco.answer(c, st, p)
	case typ == "get" && p.Name.Space == NSPing && p.Name.Local == "ping":
		return resultReply(st)
	case typ == "get" && p.Name.Space == NSVersion && p.Name.Local == "query":
		q := xmltree.New(NSVersion, "query")
		q.Append(xmltree.New(NSVersion, "name").AppendText(c.cfg.ClientName))
		if c.cfg.ClientVersion != "" {
			q.Append(xmltree.New(NSVersion, "version").AppendText(c.cfg.ClientVersion))
		}
		return resultReply(st, q)
	case typ == "set" && p.Name.Space == NSRoster && p.Name.Local == "query":
		from, err := c.fromOrAccount(st)
		if err != nil || !from.Equal(c.JID().Bare()) {
			// RFC 6121 §2.1.6: ignore pushes not from our own account.
			return errorReply(st, "cancel", "service-unavailable")
		}
		c.roster.push(c, p)
		return resultReply(st)
	}
	return errorReply(st, "cancel", "service-unavailable")
}
