package esession

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
)

// This file is the control of established sessions (XEP-0155 §5-§6):
// renegotiating the logging parameter, and moving a session to another
// resource of this account with its keys (Continue, Handover, Adopt).

// Renegotiate asks the contact to renegotiate the logging parameter of
// the newest established session (XEP-0155 §6; XEP-0136 §9.1 when the
// user's preference changes), offering logging (engine.LoggingMay or
// engine.LoggingMustNot) alone. A KindRenegotiated event says what was
// agreed; a session agreed as mustnot is kept out of the archive.
func (e *Mechanism) Renegotiate(ctx context.Context, peer jid.JID, logging string) (Info, error) {
	if logging != engine.LoggingMay && logging != engine.LoggingMustNot {
		return Info{}, fmt.Errorf("client: logging must be %q or %q, not %q", engine.LoggingMay, engine.LoggingMustNot, logging)
	}
	s, err := e.current(peer)
	if err != nil {
		return Info{}, err
	}
	unlock := e.lockSend()
	o, err := s.Renegotiate(logging)
	if err == nil {
		err = e.send(ctx, []engine.Outbound{o})
	}
	unlock()
	if errors.Is(err, engine.ErrState) {
		return e.info(s), fmt.Errorf("client: a renegotiation with %s is under way: %w", s.Peer(), err)
	}
	if err != nil {
		return e.info(s), fmt.Errorf("client: renegotiating with %s: %w", s.Peer(), err)
	}
	e.notify()
	return e.info(s), nil
}

// Continue asks the contact to continue the newest established session
// with another resource of this account (XEP-0155 §5). Nothing more can
// be sent in it from here. Once the contact accepts, the session's state
// is "moved" and a KindMoved event follows: Handover exports the
// session, and the other resource's Adopt takes it over with its keys and
// counters. The state must reach it before the contact's next stanza.
func (e *Mechanism) Continue(ctx context.Context, peer jid.JID, resource string) (Info, error) {
	s, err := e.current(peer)
	if err != nil {
		return Info{}, err
	}
	if self := e.h.Self(); resource == self.Resourcepart() {
		return e.info(s), fmt.Errorf("client: %s is this resource", resource)
	}
	unlock := e.lockSend()
	o, err := s.Continue(resource)
	if err == nil {
		err = e.send(ctx, []engine.Outbound{o})
	}
	unlock()
	if err != nil {
		return e.info(s), fmt.Errorf("client: moving the Encrypted Session with %s: %w", s.Peer(), err)
	}
	e.notify()
	return e.info(s), nil
}

// Handover exports the session with peer that the contact agreed to
// continue with another resource of this account (state "moved"), and
// ends it here, wiping its keys. The state holds the session keys: carry
// it to the other resource over a channel that protects it, hand it to
// that resource's Adopt, and clear it.
func (e *Mechanism) Handover(peer jid.JID) ([]byte, Info, error) {
	for _, s := range e.newestFirst(peer) {
		e.mu.Lock()
		x := e.extra[s]
		moved := x != nil && x.moved
		e.mu.Unlock()
		if !moved || s.State() == engine.StateEnded {
			continue
		}
		state, err := s.Handover()
		if err != nil {
			return nil, e.info(s), fmt.Errorf("client: %w", err)
		}
		e.mu.Lock()
		x.moved = false
		e.mu.Unlock()
		e.notify()
		return state, e.info(s), nil
	}
	return nil, Info{}, fmt.Errorf("%w with %s waits for a handover", ErrNoSession, peer)
}

// Adopt takes over a session another resource of this account handed
// over (Handover): it is active at once, bound to the same resource of
// the contact, with the same keys and counters. Directed presence goes to
// the contact when presence sharing was agreed.
func (e *Mechanism) Adopt(ctx context.Context, state []byte) (Info, error) {
	s, err := e.m().Adopt(state)
	if err != nil {
		return Info{}, fmt.Errorf("client: %w", err)
	}
	if s.Params().SharePresence {
		e.directedPresence(ctx, s.Peer())
	}
	p, _ := jid.Parse(s.Peer())
	e.emitAll(p, []*client.SecurityEvent{{Kind: KindMoved, Fingerprint: sessionFingerprint(s),
		Message: eme.Msg(eme.MsgESAdopted, s.Peer()), Notes: []eme.Message{loggingNote(s.Params().Logging)}}})
	if s.Params().Logging == engine.LoggingMustNot {
		e.keepOutOfArchive(s)
	}
	e.notify()
	return e.info(s), nil
}
