package otr

import (
	"context"
	"strings"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/trust"
)

// goneSecure updates routing after an AKE and records the peer's key.
// Callers hold o.mu.
func (o *Mechanism) goneSecure(ctx context.Context, p *otrPeer, conv *engine.Conversation, refreshed bool) []*client.SecurityEvent {
	if tag := conv.TheirInstanceTag(); tag != 0 {
		if old := p.byTag[tag]; old != nil && old != conv {
			_, _ = old.End() // forget its keys; the peer replaced it
		}
		p.byTag[tag] = conv
	}
	if refreshed && o.h != nil {
		// A new key exchange replaced the session: what was sealed in
		// the old one and not confirmed may not have been read (the
		// peer restarts when it cannot read our messages).
		o.h.SessionEnded(p.jid)
	}
	if p.pending == conv {
		p.pending = nil
	}
	p.current = conv
	key := conv.TheirKey()
	fp := key.Fingerprint()
	bare := p.jid.Bare().String()
	var events []*client.SecurityEvent
	verified := false
	if o.cfg.Store != nil {
		data, _ := key.MarshalBinary()
		seen, err := o.cfg.Store.RecordSeenKey(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()), data)
		if err == nil {
			verified = seen.Key.Trust == trust.Verified
			if seen.Change != nil {
				events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFingerprintChanged, Fingerprint: fp.String(),
					Message: eme.Msg(eme.MsgOTRNewKey, bare),
					Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR, Peer: p.jid.String()}})
			}
		} else if o.h != nil {
			o.h.Logger().Warn("recording OTR fingerprint failed", "err", err)
		}
	} else {
		verified = o.verified[bare+" "+fp.Hex()]
	}
	who := p.jid.String()
	switch {
	case verified:
		id := eme.MsgOTRStartedVerified
		if refreshed {
			id = eme.MsgOTRRefreshedVerified
		}
		events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindVerified, Fingerprint: fp.String(),
			Message: eme.Msg(id, who)})
	default:
		id := eme.MsgOTRStartedUnverified
		if refreshed {
			id = eme.MsgOTRRefreshedUnverified
		}
		events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindPrivate, Fingerprint: fp.String(),
			Message: eme.Msg(id, who),
			Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR, Peer: who}})
	}
	return events
}

// securityEvent turns an engine event into a security event, handling
// SMP results. Callers hold o.mu.
func (o *Mechanism) securityEvent(ctx context.Context, p *otrPeer, conv *engine.Conversation, e engine.Event) *client.SecurityEvent {
	who := p.jid.String()
	ev := &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR}
	answer := eme.Hint{Action: eme.ActionAnswer, Mechanism: eme.OTR, Peer: who}
	switch e.Kind {
	case engine.EventPeerEnded:
		ev.Kind = KindFinished
		ev.Message = eme.Msg(eme.MsgOTRPeerEnded, who)
		ev.Hint = eme.Hint{Action: eme.ActionEnd, Mechanism: eme.OTR, Peer: who}
	case engine.EventError:
		ev.Kind = KindError
		ev.Message = eme.Msg(eme.MsgOTRPeerError, who, eme.QuoteRemote(e.Text))
	case engine.EventSMPSecretRequested:
		ev.Kind = KindSMPRequest
		ev.Message = eme.Msg(eme.MsgOTRSMPRequest, who)
		ev.Hint = answer
	case engine.EventSMPQuestion:
		ev.Kind = KindSMPQuestion
		ev.Message = eme.Msg(eme.MsgOTRSMPQuestion, who, eme.QuoteRemote(e.Text))
		ev.Hint = answer
	case engine.EventSMPSucceeded:
		ev.Kind = KindSMPSucceeded
		fp := conv.TheirKey().Fingerprint()
		ev.Fingerprint = fp.String()
		ev.Message = eme.Msg(eme.MsgOTRSMPSucceeded, who)
		bare := p.jid.Bare().String()
		if o.cfg.Store != nil {
			if err := o.cfg.Store.SetTrust(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()), trust.Verified); err != nil {
				ev.Message = eme.Msg(eme.MsgOTRSMPRecordFailed, err.Error())
			}
		} else {
			o.verified[bare+" "+fp.Hex()] = true
		}
	case engine.EventSMPFailed:
		ev.Kind = KindSMPFailed
		ev.Message = eme.Msg(eme.MsgOTRSMPFailed, who)
	case engine.EventSMPCheated:
		ev.Kind = KindSMPFailed
		ev.Message = eme.Msg(eme.MsgOTRSMPCheated, who)
	case engine.EventSMPAborted:
		ev.Kind = KindSMPAborted
		ev.Message = eme.Msg(eme.MsgOTRSMPAborted, who)
	default:
		return nil
	}
	return ev
}

// peerKey returns the fingerprint (display form) of conv's peer key and
// its trust. Callers hold o.mu.
func (o *Mechanism) peerKey(ctx context.Context, p *otrPeer, conv *engine.Conversation) (fpr string, verified bool, trustName string) {
	key := conv.TheirKey()
	if key == nil {
		return "", false, ""
	}
	fp := key.Fingerprint()
	bare := p.jid.Bare().String()
	if o.cfg.Store == nil {
		if o.verified[bare+" "+fp.Hex()] {
			return fp.String(), true, trust.Verified.String()
		}
		return fp.String(), false, trust.Undecided.String()
	}
	t, err := o.cfg.Store.Trust(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()))
	if err != nil {
		return fp.String(), false, ""
	}
	return fp.String(), t == trust.Verified, t.String()
}

// Kinds of the OTR mechanism's security events.
const (
	// KindPrivate: an AKE completed; the peer's fingerprint is not
	// verified (Hint: verify).
	KindPrivate client.SecurityKind = "otr-private"
	// KindVerified: an AKE completed with a verified fingerprint.
	KindVerified client.SecurityKind = "otr-verified"
	// KindFingerprintChanged: the contact uses a key not seen before.
	KindFingerprintChanged client.SecurityKind = "otr-fingerprint-changed"
	// KindFinished: the conversation ended (the peer ended it, went
	// offline or bounced, or our stream ended).
	KindFinished client.SecurityKind = "otr-finished"
	// KindSMPRequest and KindSMPQuestion: the peer started a verification
	// (Hint: answer with AnswerSMP).
	KindSMPRequest  client.SecurityKind = "otr-smp-request"
	KindSMPQuestion client.SecurityKind = "otr-smp-question"
	// KindSMPSucceeded, KindSMPFailed, KindSMPAborted: the verification's
	// outcome.
	KindSMPSucceeded client.SecurityKind = "otr-smp-succeeded"
	KindSMPFailed    client.SecurityKind = "otr-smp-failed"
	KindSMPAborted   client.SecurityKind = "otr-smp-aborted"
	// KindError: the peer's OTR error message, or an invalid key exchange
	// message from it.
	KindError client.SecurityKind = "otr-error"
	// KindAvailable: the contact's client offers OTR (a whitespace tag);
	// Hint: start a session.
	KindAvailable client.SecurityKind = "otr-available"
	// KindUnsupported: the contact asked for an OTR version Balcony does
	// not speak.
	KindUnsupported client.SecurityKind = "otr-unsupported"
)
