package esession

import (
	"errors"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
)

// SecurityEvent kinds of the Encrypted Sessions mechanism.
const (
	KindRequest          client.SecurityKind = "esession-request"           // a contact asks for a session: Accept or Decline
	KindEstablished      client.SecurityKind = "esession-established"       // negotiated; Fingerprint holds the SAS
	KindVerified         client.SecurityKind = "esession-verified"          // the session is authenticated (SAS confirmed, or a verified chain continues)
	KindContinuityBroken client.SecurityKind = "esession-continuity-broken" // retained secrets existed but none matched
	KindDeclined         client.SecurityKind = "esession-declined"          // the contact declined
	KindFailed           client.SecurityKind = "esession-failed"            // the contact or its server answered with an error
	KindTerminated       client.SecurityKind = "esession-terminated"        // the session is over, for whatever reason
	KindPeerOffline      client.SecurityKind = "esession-peer-offline"      // the peer's resource went offline; the session is kept
	KindIgnored          client.SecurityKind = "esession-ignored"           // a session stanza was refused without changing any session
	KindCopy             client.SecurityKind = "esession-copy"              // a copy of a session stanza made for another device
	KindSecretNotStored  client.SecurityKind = "esession-secret-not-stored" // the new retained secret could not be stored
)

// securityEvents turns one engine event into the user's security events.
func (e *Mechanism) securityEvents(ev engine.Event) []*client.SecurityEvent {
	ns := e.Namespace()
	mk := func(s *engine.Session, kind client.SecurityKind, msg eme.Message, notes ...eme.Message) *client.SecurityEvent {
		p, _ := jid.Parse(s.Peer())
		return &client.SecurityEvent{Peer: p, Mechanism: ns, Kind: kind, Message: msg, Notes: notes}
	}
	switch ev := ev.(type) {
	case engine.PeerWentOffline:
		if ev.Terminated {
			return nil // the Terminated event that follows tells
		}
		return []*client.SecurityEvent{mk(ev.Session, KindPeerOffline, eme.Msg(eme.MsgESPeerOffline, ev.Session.Peer()))}
	case engine.RequestReceived:
		s := ev.Session
		id := eme.MsgESRequest
		if !ev.Offer.Encrypted {
			id = eme.MsgESRequestClear
		}
		var notes []eme.Message
		if !ev.Subscribed {
			notes = append(notes, eme.Msg(eme.MsgESRequestUnsubscribed))
		}
		if ev.Delayed {
			notes = append(notes, eme.Msg(eme.MsgESRequestDelayed))
		}
		if ev.Offer.Problem != nil {
			notes = append(notes, eme.Msg(eme.MsgESRequestProblem, ev.Offer.Problem.Error()))
		}
		req := mk(s, KindRequest, eme.Msg(id, s.Peer()), notes...)
		req.Hint = eme.Hint{Action: eme.ActionAccept, Mechanism: ns, Peer: s.Peer()}
		return []*client.SecurityEvent{req}
	case engine.Established:
		s := ev.Session
		if !ev.Encrypted {
			return []*client.SecurityEvent{mk(s, KindEstablished, eme.Msg(eme.MsgESEstablishedClear, s.Peer()))}
		}
		var out []*client.SecurityEvent
		var note eme.Message
		switch {
		case ev.Verified:
			note = eme.Msg(eme.MsgESChainVerified)
		case ev.SecretMatched:
			note = eme.Msg(eme.MsgESChainUnconfirmed)
		default:
			note = eme.Msg(eme.MsgESUnauthenticated)
		}
		est := mk(s, KindEstablished, eme.Msg(eme.MsgESEstablished, s.Peer()), note, eme.Msg(eme.MsgESInOrder))
		est.Fingerprint = ev.SAS
		if !ev.Verified {
			est.Hint = eme.Hint{Action: eme.ActionVerify, Mechanism: ns, Peer: s.Peer()}
		}
		out = append(out, est)
		if ev.ContinuityBroken {
			out = append(out, mk(s, KindContinuityBroken, eme.Msg(eme.MsgESContinuityBroken, s.PeerBare())))
		}
		if ev.Verified {
			v := mk(s, KindVerified, eme.Msg(eme.MsgESVerifiedByChain, s.Peer()))
			v.Fingerprint = ev.SAS
			out = append(out, v)
		}
		if ev.SecretsErr != nil {
			out = append(out, mk(s, KindSecretNotStored, eme.Msg(eme.MsgESSecretNotStored, ev.SecretsErr.Error())))
		}
		return out
	case engine.Declined:
		var notes []eme.Message
		if ev.Reason != "" {
			notes = append(notes, eme.Msg(eme.MsgESReasonGiven, eme.QuoteRemote(ev.Reason)))
		}
		return []*client.SecurityEvent{mk(ev.Session, KindDeclined, eme.Msg(eme.MsgESDeclined, ev.Session.Peer()), notes...)}
	case engine.PeerError:
		msg, notes := peerErrorMessage(ev.Session.Peer(), ev.Err)
		return []*client.SecurityEvent{mk(ev.Session, KindFailed, msg, notes...)}
	case engine.Terminated:
		return []*client.SecurityEvent{mk(ev.Session, KindTerminated, terminatedMessage(ev))}
	case engine.Rejected:
		p, _ := jid.Parse(ev.From)
		return []*client.SecurityEvent{{Peer: p, Mechanism: ns, Kind: KindIgnored,
			Message: eme.Msg(eme.MsgESRejected, ev.From, ev.Reason)}}
	case engine.Moved:
		return []*client.SecurityEvent{mk(ev.Session, KindEstablished, eme.Msg(eme.MsgESMoved, ev.To))}
	case engine.Renegotiated:
		if !ev.Accepted {
			return []*client.SecurityEvent{mk(ev.Session, KindIgnored, eme.Msg(eme.MsgESRenegotiationRefused, ev.Session.Peer()))}
		}
	}
	return nil
}

