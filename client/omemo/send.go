package omemo

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// recipients returns the devices of bare (generation g's list, without
// this device) that may be encrypted to, with the bundles of those
// without a session, and the security events of what was learnt (new
// devices, devices left out). Devices the user has not decided to trust
// (and untrusted ones) are never encrypted to (XEP-0384 §8); a device
// whose bundle cannot be read or does not verify is left out too.
func (d *Device) recipients(ctx context.Context, g engine.Generation, bare jid.JID) (rs []engine.Recipient, left []DeviceInfo, evs []*client.SecurityEvent, err error) {
	// A list that names no device is read again before the message is
	// refused.
	set, err := d.activeList(ctx, bare, g, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	own := d.DeviceID()
	var devices []deviceRecord
	for _, r := range set.active(g) {
		if bare.Equal(d.self()) && r.ID == own {
			continue
		}
		devices = append(devices, r)
	}
	for _, r := range devices {
		a := engine.Address{JID: bare.String(), DeviceID: r.ID}
		var has bool
		if err := d.op(ctx, func() (bool, error) {
			var err error
			has, err = d.mgrs[g].HasSession(a)
			return false, err
		}); err != nil {
			return nil, nil, nil, err
		}
		var b *engine.Bundle
		if !has || r.Fingerprint == "" {
			if b, err = d.fetchBundle(ctx, a, g); err != nil {
				d.log().Info("not encrypting to an OMEMO device without a usable bundle", "device", a.String(), "err", err)
				continue
			}
			_, _, e, err := d.seen(ctx, g, a, b.IdentityKey)
			if err != nil {
				return nil, nil, nil, err
			}
			evs = append(evs, e...)
		}
		rs = append(rs, engine.Recipient{Address: a, Bundle: b})
	}
	trusts, err := d.trusts(ctx, bare.String())
	if err != nil {
		return nil, nil, nil, err
	}
	fprs := map[uint32]string{}
	if set, err = d.loadSet(ctx, bare.String()); err != nil {
		return nil, nil, nil, err
	}
	for _, r := range set.Devices {
		fprs[r.ID] = r.Fingerprint
	}
	kept := rs[:0]
	for _, r := range rs {
		f := fprs[r.Address.DeviceID]
		st, ok := trusts[f]
		if ok && st.Usable() {
			kept = append(kept, r)
			continue
		}
		left = append(left, DeviceInfo{JID: bare.String(), ID: r.Address.DeviceID, Fingerprint: f, Trust: st,
			Generations: []engine.Generation{g}, Listed: true})
		if st != trust.Untrusted {
			evs = append(evs, &client.SecurityEvent{Peer: bare, Mechanism: g.Namespace(), Kind: KindNotEncryptedTo, Fingerprint: f,
				Message: eme.Msg(eme.MsgOMEMONotEncryptedTo, formatID(r.Address.DeviceID), bare.String(), DisplayFingerprint(f)),
				Hint:    hint(g, bare.String())})
		}
	}
	return kept, left, evs, nil
}

// Seal implements client.Mechanism: the message is encrypted for every
// device the recipient's device list names and for the account's other
// devices, each only if trusted (blindly, or verified); sessions are
// built from bundles read just before (XEP-0384 §7). OMEMO 2 encrypts
// an XEP-0420 envelope with the body and out.Payload; OMEMO 0.3 only the
// body. The pipeline adds the fallback body, the store hint and the EME
// tag. Group chats are refused (ErrGroupChat); a contact without OMEMO
// devices gives ErrNoDevices, one whose devices are all left out an
// *UntrustedError.
func (x *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	d, g := x.d, x.g
	if d.Off() {
		return client.Sealed{}, ErrOff
	}
	if out.Type == "groupchat" {
		return client.Sealed{}, ErrGroupChat
	}
	if out.Body == "" && (g == engine.V03 || len(out.Payload) == 0) {
		return client.Sealed{}, errors.New("client: OMEMO: nothing to encrypt")
	}
	self := d.self()
	to := out.To.Bare()
	rs, left, evs, err := d.recipients(ctx, g, to)
	d.emit(evs)
	if err != nil {
		return client.Sealed{}, err
	}
	if len(rs) == 0 {
		if len(left) > 0 {
			return client.Sealed{}, &UntrustedError{Contact: to.String(), Devices: left}
		}
		return client.Sealed{}, fmt.Errorf("%w by %s for %v", ErrNoDevices, to, g)
	}
	if !to.Equal(self) {
		mine, _, evs, err := d.recipients(ctx, g, self)
		d.emit(evs)
		if err != nil {
			d.log().Info("not encrypting to the account's other OMEMO devices", "err", err)
		}
		rs = append(rs, mine...)
	}
	var plaintext []byte
	if g == engine.V2 {
		if plaintext, err = buildEnvelope(d.cfg.Rand, out.Body, out.Payload, self.String(), d.now()); err != nil {
			return client.Sealed{}, err
		}
	} else {
		plaintext = []byte(out.Body)
	}
	defer clear(plaintext)
	var msg *engine.Message
	err = d.op(ctx, func() (bool, error) {
		if d.Off() {
			return false, ErrOff // turned off (and perhaps forgotten) meanwhile
		}
		var err error
		msg, err = d.mgrs[g].Encrypt(plaintext, rs)
		return msg != nil, err
	})
	if err != nil {
		if errors.Is(err, ErrOff) {
			return client.Sealed{}, err
		}
		if msg == nil || !reachedContact(msg, to) {
			return client.Sealed{}, fmt.Errorf("client: OMEMO: %w", err)
		}
		d.log().Info("an OMEMO message was not encrypted for every device", "err", err)
	}
	st := xmltree.New(client.NSClient, "message", "to", out.To.String(), "type", out.Type, "id", out.ID)
	st.Append(encryptedElement(msg))
	if out.Thread != "" {
		st.Append(xmltree.New(client.NSClient, "thread").AppendText(out.Thread))
	}
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// reachedContact reports whether msg has a key for a device of bare.
func reachedContact(msg *engine.Message, bare jid.JID) bool {
	for _, k := range msg.Keys {
		if k.Address.JID == bare.String() {
			return true
		}
	}
	return false
}

// sendEmpty sends an empty OMEMO message (XEP-0384 §5.5: key transport)
// to one device: to complete a session it built from a key exchange, as
// a heartbeat that moves the ratchet forward (§7), or to start a session
// again. Empty messages carry no content and so go to devices whatever
// their trust (§8). With bundle set, a session is built from it when
// there is none.
func (d *Device) sendEmpty(ctx context.Context, g engine.Generation, a engine.Address, bundle *engine.Bundle) error {
	h := d.hostOf(g)
	if h == nil {
		return errors.New("client: OMEMO is not registered with a client")
	}
	to, err := jid.Parse(a.JID)
	if err != nil {
		return err
	}
	var msg *engine.Message
	if err := d.op(ctx, func() (bool, error) {
		if d.Off() {
			return false, ErrOff // a device on no list sends nothing
		}
		var err error
		msg, err = d.mgrs[g].EncryptEmpty([]engine.Recipient{{Address: a, Bundle: bundle}})
		return false, err
	}); err != nil {
		return fmt.Errorf("client: OMEMO empty message to %v: %w", a, err)
	}
	st := xmltree.New(client.NSClient, "message", "to", to.String(), "type", "chat", "id", client.NewID())
	st.Append(encryptedElement(msg))
	return h.Send(ctx, to, st)
}
