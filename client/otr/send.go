package otr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// mayAutoStart reports whether the auto-start mode allows starting with
// the resource j on our own initiative. Callers hold o.mu.
func (o *Mechanism) mayAutoStart(ctx context.Context, j jid.JID) bool {
	switch o.auto {
	case AutoStartAlways:
		return true
	case AutoStartKnown:
		return o.isKnown(ctx, j)
	}
	return false
}

// isKnown reports whether j showed OTR support or its contact has an OTR
// fingerprint in the store. Callers hold o.mu.
func (o *Mechanism) isKnown(ctx context.Context, j jid.JID) bool {
	if o.known[j.String()] {
		return true
	}
	if o.cfg.Store == nil {
		return false
	}
	keys, err := o.cfg.Store.ListKeys(ctx, j.Bare().String(), trust.OTR)
	return err == nil && len(keys) > 0
}

// Seal implements Mechanism. The recipient must be a full JID with a
// private conversation; otherwise Seal fails with ErrFullJID or
// ErrNoSession, and never sends the message in the clear. With
// AutoStartAlways and a policy that requires encryption, a message
// without a conversation is held and a query is sent instead.
func (o *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	if out.To.Resourcepart() == "" {
		return client.Sealed{}, fmt.Errorf("%w: %s", ErrFullJID, out.To)
	}
	if out.Body == "" {
		return client.Sealed{}, errors.New("client: OTR carries only text: the message has no body")
	}
	if out.Type == "groupchat" {
		return client.Sealed{}, errors.New("client: OTR works between two parties only, not in group chats")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(out.To)
	conv := p.current
	state := engine.Plaintext
	if conv != nil {
		state = conv.State()
	}
	switch state {
	case engine.Finished:
		return client.Sealed{}, fmt.Errorf("client: %s ended the private OTR conversation; end it too or start a new one: %w", out.To, engine.ErrFinished)
	case engine.Plaintext:
		if o.policy&engine.RequireEncryption == 0 || !o.mayAutoStart(ctx, out.To) {
			return client.Sealed{}, fmt.Errorf("%w with %s: start one first", ErrNoSession, out.To)
		}
	}
	conv, err := o.currentConv(p)
	if err != nil {
		return client.Sealed{}, err
	}
	if conv.State() != engine.Encrypted && conv.Policy()&engine.RequireEncryption == 0 {
		// Started under another policy: "always" applies now.
		conv.SetPolicy(o.convPolicy())
	}
	msgs, err := conv.Send([]byte(out.Body))
	if err != nil {
		return client.Sealed{}, fmt.Errorf("client: OTR: %w", err)
	}
	var res client.Sealed
	for i, m := range msgs {
		k, _ := eme.ClassifyOTR(string(m))
		if k == eme.OTRNone || k == eme.OTRWhitespaceTag {
			// Never let text typed for a private conversation out in the
			// clear.
			return client.Sealed{}, errors.New("client: OTR engine returned plaintext for a private message; not sent")
		}
		if k == eme.OTRQuery {
			// The engine holds the message and asks for a private
			// conversation; the message leaves once it is established.
			res.Held = true
		}
		id := client.NewID()
		if i == 0 && out.ID != "" {
			id = out.ID
		}
		res.Stanzas = append(res.Stanzas, otrStanza(out.To, id, bareQuery(m)))
		p.remember(id)
	}
	o.presenceAfterSeal(p)
	return res, nil
}

// presenceAfterSeal is sendPresence for Seal, whose caller (the client's
// pipeline) holds the send lock without a wire: the presence is written
// once the lock is free, after the sealed message. Callers hold o.mu.
func (o *Mechanism) presenceAfterSeal(p *otrPeer) {
	if p.presence || o.h == nil {
		return
	}
	p.presence = true
	to, h := p.jid, o.h
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.SendPresence(ctx, to); err != nil {
			h.Logger().Warn("sending directed presence failed", "err", err)
		}
	}()
}

