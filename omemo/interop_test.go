package omemo

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/balcony-im/balcony/internal/omemopeer"
)

// Interoperability with python-omemo 1.0 (oldmemo/twomemo 1.0.3) from
// Debian, through internal/omemopeer. Skipped when the packages are
// missing, unless BALCONY_REQUIRE_INTEROP=1.

const (
	pyJID = "python@example.org"
	goJID = "balcony@example.org"
)

func pyGen(g Generation) string {
	if g == V2 {
		return "2"
	}
	return "03"
}

func toPyBundle(b *Bundle) *omemopeer.Bundle {
	pb := &omemopeer.Bundle{DeviceID: b.DeviceID, IdentityKey: b.IdentityKey, SignedPreKey: b.SignedPreKey,
		SignedPreKeyID: b.SignedPreKeyID, Signature: b.SignedPreKeySignature}
	for _, pk := range b.PreKeys {
		pb.PreKeys = append(pb.PreKeys, omemopeer.PreKey{ID: pk.ID, Key: pk.PublicKey})
	}
	return pb
}

func fromPyBundle(g Generation, pb *omemopeer.Bundle) *Bundle {
	b := &Bundle{Generation: g, DeviceID: pb.DeviceID, IdentityKey: pb.IdentityKey, SignedPreKey: pb.SignedPreKey,
		SignedPreKeyID: pb.SignedPreKeyID, SignedPreKeySignature: pb.Signature}
	for _, pk := range pb.PreKeys {
		b.PreKeys = append(b.PreKeys, BundlePreKey{ID: pk.ID, PublicKey: pk.Key})
	}
	return b
}

// interopPair is our device and a python-omemo device.
type interopPair struct {
	t      *testing.T
	g      Generation
	us     *device
	py     *omemopeer.Peer
	pyAddr Address
}

func newInteropPair(t *testing.T, g Generation) *interopPair {
	py := omemopeer.Start(t, pyGen(g), pyJID)
	us := newDevice(t, g, goJID, "interop"+g.String())
	return &interopPair{t: t, g: g, us: us, py: py, pyAddr: Address{JID: pyJID, DeviceID: py.DeviceID}}
}

// send encrypts text (nil: empty) from us to python and returns what
// python gets.
func (p *interopPair) sendToPy(text []byte) *omemopeer.Encrypted {
	p.t.Helper()
	r := Recipient{Address: p.pyAddr}
	if ok, _ := p.us.m.HasSession(p.pyAddr); !ok {
		pb, err := p.py.Bundle()
		if err != nil {
			p.t.Fatal(err)
		}
		r.Bundle = fromPyBundle(p.g, pb)
	}
	var msg *Message
	var err error
	if text == nil {
		msg, err = p.us.m.EncryptEmpty([]Recipient{r})
	} else {
		msg, err = p.us.m.Encrypt(text, []Recipient{r})
	}
	if err != nil {
		p.t.Fatal(err)
	}
	k := keyFor(p.t, msg, p.pyAddr)
	return &omemopeer.Encrypted{Key: k.Data, PreKey: k.PreKey, Payload: msg.Payload, IV: msg.IV}
}

func (p *interopPair) pyDecrypt(e *omemopeer.Encrypted, want []byte) *omemopeer.Decrypted {
	p.t.Helper()
	d, err := p.py.Decrypt(goJID, p.us.addr.DeviceID, e)
	if err != nil {
		p.t.Fatal(err)
	}
	if want == nil {
		if !d.Empty {
			p.t.Fatal("python: empty message not seen as empty")
		}
	} else if !bytes.Equal(d.Plaintext, want) {
		p.t.Fatalf("python decrypted %q, want %q", d.Plaintext, want)
	}
	return d
}

func (p *interopPair) sendToUs(text []byte) *Incoming {
	p.t.Helper()
	var bundle *omemopeer.Bundle
	if ok, _ := p.us.m.HasSession(p.pyAddr); !ok {
		b, err := p.us.m.Bundle()
		if err != nil {
			p.t.Fatal(err)
		}
		bundle = toPyBundle(b)
	}
	e, err := p.py.Encrypt(goJID, p.us.addr.DeviceID, text, bundle)
	if err != nil {
		p.t.Fatal(err)
	}
	return &Incoming{From: p.pyAddr, Key: e.Key, PreKey: e.PreKey, Payload: e.Payload, IV: e.IV}
}

func (p *interopPair) usDecrypt(in *Incoming, want []byte) *Decrypted {
	p.t.Helper()
	d, err := p.us.m.Decrypt(in)
	if err != nil {
		p.t.Fatal(err)
	}
	if want == nil {
		if !d.Empty {
			p.t.Fatal("empty message not seen as empty")
		}
	} else if !bytes.Equal(d.Plaintext, want) {
		p.t.Fatalf("decrypted %q, want %q", d.Plaintext, want)
	}
	return d
}

// conversation runs bursts in both directions, each burst ratcheting.
func (p *interopPair) conversation(rounds int) {
	p.t.Helper()
	for r := range rounds {
		for i := range r%4 + 1 {
			text := fmt.Appendf(nil, "to python, round %d, message %d", r, i)
			e := p.sendToPy(text)
			if e.PreKey {
				p.t.Fatalf("round %d: still a key exchange", r)
			}
			p.pyDecrypt(e, text)
		}
		for i := range (r+1)%3 + 1 {
			text := fmt.Appendf(nil, "from python, round %d, message %d", r, i)
			in := p.sendToUs(text)
			if in.PreKey {
				p.t.Fatalf("round %d: python still sends a key exchange", r)
			}
			p.usDecrypt(in, text)
		}
	}
}