// peerErrorMessage says why a session failed on the contact's error.
func peerErrorMessage(peer string, ne *engine.NegotiationError) (eme.Message, []eme.Message) {
	switch ne.Condition {
	case engine.CondServiceUnavailable:
		return eme.Msg(eme.MsgESFailedUnavailable, peer), nil
	case engine.CondNotAcceptable, engine.CondFeatureNotImplemented:
		var notes []eme.Message
		if len(ne.Fields) > 0 {
			quoted := make([]string, 0, len(ne.Fields))
			for _, f := range ne.Fields {
				quoted = append(quoted, eme.QuoteRemote(f))
			}
			notes = append(notes, eme.Msg(eme.MsgESFailedFields, strings.Join(quoted, ", ")))
		}
		return eme.Msg(eme.MsgESFailedRefused, peer, ne.Condition), notes
	}
	var notes []eme.Message
	if ne.Text != "" {
		notes = append(notes, eme.Msg(eme.MsgESErrorText, eme.QuoteRemote(ne.Text)))
	}
	return eme.Msg(eme.MsgESFailed, peer, client.DefinedCondition(ne.Condition)), notes
}

// terminatedMessage says why a session ended.
func terminatedMessage(ev engine.Terminated) eme.Message {
	p := ev.Session.Peer()
	switch {
	case errors.Is(ev.Err, engine.ErrAuthentication):
		return eme.Msg(eme.MsgESTerminatedAuth, p, ev.Reason)
	case ev.Err != nil:
		return eme.Msg(eme.MsgESTerminatedError, p, ev.Reason, ev.Err.Error())
	case ev.ByPeer:
		return eme.Msg(eme.MsgESTerminatedByPeer, p, ev.Reason)
	}
	return eme.Msg(eme.MsgESTerminated, p, ev.Reason)
}

// track records requests waiting for the user and how sessions were
// established.
func (e *Mechanism) track(events []engine.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range events {
		switch ev := ev.(type) {
		case engine.RequestReceived:
			e.extraLocked(ev.Session).asking = true
		case engine.Established:
			x := e.extraLocked(ev.Session)
			x.asking, x.secretMatched, x.continuityBroken = false, ev.SecretMatched, ev.ContinuityBroken
		}
	}
}

// extraLocked returns the extra state of s, creating it (and forgetting
// that of sessions the engine no longer keeps). e.mu is held.
func (e *Mechanism) extraLocked(s *engine.Session) *sessionExtra {
	x := e.extra[s]
	if x == nil {
		if len(e.extra) >= 256 {
			for k := range e.extra {
				if e.m.Session(k.PeerBare(), k.Thread()) != k {
					delete(e.extra, k)
				}
			}
		}
		x = &sessionExtra{}
		e.extra[s] = x
	}
	return x
}

func (e *Mechanism) isEnding(s *engine.Session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.extra[s]
	return x != nil && x.ending
}

// notify wakes every WaitFor.
func (e *Mechanism) notify() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// emitAll emits events directly, filling in the mechanism and peer.
func (e *Mechanism) emitAll(peer jid.JID, evs []*client.SecurityEvent) {
	for _, ev := range evs {
		if ev.Mechanism == "" {
			ev.Mechanism = e.Namespace()
		}
		if ev.Peer.Domainpart() == "" {
			ev.Peer = peer
		}
		e.h.Emit(ev)
	}
}

func (e *Mechanism) eventsOf(evs []engine.Event) []*client.SecurityEvent {
	var out []*client.SecurityEvent
	for _, ev := range evs {
		out = append(out, e.securityEvents(ev)...)
	}
	return out
}