// bareQuery returns a query message without the explanation the engine
// adds for people without OTR: over XMPP the EME tag does that, and
// XEP-0364 §2 asks for the query string alone. Other messages are
// returned unchanged.
func bareQuery(m []byte) []byte {
	if k, _ := eme.ClassifyOTR(string(m)); k != eme.OTRQuery || !bytes.HasPrefix(m, []byte("?OTR")) {
		return m
	}
	rest := m[len("?OTR"):]
	n := len("?OTR")
	if bytes.HasPrefix(rest, []byte("?")) {
		rest, n = rest[1:], n+1
	}
	if !bytes.HasPrefix(rest, []byte("v")) {
		return m[:n]
	}
	if j := bytes.IndexByte(rest, '?'); j >= 0 {
		return m[:n+j+1]
	}
	return m
}

func otrStanza(to jid.JID, id string, body []byte) *xmltree.Element {
	st := xmltree.New(client.NSClient, "message", "to", to.String(), "type", "chat", "id", id)
	st.Append(xmltree.New(client.NSClient, "body").AppendText(string(body)))
	return st
}

func (p *otrPeer) remember(id string) {
	const keep = 64
	if len(p.sent) >= keep {
		p.sent = append(p.sent[:0], p.sent[len(p.sent)-keep/2:]...)
	}
	p.sent = append(p.sent, id)
}

// lockWire takes the pipeline's send lock, which the pipeline holds while
// it seals and writes a message. Every method that sends OTR protocol
// messages takes it before o.mu (the pipeline's order: send lock, then
// Seal, then o.mu), so that data messages, whose counters must arrive in
// order, leave in the order they were made, sealed or not.
func (o *Mechanism) lockWire() (unlock func()) {
	if o.h == nil {
		return func() {}
	}
	w := o.h.Hold()
	o.wire = w
	return func() {
		o.wire = nil
		w.Release()
	}
}

// send transmits protocol messages to the peer. Callers hold the wire lock
// and o.mu, so that data messages leave in the order they were made.
func (o *Mechanism) send(ctx context.Context, p *otrPeer, bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	var sts []*xmltree.Element
	for _, b := range bodies {
		id := client.NewID()
		p.remember(id)
		sts = append(sts, otrStanza(p.jid, id, bareQuery(b)))
	}
	if o.sendFn != nil {
		return o.sendFn(ctx, p.jid, sts)
	}
	if o.wire == nil {
		return client.ErrNotConnected
	}
	return o.wire.Send(ctx, p.jid, sts...)
}

// sendPresence sends directed presence to the peer once per conversation
// (RFC 6121 §4.6), so that its server tells it when we go offline even
// without a presence subscription, and it can end the session (XEP-0364
// §5.1). Callers hold o.mu.
func (o *Mechanism) sendPresence(ctx context.Context, p *otrPeer) {
	if p.presence || o.h == nil {
		return
	}
	p.presence = true
	if err := o.presenceTo(ctx, p.jid); err != nil {
		o.h.Logger().Warn("sending directed presence failed", "err", err)
	}
}

// Start asks peer (a full JID) for a private conversation by sending an OTR
// query; with a private conversation under way it refreshes its keys. A
// manual start is always allowed, whatever the policy (XEP-0364 §4). The
// result arrives as a SecurityEvent of kind "otr-private" or
// "otr-verified".
func (o *Mechanism) Start(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(peer)
	conv, err := o.currentConv(p)
	if err != nil {
		return err
	}
	if conv.State() == engine.Finished {
		_, _ = conv.End()
	}
	msgs, err := conv.StartAKE()
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	o.sendPresence(ctx, p)
	return o.send(ctx, p, msgs)
}

// End ends the private conversations with peer (every instance of it):
// the peer is told when a conversation was encrypted, and we return to
// plaintext.
func (o *Mechanism) End(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[peer.String()]
	if p == nil {
		return fmt.Errorf("%w with %s", ErrNoSession, peer)
	}
	var msgs [][]byte
	for _, c := range p.convs() {
		m, err := c.End()
		if err == nil {
			msgs = append(msgs, m...)
		}
	}
	delete(o.peers, peer.String())
	return o.send(ctx, p, msgs)
}

// OutgoingPlaintext implements PlaintextObserver: with the
// SendWhitespaceTag policy, a plaintext message carries the OTR whitespace
// tag (Protocol-v3 "Tagged plaintext messages") until the contact answers
// in plaintext without one.
func (o *Mechanism) OutgoingPlaintext(to jid.JID, body string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if body == "" || o.policy&engine.SendWhitespaceTag == 0 || o.noTag[to.Bare().String()] {
		return body
	}
	return body + string(engine.WhitespaceTag(o.policy))
}