func TestInteropWeStart(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			p := newInteropPair(t, g)
			first := []byte("hello python, this is balcony")
			e := p.sendToPy(first)
			if !e.PreKey {
				t.Fatal("first message is not a key exchange")
			}
			if d := p.pyDecrypt(e, first); !d.NewSession {
				t.Fatal("python built no session")
			}
			// A second message before any answer repeats the key exchange.
			e = p.sendToPy([]byte("second"))
			if !e.PreKey {
				t.Fatal("second message is not a key exchange")
			}
			if d := p.pyDecrypt(e, []byte("second")); d.NewSession {
				t.Fatal("python built a second session from the same key exchange")
			}
			// Python answers with an empty message, as XEP-0384 §7 asks.
			d := p.usDecrypt(p.sendToUs(nil), nil)
			if d.NewSession {
				t.Fatal("an answer built a new session")
			}
			p.conversation(12)
		})
	}
}

func TestInteropPythonStarts(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			p := newInteropPair(t, g)
			first := []byte("hello balcony, this is python-omemo")
			in := p.sendToUs(first)
			if !in.PreKey {
				t.Fatal("python's first message is not a key exchange")
			}
			d := p.usDecrypt(in, first)
			if !d.NewSession || !d.HeartbeatDue || !d.BundleChanged {
				t.Fatalf("first message: %+v", d)
			}
			fp, err := Fingerprint(g, d.IdentityKey)
			if err != nil || len(fp) != 71 {
				t.Fatalf("fingerprint %q %v", fp, err)
			}
			// Another copy (archive) of the key exchange: a duplicate, and
			// no second pre-key consumed.
			before, _ := p.us.m.Bundle()
			if _, err := p.us.m.Decrypt(in); err != ErrDuplicate {
				t.Fatalf("second copy: %v, want ErrDuplicate", err)
			}
			after, _ := p.us.m.Bundle()
			if len(before.PreKeys) != len(after.PreKeys) {
				t.Fatal("second copy consumed a pre-key")
			}
			// Python sends again before our answer: still a key exchange,
			// read through the existing session.
			in = p.sendToUs([]byte("again"))
			if !in.PreKey {
				t.Fatal("python's second message is not a key exchange")
			}
			if d := p.usDecrypt(in, []byte("again")); d.NewSession {
				t.Fatal("second message built a new session")
			}
			p.pyDecrypt(p.sendToPy(nil), nil)
			p.conversation(12)
		})
	}
}

func TestInteropOutOfOrder(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			p := newInteropPair(t, g)
			p.pyDecrypt(p.sendToPy([]byte("start")), []byte("start"))
			p.usDecrypt(p.sendToUs([]byte("ack")), []byte("ack"))
			order := []int{3, 0, 5, 1, 4, 2}
			var toPy []*omemopeer.Encrypted
			for i := range order {
				toPy = append(toPy, p.sendToPy(fmt.Appendf(nil, "go %d", i)))
			}
			for _, i := range order {
				p.pyDecrypt(toPy[i], fmt.Appendf(nil, "go %d", i))
			}
			// Python's messages across a ratchet turn, delivered shuffled.
			var toUs []*Incoming
			for i := range 3 {
				toUs = append(toUs, p.sendToUs(fmt.Appendf(nil, "py %d", i)))
			}
			p.pyDecrypt(p.sendToPy([]byte("turn")), []byte("turn"))
			for i := 3; i < 6; i++ {
				toUs = append(toUs, p.sendToUs(fmt.Appendf(nil, "py %d", i)))
			}
			for _, i := range order {
				p.usDecrypt(toUs[i], fmt.Appendf(nil, "py %d", i))
			}
			if _, err := p.us.m.Decrypt(toUs[2]); err != ErrDuplicate {
				t.Fatalf("replay: %v, want ErrDuplicate", err)
			}
			p.conversation(3)
		})
	}
}

// TestInteropHeartbeat: a one-way flow from python asks for exactly one
// heartbeat at counter 53, and the heartbeat moves python's ratchet.
func TestInteropHeartbeat(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			p := newInteropPair(t, g)
			p.usDecrypt(p.sendToUs([]byte("start")), []byte("start"))
			p.pyDecrypt(p.sendToPy(nil), nil)
			due := -1
			for i := range 70 {
				text := fmt.Appendf(nil, "one-way %d", i)
				d := p.usDecrypt(p.sendToUs(text), text)
				if d.HeartbeatDue {
					if due >= 0 {
						t.Fatalf("second heartbeat request at %d (first at %d)", i, due)
					}
					due = i
				}
			}
			if due != HeartbeatThreshold {
				t.Fatalf("heartbeat requested at message %d, want %d", due, HeartbeatThreshold)
			}
			p.pyDecrypt(p.sendToPy(nil), nil)
			d := p.usDecrypt(p.sendToUs([]byte("after")), []byte("after"))
			if d.HeartbeatDue {
				t.Fatal("heartbeat requested again after a ratchet turn")
			}
		})
	}
}
