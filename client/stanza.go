package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

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

// handleStanza runs on the read loop: it counts stanzas for stream
// management and answers its requests, hands IQ answers to the requests
// waiting for them, answers IQ requests inline (they need no network
// round trip), collects MAM results for pending queries and hands every
// other stanza to the processing goroutine.
func (c *Client) handleStanza(l *link, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	l.touch()
	if start.Name.Space == NSStreamManagement {
		return c.handleSM(l, t, start)
	}
	stanza := start.Name.Space == NSClient && (start.Name.Local == "message" || start.Name.Local == "presence" || start.Name.Local == "iq")
	st, err := xmltree.FromTokens(t, *start, nil)
	if err != nil && !errors.Is(err, xmltree.ErrLimit) {
		// The connection broke in the middle of the stanza (or the
		// stream is no longer XML): it was not received. Not counted, the
		// server sends it again on the resumed stream (or the archive
		// has it); no notice for what is not a message.
		return fmt.Errorf("client: reading a stanza: %w", err)
	}
	if stanza {
		// Handled once read: a stanza queued for processing is processed
		// by this process even if the stream ends meanwhile.
		c.sm.received()
	}
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
	return c.dispatch(t, st)
}

// dispatch handles one stanza read from the stream; replies are written to w, or
// through the write path when w is nil.
func (c *Client) dispatch(w xmlstream.TokenWriter, st *xmltree.Element) error {
	switch st.Name.Local {
	case "iq":
		if _, ok := c.pipeline.stanzaOpener(st); ok {
			// Protected by a mechanism: in order with the sender's
			// messages, through the lanes.
			c.inbox.push(inboxItem{st: st})
			if typ := st.AttrValue("type"); typ == "get" || typ == "set" {
				// mellium answers a request its handler left unanswered
				// with service-unavailable, written past the stream
				// management counter (the server then acknowledged one
				// stanza more than we counted, and the stream was
				// dropped). The same answer is written here, counted;
				// the mechanism's own answer follows in the session.
				return c.reply(w, errorReply(st, "cancel", "service-unavailable"))
			}
			return nil
		}
		typ := st.AttrValue("type")
		if typ == "result" || typ == "error" {
			c.iqs.answer(c, st)
			return nil
		}
		if typ != "get" && typ != "set" {
			return nil
		}
		return c.reply(w, c.handleIQ(st))
	case "message":
		if c.mam.collect(c, st) {
			return nil
		}
	}
	c.inbox.push(inboxItem{st: st})
	return nil
}

// reply writes an answer from the read loop: to w, the handler's writer
// (mellium sends its own error answer to an IQ whose handler wrote none),
// counted for stream management under the write lock; through the write
// path when w is nil.
func (c *Client) reply(w xmlstream.TokenWriter, resp *xmltree.Element) error {
	if w == nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ProbeTimeout)
		defer cancel()
		return c.writeStanza(ctx, resp, nil)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sm.record(resp, time.Now(), nil)
	_, err := xmlstream.Copy(w, resp.TokenReader(NSClient))
	return err
}

// handleSM handles a XEP-0198 element on an established stream.
func (c *Client) handleSM(l *link, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	el, err := xmltree.FromTokens(t, *start, &xmltree.Limits{MaxBytes: 4096, MaxDepth: 4, MaxNodes: 16})
	if err != nil {
		return err
	}
	switch el.Name.Local {
	case "r":
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_, err := xmlstream.Copy(t, ackElement(c.sm.handled()).TokenReader(NSClient))
		return err
	case "a":
		h, ok := parseH(el)
		if !ok {
			return nil
		}
		acked, err := c.sm.ack(h)
		if hc, ok := errors.AsType[*HandledCountError](err); ok {
			// §6: the server claims stanzas it was never sent. What it
			// acknowledges cannot be trusted: the session is not resumed,
			// and what it did not acknowledge is sent again on a new one.
			c.cfg.logger().Warn("the server acknowledged more stanzas than were sent", "h", hc.H, "sent", hc.Sent)
			c.sm.poison()
			l.fail(hc)
			return stream.UndefinedCondition.ApplicationError(smElement("handled-count-too-high",
				"h", strconv.FormatUint(uint64(hc.H), 10), "send-count", strconv.FormatUint(uint64(hc.Sent), 10)).TokenReader(NSClient))
		}
		c.acked(acked)
	default:
		c.cfg.logger().Debug("unexpected stream management element", "name", el.Name.Local)
	}
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
