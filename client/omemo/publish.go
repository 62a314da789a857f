package omemo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// Node configurations (XEP-0384 §5.3, §7 "Server requirements"): device
// lists and bundles are readable by anyone, so that a contact without a
// presence subscription can start a session; the OMEMO 2 bundles node
// keeps one item per device.
var (
	devicesRequired   = client.NodeOptions{"access_model": "open"}
	bundlesRequired2  = client.NodeOptions{"access_model": "open", "max_items": "max"}
	bundlesRequired03 = client.NodeOptions{"access_model": "open"}
)

// Publish announces this device: for each generation its bundle, then
// its entry in the account's device list, keeping the other devices'
// entries (the list is read first and merged). The nodes get an open
// access model (and the OMEMO 2 bundles node max_items=max) whatever the
// server's defaults: PublishNode applies and checks the options.
//
// Before the first announcement the device list is checked for a device
// with this id (XEP-0384 §7); this device takes another id if it has no
// session yet.
func (d *Device) Publish(ctx context.Context) error {
	if d.Off() {
		return ErrOff
	}
	first, err := d.st.MechanismState(ctx, trust.OMEMO, namePublished)
	if err != nil {
		return err
	}
	if first == nil {
		if err := d.checkID(ctx); err != nil {
			return err
		}
	}
	for _, g := range d.gens {
		if err := d.publishBundle(ctx, g); err != nil {
			return err
		}
		if err := d.announce(ctx, g); err != nil {
			return err
		}
	}
	if first == nil {
		return d.st.UpdateMechanismState(ctx, trust.OMEMO, map[string][]byte{namePublished: {1}}, nil)
	}
	return nil
}

// Published reports whether this device has announced itself once
// (Publish succeeded): a device that never did is unknown to contacts,
// who warn about its messages (XEP-0384 §7), so a program that only sends
// publishes first.
func (d *Device) Published(ctx context.Context) (bool, error) {
	b, err := d.st.MechanismState(ctx, trust.OMEMO, namePublished)
	return b != nil, err
}

// checkID draws a new device id when the account's device lists already
// name this one and no session exists.
func (d *Device) checkID(ctx context.Context) error {
	for range 3 {
		taken := false
		for _, g := range d.gens {
			listed, err := d.fetchList(ctx, d.self(), g)
			if err != nil {
				return err
			}
			id := d.DeviceID()
			taken = taken || slices.ContainsFunc(listed, func(l ListedDevice) bool { return l.ID == id })
		}
		if !taken {
			return nil
		}
		sessions, err := d.st.MechanismStates(ctx, trust.OMEMO, "session/")
		if err != nil {
			return err
		}
		if len(sessions) > 0 {
			d.log().Warn("the OMEMO device id is on the device list already, but sessions exist: keeping it")
			return nil
		}
		d.log().Info("the OMEMO device id is taken on the account's device list: drawing another")
		if err := d.op(ctx, func() (bool, error) {
			acc, err := d.stage.LoadAccount()
			if err != nil || acc == nil {
				return false, fmt.Errorf("client: OMEMO account: %v", err)
			}
			defer acc.Identity.Wipe()
			if acc.DeviceID, err = engine.GenerateDeviceID(d.cfg.Rand); err != nil {
				return false, err
			}
			if err := d.stage.StoreAccount(acc); err != nil {
				return false, err
			}
			if err := d.stage.commit(); err != nil {
				return false, err
			}
			return false, d.load()
		}); err != nil {
			return err
		}
	}
	return errors.New("client: no free OMEMO device id found")
}

// publishBundle publishes generation g's bundle.
func (d *Device) publishBundle(ctx context.Context, g engine.Generation) error {
	d.amu.Lock()
	defer d.amu.Unlock()
	if d.Off() {
		return ErrOff
	}
	var b *engine.Bundle
	if err := d.op(ctx, func() (bool, error) {
		var err error
		b, err = d.mgrs[g].Bundle()
		return false, err
	}); err != nil {
		return err
	}
	h, err := d.host()
	if err != nil {
		return err
	}
	node, item := BundleItem(g, b.DeviceID)
	req := bundlesRequired03
	if g == engine.V2 {
		req = bundlesRequired2
	}
	if err := h.Publish(ctx, node, item, bundleElement(b), req, nil); err != nil {
		return fmt.Errorf("client: publishing the %v bundle: %w", g, err)
	}
	return nil
}

