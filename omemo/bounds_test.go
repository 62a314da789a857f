package omemo

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// pair sets up an answered session from a to b and returns both.
func pair(t *testing.T, g Generation, cfgB func(*Config)) (a, b *device) {
	t.Helper()
	a = newDevice(t, g, "a@example.org", "a"+g.String())
	b = newDevice(t, g, "b@example.org", "b"+g.String())
	if cfgB != nil {
		cfg := b.m.cfg
		cfgB(&cfg)
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b.m = m
	}
	msg, err := a.m.Encrypt([]byte("hi"), []Recipient{b.recipient(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.Decrypt(incoming(t, msg, a.addr, b.addr)); err != nil {
		t.Fatal(err)
	}
	msg, err = b.m.EncryptEmpty([]Recipient{{Address: a.addr}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.m.Decrypt(incoming(t, msg, b.addr, a.addr)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func send(t *testing.T, from, to *device, text string) *Incoming {
	t.Helper()
	msg, err := from.m.Encrypt([]byte(text), []Recipient{{Address: to.addr}})
	if err != nil {
		t.Fatal(err)
	}
	return incoming(t, msg, from.addr, to.addr)
}

func sessionBytes(t *testing.T, d *device, peer Address) []byte {
	t.Helper()
	b, err := d.store.LoadSession(d.m.cfg.Generation, peer)
	if err != nil || b == nil {
		t.Fatalf("no session: %v", err)
	}
	return b
}

func TestMaxSkipPerMessage(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			a, b := pair(t, g, func(c *Config) { c.MaxSkip = 10 })
			var msgs []*Incoming
			for range 12 {
				msgs = append(msgs, send(t, a, b, "x"))
			}
			before := sessionBytes(t, b, a.addr)
			if _, err := b.m.Decrypt(msgs[11]); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("gap of 11 with MaxSkip 10: %v", err)
			}
			if !bytes.Equal(before, sessionBytes(t, b, a.addr)) {
				t.Fatal("a rejected message changed the session")
			}
			if _, err := b.m.Decrypt(msgs[10]); err != nil {
				t.Fatalf("gap of 10: %v", err)
			}
			for _, i := range []int{0, 9, 11} {
				if _, err := b.m.Decrypt(msgs[i]); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
		})
	}
}

func TestSkippedKeysFIFO(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			a, b := pair(t, g, func(c *Config) { c.MaxSkippedKeys = 5 })
			var msgs []*Incoming
			for i := range 9 {
				msgs = append(msgs, send(t, a, b, string(rune('0'+i))))
			}
			if _, err := b.m.Decrypt(msgs[8]); err != nil {
				t.Fatal(err)
			}
			s, _ := unmarshalSession(sessionBytes(t, b, a.addr))
			if len(s.skipped) != 5 {
				t.Fatalf("%d skipped keys stored, want 5", len(s.skipped))
			}
			// 0..2 were dropped: undecryptable, and not reported as duplicates.
			for i := range 3 {
				if _, err := b.m.Decrypt(msgs[i]); !errors.Is(err, ErrInvalidMessage) {
					t.Fatalf("dropped message %d: %v, want ErrInvalidMessage", i, err)
				}
			}
			for i := 3; i < 8; i++ {
				if d, err := b.m.Decrypt(msgs[i]); err != nil || string(d.Plaintext) != string(rune('0'+i)) {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if _, err := b.m.Decrypt(msgs[5]); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}

func TestTamperingChangesNothing(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			a, b := pair(t, g, nil)
			in := send(t, a, b, "genuine")
			before := sessionBytes(t, b, a.addr)
			for i := range len(in.Key) {
				bad := *in
				bad.Key = bytes.Clone(in.Key)
				bad.Key[i] ^= 0x40
				if _, err := b.m.Decrypt(&bad); err == nil {
					t.Fatalf("flipped key byte %d accepted", i)
				}
			}
			bad := *in
			bad.Payload = bytes.Clone(in.Payload)
			bad.Payload[0] ^= 1
			if _, err := b.m.Decrypt(&bad); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("tampered payload: %v", err)
			}
			if !bytes.Equal(before, sessionBytes(t, b, a.addr)) {
				t.Fatal("rejected messages changed the session")
			}
			if d, err := b.m.Decrypt(in); err != nil || string(d.Plaintext) != "genuine" {
				t.Fatalf("genuine message after tampered copies: %v", err)
			}
		})
	}
}

func TestPreKeyConsumptionAndRefill(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			bob := newDevice(t, g, "bob@example.org", "bob")
			b0, _ := bob.m.Bundle()
			if len(b0.PreKeys) != DefaultPreKeys {
				t.Fatalf("%d pre-keys, want %d", len(b0.PreKeys), DefaultPreKeys)
			}
			ids := map[uint32]bool{}
			for _, pk := range b0.PreKeys {
				ids[pk.ID] = true
			}
			for i := range DefaultPreKeys - DefaultPreKeyRefill + 1 {
				alice := newDevice(t, g, "alice@example.org", "alice"+string(rune('a'+i)))
				b, _ := bob.m.Bundle()
				msg, err := alice.m.Encrypt([]byte("hi"), []Recipient{{Address: bob.addr, Bundle: b}})
				if err != nil {
					t.Fatal(err)
				}
				d, err := bob.m.Decrypt(incoming(t, msg, alice.addr, bob.addr))
				if err != nil || !d.BundleChanged {
					t.Fatalf("%+v %v", d, err)
				}
				after, _ := bob.m.Bundle()
				want := DefaultPreKeys - i - 1
				if want < DefaultPreKeyRefill {
					want = DefaultPreKeys
				}
				if len(after.PreKeys) != want {
					t.Fatalf("after %d exchanges: %d pre-keys, want %d", i+1, len(after.PreKeys), want)
				}
				// The consumed pre-key is gone for good.
				if _, err := bob.m.Decrypt(incoming(t, msg, Address{JID: "other@example.org", DeviceID: 5}, bob.addr)); !errors.Is(err, ErrUnknownPreKey) {
					t.Fatalf("reused pre-key: %v", err)
				}
			}
			final, _ := bob.m.Bundle()
			fresh := 0
			for _, pk := range final.PreKeys {
				if !ids[pk.ID] {
					fresh++
				}
			}
			if fresh != DefaultPreKeys-DefaultPreKeyRefill+1 {
				t.Fatalf("%d new pre-key ids after refill", fresh)
			}
		})
	}
}

