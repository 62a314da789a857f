package esession

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// Seal encrypts out for the contact's current established session (or the
// session of out.Thread) and returns the stanza, addressed to the resource
// the session is bound to.
func (e *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	s, err := e.sessionFor(out.To, out.Thread)
	if err != nil {
		return client.Sealed{}, err
	}
	var content []*xmltree.Element
	if out.Body != "" {
		content = append(content, xmltree.New(client.NSClient, "body").AppendText(out.Body))
	}
	content = append(content, out.Payload...)
	o, err := s.Seal(content...)
	if err != nil {
		if errors.Is(err, engine.ErrKeyExhausted) {
			e.terminateLocked(ctx, s) // the pipeline holds its send lock
		}
		return client.Sealed{}, fmt.Errorf("client: Encrypted Session with %s: %w", s.Peer(), err)
	}
	st, err := e.stanza(o)
	if err != nil {
		return client.Sealed{}, err
	}
	sessionHints(st, s.Offline())
	id := out.ID
	if id == "" {
		id = client.NewID()
	}
	st.SetAttr("id", id)
	e.remember(id, s)
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// sessionFor finds the established session to send to: the one on thread,
// or the newest with the contact (with its resource, if to has one).
func (e *Mechanism) sessionFor(to jid.JID, thread string) (*engine.Session, error) {
	if thread != "" {
		s := e.m().Session(to.Bare().String(), thread)
		if s == nil || s.State() != engine.StateActive || !s.Encrypted() || e.isEnding(s) {
			return nil, fmt.Errorf("%w with %s on thread %s", ErrNoSession, to, thread)
		}
		if to.Resourcepart() != "" && s.Peer() != to.String() {
			return nil, fmt.Errorf("client: the Encrypted Session on thread %s is with %s, not %s", thread, s.Peer(), to)
		}
		return s, nil
	}
	var pending, ended *engine.Session
	for _, s := range e.newestFirst(to) {
		if !s.Encrypted() {
			continue
		}
		switch {
		case e.isEnding(s):
			if ended == nil {
				ended = s
			}
		case s.State() == engine.StateActive:
			return s, nil
		case s.State() == engine.StatePending:
			if pending == nil {
				pending = s
			}
		case ended == nil:
			ended = s
		}
	}
	switch {
	case pending != nil:
		return nil, fmt.Errorf("%w with %s yet: the session is still being negotiated", ErrNoSession, to)
	case ended != nil:
		reason, _ := ended.EndReason()
		if reason == "" {
			reason = "you ended it"
		}
		return nil, fmt.Errorf("%w with %s: the last one has ended (%s)", ErrNoSession, to, reason)
	}
	return nil, fmt.Errorf("%w with %s", ErrNoSession, to)
}

// newestFirst returns the sessions with the contact (and its resource, if
// the JID has one), newest first.
func (e *Mechanism) newestFirst(peer jid.JID) []*engine.Session {
	all := e.m().Sessions()
	bare := peer.Bare().String()
	full := ""
	if peer.Resourcepart() != "" {
		full = peer.String()
	}
	var out []*engine.Session
	for i := len(all) - 1; i >= 0; i-- {
		s := all[i]
		if s.PeerBare() != bare || full != "" && s.Peer() != full {
			continue
		}
		out = append(out, s)
	}
	return out
}

// stanza returns an engine stanza for sending.
func (e *Mechanism) stanza(o engine.Outbound) (*xmltree.Element, error) {
	return o.Stanza(), nil
}

// lockSend takes the pipeline's send lock: stanzas that use a session's
// counters (encrypted terminates and acknowledgements) must be produced and
// written without a sealed user message in between, or they arrive out of
// order and end the session (XEP-0200 §7).
func (e *Mechanism) lockSend() func() {
	if e.h == nil {
		return func() {}
	}
	w := e.h.Hold()
	e.wire = w
	return func() {
		e.wire = nil
		w.Release()
	}
}

// send sends engine stanzas in order, each with a new id remembered for
// routing errors. The caller holds the pipeline's send lock (lockSend)
// from the moment the engine produced them.
func (e *Mechanism) send(ctx context.Context, out []engine.Outbound) error {
	if len(out) == 0 {
		return nil
	}
	var first error
	for _, o := range out {
		st, err := e.stanza(o)
		if err == nil {
			id := o.ID
			if id == "" {
				id = client.NewID()
			}
			st.SetAttr("id", id)
			e.rememberRef(id, sessionRef{engine.Bare(o.To), o.Thread})
			s := e.m().Session(o.To, o.Thread)
			sessionHints(st, o.Thread != "" && s != nil && s.Offline())
			if st.Name.Local == "message" && st.Child(client.NSSID, "origin-id") == nil {
				st.Append(xmltree.New(client.NSSID, "origin-id", "id", id))
			}
			if e.wire == nil {
				err = client.ErrNotConnected
			} else if to, perr := jid.Parse(o.To); perr != nil {
				err = perr
			} else {
				err = e.wire.Send(ctx, to, st)
			}
		}
		if err != nil {
			e.log().Warn("sending an Encrypted Session stanza failed", "to", o.To, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func (e *Mechanism) remember(id string, s *engine.Session) {
	e.rememberRef(id, sessionRef{s.PeerBare(), s.Thread()})
}

func (e *Mechanism) rememberRef(id string, r sessionRef) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sent[id]; !ok {
		e.sentIDs = append(e.sentIDs, id)
	}
	e.sent[id] = r
	if len(e.sentIDs) > maxSentIDs {
		delete(e.sent, e.sentIDs[0])
		e.sentIDs = e.sentIDs[1:]
	}
}