// announce merges this device into the account's device list of
// generation g and publishes it.
func (d *Device) announce(ctx context.Context, g engine.Generation) error {
	d.amu.Lock()
	defer d.amu.Unlock()
	if d.Off() {
		return ErrOff
	}
	h, err := d.host()
	if err != nil {
		return err
	}
	self := d.self()
	listed, err := d.fetchList(ctx, self, g)
	if err != nil {
		return err
	}
	id := d.DeviceID()
	me := ListedDevice{ID: id}
	if g == engine.V2 && d.cfg.Label != "" {
		var sig []byte
		if err := d.op(ctx, func() (bool, error) {
			var err error
			sig, err = d.mgrs[g].SignLabel(d.cfg.Label)
			return false, err
		}); err != nil {
			return err
		}
		me.Label, me.LabelSig = d.cfg.Label, sig
	}
	i := slices.IndexFunc(listed, func(l ListedDevice) bool { return l.ID == id })
	if i >= 0 && listed[i].Label == me.Label {
		return d.recordList(ctx, g, listed)
	}
	if i >= 0 {
		listed[i] = me
	} else {
		listed = append(listed, me)
	}
	if err := h.Publish(ctx, DevicesNode(g), "current", deviceListElement(g, listed), devicesRequired, nil); err != nil {
		return fmt.Errorf("client: publishing the %v device list: %w", g, err)
	}
	return d.recordList(ctx, g, listed)
}

// recordList records our own device list as read or published.
func (d *Device) recordList(ctx context.Context, g engine.Generation, listed []ListedDevice) error {
	_, err := d.updateSet(ctx, d.self().String(), func(s *deviceSet) bool {
		s.fetched[g] = d.now()
		return s.setList(g, listed)
	})
	return err
}

// republishBundle publishes generation g's bundle again in the
// background (a pre-key was consumed); several requests while one runs
// make one more.
func (d *Device) republishBundle(g engine.Generation) {
	d.pmu.Lock()
	if d.republish[g] {
		d.pmu.Unlock()
		return
	}
	d.republish[g] = true
	d.pmu.Unlock()
	d.inBackground("republishing the OMEMO "+g.String()+" bundle failed", func(ctx context.Context) error {
		d.pmu.Lock()
		d.republish[g] = false
		d.pmu.Unlock()
		return d.publishBundle(ctx, g)
	})
}

// RemoveDevice takes another device of the account off its device lists
// and deletes its bundles, so that contacts stop encrypting to it: a
// device that was lost or reinstalled (its old id is stale). This
// device's own id is refused.
func (d *Device) RemoveDevice(ctx context.Context, id uint32) error {
	if id == d.DeviceID() {
		return ErrOwnDevice
	}
	h, err := d.host()
	if err != nil {
		return err
	}
	found := false
	for _, g := range d.gens {
		listed, err := d.unlist(ctx, h, g, id)
		if err != nil {
			return err
		}
		found = found || listed
	}
	if !found {
		return fmt.Errorf("%w: %d", ErrUnknownDevice, id)
	}
	return nil
}

// retract deletes one item of one of our PEP nodes (XEP-0060 §7.2).
func retract(ctx context.Context, h client.Host, node, item string) error {
	iq := xmltree.New(client.NSClient, "iq", "type", "set")
	r := xmltree.New(client.NSPubSub, "retract", "node", node, "notify", "true")
	r.Append(xmltree.New(client.NSPubSub, "item", "id", item))
	iq.Append(xmltree.New(client.NSPubSub, "pubsub").Append(r))
	_, err := h.IQ(ctx, iq)
	return err
}
