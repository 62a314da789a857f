package omemo

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// Open implements client.Mechanism. It decrypts the key addressed to this
// device and the payload, reports the sender device's key (new devices,
// changed keys) in Opened.Events, which the pipeline emits before the
// message, and delivers the content with the key's trust: verified only
// when the user verified it; undecided, untrusted or unlisted senders and
// a time stamp far from the arrival are warnings.
//
// OMEMO is multi-device by design: a carbon or an archived copy carries a
// key for this device and is its own delivery, so copies are decrypted
// and move the session forward like live messages (what XEP-0384 asks;
// the pipeline's rule that copies never change session state is for
// session mechanisms whose copies belong to another device). A second
// copy of a message already read (ErrDuplicate) is nothing to show when
// live or a carbon (§7 MUST), and a notice in the archive. Pre-keys
// consumed by archived key exchanges are kept until FinishCatchUp.
//
// Empty messages (key transport, heartbeats) are Silent: never shown.
// After a key exchange, and when the engine asks for a heartbeat, an
// empty message goes back to the sending device. A message from a device
// without a usable session (none, or a key exchange naming a pre-key this
// device no longer has) makes a new session and gives a notice saying so
// (§7); other decryption failures give a notice and never start a session
// on their own (§8).
func (x *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	d, g := x.d, x.g
	if in.Stanza.AttrValue("type") == "groupchat" {
		// Not ReasonNotSupported, which says Balcony lacks the mechanism:
		// the note says what is missing.
		return nil, &client.OpenError{Reason: eme.ReasonUnspecified, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOGroupChat)}}
	}
	self := d.self()
	own := d.DeviceID()
	r, err := parseEncrypted(g, in.Stanza.Child(g.Namespace(), "encrypted"), self.String(), own)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	from := in.From.Bare()
	sender := engine.Address{JID: from.String(), DeviceID: r.sid}
	if from.Equal(self) && r.sid == own {
		if r.payload == nil {
			// Our own empty message to another device of the account,
			// delivered to every resource of the bare JID.
			return &client.Opened{Silent: true}, nil
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOOwnMessage)}}
	}
	if !r.found {
		if r.payload == nil {
			// An empty message for our other devices (a carbon of it).
			return &client.Opened{Silent: true}, nil
		}
		if !in.Origin.Archived {
			d.notListed(ctx, sender, g) // refresh a list that may be out of date
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: []eme.Message{eme.Msg(eme.MsgOMEMONotForDevice, formatID(own))}}
	}
	var dec *engine.Decrypted
	err = d.op(ctx, func() (bool, error) {
		var err error
		dec, err = d.mgrs[g].Decrypt(&engine.Incoming{From: sender, Key: r.key, PreKey: r.preKey,
			Payload: r.payload, IV: r.iv, Archived: in.Origin.Archived})
		return false, err
	})
	if err != nil {
		return d.openFailed(ctx, g, in, sender, err)
	}
	opened := &client.Opened{}
	state, fpr, evs, err := d.seen(ctx, g, sender, dec.IdentityKey)
	if err != nil {
		d.log().Warn("recording an OMEMO device key failed", "device", sender.String(), "err", err)
	}
	opened.Events = evs
	if _, err := d.updateSet(ctx, sender.JID, func(s *deviceSet) bool {
		now := d.now().UnixMilli()
		if r := s.find(sender.DeviceID); r != nil && !in.Origin.Archived && now-r.LastMessage >= seenEvery.Milliseconds() {
			r.LastMessage = now
			return true
		}
		return false
	}); err != nil {
		d.log().Info("recording the last OMEMO message of a device failed", "err", err)
	}
	if dec.BundleChanged {
		d.republishBundle(g)
	}
	if dec.HeartbeatDue {
		// XEP-0384 §7: complete a new session at once (after a catch-up
		// too, moving away from a pre-key that may be used twice), and
		// answer a long one-way run with a heartbeat.
		if err := d.sendEmpty(ctx, g, sender, nil); err != nil {
			d.log().Info("sending an OMEMO empty message failed", "device", sender.String(), "err", err)
		}
	}
	if dec.Empty {
		opened.Silent = true
		return opened, nil
	}
	sec := client.Security{Mechanism: g.Namespace(), Authenticated: true, Fingerprint: fpr, Trust: state.String()}
	switch state {
	case trust.Verified:
		sec.Verified = true
	case trust.Blind:
	case trust.Untrusted:
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOMEMODeviceUntrusted, formatID(r.sid), DisplayFingerprint(fpr)))
	default:
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOMEMODeviceUndecided, formatID(r.sid), DisplayFingerprint(fpr)))
	}
	if !in.Origin.Archived && d.notListed(ctx, sender, g) {
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOMEMODeviceNotListed, formatID(r.sid), sender.JID))
	}
	if g == engine.V03 {
		if !utf8.Valid(dec.Plaintext) {
			return nil, &client.OpenError{Reason: eme.ReasonMalformed, Detail: "the decrypted OMEMO 0.3 body is not UTF-8"}
		}
		opened.Body = string(dec.Plaintext)
	} else if err := d.readEnvelope(in, dec.Plaintext, opened, &sec); err != nil {
		return nil, err
	}
	clear(dec.Plaintext)
	sec.Verified = sec.Verified && len(sec.Warnings) == 0
	opened.Security = sec
	return opened, nil
}

