package omemo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// ErrOff is returned by Seal, Publish and ResetSession while OMEMO is
// turned off on this device (TurnOff).
var ErrOff = errors.New("client: OMEMO is turned off on this device")

// Off reports whether OMEMO is turned off on this device.
func (d *Device) Off() bool { return d.off.Load() }

// TurnOff retires this device from OMEMO: it stops announcing itself,
// takes its id off the account's device lists of both generations and
// deletes its bundles, so that contacts' clients (and the account's other
// devices) stop encrypting to it when they next read the list. While off,
// Seal, Publish and ResetSession return ErrOff, no empty message (session
// completion, heartbeat) is sent, Usable is false, and a session a
// contact lost is not rebuilt; when a notification shows the device on
// its own list again (another client merged a list it read before), it
// takes itself off again. Messages that still arrive encrypted to this
// device are read while its keys are kept.
//
// With forget, the device's keys and sessions are erased as well (its
// trust decisions about contacts' keys stay): what was encrypted to it
// can no longer be read, and TurnOn later announces a new device, with a
// new id and identity key, that contacts see as new.
//
// The choice is kept in the store before anything goes to the server, so
// a device that fails half way (the connection lost) stays off; calling
// TurnOff again (or Withdraw) finishes taking it off the lists.
func (d *Device) TurnOff(ctx context.Context, forget bool) error {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	h, err := d.host()
	if err != nil {
		return err
	}
	// An announcement under way ends first; none starts after.
	d.amu.Lock()
	defer d.amu.Unlock()
	if err := d.st.UpdateMechanismState(ctx, trust.OMEMO, map[string][]byte{nameOff: {1}}, nil); err != nil {
		return err
	}
	d.off.Store(true)
	if err := d.unlistAll(ctx, h); err != nil {
		return err
	}
	if forget {
		return d.forget(ctx)
	}
	return nil
}

// TurnOn undoes TurnOff and announces the device (Publish): the same
// device with its keys, or a new one when TurnOff forgot them. A failed
// announcement leaves OMEMO on; the next Publish announces it.
func (d *Device) TurnOn(ctx context.Context) error {
	d.tmu.Lock()
	defer d.tmu.Unlock()
	d.amu.Lock()
	err := d.st.UpdateMechanismState(ctx, trust.OMEMO, nil, []string{nameOff})
	if err == nil {
		d.off.Store(false)
	}
	d.amu.Unlock()
	if err != nil {
		return err
	}
	return d.Publish(ctx)
}

// Withdraw takes a device that is turned off off the account's device
// lists again, as TurnOff does: for a listener that connects while off
// (a TurnOff that failed half way, or another client that put the id back
// meanwhile). It does nothing while OMEMO is on.
func (d *Device) Withdraw(ctx context.Context) error {
	h, err := d.host()
	if err != nil {
		return err
	}
	d.amu.Lock()
	defer d.amu.Unlock()
	if !d.Off() {
		return nil
	}
	return d.unlistAll(ctx, h)
}

// unlistAll takes this device off the lists of every generation. The
// caller holds d.amu.
func (d *Device) unlistAll(ctx context.Context, h client.Host) error {
	id := d.DeviceID()
	for _, g := range d.gens {
		if _, err := d.unlist(ctx, h, g, id); err != nil {
			return fmt.Errorf("client: OMEMO is off here, but taking the device off the %v device list failed: %w", g, err)
		}
	}
	return nil
}

// forget erases the device's keys and sessions, keeping what is known
// of accounts' devices (less this device's own record) and the choice to
// stay off, and makes a new device id and identity key, unannounced. The
// caller holds d.amu.
func (d *Device) forget(ctx context.Context) error {
	old := d.DeviceID()
	if err := d.eraseKeys(ctx); err != nil {
		return err
	}
	// The old id is nobody's now: not listed as a device of the account.
	if _, err := d.updateSet(ctx, d.self().String(), func(s *deviceSet) bool {
		i := slices.IndexFunc(s.Devices, func(r deviceRecord) bool { return r.ID == old })
		if i < 0 {
			return false
		}
		s.Devices = slices.Delete(s.Devices, i, i+1)
		return true
	}); err != nil {
		d.log().Info("forgetting the record of the old OMEMO device failed", "err", err)
	}
	return nil
}

// eraseKeys deletes the engine's state but the device records and the
// choice to stay off, and loads new managers (a new device).
func (d *Device) eraseKeys(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Under d.mu no engine operation runs: the names listed are all
	// there are.
	all, err := d.st.MechanismStates(ctx, trust.OMEMO, "")
	if err != nil {
		return err
	}
	var drop []string
	for name, v := range all {
		if name != nameOff && !strings.HasPrefix(name, nameDevicesPrefix) {
			drop = append(drop, name)
		}
		clear(v) // the identity key and sessions among them
	}
	slices.Sort(drop)
	for _, m := range d.mgrs {
		m.Close()
	}
	d.mgrs = nil
	d.stage.discard()
	if err := d.st.UpdateMechanismState(ctx, trust.OMEMO, nil, drop); err != nil {
		// The managers are closed: load them again from what is stored.
		return errors.Join(err, d.load())
	}
	return d.load()
}

// unlist takes device id off the account's device list of generation g
// and deletes its bundle; found is false when the list did not name it.
func (d *Device) unlist(ctx context.Context, h client.Host, g engine.Generation, id uint32) (found bool, err error) {
	self := d.self()
	listed, err := d.fetchList(ctx, self, g)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(listed, func(l ListedDevice) bool { return l.ID == id })
	if i >= 0 {
		listed = slices.Delete(listed, i, i+1)
		if err := h.Publish(ctx, DevicesNode(g), "current", deviceListElement(g, listed), devicesRequired, nil); err != nil {
			return true, fmt.Errorf("client: publishing the %v device list: %w", g, err)
		}
	}
	if err := d.recordList(ctx, g, listed); err != nil {
		return i >= 0, err
	}
	// The bundle is only clutter now; a server that refuses to delete it
	// changes nothing for contacts, who follow the list.
	node, item := BundleItem(g, id)
	if g == engine.V2 {
		err = retract(ctx, h, node, item)
	} else {
		err = h.DeleteNode(ctx, node)
	}
	if err != nil && !isCondition(err, "item-not-found") {
		d.log().Info("deleting the bundle of an OMEMO device taken off the list failed", "device", id, "err", err)
	}
	return i >= 0, nil
}
