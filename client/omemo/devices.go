package omemo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// deviceRecord is what is known of one device of an account.
type deviceRecord struct {
	ID uint32 `json:"id"`
	// Lists has bit g set while generation g's device list names it.
	Lists uint8 `json:"lists,omitempty"`
	// Fingerprint of its identity key, once seen (bundle or message).
	Fingerprint string `json:"fpr,omitempty"`
	// LastMessage is when a message from it was last decrypted (Unix
	// milliseconds).
	LastMessage int64 `json:"last,omitempty"`
}

func bit(g engine.Generation) uint8 { return 1 << uint8(g) }

// deviceSet is what is known of one account's devices: persisted as
// devices/<bare JID>; fetched is kept in memory only.
type deviceSet struct {
	JID     string         `json:"jid"`
	Devices []deviceRecord `json:"devices"`
	// Read has bit g set once generation g's list was read.
	Read    uint8 `json:"read,omitempty"`
	fetched [3]time.Time
}

func (s *deviceSet) clone() *deviceSet {
	c := *s
	c.Devices = slices.Clone(s.Devices)
	return &c
}

func (s *deviceSet) find(id uint32) *deviceRecord {
	for i := range s.Devices {
		if s.Devices[i].ID == id {
			return &s.Devices[i]
		}
	}
	return nil
}

// active returns the devices generation g's list names.
func (s *deviceSet) active(g engine.Generation) []deviceRecord {
	var out []deviceRecord
	for _, r := range s.Devices {
		if r.Lists&bit(g) != 0 {
			out = append(out, r)
		}
	}
	return out
}

// maxRecords bounds the devices remembered per account (listed ones and
// former ones whose keys are kept for key-change detection).
const maxRecords = 2 * MaxDevices

// setList records generation g's device list; it reports whether the
// set changed. Devices no longer listed keep their record (their key).
func (s *deviceSet) setList(g engine.Generation, listed []ListedDevice) bool {
	before := s.clone()
	s.Read |= bit(g)
	for i := range s.Devices {
		s.Devices[i].Lists &^= bit(g)
	}
	for _, l := range listed {
		r := s.find(l.ID)
		if r == nil {
			s.Devices = append(s.Devices, deviceRecord{ID: l.ID})
			r = &s.Devices[len(s.Devices)-1]
		}
		r.Lists |= bit(g)
	}
	if len(s.Devices) > maxRecords {
		// Forget former devices first, those never heard from first.
		slices.SortStableFunc(s.Devices, func(a, b deviceRecord) int {
			switch {
			case (a.Lists == 0) != (b.Lists == 0):
				if a.Lists != 0 {
					return -1
				}
				return 1
			case a.LastMessage != b.LastMessage:
				if a.LastMessage > b.LastMessage {
					return -1
				}
				return 1
			}
			return 0
		})
		s.Devices = s.Devices[:maxRecords]
	}
	return s.Read != before.Read || !slices.Equal(s.Devices, before.Devices)
}

// loadSet returns the cached or stored device set of bare (never nil).
func (d *Device) loadSet(ctx context.Context, bare string) (*deviceSet, error) {
	d.lmu.Lock()
	s := d.lists[bare]
	d.lmu.Unlock()
	if s != nil {
		return s.clone(), nil
	}
	b, err := d.st.MechanismState(ctx, trust.OMEMO, nameDevices(bare))
	if err != nil {
		return nil, err
	}
	s = &deviceSet{JID: bare}
	if b != nil {
		if err := json.Unmarshal(b, s); err != nil {
			d.log().Warn("stored OMEMO device set does not parse", "contact", bare, "err", err)
			s = &deviceSet{JID: bare}
		}
	}
	d.lmu.Lock()
	if c := d.lists[bare]; c != nil {
		s = c
	} else {
		d.lists[bare] = s
	}
	d.lmu.Unlock()
	return s.clone(), nil
}

// saveSet stores s and makes it the cached set; the fingerprints of the
// listed devices are marked announced in the trust store.
func (d *Device) saveSet(ctx context.Context, s *deviceSet) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := d.st.UpdateMechanismState(ctx, trust.OMEMO, map[string][]byte{nameDevices(s.JID): b}, nil); err != nil {
		return err
	}
	d.lmu.Lock()
	d.lists[s.JID] = s.clone()
	d.lmu.Unlock()
	var announced []string
	for _, r := range s.Devices {
		if r.Lists != 0 && r.Fingerprint != "" {
			announced = append(announced, r.Fingerprint)
		}
	}
	return d.st.SetAnnouncedKeys(ctx, s.JID, trust.OMEMO, announced)
}

