package omemo_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/omemopeer"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/omemo"
)

// TestInteropSecondDevice: bob has two Balcony devices (and a third that
// is offline). The second reads through carbons what python-omemo sends
// to the first and what the first sends; the offline one catches up from
// the archive, reading the messages out of order, each an archived key
// exchange with the same pre-key, which is consumed once and deleted when
// the catch-up ends; reading the archive again gives notices, never a
// second session.
func TestInteropSecondDevice(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		bobAcct := srv.AddUser(t, "bob", "")
		desk := connect(t, srv, bobAcct, devOptions{resource: "desk"})
		laptop := connect(t, srv, bobAcct, devOptions{resource: "laptop"})
		phone := connect(t, srv, bobAcct, devOptions{resource: "phone"})
		phoneStore := phone.st
		phoneID := phone.d.DeviceID()
		phone.c.Close()
		alice := startPeer(t, srv, srv.AddUser(t, "alice", ""), "")
		bob := desk.bare.String()
		for _, g := range gens {
			t.Run(g.String(), func(t *testing.T) {
				// python-omemo writes to the desk: the laptop reads the
				// carbon; both (and the offline phone) got key exchanges.
				body := "to the desk, " + g.String()
				s, err := alice.Send(desk.c.JID().String(), peerGen(g), body)
				if err != nil {
					t.Fatal(err)
				}
				want := []uint32{desk.d.DeviceID(), laptop.d.DeviceID(), phoneID}
				slices.Sort(want)
				k := keysFor(s, bob)
				if got := slices.Sorted(mapsKeys(k)); !slices.Equal(got, want) || !k[phoneID] {
					t.Fatalf("alice encrypted for %+v, want key exchanges for %v", s.Keys, want)
				}
				desk.message(t, peerJID(alice), body)
				if m := laptop.message(t, peerJID(alice), body); m.Origin.Carbon != client.CarbonReceived {
					t.Fatalf("the laptop read %+v", m.Origin)
				}
				for range 2 {
					peerNext(t, alice, "empty", nil)
				}

				// The desk answers: alice reads it, the laptop reads the
				// sent carbon (a key exchange of the desk's own).
				body = "from the desk, " + g.String()
				desk.send(t, peerJID(alice), g, body)
				expectPeerMessage(t, alice, desk.d.DeviceID(), g, body, "", false)
				if m := laptop.message(t, desk.bare, body); m.Origin.Carbon != client.CarbonSent || m.To.Bare().String() != alice.Bare {
					t.Fatalf("the laptop read %+v", m)
				}
				// The laptop answers the desk's key exchange; its message
				// reaches the desk as a sent carbon.
				body = "from the laptop, " + g.String()
				laptop.send(t, peerJID(alice), g, body)
				expectPeerMessage(t, alice, laptop.d.DeviceID(), g, body, "", false)
				desk.message(t, desk.bare, body)
				for i := range 3 {
					peerSend(t, alice, bob, g, fmt.Sprintf("while the phone is off, %v %d", g, i))
				}
				for i := range 3 {
					body := fmt.Sprintf("while the phone is off, %v %d", g, i)
					desk.message(t, peerJID(alice), body)
					laptop.message(t, peerJID(alice), body)
				}
				desk.noMessages(t)
				laptop.noMessages(t)
			})
		}

		// The phone comes back and reads the archive: per generation four
		// messages with key exchanges for it (one of them sent to the
		// desk), read in reverse order.
		phone = connect(t, srv, bobAcct, devOptions{resource: "phone", st: phoneStore, noPublish: true})
		if phone.d.DeviceID() != phoneID {
			t.Fatalf("the phone's id changed: %d, was %d", phone.d.DeviceID(), phoneID)
		}
		ctx := ctxT(t)
		page, err := phone.c.QueryArchive(ctx, client.ArchiveQuery{With: peerJID(alice), Max: 100})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []client.ArchivedMessage
		for _, m := range page.Messages {
			for _, g := range gens {
				// Not the empty messages: those without a payload.
				if enc := m.Message.Child(g.Namespace(), "encrypted"); enc != nil && enc.Child(g.Namespace(), "payload") != nil {
					msgs = append(msgs, m)
				}
			}
		}
		read := func() map[string]*client.MessageEvent {
			got := map[string]*client.MessageEvent{}
			for _, ev := range phone.c.NewArchiveReader(1).Open(ctx, msgs) {
				if m, ok := ev.(*client.MessageEvent); ok {
					got[m.Body] = m
				} else {
					t.Logf("archive: %s", describe([]client.Event{ev}))
				}
			}
			return got
		}
		slices.Reverse(msgs)
		got := read()
		for _, g := range gens {
			for _, body := range []string{"to the desk, " + g.String(), "while the phone is off, " + g.String() + " 0",
				"while the phone is off, " + g.String() + " 2"} {
				m := got[body]
				if m == nil || !m.Origin.Archived || m.Security.Mechanism != g.Namespace() || m.Security.Trust != "blind" {
					t.Errorf("the phone read %q from the archive as %+v", body, m)
				}
			}
			// Its key exchange is answered with one empty message.
			if e := peerNext(t, alice, "empty", func(e omemopeer.Event) bool { return e.SID == phoneID && e.Gen == peerGen(g) }); e.PreKey {
				t.Fatalf("alice got %+v", e)
			}
		}
		if err := phone.d.FinishCatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		// Read again: every key was used (and the pre-key is gone), so the
		// archive gives notices.
		for _, ev := range phone.c.NewArchiveReader(1).Open(ctx, msgs) {
			n, ok := ev.(*client.NoticeEvent)
			if !ok || n.Reason != eme.ReasonNoKey {
				t.Fatalf("reading the archive again: %s", describe([]client.Event{ev}))
			}
		}
		// The phone is in the conversation now.
		for _, g := range gens {
			peerSend(t, alice, bob, g, "hello phone, "+g.String())
			phone.message(t, peerJID(alice), "hello phone, "+g.String())
		}
		peerQuiet(t, alice)
	})
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestInteropDevicesChange: devices come and go mid-conversation. A new
// python-omemo device of alice is encrypted to from the next message on
// (reported as a new device); a new Balcony device of bob is encrypted to
// by python-omemo; a message for bob's account that has no key for a
// device gives that device a notice; a session Balcony lost is rebuilt
// with a notice and the conversation goes on.
func TestInteropDevicesChange(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		aliceAcct, bobAcct := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
		// Lists are read before every message: no presence subscription
		// here, so no notifications.
		bob := connect(t, srv, bobAcct, devOptions{resource: "desk", cfg: omemo.Config{Refresh: time.Nanosecond}})
		alice := startPeer(t, srv, aliceAcct, "phone")
		for _, g := range gens {
			t.Run(g.String(), func(t *testing.T) {
				peerSend(t, alice, bob.bare.String(), g, "hello, "+g.String())
				bob.message(t, peerJID(alice), "hello, "+g.String())
				peerNext(t, alice, "empty", nil)
				bob.send(t, peerJID(alice), g, "hello alice, "+g.String())
				expectPeerMessage(t, alice, bob.d.DeviceID(), g, "hello alice, "+g.String(), "", false)
			})
		}

		// A second device of alice.
		tablet := startPeer(t, srv, aliceAcct, "tablet")
		tabletFpr := peerFingerprint(t, tablet)
		for _, g := range gens {
			bob.send(t, peerJID(alice), g, "to both of alice's devices, "+g.String())
			if g == gens[0] {
				// Reported once, when its key is first seen.
				ev := next(t, bob, func(e *client.SecurityEvent) bool {
					return e.Kind == omemo.KindNewDevice && e.Fingerprint == tabletFpr
				})
				if ev.Message.ID != eme.MsgOMEMONewDevice || ev.Hint.Action != eme.ActionVerify {
					t.Fatalf("bob's event about alice's tablet: %+v", ev)
				}
			}
			// Sent to the bare JID: each device gets it directly.
			expectPeerMessage(t, alice, bob.d.DeviceID(), g, "to both of alice's devices, "+g.String(), "*", false)
			expectPeerMessage(t, tablet, bob.d.DeviceID(), g, "to both of alice's devices, "+g.String(), "*", true)
		}

		// A second Balcony device of bob: python-omemo encrypts to it.
		laptop := connect(t, srv, bobAcct, devOptions{resource: "laptop"})
		// A third that never announced itself: no key for it.
		stranger := connect(t, srv, bobAcct, devOptions{resource: "stranger", noPublish: true})
		for _, g := range gens {
			body := "to bob's devices, " + g.String()
			s := peerSend(t, tablet, bob.bare.String(), g, body)
			if k := keysFor(s, bob.bare.String()); !k[laptop.d.DeviceID()] || len(k) != 2 {
				t.Fatalf("the tablet encrypted for %+v", s.Keys)
			}
			bob.message(t, peerJID(alice), body)
			laptop.message(t, peerJID(alice), body)
			n := stranger.notice(t, peerJID(alice))
			if n.Reason != eme.ReasonNoKey || n.Namespace != g.Namespace() {
				t.Fatalf("the stranger's notice: %+v", n)
			}
		}

		// Bob's desk loses its session with alice's phone: her next message
		// cannot be read; a new session is started, with a notice, and her
		// message after that reads.
		for _, g := range gens {
			if err := bob.d.DropSession(g, engine.Address{JID: alice.Bare, DeviceID: alice.DeviceID}); err != nil {
				t.Fatal(err)
			}
			peerSend(t, alice, bob.bare.String(), g, "lost, "+g.String())
			n := bob.notice(t, peerJID(alice))
			if n.Reason != eme.ReasonNoSession || !strings.Contains(n.Text, "a new one was started") {
				t.Fatalf("bob's notice: %+v", n)
			}
			laptop.message(t, peerJID(alice), "lost, "+g.String())
			stranger.notice(t, peerJID(alice))
			if e := peerNext(t, alice, "empty", func(e omemopeer.Event) bool { return e.SID == bob.d.DeviceID() }); !e.PreKey {
				t.Fatalf("alice got %+v, want a key exchange", e)
			}
			peerSend(t, alice, bob.bare.String(), g, "again, "+g.String())
			bob.message(t, peerJID(alice), "again, "+g.String())
			laptop.message(t, peerJID(alice), "again, "+g.String())
			stranger.notice(t, peerJID(alice))
		}
		bob.noMessages(t)
		laptop.noMessages(t)
		stranger.noMessages(t)
		peerQuiet(t, alice, tablet)
		if _, err := stranger.c.Send(ctxT(t), &client.Outgoing{To: peerJID(alice), Body: "x", Type: "groupchat"}, engine.V2.Namespace()); !errors.Is(err, omemo.ErrGroupChat) {
			t.Fatalf("a group chat message: %v", err)
		}
	})
}
