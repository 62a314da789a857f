package client

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// Send sends a message, protected by the mechanism with EME namespace
// mechanism, or in the clear when mechanism is "". The contact's policy is
// checked first: a downgrade is refused with an error wrapping
// eme.ErrDowngrade and nothing is sent.
//
// Send does not change *out: the defaults (type "chat", a new id) are
// applied to a copy.
func (c *Client) Send(ctx context.Context, out *Outgoing, mechanism string) (Sent, error) {
	return c.pipeline.send(ctx, out, mechanism)
}

func (p *Pipeline) send(ctx context.Context, msg *Outgoing, mechanism string) (Sent, error) {
	if msg.To.Domainpart() == "" {
		return Sent{}, errors.New("client: message without recipient")
	}
	if err := p.Policy(msg.To).CheckOutgoing(mechanism); err != nil {
		return Sent{}, err
	}
	o := *msg
	out := &o
	if out.Type == "" {
		out.Type = "chat"
	}
	if out.ID == "" {
		out.ID = NewID()
	}
	if mechanism != "" {
		if _, ok, enabled := p.mechanism(mechanism); !ok {
			return Sent{}, fmt.Errorf("client: mechanism %s is not available", eme.DisplayName(mechanism, ""))
		} else if !enabled {
			return Sent{}, &NotEnabledError{Mechanism: mechanism,
				Hint: eme.Hint{Action: eme.ActionEnable, Mechanism: mechanism, Peer: out.To.String()}}
		}
	}
	for attempt := 0; ; attempt++ {
		if sent, queued, err := p.c.queue(ctx, out, mechanism); queued {
			return sent, err
		}
		sent, err := p.sendNow(ctx, out, mechanism, 0)
		if !errors.Is(err, ErrNotConnected) || attempt == 2 || !p.c.canQueue(out, mechanism) {
			return sent, err
		}
		// The stream went down between the check and the write (nothing
		// was written): the message waits in the outbox like one sent
		// offline, unless the stream is already back.
	}
}

