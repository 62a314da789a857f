package esession

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// MessageError routes an error stanza to the session it concerns: by the
// id of the stanza it answers, or else the one live session bound to the
// sender's resource (the error stanzas of XEP-0155 and XEP-0200 need not
// carry the original id).
func (e *Mechanism) MessageError(ev *client.ErrorEvent) []*client.SecurityEvent {
	e.mu.Lock()
	ref, ok := e.sent[ev.ID]
	e.mu.Unlock()
	if ok {
		// Only the peer (or its server) can fail a message sent to it.
		peer, err := jid.Parse(ref.peer)
		if err != nil || !ev.From.Bare().Equal(peer.Bare()) && ev.From.String() != peer.Domainpart() {
			return nil
		}
	}
	if !ok {
		var live []*engine.Session
		for _, s := range e.m().Sessions() {
			if s.Peer() == ev.From.String() && s.State() != engine.StateEnded {
				live = append(live, s)
			}
		}
		if len(live) != 1 {
			return nil
		}
		ref = sessionRef{live[0].PeerBare(), live[0].Thread()}
	}
	s := e.m().Session(ref.peer, ref.thread)
	if s == nil || s.State() == engine.StateEnded {
		return nil
	}
	cond := ev.Condition
	if cond == "" {
		cond = "undefined-condition"
	}
	errEl := xmltree.New(client.NSClient, "error", "type", "cancel").Append(xmltree.New(client.NSStanzas, cond))
	if ev.Text != "" {
		errEl.Append(xmltree.New(client.NSStanzas, "text").AppendText(ev.Text))
	}
	unlock := e.lockSend()
	res, _ := e.m().Receive(&engine.Inbound{From: ev.From.String(), Type: "error", Thread: ref.thread, Error: errEl})
	e.send(context.Background(), res.Out)
	unlock()
	e.afterHandled(context.Background(), res)
	var out []*client.SecurityEvent
	for _, x := range res.Events {
		if _, ok := x.(engine.Rejected); ok {
			continue // an error from another resource: not for the session
		}
		out = append(out, e.securityEvents(x)...)
	}
	return out
}

// Presence ends the sessions bound to a resource that went offline: its
// keys are gone with it, and stanzas sent to it would be redirected to
// other resources or stored.
func (e *Mechanism) Presence(ctx context.Context, ev *client.PresenceEvent) []*client.SecurityEvent {
	if ev.Available {
		return e.peerBack(ctx, ev.From)
	}
	if ev.From.Resourcepart() == "" {
		return nil
	}
	// XEP-0155 §9.4: the session is kept (the peer may come back) or
	// terminated explicitly, as configured; never closed silently.
	unlock := e.lockSend()
	res := e.m().PeerUnavailable(ev.From.String())
	err := e.send(ctx, res.Out)
	unlock()
	if err != nil {
		e.log().Info("terminating an Encrypted Session after unavailable presence failed", "peer", ev.From.String(), "err", err)
	}
	out := e.eventsOf(res.Events)
	if out != nil {
		e.afterHandled(ctx, res)
	}
	return out
}

// peerBack ends the offline sessions this client started with a contact
// that came online (XEP-0187 §3: the contact reads them now, and an
// online session takes their place).
func (e *Mechanism) peerBack(ctx context.Context, from jid.JID) []*client.SecurityEvent {
	var out []*client.SecurityEvent
	for _, s := range e.newestFirst(from.Bare()) {
		if !s.Offline() || s.Role() != engine.Responder || s.State() != engine.StateActive || e.isEnding(s) {
			continue
		}
		unlock := e.lockSend()
		res, err := s.Terminate()
		if err == nil {
			e.send(ctx, res.Out)
		}
		unlock()
		s.Close()
		p, _ := jid.Parse(s.Peer())
		out = append(out, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindTerminated,
			Message: eme.Msg(eme.MsgESOfflineEnded, s.PeerBare())})
	}
	if out != nil {
		e.notify()
	}
	return out
}

// StreamEnded ends every session: the server dropped our resource, and
// with it the binding every session depends on.
func (e *Mechanism) StreamEnded() []*client.SecurityEvent {
	var out []*client.SecurityEvent
	for _, s := range e.m().Sessions() {
		if s.State() == engine.StateEnded {
			continue
		}
		s.Close()
		p, _ := jid.Parse(s.Peer())
		out = append(out, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindTerminated,
			Message: eme.Msg(eme.MsgESConnectionLost, s.Peer())})
	}
	if out != nil {
		e.notify()
	}
	return out
}

// Shutdown wipes every session. It runs after the stream is closed, when
// nothing can be sent any more; Closing has sent the terminates before.
func (e *Mechanism) Shutdown() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.stop)
	}
	e.mu.Unlock()
	for _, s := range e.m().Sessions() {
		s.Close()
	}
	e.notify()
}

// Closing implements PreCloser: while the stream still works,
// Client.Close publishes fresh offline session options (with
// Config.OfflineLifetime), terminates every session (XEP-0217 §6) and
// takes back the archiving exceptions made for sessions that must not be
// stored.
func (e *Mechanism) Closing(ctx context.Context) error {
	if e.cfg.OfflineLifetime > 0 && e.cfg.Offline != nil && e.Key() != "" {
		if _, err := e.PublishOffline(ctx, e.clock().Add(e.cfg.OfflineLifetime)); err != nil {
			e.log().Warn("publishing offline session options failed", "err", err)
		}
	}
	err := e.TerminateAll(ctx)
	e.restoreArchive(ctx, "")
	return err
}

// TerminateAll terminates every live session, as XEP-0217 §6 requires
// before going offline, sending the encrypted terminate forms, and wipes
// every session. Client.Close calls it (through Closing).
func (e *Mechanism) TerminateAll(ctx context.Context) error {
	unlock := e.lockSend()
	err := e.send(ctx, e.m().TerminateAll())
	unlock()
	e.notify()
	return err
}