// updateSet applies fn to the stored set of bare and saves it when fn
// reports a change.
func (d *Device) updateSet(ctx context.Context, bare string, fn func(s *deviceSet) bool) (*deviceSet, error) {
	l := d.lockFor(bare)
	l.Lock()
	defer l.Unlock()
	s, err := d.loadSet(ctx, bare)
	if err != nil {
		return nil, err
	}
	if fn(s) {
		if err := d.saveSet(ctx, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// fetchList reads owner's device list of generation g; a node that does
// not exist is an empty list.
func (d *Device) fetchList(ctx context.Context, owner jid.JID, g engine.Generation) ([]ListedDevice, error) {
	h, err := d.host()
	if err != nil {
		return nil, err
	}
	items, err := h.FetchItems(ctx, owner, DevicesNode(g), 1)
	if isCondition(err, "item-not-found") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: reading the %v device list of %s: %w", g, owner, err)
	}
	if len(items) == 0 || items[len(items)-1].Payload == nil {
		return nil, nil
	}
	return ParseDeviceList(g, items[len(items)-1].Payload)
}

func isCondition(err error, cond string) bool {
	se, ok := errors.AsType[*client.StanzaError](err)
	return ok && se.Condition == cond
}

// deviceList returns bare's device set with generation g's list read
// over PEP when it was not read for Config.Refresh (or always, with
// force). A failed read falls back to what is known.
func (d *Device) deviceList(ctx context.Context, bare jid.JID, g engine.Generation, force bool) (*deviceSet, error) {
	b := bare.String()
	s, err := d.loadSet(ctx, b)
	if err != nil {
		return nil, err
	}
	if !force && !s.fetched[g].IsZero() && d.now().Sub(s.fetched[g]) < d.cfg.Refresh {
		return s, nil
	}
	l := d.lockFor(b)
	l.Lock()
	defer l.Unlock()
	if s, err = d.loadSet(ctx, b); err != nil {
		return nil, err
	}
	if !force && !s.fetched[g].IsZero() && d.now().Sub(s.fetched[g]) < d.cfg.Refresh {
		return s, nil
	}
	fctx, cancel := context.WithTimeout(ctx, d.cfg.FetchTimeout)
	listed, err := d.fetchList(fctx, bare, g)
	cancel()
	if err != nil {
		d.log().Info("reading an OMEMO device list failed", "contact", b, "generation", g.String(), "err", err)
		if s.Read&bit(g) == 0 {
			return s, err
		}
		return s, nil
	}
	s.fetched[g] = d.now()
	d.log().Debug("read an OMEMO device list", "contact", b, "generation", g.String(), "devices", len(listed))
	changed := s.setList(g, listed)
	if changed {
		if err := d.saveSet(ctx, s); err != nil {
			return nil, err
		}
	} else {
		d.lmu.Lock()
		d.lists[b] = s.clone()
		d.lmu.Unlock()
	}
	return s, nil
}

// activeList is deviceList(ctx, bare, g, false), except that a contact's
// list that names no device of g and was read (or notified) at least
// minAge ago, and less than Refresh ago (so not by this call), is read
// again: a device may have been turned on since. A read that this call
// made, or that failed just now, is not repeated.
func (d *Device) activeList(ctx context.Context, bare jid.JID, g engine.Generation, minAge time.Duration) (*deviceSet, error) {
	start := d.now()
	set, err := d.deviceList(ctx, bare, g, false)
	if err != nil {
		return nil, err
	}
	age := start.Sub(set.fetched[g])
	if len(set.active(g)) > 0 || bare.Equal(d.self()) || age <= 0 || age < minAge || age >= d.cfg.Refresh {
		return set, nil
	}
	return d.deviceList(ctx, bare, g, true)
}

// onDeviceList handles a device list notification (a contact's or our
// own). A device that finds itself missing from its own list announces
// itself again (XEP-0384 §5.3.1 MUST).
func (d *Device) onDeviceList(g engine.Generation, ev *client.PEPEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.FetchTimeout)
	defer cancel()
	owner := ev.From.Bare()
	var listed []ListedDevice
	var err error
	if n := len(ev.Items); n > 0 && ev.Items[n-1].Payload != nil {
		listed, err = ParseDeviceList(g, ev.Items[n-1].Payload)
	} else {
		listed, err = d.fetchList(ctx, owner, g)
	}
	if err != nil {
		d.log().Info("unusable OMEMO device list notification", "contact", owner.String(), "err", err)
		return
	}
	if _, err := d.updateSet(ctx, owner.String(), func(s *deviceSet) bool {
		s.fetched[g] = d.now()
		return s.setList(g, listed)
	}); err != nil {
		d.log().Warn("recording an OMEMO device list failed", "contact", owner.String(), "err", err)
	}
	if !owner.Equal(d.self()) {
		return
	}
	id := d.DeviceID()
	onList := slices.ContainsFunc(listed, func(l ListedDevice) bool { return l.ID == id })
	off := d.Off()
	switch {
	case off && onList:
		// Another client merged a list it read before TurnOff: off it
		// goes again.
		d.log().Info("this OMEMO device is off but back on its own device list: taking it off again", "generation", g.String())
		d.inBackground("taking the OMEMO device off its list again failed", d.Withdraw)
	case off, onList:
	default:
		published, err := d.st.MechanismState(ctx, trust.OMEMO, namePublished)
		if err != nil || published == nil {
			return // not announced yet: Publish will
		}
		d.log().Info("this OMEMO device is missing from its own device list: announcing it again", "generation", g.String())
		d.inBackground("announcing the OMEMO device again failed", func(ctx context.Context) error { return d.announce(ctx, g) })
	}
}

// inBackground runs fn on its own goroutine (counted in d.background),
// logging its failure but ErrOff as failed.
func (d *Device) inBackground(failed string, fn func(ctx context.Context) error) {
	d.background.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*d.cfg.FetchTimeout)
		defer cancel()
		if err := fn(ctx); err != nil && !errors.Is(err, ErrOff) {
			d.log().Warn(failed, "err", err)
		}
	})
}

