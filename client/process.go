package client

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

func (c *Client) process(st *xmltree.Element) {
	switch st.Name.Local {
	case "presence":
		if opened, ns, ok := c.openStanza(st); ok {
			if opened != nil {
				c.processPresence(opened, ns)
			}
			return
		}
		c.processPresence(st, "")
	case "message":
		c.processMessage(st)
	case "iq":
		c.openStanza(st)
	}
}

// openStanza hands a presence or iq stanza with a child in a mechanism's
// namespace to that mechanism (StanzaOpener). It returns the presence
// rebuilt with the decrypted children (nil to drop it), and whether a
// mechanism took the stanza.
func (c *Client) openStanza(st *xmltree.Element) (*xmltree.Element, string, bool) {
	so, ok := c.pipeline.stanzaOpener(st)
	if !ok {
		return nil, "", false
	}
	from, err := c.fromOrAccount(st)
	if err != nil {
		return nil, "", true
	}
	in := &Incoming{Stanza: st, From: from, To: c.JID(), Time: c.cfg.now()}
	content, events := so.m.OpenStanza(context.Background(), in)
	for _, e := range events {
		if e.Mechanism == "" {
			e.Mechanism = so.ns
		}
		if e.Peer.Domainpart() == "" {
			e.Peer = from
		}
		c.emit(e)
	}
	if st.Name.Local != "presence" || content == nil {
		return nil, "", true
	}
	out := xmltree.New(st.Name.Space, st.Name.Local)
	out.Attr = st.Attr
	for _, e := range content {
		out.Append(e)
	}
	return out, so.ns, true
}

// inbound is one message as the pipeline sees it: unwrapped from carbons or
// archive results, with its origin.
type inbound struct {
	st     *xmltree.Element // the <message> (inner message for carbons/MAM)
	from   jid.JID
	to     jid.JID
	origin Origin
	time   time.Time
}

func (c *Client) processMessage(st *xmltree.Element) {
	log := c.cfg.logger()
	from, err := c.fromOrAccount(st)
	if err != nil {
		log.Warn("message with invalid from", "err", err)
		c.emit(c.pipeline.clientNotice(eme.Notice{Reason: eme.ReasonInvalidSender}, jid.JID{}, st.AttrValue("id")))
		return
	}
	if st.AttrValue("type") == "error" {
		se, _ := parseStanzaError(st).(*StanzaError)
		ev := &ErrorEvent{From: from, ID: st.AttrValue("id"), Thread: st.ChildText(NSClient, "thread"), Stanza: st}
		if se != nil {
			ev.Condition, ev.Text = se.Condition, se.Text
		}
		c.pipeline.messageError(ev)
		c.emit(ev)
		return
	}
	in := &inbound{st: st, from: from, time: c.cfg.now()}
	if t, err := c.jids.parse(st.AttrValue("to")); err == nil {
		in.to = t
	} else {
		in.to = c.JID()
	}

	// XEP-0280 §11: a carbon is only valid from our own bare JID.
	for _, kind := range []CarbonKind{CarbonReceived, CarbonSent} {
		local := "received"
		if kind == CarbonSent {
			local = "sent"
		}
		wrap := st.Child(NSCarbons, local)
		if wrap == nil {
			continue
		}
		if !from.Equal(c.JID().Bare()) {
			c.emit(c.pipeline.clientNotice(eme.Notice{Reason: eme.ReasonForgedCopy, Sender: from.String()}, from, st.AttrValue("id")))
			return
		}
		inner, delayed, ok := unwrapForwarded(wrap)
		if !ok {
			c.emit(c.pipeline.clientNotice(eme.Notice{Reason: eme.ReasonMalformedCopy}, from, st.AttrValue("id")))
			return
		}
		in.st = inner
		in.origin.Carbon = kind
		if !delayed.IsZero() {
			in.time = delayed
			in.origin.Delayed = true
		}
		in.from, err = c.fromOrAccount(inner)
		if err != nil {
			return
		}
		if t, err := c.jids.parse(inner.AttrValue("to")); err == nil {
			in.to = t
		}
		break
	}

	// XEP-0163 notifications come from a contact's (or our own) bare JID;
	// they carry nothing else to read. A notification that also carries a
	// body or a payload goes through the pipeline as well, so that nothing
	// in it is dropped silently.
	bare := in.from.Resourcepart() == ""
	if ev := in.st.Child(NSPubSubEvent, "event"); ev != nil && in.origin.Carbon == NotCarbon && bare {
		c.processPEP(in.from, ev)
		if !carriesContent(in.st) {
			return
		}
	}
	// XEP-0203: anyone can write a delay, naming any server as its author,
	// and a server does not remove what a sender wrote. A delay is believed
	// only on a message that our own server delivered from offline
	// storage: one that arrived in the offline window (after our initial
	// presence, before the answer to the ping that followed it; see
	// offlineWindow), and only the last delay our server signed, which it
	// appended when it stored the message. Any other stamp is a claim.
	if in.origin.Carbon == NotCarbon {
		c.judgeDelay(in)
	}
	in.origin.StanzaID = c.ownStanzaID(in.st)
	if r := in.st.Child(NSReceipts, "received"); r != nil && !carriesContent(in.st) && in.origin.Carbon == NotCarbon {
		log.Debug("receipt read", "for", r.AttrValue("id"), "from", in.from.String())
		c.emit(&ReceiptEvent{From: in.from, ID: r.AttrValue("id")})
		return
	}
	if !c.admit(in) {
		log.Debug("message dropped: a copy already seen", "id", in.st.AttrValue("id"), "from", in.from.String(), "stanza_id", in.origin.StanzaID)
		if in.origin.Carbon == NotCarbon && !in.origin.Archived && in.st.Child(NSReceipts, "request") != nil && !bareEqual(in.from, c.JID()) {
			// A copy sent again (its sender's server lost its session
			// before our receipt reached it): the receipt goes again.
			c.pipeline.sendReceipt(in)
		}
		return
	}
	c.pipeline.incoming(in)
}

