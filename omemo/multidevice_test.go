package omemo

import (
	"fmt"
	"testing"
)

// TestMultiDevice: Alice has two devices, Bob two. Every message goes to
// all the other party's devices and to the sender's own other device
// (XEP-0384 §5.4), and every device reads every message.
func TestMultiDevice(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			devs := []*device{
				newDevice(t, g, "alice@example.org", "alice1"),
				newDevice(t, g, "alice@example.org", "alice2"),
				newDevice(t, g, "bob@example.org", "bob1"),
				newDevice(t, g, "bob@example.org", "bob2"),
			}
			for round := range 4 {
				for i, from := range devs {
					var rs []Recipient
					for j, to := range devs {
						if j == i {
							continue
						}
						r := Recipient{Address: to.addr}
						if ok, _ := from.m.HasSession(to.addr); !ok {
							r = to.recipient(t)
						}
						rs = append(rs, r)
					}
					text := fmt.Appendf(nil, "round %d from %v", round, from.addr)
					msg, err := from.m.Encrypt(text, rs)
					if err != nil {
						t.Fatal(err)
					}
					if len(msg.Keys) != 3 || msg.SenderDeviceID != from.addr.DeviceID {
						t.Fatalf("%d keys, sender %d", len(msg.Keys), msg.SenderDeviceID)
					}
					for j, to := range devs {
						if j == i {
							continue
						}
						d, err := to.m.Decrypt(incoming(t, msg, from.addr, to.addr))
						if err != nil {
							t.Fatalf("round %d, %v to %v: %v", round, from.addr, to.addr, err)
						}
						if string(d.Plaintext) != string(text) {
							t.Fatalf("got %q", d.Plaintext)
						}
					}
				}
			}
			// Sessions are per (JID, device): one device of Bob deleting its
			// session with Alice's first device does not disturb the rest.
			if err := devs[2].m.DeleteSession(devs[0].addr); err != nil {
				t.Fatal(err)
			}
			msg, err := devs[0].m.Encrypt([]byte("after reset"), []Recipient{{Address: devs[3].addr}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := devs[3].m.Decrypt(incoming(t, msg, devs[0].addr, devs[3].addr)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
