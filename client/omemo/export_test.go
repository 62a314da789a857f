package omemo

import (
	"context"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/omemo"
)

// DropSession forgets the session with a device without telling it, as a
// restored backup or a lost store would.
func (d *Device) DropSession(g engine.Generation, a engine.Address) error {
	return d.op(context.Background(), func() (bool, error) { return false, d.mgrs[g].DeleteSession(a) })
}

// OwnListNotification hands the device a notification of its own device
// list naming listed, and waits for what it starts in the background.
func (d *Device) OwnListNotification(g engine.Generation, listed []ListedDevice) {
	d.onDeviceList(g, &client.PEPEvent{From: d.self(), Node: DevicesNode(g),
		Items: []client.PubSubItem{{ID: "current", Payload: deviceListElement(g, listed)}}})
	d.background.Wait()
}

// FetchBundle reads and checks the bundle of a device.
func (d *Device) FetchBundle(ctx context.Context, g engine.Generation, a engine.Address) (*engine.Bundle, error) {
	return d.fetchBundle(ctx, a, g)
}

// PublishList publishes the account's device list of generation g as
// listed, as another client of the account would.
func (d *Device) PublishList(ctx context.Context, g engine.Generation, listed []ListedDevice) error {
	h, err := d.host()
	if err != nil {
		return err
	}
	return h.Publish(ctx, DevicesNode(g), "current", deviceListElement(g, listed), devicesRequired, nil)
}

// WaitBackground waits for what the device started in the background
// (bundle republications, announcements).
func (d *Device) WaitBackground() { d.background.Wait() }