// fetchBundle reads and checks the bundle of one device.
func (d *Device) fetchBundle(ctx context.Context, a engine.Address, g engine.Generation) (*engine.Bundle, error) {
	h, err := d.host()
	if err != nil {
		return nil, err
	}
	owner, err := jid.Parse(a.JID)
	if err != nil {
		return nil, err
	}
	node, item := BundleItem(g, a.DeviceID)
	fctx, cancel := context.WithTimeout(ctx, d.cfg.FetchTimeout)
	defer cancel()
	items, err := h.FetchItems(fctx, owner, node, 0, item)
	if err != nil {
		return nil, fmt.Errorf("client: reading the %v bundle of %v: %w", g, a, err)
	}
	var payload *xmltree.Element
	for _, it := range items {
		if it.ID == item || g == engine.V03 {
			payload = it.Payload
		}
	}
	if payload == nil {
		return nil, fmt.Errorf("client: %v has no %v bundle", a, g)
	}
	b, err := ParseBundle(g, a.DeviceID, payload)
	if err != nil {
		return nil, err
	}
	if err := b.Verify(); err != nil {
		return nil, err
	}
	return b, nil
}

// seen records that device a uses the identity key ik (generation g's
// form): the device record gets its fingerprint, the trust store the key
// (with its default trust, see the store's rules), and what changed
// becomes security events: a key seen for the first time, a known device
// with another key. It returns the key's trust state.
func (d *Device) seen(ctx context.Context, g engine.Generation, a engine.Address, ik []byte) (trust.State, string, []*client.SecurityEvent, error) {
	fpr := fingerprintOf(g, ik)
	if fpr == "" {
		return trust.Undecided, "", nil, fmt.Errorf("%w: identity key of %v", engine.ErrInvalidBundle, a)
	}
	if state, ok := d.seenRecently(ctx, a, fpr); ok {
		return state, fpr, nil, nil
	}
	sk, err := d.st.RecordSeenKey(ctx, a.JID, trust.OMEMO, fpr, ik)
	if err != nil {
		return trust.Undecided, fpr, nil, err
	}
	d.smu.Lock()
	if len(d.recorded) >= maxRecorded {
		clear(d.recorded)
	}
	d.recorded[a.JID+" "+fpr] = d.now()
	d.smu.Unlock()
	var previous string
	if _, err := d.updateSet(ctx, a.JID, func(s *deviceSet) bool {
		r := s.find(a.DeviceID)
		if r == nil {
			s.Devices = append(s.Devices, deviceRecord{ID: a.DeviceID})
			r = &s.Devices[len(s.Devices)-1]
		}
		if r.Fingerprint == fpr {
			return false
		}
		previous, r.Fingerprint = r.Fingerprint, fpr
		return true
	}); err != nil {
		return trust.Undecided, fpr, nil, err
	}
	peer, _ := jid.Parse(a.JID)
	id := formatID(a.DeviceID)
	state := sk.Key.Trust
	var evs []*client.SecurityEvent
	ev := func(kind client.SecurityKind, msg eme.Message, h eme.Hint) {
		evs = append(evs, &client.SecurityEvent{Peer: peer, Mechanism: g.Namespace(), Kind: kind,
			Fingerprint: fpr, Message: msg, Hint: h})
	}
	switch {
	case previous != "":
		ev(KindKeyChanged, eme.Msg(eme.MsgOMEMOKeyChanged, id, a.JID, DisplayFingerprint(fpr), state.String(), DisplayFingerprint(previous)), hint(g, a.JID))
	case sk.Change != nil:
		ev(KindNewDevice, eme.Msg(eme.MsgOMEMONewDevice, a.JID, id, DisplayFingerprint(fpr), state.String()), hint(g, a.JID))
	case sk.New:
		ev(KindNewDevice, eme.Msg(eme.MsgOMEMODeviceSeen, a.JID, id, DisplayFingerprint(fpr), state.String()), eme.Hint{})
	}
	return state, fpr, evs, nil
}

