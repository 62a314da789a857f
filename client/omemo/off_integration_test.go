package omemo_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/omemo"
)

// TestTurnOff: a device of alice's turns OMEMO off. Its id leaves both
// device lists and its bundles are deleted, so bob's next messages are
// encrypted to her other device only (the device turned off gets a
// notice); it refuses to encrypt or announce itself, a notification of
// its own list does not bring it back, and it stays off across a
// restart. Turned on again it is the same device; turned off with
// forget and on again, it is a new one.
func TestTurnOff(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		aliceAcct := srv.AddUser(t, "alice", "")
		alice := connect(t, srv, aliceAcct, devOptions{resource: "one"})
		two := connect(t, srv, aliceAcct, devOptions{resource: "two"})
		// Bob reads alice's lists before every message.
		bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{cfg: omemo.Config{Refresh: time.Nanosecond}})
		ctx := ctxT(t)
		exchange := func(body string, twoReads bool) {
			t.Helper()
			for _, g := range gens {
				bob.send(t, alice.bare, g, body+", "+g.String())
				alice.message(t, bob.bare, body+", "+g.String())
				if twoReads {
					two.message(t, bob.bare, body+", "+g.String())
				} else if n := two.notice(t, bob.bare); n.Reason != eme.ReasonNoKey {
					t.Fatalf("the device turned off: %+v", n)
				}
			}
		}
		exchange("before", true)

		twoID, twoFpr := two.d.DeviceID(), two.d.Fingerprint()
		if err := two.d.TurnOff(ctx, false); err != nil {
			t.Fatal(err)
		}
		if !two.d.Off() {
			t.Fatal("Off is false after TurnOff")
		}
		listed(ctx, t, bob, alice.bare, alice.d.DeviceID(), twoID)
		for _, g := range gens {
			if b, err := bob.d.FetchBundle(ctx, g, engine.Address{JID: alice.bare.String(), DeviceID: twoID}); err == nil {
				t.Fatalf("the %v bundle of the device turned off is still there: %+v", g, b)
			}
		}
		exchange("after", false)

		// It neither encrypts nor announces itself.
		if _, err := two.c.Send(ctx, &client.Outgoing{To: bob.bare, Body: "no"}, engine.V2.Namespace()); !errors.Is(err, omemo.ErrOff) {
			t.Fatalf("sending with OMEMO turned off: %v", err)
		}
		if err := two.d.Publish(ctx); !errors.Is(err, omemo.ErrOff) {
			t.Fatalf("Publish with OMEMO turned off: %v", err)
		}
		if two.d.Mechanism(engine.V2).Usable(ctx, bob.bare) {
			t.Fatal("usable with OMEMO turned off")
		}
		// A device that finds itself missing from its own list announces
		// itself again (XEP-0384 §5.3.1), unless it was turned off.
		for _, g := range gens {
			two.d.OwnListNotification(g, []omemo.ListedDevice{{ID: alice.d.DeviceID()}})
		}
		listed(ctx, t, bob, alice.bare, alice.d.DeviceID(), twoID)
		// Another client of the account merges a list it read before:
		// the device takes itself off again when it is notified.
		both := []omemo.ListedDevice{{ID: alice.d.DeviceID()}, {ID: twoID}}
		for _, g := range gens {
			if err := alice.d.PublishList(ctx, g, both); err != nil {
				t.Fatal(err)
			}
			two.d.OwnListNotification(g, both)
		}
		listed(ctx, t, bob, alice.bare, alice.d.DeviceID(), twoID)
		// Nothing goes out from it: no session reset either.
		if _, err := two.d.ResetSession(ctx, bob.bare, 0); !errors.Is(err, omemo.ErrOff) {
			t.Fatalf("ResetSession with OMEMO turned off: %v", err)
		}
		// The choice is kept.
		if again, err := omemo.New(omemo.Config{Store: two.st}); err != nil || !again.Off() {
			t.Fatalf("after a restart: off %v, %v", again != nil && again.Off(), err)
		}

		// On again: the same device.
		if err := two.d.TurnOn(ctx); err != nil {
			t.Fatal(err)
		}
		if two.d.DeviceID() != twoID || two.d.Fingerprint() != twoFpr {
			t.Fatal("turned on again, the device changed")
		}
		listed(ctx, t, bob, alice.bare, twoID, 0)
		exchange("on again", true)

		// Off with its keys forgotten, then on: a new device.
		if err := two.d.TurnOff(ctx, true); err != nil {
			t.Fatal(err)
		}
		if two.d.Fingerprint() == twoFpr {
			t.Fatal("the identity key was not forgotten")
		}
		// Its own account shows this (new) device, off, and not the old
		// id as somebody else's.
		own, err := two.d.KnownDevices(ctx, alice.bare)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range own {
			if i.ID == twoID && two.d.DeviceID() != twoID {
				t.Fatalf("the forgotten device is still known: %+v", own)
			}
		}
		if !slices.ContainsFunc(own, func(i omemo.DeviceInfo) bool {
			return i.This && i.ID == two.d.DeviceID() && !i.Listed && i.Fingerprint == two.d.Fingerprint()
		}) {
			t.Fatalf("this device is not among its account's devices: %+v", own)
		}
		if err := two.d.TurnOn(ctx); err != nil {
			t.Fatal(err)
		}
		newID := two.d.DeviceID()
		listed(ctx, t, bob, alice.bare, newID, twoID)
		listed(ctx, t, bob, alice.bare, alice.d.DeviceID(), 0)
		for _, g := range gens {
			body := "to the new device, " + g.String()
			bob.send(t, alice.bare, g, body)
			if g == gens[0] {
				next(t, bob, func(e *client.SecurityEvent) bool {
					return e.Kind == omemo.KindNewDevice && e.Fingerprint == trustFpr(two.d.Fingerprint())
				})
			}
			alice.message(t, bob.bare, body)
			two.message(t, bob.bare, body)
		}
		for _, v := range []*dev{alice, two, bob} {
			v.noMessages(t)
		}
	})
}