// readEnvelope checks an OMEMO 2 envelope's affixes and fills the content
// in. XEP-0420 §4: a <from/> or <to/> that names someone else than the
// stanza's sender or recipient means the ciphertext was taken from
// another message (surreptitious forwarding): refused.
func (d *Device) readEnvelope(in *client.Incoming, plaintext []byte, opened *client.Opened, sec *client.Security) error {
	env, err := parseEnvelope(plaintext)
	if err != nil {
		return &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	from := in.From.Bare().String()
	if env.from != "" && env.from != from {
		return &client.OpenError{Reason: eme.ReasonVerificationFailed, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOEnvelopeFrom, env.from, from)}}
	}
	if to := in.To.Bare().String(); env.to != "" && in.To.Domainpart() != "" && env.to != to {
		return &client.OpenError{Reason: eme.ReasonVerificationFailed, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOEnvelopeTo, env.to, to)}}
	}
	if !env.stamp.IsZero() {
		ref := in.Time
		if ref.IsZero() {
			ref = d.now()
		}
		if off := env.stamp.Sub(ref).Abs(); off > d.cfg.MaxClockSkew {
			sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOMEMOStampSkewed, env.stamp.UTC().Format(time.RFC3339), off.Round(time.Second).String()))
		}
	}
	body, hasBody, payload := client.SplitContent(env.content)
	if hasBody {
		opened.Body = body
	}
	opened.Payload = payload
	return nil
}

// openFailed turns a decryption failure into what the user sees.
func (d *Device) openFailed(ctx context.Context, g engine.Generation, in *client.Incoming, sender engine.Address, err error) (*client.Opened, error) {
	id := formatID(sender.DeviceID)
	switch {
	case errors.Is(err, engine.ErrDuplicate):
		if !in.Origin.Archived {
			return &client.Opened{Silent: true}, nil // XEP-0384 §7 MUST ignore
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOAlreadyRead)}}
	case errors.Is(err, engine.ErrNoSession), errors.Is(err, engine.ErrUnknownPreKey):
		reason := eme.ReasonNoSession
		if errors.Is(err, engine.ErrUnknownPreKey) {
			reason = eme.ReasonNoKey
		}
		if in.Origin.Archived || d.Off() {
			return nil, &client.OpenError{Reason: reason, Err: err}
		}
		// The sender has a session this device does not (lost, reset,
		// or its pre-key used up): build a new one from its bundle and
		// tell it with an empty message, so its next message can be read.
		b, rerr := d.rebuild(ctx, g, sender)
		if rerr != nil {
			d.log().Info("starting a new OMEMO session failed", "device", sender.String(), "err", rerr)
			return nil, &client.OpenError{Reason: reason, Err: err}
		}
		_, _, evs, serr := d.seen(ctx, g, sender, b.IdentityKey)
		if serr != nil {
			d.log().Info("recording an OMEMO device key failed", "device", sender.String(), "err", serr)
		}
		d.emit(evs)
		return nil, &client.OpenError{Reason: reason, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOSessionRebuilt, id, sender.JID)}, Err: err}
	case errors.Is(err, engine.ErrInvalidMessage):
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Notes: []eme.Message{eme.Msg(eme.MsgOMEMOSessionBroken, id, sender.JID)}, Err: err}
	}
	return nil, &client.OpenError{Reason: eme.ReasonUnspecified, Err: err}
}

// rebuild replaces the session with a device by one built from its
// bundle, announced with an empty message, and returns the bundle.
func (d *Device) rebuild(ctx context.Context, g engine.Generation, a engine.Address) (*engine.Bundle, error) {
	b, err := d.fetchBundle(ctx, a, g)
	if err != nil {
		return nil, err
	}
	if err := d.op(ctx, func() (bool, error) { return false, d.mgrs[g].DeleteSession(a) }); err != nil {
		return nil, err
	}
	return b, d.sendEmpty(ctx, g, a, b)
}
