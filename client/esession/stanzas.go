package esession

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// This file carries presence and iq stanzas in sessions that negotiated
// them (XEP-0200 §4, the "stanzas" field; Config.Stanzas): their content
// is encrypted into a <c/> like a message's, in the same counter
// sequence, so they are sealed and written under the send lock and read
// in order with the sender's messages.

// iqAnswer is the decrypted answer to an encrypted iq we sent.
type iqAnswer struct {
	typ     string
	content []*xmltree.Element
	err     error
}

// sessionCarrying returns the newest established session with peer (a
// full JID: presence and iq stanzas carry no thread, so the session is
// the one bound to the resource) that negotiated kind.
func (e *Mechanism) sessionCarrying(peer jid.JID, kind string) (*engine.Session, error) {
	if peer.Resourcepart() == "" {
		return nil, fmt.Errorf("client: encrypted %s stanzas go to a full JID", kind)
	}
	s, err := e.current(peer)
	if err != nil {
		return nil, err
	}
	for _, k := range s.Params().Stanzas {
		if k == kind {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: the Encrypted Session with %s does not carry %s stanzas", ErrNotNegotiated, s.Peer(), kind)
}

// ErrNotNegotiated reports a presence or iq stanza for a session that did
// not negotiate that kind (Config.Stanzas on both sides).
var ErrNotNegotiated = errors.New("client: not negotiated")

// SendPresence sends available presence with show and status, encrypted,
// to the contact's resource of the session that negotiated presence.
func (e *Mechanism) SendPresence(ctx context.Context, peer jid.JID, show, status string) error {
	s, err := e.sessionCarrying(peer, engine.StanzaPresence)
	if err != nil {
		return err
	}
	var content []*xmltree.Element
	if show != "" {
		content = append(content, xmltree.New(client.NSClient, "show").AppendText(show))
	}
	if status != "" {
		content = append(content, xmltree.New(client.NSClient, "status").AppendText(status))
	}
	unlock := e.lockSend()
	defer unlock()
	o, err := s.SealStanza(engine.StanzaPresence, "", content...)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return e.send(ctx, []engine.Outbound{o})
}

// IQ sends an iq request (typ "get" or "set") with payload, encrypted, to
// the contact's resource of the session that negotiated iq, and returns
// the decrypted answer's type ("result" or "error") and children; an
// error answer comes with its *client.StanzaError. It waits until the
// answer comes or ctx ends.
func (e *Mechanism) IQ(ctx context.Context, peer jid.JID, typ string, payload ...*xmltree.Element) (string, []*xmltree.Element, error) {
	if typ != "get" && typ != "set" {
		return "", nil, fmt.Errorf("client: an iq request is get or set, not %q", typ)
	}
	s, err := e.sessionCarrying(peer, engine.StanzaIQ)
	if err != nil {
		return "", nil, err
	}
	id := client.NewID()
	ch := make(chan iqAnswer, 1)
	e.mu.Lock()
	e.iqs[id] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.iqs, id)
		e.mu.Unlock()
	}()
	unlock := e.lockSend()
	o, err := s.SealStanza(engine.StanzaIQ, typ, payload...)
	if err == nil {
		o.ID = id
		err = e.send(ctx, []engine.Outbound{o})
	}
	unlock()
	if err != nil {
		return "", nil, fmt.Errorf("client: %w", err)
	}
	select {
	case a := <-ch:
		return a.typ, a.content, a.err
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}

// OpenStanza implements client.StanzaOpener: the <c/> of a presence or
// iq goes to the session bound to the sender's resource that negotiated
// the kind. A presence is processed with its decrypted content; an iq
// request is answered by the client (Host.AnswerIQ) and the answer sent
// back encrypted in the same session; the answer to an iq we sent goes to
// the IQ waiting for it.
func (e *Mechanism) OpenStanza(ctx context.Context, in *client.Incoming) ([]*xmltree.Element, []*client.SecurityEvent) {
	inb, err := engine.ParseStanza(in.Stanza)
	if err != nil || inb.C == nil {
		return nil, []*client.SecurityEvent{{Kind: KindIgnored, Message: eme.Msg(eme.MsgESMalformed, in.From.String(), errText(err, "no <c/>"))}}
	}
	inb.From = in.From.String()
	unlock := e.lockSend()
	res, rerr := e.m().Receive(inb)
	keyEvents, _ := e.handled(ctx, &res)
	var msg *engine.Message
	for _, ev := range res.Events {
		if m, ok := ev.(engine.Message); ok && msg == nil {
			msg = &m
		}
	}
	if msg != nil && msg.Kind == engine.StanzaIQ && (msg.Type == "get" || msg.Type == "set") {
		e.answerIQ(ctx, in.From, msg)
	}
	unlock()
	e.afterHandled(ctx, res)
	events := append(keyEvents, e.eventsOf(res.Events)...)
	switch {
	case msg == nil:
		switch typ := in.Stanza.AttrValue("type"); {
		case in.Stanza.Name.Local != "iq":
		case typ == "get" || typ == "set":
			// Never leave a request unanswered: an error in the clear.
			e.h.Send(ctx, in.From, xmltree.New(client.NSClient, "iq", "type", "error", "id", inb.ID, "to", in.From.String()).Append(
				xmltree.New(client.NSClient, "error", "type", "cancel").Append(xmltree.New(client.NSStanzas, "not-acceptable"))))
		default:
			e.deliverIQ(inb.ID, iqAnswer{err: fmt.Errorf("client: the answer could not be read: %v", errText(rerr, "no session"))})
		}
		return nil, events
	case msg.Kind == engine.StanzaIQ && msg.Type == "result":
		e.deliverIQ(msg.ID, iqAnswer{typ: msg.Type, content: msg.Content})
		return nil, events
	case msg.Kind == engine.StanzaIQ && msg.Type == "error":
		e.deliverIQ(msg.ID, iqAnswer{typ: msg.Type, content: msg.Content, err: stanzaError(inb.Error)})
		return nil, events
	}
	return msg.Content, events
}

// answerIQ answers a decrypted iq request with the client's own answer,
// encrypted in the same session (an error answer goes in the clear: the
// <error/> of a stanza is never encrypted, XEP-0200 §4). The caller holds
// the send lock.
func (e *Mechanism) answerIQ(ctx context.Context, from jid.JID, msg *engine.Message) {
	req := xmltree.New(client.NSClient, "iq", "type", msg.Type, "id", msg.ID, "from", from.String())
	for _, c := range msg.Content {
		req.Append(c)
	}
	ans := e.h.AnswerIQ(req)
	typ, content := "result", ans.Elements()
	var clearErr *xmltree.Element
	if ans.AttrValue("type") == "error" {
		// XEP-0200 §4 ("Encrypted IQ Error Stanza"): the <error/> with its
		// defined condition stays in the clear beside the <c/>, which
		// carries no content here but keeps the counters in step.
		typ, content, clearErr = "error", nil, ans.Child(client.NSClient, "error")
	}
	o, err := msg.Session.SealStanza(engine.StanzaIQ, typ, content...)
	if err != nil {
		e.log().Warn("answering an encrypted iq failed", "to", from.String(), "err", err)
		return
	}
	if clearErr != nil {
		o.Payload = append(o.Payload, clearErr)
	}
	o.ID = msg.ID
	e.send(ctx, []engine.Outbound{o})
}

// stanzaError reads the clear <error/> of an encrypted iq error answer.
func stanzaError(el *xmltree.Element) *client.StanzaError {
	se := &client.StanzaError{Condition: "undefined-condition"}
	if el == nil {
		return se
	}
	se.Type = el.AttrValue("type")
	for _, c := range el.Elements() {
		switch {
		case c.Name.Space != client.NSStanzas:
			se.AppConditions = append(se.AppConditions, c.Name)
		case c.Name.Local == "text":
			se.Text = c.Text()
		default:
			se.Condition = c.Name.Local
		}
	}
	return se
}

// deliverIQ hands an answer to the IQ waiting for id, if any.
func (e *Mechanism) deliverIQ(id string, a iqAnswer) {
	e.mu.Lock()
	ch := e.iqs[id]
	e.mu.Unlock()
	if ch != nil {
		select {
		case ch <- a:
		default:
		}
	}
}

func errText(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}