// TestArchiveCatchUp: during catch-up a consumed pre-key is kept (marked
// used, out of the bundle) so a second exchange racing for it still
// works, until FinishCatchUp.
func TestArchiveCatchUp(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			bob := newDevice(t, g, "bob@example.org", "bob")
			b, _ := bob.m.Bundle()
			b.PreKeys = b.PreKeys[:1] // both senders must pick the same pre-key
			var ins []*Incoming
			for _, name := range []string{"alice", "carol"} {
				d := newDevice(t, g, name+"@example.org", name)
				msg, err := d.m.Encrypt([]byte(name), []Recipient{{Address: bob.addr, Bundle: b}})
				if err != nil {
					t.Fatal(err)
				}
				in := incoming(t, msg, d.addr, bob.addr)
				in.Archived = true
				ins = append(ins, in)
			}
			for i, in := range ins {
				if _, err := bob.m.Decrypt(in); err != nil {
					t.Fatalf("exchange %d: %v", i, err)
				}
			}
			after, _ := bob.m.Bundle()
			for _, pk := range after.PreKeys {
				if pk.ID == b.PreKeys[0].ID {
					t.Fatal("used pre-key still published")
				}
			}
			if done, err := bob.m.FinishCatchUp(); err != nil || !done {
				t.Fatalf("FinishCatchUp: %v %v", done, err)
			}
			dave := newDevice(t, g, "dave@example.org", "dave")
			msg, _ := dave.m.Encrypt([]byte("late"), []Recipient{{Address: bob.addr, Bundle: b}})
			if _, err := bob.m.Decrypt(incoming(t, msg, dave.addr, bob.addr)); !errors.Is(err, ErrUnknownPreKey) {
				t.Fatalf("after catch-up: %v, want ErrUnknownPreKey", err)
			}
		})
	}
}

func TestSignedPreKeyRotation(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			bob := newDevice(t, g, "bob@example.org", "bob")
			old, _ := bob.m.Bundle()
			alice := newDevice(t, g, "alice@example.org", "alice")
			delayed, err := alice.m.Encrypt([]byte("delayed"), []Recipient{{Address: bob.addr, Bundle: old}})
			if err != nil {
				t.Fatal(err)
			}
			bob.clock.t = bob.clock.t.Add(DefaultSignedPreKeyRotation)
			if changed, err := bob.m.Maintain(); err != nil || !changed {
				t.Fatalf("Maintain after a period: %v %v", changed, err)
			}
			cur, _ := bob.m.Bundle()
			if cur.SignedPreKeyID == old.SignedPreKeyID || bytes.Equal(cur.SignedPreKey, old.SignedPreKey) {
				t.Fatal("signed pre-key not rotated")
			}
			if _, err := cur.check(g); err != nil {
				t.Fatal(err)
			}
			if d, err := bob.m.Decrypt(incoming(t, delayed, alice.addr, bob.addr)); err != nil || string(d.Plaintext) != "delayed" {
				t.Fatalf("exchange with the previous signed pre-key: %v", err)
			}
			carol := newDevice(t, g, "carol@example.org", "carol")
			late, _ := carol.m.Encrypt([]byte("too late"), []Recipient{{Address: bob.addr, Bundle: old}})
			bob.clock.t = bob.clock.t.Add(DefaultSignedPreKeyRotation + time.Hour)
			if _, err := bob.m.Maintain(); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.m.Decrypt(incoming(t, late, carol.addr, bob.addr)); !errors.Is(err, ErrUnknownPreKey) {
				t.Fatalf("exchange with an expired signed pre-key: %v", err)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			a, b := pair(t, g, nil)
			m, err := New(Config{Generation: g, Store: b.store, Rand: newDetRand("restart"), Now: b.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if m.DeviceID() != b.m.DeviceID() || m.Fingerprint() != b.m.Fingerprint() {
				t.Fatal("identity changed across a restart")
			}
			b.m = m
			for i := range 3 {
				if d, err := b.m.Decrypt(send(t, a, b, "after restart")); err != nil || string(d.Plaintext) != "after restart" {
					t.Fatalf("message %d: %v", i, err)
				}
				if _, err := a.m.Decrypt(send(t, b, a, "reply")); err != nil {
					t.Fatal(err)
				}
			}
			s, err := unmarshalSession(sessionBytes(t, b, a.addr))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.marshal(), sessionBytes(t, b, a.addr)) {
				t.Fatal("session does not round-trip")
			}
		})
	}
}

