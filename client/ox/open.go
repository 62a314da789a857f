package ox

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/trust"
	"mellium.im/xmpp/jid"
)

// Open implements Mechanism. It decrypts with the account's keys and
// verifies the signature with the keys the sender announces (fetched over
// PEP on demand, and fetched again once when the signer is unknown). The
// recipient check uses in.To, the outer 'to' of the message (for sent
// carbons and archived own messages, the 'to' of the forwarded message).
//
// A message that is not addressed to in.To, or is not a <signcrypt/> as the
// IM profile requires, is refused with eme.ReasonVerificationFailed; one
// not encrypted to this account's keys gives eme.ReasonNoKey; one that
// cannot be decrypted gives eme.ReasonVerificationFailed; one that does not
// parse gives eme.ReasonMalformed. Otherwise the content is delivered, and
// it counts as verified only if every check passed and the signing key is
// one's own or verified by the user (or blindly trusted, with
// Config.BlindTrust); any failed check is a warning.
func (x *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	return x.open(ctx, in, liveKeys{x})
}

func (x *Mechanism) open(ctx context.Context, in *client.Incoming, src keySource) (*client.Opened, error) {
	if in.Stanza.AttrValue("type") == "groupchat" {
		// The sender of a group chat message is a room occupant whose real
		// JID, and so whose keys, Balcony does not track yet.
		return nil, &client.OpenError{Reason: eme.ReasonNotSupported, Notes: []eme.Message{eme.Msg(eme.MsgOXGroupChat)}}
	}
	el := in.Stanza.Child(engine.NS, "openpgp")
	if el == nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Detail: "no <openpgp/> element"}
	}
	data, err := engine.ParseElement(el)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	_, _, opener := x.snapshot()
	if opener == nil {
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Err: ErrNoOwnKey}
	}
	from := in.From.Bare()
	sk, err := src.keys(ctx, from)
	if err != nil {
		return nil, err
	}
	params := engine.OpenParams{From: in.From, To: in.To, SenderKeys: sk.keys, Require: engine.Signcrypt, Time: in.Time}
	op, err := opener.Open(data, params)
	if err != nil {
		return nil, openErr(err)
	}
	if op.Signer == nil && op.SignerKeyID != 0 {
		// Signed by a key we do not know: perhaps a new one.
		if sk2, ok := src.refetch(ctx, from, sk); ok {
			params.SenderKeys = sk2.keys
			if op2, err := opener.Open(data, params); err == nil {
				op, sk = op2, sk2
			}
		}
	}
	if op.Signer != nil {
		if info := sk.info[op.Signer.Fingerprint()]; !info.own && !info.announced {
			// Perhaps announced by a key list being recorded right now
			// (keys first, then which ones are announced): wait for it.
			if sk2, err := src.settled(ctx, from); err == nil {
				sk = sk2
			}
		}
	}
	res, err := x.result(in, op, sk)
	if err != nil {
		return nil, err
	}
	if info := sk.info[op.Signer.Fingerprint()]; !in.Origin.Copy() && !info.own && x.now().Sub(info.lastSeen) >= seenEvery {
		if _, err := x.st.RecordSeenKey(ctx, from.String(), trust.OX, op.Signer.Fingerprint(), nil); err != nil {
			x.log().Warn("recording OpenPGP key use failed", "err", err)
		}
	}
	return res, nil
}

// seenEvery is how often a contact key's last use is written to the
// store: a write is a transaction with an fsync, far dearer than opening
// the message, and the store keeps the time of last use for the user
// (shown as a date), not for every message.
const seenEvery = 10 * time.Minute

// withFetchNote is the detail of a refusal for want of a valid signature,
// with a note when the sender's key list could not be fetched for the
// message (a timeout, no connection): the sender may have signed with a
// key that list announces, and the user should not be left to think of a
// forgery only.
func (x *Mechanism) withFetchNote(detail string, from jid.JID) string {
	err := x.fetchFailed(from.Bare().String())
	if err == nil {
		return detail
	}
	note := "the sender's key list could not be fetched (" + err.Error() + ")"
	if detail == "" {
		return note
	}
	return detail + "; " + note
}