// seenEvery is how often the use of a device key is written to the
// store (RecordSeenKey, its last-seen time) and the time of a device's
// last message: each is a transaction with an fsync, dearer than
// decrypting the message, and both are kept for the user (shown as a
// date), not for every message.
const seenEvery = 10 * time.Minute

// maxRecorded bounds Device.recorded; when full it starts again.
const maxRecorded = 4096

// seenRecently returns the trust state of device a's key fpr, read from
// the store, when this device recorded the key as seen less than
// seenEvery ago and the device record still has it; ok is false when
// seen must record it.
func (d *Device) seenRecently(ctx context.Context, a engine.Address, fpr string) (state trust.State, ok bool) {
	d.smu.Lock()
	at, known := d.recorded[a.JID+" "+fpr]
	d.smu.Unlock()
	if !known || d.now().Sub(at) >= seenEvery {
		return trust.Undecided, false
	}
	s, err := d.loadSet(ctx, a.JID)
	if err != nil {
		return trust.Undecided, false
	}
	if r := s.find(a.DeviceID); r == nil || r.Fingerprint != fpr {
		return trust.Undecided, false
	}
	keys, err := d.st.ListKeys(ctx, a.JID, trust.OMEMO)
	if err != nil {
		return trust.Undecided, false
	}
	for _, k := range keys {
		if k.Fingerprint == fpr {
			// A key decided about in advance and not seen since
			// (FirstSeen zero) is recorded: that is an event.
			return k.Trust, !k.FirstSeen.IsZero()
		}
	}
	return trust.Undecided, false
}

// notListed reports whether a device is missing from the lists of its
// account, after reading them again (at most once per Refresh, XEP-0384
// §7: a message from a device not on the list).
func (d *Device) notListed(ctx context.Context, a engine.Address, g engine.Generation) bool {
	owner, err := jid.Parse(a.JID)
	if err != nil {
		return true
	}
	s, err := d.loadSet(ctx, a.JID)
	if err == nil {
		if r := s.find(a.DeviceID); r != nil && r.Lists&bit(g) != 0 {
			return false
		}
	}
	s, err = d.deviceList(ctx, owner, g, s == nil || d.now().Sub(s.fetched[g]) >= time.Minute)
	if err != nil {
		return true
	}
	r := s.find(a.DeviceID)
	return r == nil || r.Lists&bit(g) == 0
}