func TestBundleErrors(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			alice := newDevice(t, g, "alice@example.org", "alice")
			bob := newDevice(t, g, "bob@example.org", "bob")
			good := bob.recipient(t)
			for name, mutate := range map[string]func(b *Bundle){
				"signature":    func(b *Bundle) { b.SignedPreKeySignature[5] ^= 1 },
				"spk":          func(b *Bundle) { b.SignedPreKey[len(b.SignedPreKey)-1] ^= 1 },
				"identity":     func(b *Bundle) { b.IdentityKey[len(b.IdentityKey)-2] ^= 1 },
				"short ik":     func(b *Bundle) { b.IdentityKey = b.IdentityKey[:20] },
				"no prekeys":   func(b *Bundle) { b.PreKeys = nil },
				"bad prekey":   func(b *Bundle) { b.PreKeys[0].PublicKey = b.PreKeys[0].PublicKey[1:] },
				"device 0":     func(b *Bundle) { b.DeviceID = 0 },
				"generation":   func(b *Bundle) { b.Generation = 3 - b.Generation },
				"other device": func(b *Bundle) { b.DeviceID++ },
			} {
				b := *good.Bundle
				b.IdentityKey = bytes.Clone(b.IdentityKey)
				b.SignedPreKey = bytes.Clone(b.SignedPreKey)
				b.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
				b.PreKeys = append([]BundlePreKey(nil), b.PreKeys...)
				mutate(&b)
				third := newDevice(t, g, "carol@example.org", "carol")
				msg, err := alice.m.Encrypt([]byte("x"), []Recipient{{Address: bob.addr, Bundle: &b}, third.recipient(t)})
				var ee *EncryptError
				if !errors.As(err, &ee) || !errors.Is(err, ErrInvalidBundle) || len(ee.Failed) != 1 || ee.Failed[0].Address != bob.addr {
					t.Fatalf("%s: %v", name, err)
				}
				if msg == nil || len(msg.Keys) != 1 || msg.Keys[0].Address != third.addr {
					t.Fatalf("%s: message for the good device missing", name)
				}
				if ok, _ := alice.m.HasSession(bob.addr); ok {
					t.Fatalf("%s: session built from a bad bundle", name)
				}
			}
			if _, err := alice.m.Encrypt([]byte("x"), []Recipient{{Address: bob.addr}}); !errors.Is(err, ErrNoSession) {
				t.Fatalf("no session, no bundle: %v", err)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	ik := &IdentityKeyPair{Seed: [32]byte{1, 2, 3}}
	u, ed := ik.X25519Public(), ik.Ed25519Public()
	f03, err := Fingerprint(V03, encodeCurve03(&u))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := Fingerprint(V2, ed[:])
	if err != nil {
		t.Fatal(err)
	}
	if f03 != f2 || len(f03) != 8*8+7 || f03[8] != ' ' {
		t.Fatalf("fingerprints %q and %q", f03, f2)
	}
	if _, err := Fingerprint(V2, u[:31]); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestDeviceID(t *testing.T) {
	r := bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
	for _, want := range []uint32{MaxDeviceID, 1} {
		id, err := GenerateDeviceID(r)
		if err != nil || id != want {
			t.Fatalf("device id %d %v, want %d", id, err, want)
		}
	}
}

func TestLabelAndVerify(t *testing.T) {
	d := newDevice(t, V2, "a@example.org", "label")
	sig, err := d.m.SignLabel("Laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyLabel(d.m.IdentityKey(), "Laptop", sig) || VerifyLabel(d.m.IdentityKey(), "Phone", sig) {
		t.Fatal("label signature check wrong")
	}
	if _, err := newDevice(t, V03, "a@example.org", "label").m.SignLabel("x"); err == nil {
		t.Fatal("0.3 label signed")
	}
	b, _ := d.m.Bundle()
	if err := b.Verify(); err != nil {
		t.Fatal(err)
	}
	b.SignedPreKeySignature[0] ^= 1
	if err := b.Verify(); !errors.Is(err, ErrInvalidBundle) {
		t.Fatalf("tampered bundle: %v", err)
	}
	d.m.Close()
	if !isZero32(&d.m.idPriv) {
		t.Fatal("Close left the identity key")
	}
}
