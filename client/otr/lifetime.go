package otr

import (
	"context"
	"sort"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
)

// Presence implements PresenceObserver: when a resource goes offline its
// OTR sessions end (XEP-0364 §5.1).
func (o *Mechanism) Presence(_ context.Context, ev *client.PresenceEvent) []*client.SecurityEvent {
	if ev.Available {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*client.SecurityEvent
	for _, p := range o.peersOf(ev.From) {
		if o.endPeer(p) {
			events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
				Message: eme.Msg(eme.MsgOTRPeerOffline, p.jid.String())})
		}
	}
	return events
}

// MessageError implements ErrorObserver: a bounce of one of our OTR
// messages saying the resource is gone ends its sessions.
func (o *Mechanism) MessageError(ev *client.ErrorEvent) []*client.SecurityEvent {
	switch ev.Condition {
	case "service-unavailable", "recipient-unavailable", "item-not-found", "gone", "remote-server-not-found":
	default:
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[ev.From.String()]
	if p == nil || !contains(p.sent, ev.ID) {
		return nil
	}
	if !o.endPeer(p) {
		return nil
	}
	return []*client.SecurityEvent{{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
		Message: eme.Msg(eme.MsgOTRPeerUnavailable, p.jid.String(), client.DefinedCondition(ev.Condition))}}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// StreamEnded implements StreamObserver: every OTR session ends with the
// XMPP session that carried it (XEP-0364 §5.2).
func (o *Mechanism) StreamEnded() []*client.SecurityEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*client.SecurityEvent
	ps := make([]*otrPeer, 0, len(o.peers))
	for _, p := range o.peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, k int) bool { return ps[i].jid.String() < ps[k].jid.String() })
	for _, p := range ps {
		if o.endPeer(p) {
			events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
				Message: eme.Msg(eme.MsgOTRConnectionLost, p.jid.String())})
		}
	}
	o.stopHeartbeatLocked()
	return events
}

// Shutdown implements Shutdowner. The client calls it after closing the
// stream and the TCP connection (XEP-0364 §5.2): every conversation is
// forgotten, nothing is sent. The mechanism stays usable and starts over.
func (o *Mechanism) Shutdown() {
	o.mu.Lock()
	for _, p := range o.peers {
		o.endPeer(p)
	}
	o.stopHeartbeatLocked()
	o.shut = true
	o.mu.Unlock()
}

// startHeartbeat starts the heartbeat goroutine if it is not running.
// Callers hold o.mu.
func (o *Mechanism) startHeartbeat() {
	if o.hbStop != nil || o.shut || (o.h == nil && o.sendFn == nil) {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	o.hbStop, o.hbDone = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(o.cfg.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				o.heartbeat()
			}
		}
	}()
}

// stopHeartbeatLocked stops the heartbeat goroutine. Callers hold o.mu;
// the goroutine may be waiting for it, so it is not waited for.
func (o *Mechanism) stopHeartbeatLocked() {
	if o.hbStop != nil {
		close(o.hbStop)
		o.hbStop, o.hbDone = nil, nil
	}
}

// heartbeat sends the heartbeats that are due, so that peers can rotate
// keys after a silence.
func (o *Mechanism) heartbeat() {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range o.peers {
		for _, c := range p.convs() {
			msgs, err := c.Heartbeat()
			if err == nil && len(msgs) > 0 {
				_ = o.send(ctx, p, msgs)
			}
		}
	}
}
