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
	KindEstablished      client.SecurityKind = "esession-established"       // negotiated; Fingerprint holds the SAS (or the contact's key fingerprint)
	KindVerified         client.SecurityKind = "esession-verified"          // the session is authenticated (SAS confirmed, a verified chain continues, a verified key)
	KindContinuityBroken client.SecurityKind = "esession-continuity-broken" // retained secrets existed but none matched
	KindDeclined         client.SecurityKind = "esession-declined"          // the contact declined
	KindFailed           client.SecurityKind = "esession-failed"            // the contact or its server answered with an error
	KindTerminated       client.SecurityKind = "esession-terminated"        // the session is over, for whatever reason
	KindPeerOffline      client.SecurityKind = "esession-peer-offline"      // the peer's resource went offline; the session is kept
	KindIgnored          client.SecurityKind = "esession-ignored"           // a session stanza was refused without changing any session
	KindCopy             client.SecurityKind = "esession-copy"              // a copy of a session stanza made for another device
	KindSecretNotStored  client.SecurityKind = "esession-secret-not-stored" // the new retained secret could not be stored
	// Public keys (XEP-0116 §10.4, XEP-0189); Fingerprint is the key's.
	KindKeyNew       client.SecurityKind = "esession-key-new"       // a contact's key seen for the first time (published, or in a session)
	KindKeyChanged   client.SecurityKind = "esession-key-changed"   // a contact presents or publishes another key than before
	KindKeyMissing   client.SecurityKind = "esession-key-missing"   // a contact with known keys identified without one
	KindKeyOtherJID  client.SecurityKind = "esession-key-other-jid" // the key is associated with another contact too
	KindKeyUntrusted client.SecurityKind = "esession-key-untrusted" // the key is one the user rejected: the session was ended
	// Session life.
	KindRekeyed      client.SecurityKind = "esession-rekeyed"      // new keys were exchanged in the session (XEP-0200 §9)
	KindRenegotiated client.SecurityKind = "esession-renegotiated" // the logging parameter was renegotiated (XEP-0155 §6)
	KindMoved        client.SecurityKind = "esession-moved"        // the session continues with another resource (XEP-0155 §5)
	KindLogging      client.SecurityKind = "esession-logging"      // what was done so that nothing of a mustnot session is stored
	KindOffline      client.SecurityKind = "esession-offline"      // an XEP-0187 offline session was published, started or read
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
		return e.establishedEvents(ev)
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
		if ev.Handover {
			mv := mk(ev.Session, KindMoved, eme.Msg(eme.MsgESMovedHandover, ev.Session.Peer(), ev.To))
			return []*client.SecurityEvent{mv}
		}
		return []*client.SecurityEvent{mk(ev.Session, KindMoved, eme.Msg(eme.MsgESMoved, ev.To))}
	case engine.Renegotiated:
		if !ev.Accepted {
			return []*client.SecurityEvent{mk(ev.Session, KindRenegotiated, eme.Msg(eme.MsgESRenegotiationRefused, ev.Session.Peer()), loggingNote(ev.Params.Logging))}
		}
		return []*client.SecurityEvent{mk(ev.Session, KindRenegotiated, eme.Msg(eme.MsgESRenegotiated, ev.Session.Peer()), loggingNote(ev.Params.Logging))}
	case engine.Rekeyed:
		return []*client.SecurityEvent{mk(ev.Session, KindRekeyed, eme.Msg(eme.MsgESRekeyedIdle, ev.Session.Peer()))}
	}
	return nil
}

// loggingNote says what the agreed logging value means.
func loggingNote(l string) eme.Message {
	if l == engine.LoggingMustNot {
		return eme.Msg(eme.MsgESLoggingMustNot)
	}
	return eme.Msg(eme.MsgESLoggingMay)
}

// establishedEvents reports an established session: how it is
// authenticated, what was agreed, and whether it is verified.
func (e *Mechanism) establishedEvents(ev engine.Established) []*client.SecurityEvent {
	s := ev.Session
	p, _ := jid.Parse(s.Peer())
	ns := e.Namespace()
	mk := func(kind client.SecurityKind, msg eme.Message, notes ...eme.Message) *client.SecurityEvent {
		return &client.SecurityEvent{Peer: p, Mechanism: ns, Kind: kind, Message: msg, Notes: notes}
	}
	if !ev.Encrypted {
		return []*client.SecurityEvent{mk(KindEstablished, eme.Msg(eme.MsgESEstablishedClear, s.Peer()))}
	}
	params := s.Params()
	var notes []eme.Message
	fpr := ev.SAS
	if ev.PeerKey != nil {
		fp := Fingerprint(ev.PeerKey)
		if fpr == "" {
			fpr = fp
		}
		notes = append(notes, eme.Msg(eme.MsgESPeerKey, fp))
	}
	switch {
	case ev.Verified && ev.PeerKey != nil && ev.SAS == "":
		notes = append(notes, eme.Msg(eme.MsgESKeyVerified))
	case ev.Verified:
		notes = append(notes, eme.Msg(eme.MsgESChainVerified))
	case ev.SAS == "":
		notes = append(notes, eme.Msg(eme.MsgESKeyUnverified))
	case ev.SecretMatched:
		notes = append(notes, eme.Msg(eme.MsgESChainUnconfirmed))
	default:
		notes = append(notes, eme.Msg(eme.MsgESUnauthenticated))
	}
	if ev.OtherSecret {
		notes = append(notes, eme.Msg(eme.MsgESPasswordUsed))
	}
	if ev.Offline {
		notes = append(notes, eme.Msg(eme.MsgESOfflineRead))
	}
	notes = append(notes, loggingNote(params.Logging))
	if !ev.Offline {
		notes = append(notes, eme.Msg(eme.MsgESInOrder))
	}
	est := mk(KindEstablished, eme.Msg(eme.MsgESEstablished, s.Peer()), notes...)
	est.Fingerprint = fpr
	if !ev.Verified {
		est.Hint = eme.Hint{Action: eme.ActionVerify, Mechanism: ns, Peer: s.Peer()}
	}
	out := []*client.SecurityEvent{est}
	if ev.ContinuityBroken {
		out = append(out, mk(KindContinuityBroken, eme.Msg(eme.MsgESContinuityBroken, s.PeerBare())))
	}
	if ev.Verified {
		id := eme.MsgESVerifiedByChain
		if ev.PeerKey != nil && (ev.SAS == "" || !ev.SecretMatched) {
			id = eme.MsgESVerifiedByKey
		}
		v := mk(KindVerified, eme.Msg(id, s.Peer()))
		v.Fingerprint = fpr
		out = append(out, v)
	}
	if ev.SecretsErr != nil {
		out = append(out, mk(KindSecretNotStored, eme.Msg(eme.MsgESSecretNotStored, ev.SecretsErr.Error())))
	}
	return out
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
			x.password = ev.OtherSecret
			e.passwords.forget(ev.Session.PeerBare())
		case engine.Terminated:
			e.passwords.forget(ev.Session.PeerBare())
		case engine.PeerError:
			e.passwords.forget(ev.Session.PeerBare())
		case engine.Moved:
			if ev.Handover {
				e.extraLocked(ev.Session).moved = true
			}
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
				if e.m().Session(k.PeerBare(), k.Thread()) != k {
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
