package omemo_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// TestConversation: two Balcony accounts talk with each generation
// through a real server: the first message builds the session, events
// about the other's device come before its first message, trust is blind
// until verified, and after a verification a new device of the contact
// is left out (and told so) until it is verified too; a second device of
// the account reads what the first sends and receives through carbons.
func TestConversation(t *testing.T) {
	srv := servertest.StartProsody(t)
	aliceAcct := srv.AddUser(t, "alice", "")
	alice := connect(t, srv, aliceAcct, devOptions{resource: "one"})
	bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{})
	for _, g := range gens {
		t.Run(g.String(), func(t *testing.T) {
			alice.send(t, bob.bare, g, "hello bob, "+g.String()+" ✓ <&>")
			if g == gens[0] {
				ev := next(t, bob, func(e *client.SecurityEvent) bool { return e.Kind == omemo.KindNewDevice })
				if ev.Fingerprint != trustFpr(alice.d.Fingerprint()) || !ev.Peer.Bare().Equal(alice.bare) || ev.Message.ID != eme.MsgOMEMODeviceSeen {
					t.Fatalf("bob's event about alice's device: %+v", ev)
				}
			}
			m := bob.message(t, alice.bare, "hello bob, "+g.String()+" ✓ <&>")
			sec := m.Security
			if sec.Mechanism != g.Namespace() || sec.Verified || !sec.Authenticated || sec.Trust != "blind" ||
				sec.Fingerprint != trustFpr(alice.d.Fingerprint()) || len(sec.Warnings) != 0 || sec.Name != mechName(g) {
				t.Fatalf("security %+v", sec)
			}
			for round, run := range []int{1, 3, 2, 1} {
				from, to := bob, alice
				if round%2 == 1 {
					from, to = alice, bob
				}
				for i := range run {
					body := fmt.Sprintf("%v round %d message %d", g, round, i)
					from.send(t, to.bare, g, body)
					to.message(t, from.bare, body)
				}
			}
			alice.noMessages(t)
			bob.noMessages(t)
		})
	}

	// Bob verifies alice's device: her messages are verified now.
	ctx := ctxT(t)
	if err := bob.d.SetTrust(ctx, alice.bare, alice.d.Fingerprint(), trust.Verified); err != nil {
		t.Fatal(err)
	}
	alice.send(t, bob.bare, engine.V2, "verified now")
	if m := bob.message(t, alice.bare, "verified now"); !m.Security.Verified || m.Security.State() != "verified" {
		t.Fatalf("after verification: %+v", m.Security)
	}

	// Alice gets a second device. Bob verified her first one, so the new
	// one is undecided: bob's messages leave it out and say so.
	laptop := connect(t, srv, aliceAcct, devOptions{resource: "laptop"})
	if _, err := bob.d.Devices(ctx, alice.bare); err != nil {
		t.Fatal(err)
	}
	ev := next(t, bob, func(e *client.SecurityEvent) bool {
		return e.Kind == omemo.KindNewDevice && e.Fingerprint == trustFpr(laptop.d.Fingerprint())
	})
	if ev.Message.ID != eme.MsgOMEMONewDevice || ev.Hint.Action != eme.ActionVerify {
		t.Fatalf("bob's event about alice's laptop: %+v", ev)
	}
	keys, err := bob.st.ListKeys(ctx, alice.bare.String(), trust.OMEMO)
	if err != nil || len(keys) != 2 || keys[1].Trust != trust.Undecided || !keys[1].Announced {
		t.Fatalf("bob's keys of alice: %+v, %v", keys, err)
	}
	bob.send(t, alice.c.JID(), engine.V2, "not for the laptop")
	left := next(t, bob, func(e *client.SecurityEvent) bool { return e.Kind == omemo.KindNotEncryptedTo })
	if left.Fingerprint != trustFpr(laptop.d.Fingerprint()) {
		t.Fatalf("left out %+v", left)
	}
	alice.message(t, bob.bare, "not for the laptop")
	n := laptop.notice(t, bob.bare)
	if n.Reason != eme.ReasonNoKey || n.Origin.Carbon != client.CarbonReceived {
		t.Fatalf("the laptop's notice: %+v", n)
	}

	// Bob verifies the laptop too: both devices read, the laptop through
	// a carbon; and what the laptop sends reaches alice's first device as
	// a sent carbon.
	if err := bob.d.SetTrust(ctx, alice.bare, laptop.d.Fingerprint(), trust.Verified); err != nil {
		t.Fatal(err)
	}
	bob.send(t, alice.c.JID(), engine.V2, "for both")
	alice.message(t, bob.bare, "for both")
	if m := laptop.message(t, bob.bare, "for both"); m.Origin.Carbon != client.CarbonReceived || m.Security.Trust != "blind" {
		t.Fatalf("the laptop read %+v", m)
	}
	laptop.send(t, bob.bare, engine.V2, "from the laptop")
	if m := bob.message(t, alice.bare, "from the laptop"); !m.Security.Verified {
		t.Fatalf("bob read %+v", m.Security)
	}
	m := alice.message(t, alice.bare, "from the laptop")
	if m.Origin.Carbon != client.CarbonSent || m.Security.Trust != "blind" {
		t.Fatalf("alice's first device read her laptop's message as %+v", m)
	}

	// Untrusted: never encrypted to.
	if err := bob.d.SetTrust(ctx, alice.bare, laptop.d.Fingerprint(), trust.Untrusted); err != nil {
		t.Fatal(err)
	}
	if err := bob.d.SetTrust(ctx, alice.bare, alice.d.Fingerprint(), trust.Untrusted); err != nil {
		t.Fatal(err)
	}
	_, err = bob.c.Send(ctx, &client.Outgoing{To: alice.bare, Body: "never"}, engine.V2.Namespace())
	var ue *omemo.UntrustedError
	if !errors.As(err, &ue) || len(ue.Devices) != 2 {
		t.Fatalf("sending to untrusted devices: %v", err)
	}
}

func trustFpr(display string) string {
	f, _ := trust.NormalizeFingerprint(trust.OMEMO, display)
	return f
}