// listed checks, as v reads them now, that account's device lists of
// both generations name the device want and not the device gone (0: no
// check).
func listed(ctx context.Context, t *testing.T, v *dev, account jid.JID, want, gone uint32) {
	t.Helper()
	infos, err := v.d.Devices(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(infos, func(d omemo.DeviceInfo) bool { return d.ID == want })
	if i < 0 || !infos[i].Listed || len(infos[i].Generations) != len(gens) {
		t.Fatalf("device %d is not listed in both generations: %+v", want, infos)
	}
	if gone == 0 || gone == want {
		return
	}
	if i := slices.IndexFunc(infos, func(d omemo.DeviceInfo) bool { return d.ID == gone }); i >= 0 && (infos[i].Listed || len(infos[i].Generations) > 0) {
		t.Fatalf("device %d is still listed: %+v", gone, infos[i])
	}
}

// TestSendReadsEmptyListAgain: bob read alice's device list while her
// only device was off; she turns it on, and bob's next message (his
// copy of the list still fresh, no notification since: no presence
// subscription) reads the list again rather than fail.
func TestSendReadsEmptyListAgain(t *testing.T) {
	srv := servertest.StartProsody(t)
	alice := connect(t, srv, srv.AddUser(t, "alice", ""), devOptions{})
	var later atomic.Int64 // bob's clock runs ahead by this much
	bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{cfg: omemo.Config{
		Now: func() time.Time { return time.Now().Add(time.Duration(later.Load())) }}})
	ctx := ctxT(t)
	if err := alice.d.TurnOff(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		_, err := bob.c.Send(ctx, &client.Outgoing{To: alice.bare, Body: "nobody"}, g.Namespace())
		if !errors.Is(err, omemo.ErrNoDevices) {
			t.Fatalf("%v to a contact without devices: %v", g, err)
		}
		if bob.d.Mechanism(g).Usable(ctx, alice.bare) {
			t.Fatalf("%v usable without devices", g)
		}
	}
	if err := alice.d.TurnOn(ctx); err != nil {
		t.Fatal(err)
	}
	// The automatic choice reads an empty list again after a minute.
	later.Store(int64(2 * time.Minute))
	for _, g := range gens {
		if !bob.d.Mechanism(g).Usable(ctx, alice.bare) {
			t.Fatalf("%v not usable after alice turned OMEMO on", g)
		}
	}
	later.Store(0)
	for _, g := range gens {
		bob.send(t, alice.bare, g, "on again, "+g.String())
		alice.message(t, bob.bare, "on again, "+g.String())
	}
}