// openErr maps the engine's errors to notices.
func openErr(err error) error {
	var pe *engine.ParseError
	switch {
	case errors.Is(err, engine.ErrNoKey):
		return &client.OpenError{Reason: eme.ReasonNoKey, Err: err}
	case errors.Is(err, engine.ErrDecrypt):
		return &client.OpenError{Reason: eme.ReasonVerificationFailed, Err: err}
	case errors.As(err, &pe), errors.Is(err, engine.ErrMalformed), errors.Is(err, engine.ErrTooLarge):
		return &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	return &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
}

// result turns an opened content element into what the pipeline delivers,
// or refuses it.
//
// XEP-0373 §3.2: the content must carry a valid signature by a key of the
// sender's JID. A <signcrypt/> without a signature, with a bad one, or
// signed by a key the sender never announced is a forgery as far as the
// receiver can tell: it is refused (a notice, never a message). A message
// signed by a key of the sender that is no longer announced (an archived
// message after a key change) is shown with a warning, but it does not
// count as OX for the incoming policy (Security.Authenticated is false).
// Verified means that every check passed and the user trusts the key.
func (x *Mechanism) result(in *client.Incoming, op *engine.Opened, sk *senderKeys) (*client.Opened, error) {
	sec := client.Security{Mechanism: eme.OX}
	for _, p := range op.Problems {
		var re *engine.RecipientError
		var ke *engine.KindError
		switch {
		case errors.As(p, &re):
			// A message written for someone else and forwarded to us
			// (surreptitious forwarding, XEP-0373 §3.1): never shown.
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: re.Error()}
		case errors.As(p, &ke):
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: ke.Error() + " (the IM profile requires <signcrypt/>)"}
		case op.Signer == nil:
			// Not signed, signed by an unknown key or a bad signature: the
			// engine found no valid signature by a key of the sender.
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: x.withFetchNote(strings.TrimPrefix(p.Error(), "ox: "), in.From)}
		default:
			sec.Warnings = append(sec.Warnings, problemWarning(p))
		}
	}
	if op.Signer == nil {
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Notes: []eme.Message{eme.Msg(eme.MsgOXNoValidSignature)}, Detail: x.withFetchNote("", in.From)}
	}
	from := in.From.Bare()
	fpr := op.Signer.Fingerprint()
	info := sk.info[fpr]
	sec.Fingerprint = fpr
	sec.Trust = info.trust.String()
	sec.Authenticated = info.own || info.announced
	verified := op.Verified
	switch {
	case info.own:
	case !info.announced:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyNotAnnounced, fpr, from.String()))
	case info.trust == trust.Verified:
	case info.trust == trust.Blind:
		verified = verified && x.cfg.BlindTrust
	case info.trust == trust.Untrusted:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyUntrusted, fpr))
	default:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyUndecided, fpr))
	}
	// Verified means every check passed: a warning of any kind (a replayed
	// or post-dated <time/> stamp too) leaves the message unverified.
	sec.Verified = verified && len(sec.Warnings) == 0

	// Only the protected children are delivered (XEP-0374 §5: the payload
	// takes the place of the stanza's children). Unencrypted siblings are
	// not authenticated: anyone on the path could add a correction or a
	// reply reference to a verified message. So the stanza's own children
	// are not even passed.
	res := &client.Opened{Security: sec}
	hasBody := false
	for _, c := range engine.EffectiveChildren(op.Content.Payload, nil) {
		if c.Name.Space == client.NSClient && c.Name.Local == "body" && !hasBody {
			res.Body, hasBody = c.Text(), true
			continue
		}
		res.Payload = append(res.Payload, c.Element)
	}
	return res, nil
}

// problemWarning is the warning for a problem the engine found in a
// message that could still be read.
func problemWarning(p error) client.Warning {
	if te, ok := errors.AsType[*engine.TimeError](p); ok {
		off := te.Stamp.Sub(te.Reference)
		if off < 0 {
			off = -off
		}
		id := eme.MsgOXStampSkewed
		if te.Signature {
			id = eme.MsgOXSignatureSkewed
		}
		return client.Warn(id, engine.FormatTime(te.Stamp), off.Round(time.Second).String())
	}
	return client.Warn(eme.MsgOXCheckFailed, strings.TrimPrefix(p.Error(), "ox: "))
}