// sendNow seals and writes a message (out has its defaults), following
// its fate; outbox is its key in the outbox, 0 if it is not there.
func (p *Pipeline) sendNow(ctx context.Context, out *Outgoing, mechanism string, outbox int64) (Sent, error) {
	if mechanism == "" {
		st := xmltree.New(NSClient, "message", "to", out.To.String(), "type", out.Type, "id", out.ID)
		if out.Body != "" {
			body := out.Body
			obs, _ := mechanismsWith[PlaintextObserver](p, true)
			for _, po := range obs {
				body = po.OutgoingPlaintext(out.To, body)
			}
			st.Append(xmltree.New(NSClient, "body").AppendText(body))
		}
		if out.Thread != "" {
			st.Append(xmltree.New(NSClient, "thread").AppendText(out.Thread))
		}
		for _, e := range out.Payload {
			st.Append(e)
		}
		p.decorate(st, out, "", Needs{Hints: nil})
		p.sendMu.Lock()
		defer p.sendMu.Unlock()
		t := p.c.fates.follow(out.ID, out.To, outbox, []string{out.ID})
		p.c.fates.bindTo(t, "", false, out.Receipt)
		p.c.fates.replayable(t)
		return Sent{ID: out.ID, IDs: []string{out.ID}}, p.c.writeUserStanza(ctx, st, t)
	}
	m, ok, enabled := p.mechanism(mechanism)
	if !ok {
		return Sent{}, fmt.Errorf("client: mechanism %s is not available", eme.DisplayName(mechanism, ""))
	}
	if !enabled {
		return Sent{}, &NotEnabledError{Mechanism: mechanism,
			Hint: eme.Hint{Action: eme.ActionEnable, Mechanism: mechanism, Peer: out.To.String()}}
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	sealed, err := m.Seal(ctx, out)
	if err != nil {
		return Sent{}, err
	}
	sent := Sent{ID: out.ID, Held: sealed.Held}
	for i, st := range sealed.Stanzas {
		if i > 0 && st.AttrValue("id") == out.ID {
			st.SetAttr("id", NewID())
		}
		p.decorate(st, out, mechanism, m.Needs())
		sent.IDs = append(sent.IDs, st.AttrValue("id"))
	}
	var t *tracked
	if !sealed.Held && len(sealed.Stanzas) > 0 {
		// A held message leaves later under ids of its own: only what is
		// sent now is followed.
		t = p.c.fates.follow(out.ID, out.To, outbox, sent.IDs)
		p.c.fates.bindTo(t, mechanism, !m.Needs().Deferrable, out.Receipt)
		if m.Needs().Replayable && len(sealed.Stanzas) == 1 {
			p.c.fates.replayable(t)
		}
	}
	for i, st := range sealed.Stanzas {
		var msg *tracked
		if i == len(sealed.Stanzas)-1 {
			msg = t
		}
		if err := p.c.writeUserStanza(ctx, st, msg); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// Decorate adds to st what the pipeline adds to every <message/> of the
// registered mechanism (EME tag and fallback body on messages with text,
// hints, <private/>, origin-id, a type and an id), or of plaintext when
// mechanism is "". out is the message st was sealed from, if any: its
// addressing fills what st lacks, and its Body marks st as carrying text
// although the text is inside the ciphertext. Send does this itself;
// Decorate is for stanzas built outside it (tests, tools).
func (p *Pipeline) Decorate(st *xmltree.Element, out *Outgoing, mechanism string) error {
	var needs Needs
	if mechanism != "" {
		m, ok, _ := p.mechanism(mechanism)
		if !ok {
			return fmt.Errorf("client: mechanism %s is not available", mechanism)
		}
		needs = m.Needs()
	}
	p.decorate(st, out, mechanism, needs)
	return nil
}

// decorate adds what every message of a mechanism carries.
func (p *Pipeline) decorate(st *xmltree.Element, out *Outgoing, mechanism string, needs Needs) {
	if out != nil {
		if st.AttrValue("to") == "" {
			st.SetAttr("to", out.To.String())
		}
		if st.AttrValue("type") == "" {
			st.SetAttr("type", out.Type)
		}
		if st.AttrValue("id") == "" {
			st.SetAttr("id", out.ID)
		}
		if out.Receipt && st.Child(NSReceipts, "request") == nil {
			st.Append(xmltree.New(NSReceipts, "request"))
		}
	} else if st.AttrValue("id") == "" {
		st.SetAttr("id", NewID())
	}
	if st.AttrValue("type") == "" {
		st.SetAttr("type", "chat")
	}
	// XEP-0380 tags and fallback bodies go only on messages that carry
	// something to read: a body-less message (a chat state, a receipt) with
	// a tag would show every other client an "unreadable message" notice
	// for nothing.
	carriesText := st.Child(NSClient, "body") != nil || (out != nil && out.Body != "")
	if mechanism != "" && carriesText {
		if st.Child(eme.NS, "encryption") == nil {
			tag := eme.NewTag(mechanism)
			_, known := eme.Lookup(mechanism)
			if !known && needs.Name != "" {
				tag.Name = needs.Name
			}
			e := xmltree.New(eme.NS, "encryption", "namespace", tag.Namespace)
			if tag.Name != "" {
				e.SetAttr("name", tag.Name)
			}
			st.Append(e)
		}
		if needs.FallbackBody && st.Child(NSClient, "body") == nil {
			body := eme.FallbackBody(mechanism)
			if _, known := eme.Lookup(mechanism); !known && needs.Name != "" {
				body = "This message is encrypted with " + needs.Name + " (" + mechanism + ")."
			}
			st.Append(xmltree.New(NSClient, "body").AppendText(body))
		}
	}
	for _, h := range needs.Hints {
		if st.Child(NSHints, h) == nil {
			st.Append(xmltree.New(NSHints, h))
		}
	}
	if needs.Private && st.Child(NSCarbons, "private") == nil {
		st.Append(xmltree.New(NSCarbons, "private"))
	}
	if st.Child(NSSID, "origin-id") == nil {
		st.Append(xmltree.New(NSSID, "origin-id", "id", st.AttrValue("id")))
	}
}

// writeProtocol sends protocol messages of a mechanism (replies, session
// management) to peer, each <message/> decorated like sealed messages. The
// caller holds sendMu.
func (p *Pipeline) writeProtocol(ctx context.Context, peer jid.JID, mechanism string, stanzas []*xmltree.Element) error {
	m, ok, _ := p.mechanism(mechanism)
	if !ok {
		return fmt.Errorf("client: mechanism %s is not available", mechanism)
	}
	for _, st := range stanzas {
		if st.AttrValue("to") == "" {
			st.SetAttr("to", peer.String())
		}
		if st.Name.Local == "message" {
			p.decorate(st, nil, mechanism, m.Needs())
		}
		if err := p.write(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// sessionBound reports whether st belongs to a session of a mechanism
// that does not survive the stream (not Needs.Deferrable): its EME tag
// names such a mechanism, or, untagged, it carries the XEP-0280
// <private/> directive that only such mechanisms add (Needs.Private; their
// protocol messages have no text to tag). Such a stanza is not sent again
// on a stream that replaced a lost one: the session that sealed it is
// gone on both sides.
func (p *Pipeline) sessionBound(st *xmltree.Element) bool {
	if st.Name.Local != "message" {
		return false
	}
	if tag := st.Child(eme.NS, "encryption"); tag != nil {
		m, ok, _ := p.mechanism(tag.AttrValue("namespace"))
		return ok && !m.Needs().Deferrable
	}
	return st.Child(NSCarbons, "private") != nil
}

// write writes a stanza to the stream. The caller holds sendMu.
func (p *Pipeline) write(ctx context.Context, st *xmltree.Element) error {
	return p.c.writeStanza(ctx, st, nil)
}

// ErrNotEnabled is matched (errors.Is) by a NotEnabledError.
var ErrNotEnabled = errors.New("client: mechanism not enabled")

// NotEnabledError reports a Send with a mechanism that is registered but
// not enabled (OpenPGP for XMPP without a key, for example). Hint says
// what would enable it, for the application to turn into its own command.
type NotEnabledError struct {
	Mechanism string // EME namespace
	Hint      eme.Hint
}

func (e *NotEnabledError) Error() string {
	return fmt.Sprintf("client: %s is not enabled", eme.DisplayName(e.Mechanism, ""))
}

// Is makes errors.Is(err, ErrNotEnabled) true.
func (e *NotEnabledError) Is(target error) bool { return target == ErrNotEnabled }
