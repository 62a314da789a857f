package omemo

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

var generations = []Generation{V03, V2}

func TestTwoPartyConversation(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			alice := newDevice(t, g, "alice@example.org", "alice"+g.String())
			bob := newDevice(t, g, "bob@example.org", "bob"+g.String())
			msg, err := alice.m.Encrypt([]byte("hello bob"), []Recipient{bob.recipient(t)})
			if err != nil {
				t.Fatal(err)
			}
			if !keyFor(t, msg, bob.addr).PreKey {
				t.Fatal("first message is not a key exchange")
			}
			d, err := bob.m.Decrypt(incoming(t, msg, alice.addr, bob.addr))
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Plaintext) != "hello bob" || !d.NewSession || !d.HeartbeatDue || !d.BundleChanged {
				t.Fatalf("got %+v", d)
			}
			if !bytes.Equal(d.IdentityKey, alice.m.IdentityKey()) {
				t.Fatal("wrong identity key reported")
			}
			// Alice keeps sending key exchanges until Bob answers.
			msg, err = alice.m.Encrypt([]byte("still there?"), []Recipient{{Address: bob.addr}})
			if err != nil {
				t.Fatal(err)
			}
			if !keyFor(t, msg, bob.addr).PreKey {
				t.Fatal("second message before an answer is not a key exchange")
			}
			if d, err = bob.m.Decrypt(incoming(t, msg, alice.addr, bob.addr)); err != nil || d.NewSession || string(d.Plaintext) != "still there?" {
				t.Fatalf("second message: %+v %v", d, err)
			}
			for i := range 10 {
				from, to := bob, alice
				if i%3 == 2 {
					from, to = alice, bob
				}
				text := fmt.Sprintf("message %d", i)
				msg, err := from.m.Encrypt([]byte(text), []Recipient{{Address: to.addr}})
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 && keyFor(t, msg, to.addr).PreKey {
					t.Fatalf("message %d still a key exchange", i)
				}
				d, err := to.m.Decrypt(incoming(t, msg, from.addr, to.addr))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if string(d.Plaintext) != text {
					t.Fatalf("message %d: got %q", i, d.Plaintext)
				}
			}
		})
	}
}

func TestOutOfOrderAndReplay(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			alice := newDevice(t, g, "alice@example.org", "a")
			bob := newDevice(t, g, "bob@example.org", "b")
			first, err := alice.m.Encrypt([]byte("0"), []Recipient{bob.recipient(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bob.m.Decrypt(incoming(t, first, alice.addr, bob.addr)); err != nil {
				t.Fatal(err)
			}
			reply, _ := bob.m.Encrypt(nil, []Recipient{{Address: alice.addr}})
			if _, err := alice.m.Decrypt(incoming(t, reply, bob.addr, alice.addr)); err != nil {
				t.Fatal(err)
			}
			var msgs []*Message
			for i := range 6 {
				m, err := alice.m.Encrypt([]byte{byte('a' + i)}, []Recipient{{Address: bob.addr}})
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, m)
			}
			for _, i := range []int{4, 0, 5, 2, 1, 3} {
				d, err := bob.m.Decrypt(incoming(t, msgs[i], alice.addr, bob.addr))
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if d.Plaintext[0] != byte('a'+i) {
					t.Fatalf("message %d: got %q", i, d.Plaintext)
				}
			}
			for _, i := range []int{0, 3, 5} {
				if _, err := bob.m.Decrypt(incoming(t, msgs[i], alice.addr, bob.addr)); !errors.Is(err, ErrDuplicate) {
					t.Fatalf("replay of %d: %v, want ErrDuplicate", i, err)
				}
			}
			// The first (key exchange) message again: no new session, no pre-key consumed.
			before, _ := bob.m.Bundle()
			if _, err := bob.m.Decrypt(incoming(t, first, alice.addr, bob.addr)); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("replayed key exchange: %v, want ErrDuplicate", err)
			}
			after, _ := bob.m.Bundle()
			if len(before.PreKeys) != len(after.PreKeys) {
				t.Fatal("replayed key exchange changed the pre-keys")
			}
		})
	}
}
