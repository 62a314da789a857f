package omemo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// DeviceInfo describes one OMEMO device of an account.
type DeviceInfo struct {
	JID string // the account's bare JID
	ID  uint32
	// Generations lists the generations whose device list names it.
	Generations []engine.Generation
	// Listed is false for a device no list names any more (its key is
	// remembered).
	Listed bool
	// Fingerprint is its identity key's ("" when its bundle could not be
	// read); Trust the decision about it.
	Fingerprint string
	Trust       trust.State
	// This marks this device itself.
	This bool
	// LastMessage is when a message from the device was last read live or
	// as a carbon (zero: never): a device of one's own account silent for
	// long is likely stale, a candidate for RemoveDevice.
	LastMessage time.Time
}

// Devices reads the device lists of an account (a contact's, or one's
// own) in every generation, reads the bundle of each device whose key is
// not known yet, records the keys (new ones with the store's default
// trust, reported as security events), and returns what is known.
func (d *Device) Devices(ctx context.Context, account jid.JID) ([]DeviceInfo, error) {
	bare := account.Bare()
	var firstErr error
	read := 0
	for _, g := range d.gens {
		if _, err := d.deviceList(ctx, bare, g, true); err != nil {
			firstErr = errors.Join(firstErr, err)
			continue
		}
		read++
	}
	if read == 0 {
		return nil, firstErr
	}
	set, err := d.loadSet(ctx, bare.String())
	if err != nil {
		return nil, err
	}
	self := bare.Equal(d.self())
	own := d.DeviceID()
	for _, r := range set.Devices {
		if r.Fingerprint != "" || r.Lists == 0 || (self && r.ID == own) {
			continue
		}
		a := engine.Address{JID: bare.String(), DeviceID: r.ID}
		for _, g := range d.gens {
			if r.Lists&bit(g) == 0 {
				continue
			}
			b, err := d.fetchBundle(ctx, a, g)
			if err != nil {
				d.log().Info("reading an OMEMO bundle failed", "device", a.String(), "err", err)
				continue
			}
			_, _, evs, err := d.seen(ctx, g, a, b.IdentityKey)
			if err != nil {
				return nil, err
			}
			d.emit(evs)
			break
		}
	}
	return d.KnownDevices(ctx, bare)
}