// carriesContent reports whether a message has something to read: a body
// or a payload any mechanism would treat as encrypted.
func carriesContent(st *xmltree.Element) bool {
	if st.Child(NSClient, "body") != nil {
		return true
	}
	det, err := eme.DetectElement(st)
	return err != nil || det.Encrypted || det.Control
}

// unwrapForwarded returns the message inside a carbons or MAM wrapper's
// <forwarded/> and the delay stamp, if any.
func unwrapForwarded(wrap *xmltree.Element) (*xmltree.Element, time.Time, bool) {
	fwd := wrap.Child(NSForward, "forwarded")
	if fwd == nil {
		return nil, time.Time{}, false
	}
	inner := fwd.Child(NSClient, "message")
	if inner == nil {
		return nil, time.Time{}, false
	}
	var stamp time.Time
	if d := fwd.Child(NSDelay, "delay"); d != nil {
		stamp, _ = time.Parse(time.RFC3339Nano, d.AttrValue("stamp"))
	}
	return inner, stamp, true
}

// ownStanzaID returns the XEP-0359 stanza-id our own server assigned (by
// our bare JID); ids assigned by anyone else are not trusted.
func (c *Client) ownStanzaID(st *xmltree.Element) string {
	own := c.JID().Bare().String()
	for _, e := range st.ChildrenNamed(NSSID, "stanza-id") {
		if e.AttrValue("by") == own {
			return e.AttrValue("id")
		}
	}
	return ""
}

// judgeDelay sets the time of a live message from its XEP-0203 delay when
// the delay is our server's offline-storage stamp, and records any other
// stamp as a claim.
func (c *Client) judgeDelay(in *inbound) {
	delays := in.st.ChildrenNamed(NSDelay, "delay")
	if len(delays) == 0 {
		return
	}
	server := c.JID().Domainpart()
	if c.offline.Load() {
		for i := len(delays) - 1; i >= 0; i-- {
			if delays[i].AttrValue("from") != server {
				continue
			}
			if t, err := time.Parse(time.RFC3339Nano, delays[i].AttrValue("stamp")); err == nil {
				in.time = t
				in.origin.Delayed = true
				return
			}
			break
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, delays[0].AttrValue("stamp")); err == nil {
		in.origin.ClaimedTime = t
	}
}