// KnownDevices returns what is known of an account's devices without
// using the network.
func (d *Device) KnownDevices(ctx context.Context, account jid.JID) ([]DeviceInfo, error) {
	bare := account.Bare()
	set, err := d.loadSet(ctx, bare.String())
	if err != nil {
		return nil, err
	}
	trusts, err := d.trusts(ctx, bare.String())
	if err != nil {
		return nil, err
	}
	self := bare.Equal(d.self())
	own := d.DeviceID()
	var out []DeviceInfo
	for _, r := range set.Devices {
		info := DeviceInfo{JID: bare.String(), ID: r.ID, Listed: r.Lists != 0, Fingerprint: r.Fingerprint,
			Trust: trusts[r.Fingerprint], This: self && r.ID == own}
		if info.This {
			info.Fingerprint, info.Trust = d.Fingerprint(), trust.Verified
		}
		if r.LastMessage != 0 {
			info.LastMessage = time.UnixMilli(r.LastMessage)
		}
		for _, g := range d.gens {
			if r.Lists&bit(g) != 0 {
				info.Generations = append(info.Generations, g)
			}
		}
		out = append(out, info)
	}
	if self && !slices.ContainsFunc(out, func(i DeviceInfo) bool { return i.This }) {
		// This device before it is announced (or while turned off).
		out = append(out, DeviceInfo{JID: bare.String(), ID: own, Fingerprint: d.Fingerprint(), Trust: trust.Verified, This: true})
	}
	slices.SortStableFunc(out, func(a, b DeviceInfo) int {
		switch {
		case a.Listed != b.Listed:
			if a.Listed {
				return -1
			}
			return 1
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// SetTrust records the user's decision about one of an account's device
// keys (trust.Verified after comparing the fingerprint, trust.Untrusted
// to never encrypt to it again).
func (d *Device) SetTrust(ctx context.Context, account jid.JID, fingerprint string, t trust.State) error {
	fpr, err := trust.NormalizeFingerprint(trust.OMEMO, fingerprint)
	if err != nil {
		return err
	}
	return d.st.SetTrust(ctx, account.Bare().String(), trust.OMEMO, fpr, t)
}

// ResetSession replaces the sessions with an account's devices (one
// device, or all with id 0), in every generation, by new ones announced
// with empty messages: what XEP-0384 §7 asks clients to offer for a
// session that no longer works. Devices whose bundle cannot be read keep
// no session; the next message starts one.
func (d *Device) ResetSession(ctx context.Context, account jid.JID, id uint32) (int, error) {
	if d.Off() {
		return 0, ErrOff
	}
	bare := account.Bare()
	n := 0
	var errs error
	for _, g := range d.gens {
		set, err := d.deviceList(ctx, bare, g, true)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		for _, r := range set.active(g) {
			if (id != 0 && r.ID != id) || (bare.Equal(d.self()) && r.ID == d.DeviceID()) {
				continue
			}
			a := engine.Address{JID: bare.String(), DeviceID: r.ID}
			if _, err := d.rebuild(ctx, g, a); err != nil {
				errs = errors.Join(errs, err)
				if derr := d.op(ctx, func() (bool, error) { return false, d.mgrs[g].DeleteSession(a) }); derr != nil {
					return n, derr
				}
				continue
			}
			n++
		}
	}
	if n == 0 && errs == nil {
		return 0, fmt.Errorf("%w for %s", ErrNoDevices, bare)
	}
	return n, errs
}

// FinishCatchUp ends an archive catch-up (XEP-0384 §7): the private parts
// of pre-keys consumed by archived key exchanges, kept meanwhile so that
// a second copy still decrypts, are deleted. Call it after reading the
// archive (Client.History); New does it for what a previous run left.
func (d *Device) FinishCatchUp(ctx context.Context) error {
	return d.op(ctx, func() (bool, error) {
		for _, g := range d.gens {
			if _, err := d.mgrs[g].FinishCatchUp(); err != nil {
				return false, err
			}
		}
		return false, nil
	})
}

// FormatURI returns xmpp:JID?omemo-sid-ID=FINGERPRINT, the URI
// Conversations and other clients scan (as a QR code) to verify a
// device: the fingerprint as 64 lower-case hex digits.
func FormatURI(bare string, id uint32, fingerprint string) string {
	fpr, err := trust.NormalizeFingerprint(trust.OMEMO, fingerprint)
	if err != nil {
		fpr = fingerprint
	}
	return "xmpp:" + bare + "?omemo-sid-" + formatID(id) + "=" + fpr
}

// URIDevice is a device named by a verification URI.
type URIDevice struct {
	ID          uint32
	Fingerprint string // normalised
}

// ParseURI reads an xmpp: URI with omemo-sid-ID=FINGERPRINT parameters
// (one per device; other parameters, such as a query type, are ignored)
// and returns the bare JID and the devices it names.
func ParseURI(s string) (jid.JID, []URIDevice, error) {
	bad := func(format string, args ...any) (jid.JID, []URIDevice, error) {
		return jid.JID{}, nil, fmt.Errorf("client: OMEMO URI: "+format, args...)
	}
	rest, ok := strings.CutPrefix(s, "xmpp:")
	if !ok {
		return bad("%q does not start with xmpp:", s)
	}
	addr, query, _ := strings.Cut(rest, "?")
	addr, err := url.PathUnescape(addr)
	if err != nil {
		return bad("the address does not decode: %v", err)
	}
	j, err := jid.Parse(addr)
	if err != nil || j.Localpart() == "" {
		return bad("%q is not an account's address", addr)
	}
	var devs []URIDevice
	for _, part := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(part, "=")
		sid, ok := strings.CutPrefix(k, "omemo-sid-")
		if !ok {
			continue
		}
		id, ok := parseID(sid)
		if !ok {
			return bad("invalid device id %q", sid)
		}
		fpr, err := trust.NormalizeFingerprint(trust.OMEMO, v)
		if err != nil {
			return bad("%v", err)
		}
		devs = append(devs, URIDevice{ID: id, Fingerprint: fpr})
	}
	if len(devs) == 0 {
		return bad("no omemo-sid-ID=FINGERPRINT parameter")
	}
	return j.Bare(), devs, nil
}
