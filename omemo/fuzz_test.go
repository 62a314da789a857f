package omemo

import (
	"bytes"
	"errors"
	"testing"
)

// seedMessages returns real key elements of generation g: a key
// exchange, a plain ratchet message, and the session record behind them.
func seedMessages(t testing.TB, g Generation) (kx, msg, state []byte) {
	a := newDevice(t, g, "a@example.org", "fa")
	b := newDevice(t, g, "b@example.org", "fb")
	m1, err := a.m.Encrypt([]byte("one"), []Recipient{b.recipient(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.Decrypt(incoming(t, m1, a.addr, b.addr)); err != nil {
		t.Fatal(err)
	}
	m2, err := b.m.Encrypt([]byte("two"), []Recipient{{Address: a.addr}})
	if err != nil {
		t.Fatal(err)
	}
	state, _ = b.store.LoadSession(g, a.addr)
	return m1.Keys[0].Data, m2.Keys[0].Data, state
}

func FuzzWire03(f *testing.F) {
	kx, msg, _ := seedMessages(f, V03)
	f.Add(kx)
	f.Add(msg)
	f.Add([]byte{version03})
	f.Fuzz(func(t *testing.T, data []byte) {
		if body, _, h, ct, ok := parseMessage03(data); ok {
			again := encodeMessage03(&h, ct)
			if _, _, h2, ct2, ok := parseMessage03(append(again, make([]byte, macLen03)...)); !ok || h2 != h || !bytes.Equal(ct, ct2) {
				t.Fatalf("SignalMessage does not round-trip: %x", body)
			}
		}
		if k, inner, ok := parsePreKey03(data); ok {
			k2, inner2, ok := parsePreKey03(encodePreKey03(&k, inner))
			if !ok || k2 != k || !bytes.Equal(inner, inner2) {
				t.Fatal("PreKeySignalMessage does not round-trip")
			}
		}
	})
}

func FuzzWire2(f *testing.F) {
	kx, msg, _ := seedMessages(f, V2)
	f.Add(kx)
	f.Add(msg)
	f.Fuzz(func(t *testing.T, data []byte) {
		if mac, m, ok := parseAuthenticated2(data); ok {
			if mac2, m2, ok := parseAuthenticated2(encodeAuthenticated2(mac, m)); !ok || !bytes.Equal(mac, mac2) || !bytes.Equal(m, m2) {
				t.Fatal("OMEMOAuthenticatedMessage does not round-trip")
			}
		}
		if h, ct, ok := parseMessage2(data); ok {
			if h2, ct2, ok := parseMessage2(encodeMessage2(&h, ct, true)); !ok || h2 != h || !bytes.Equal(ct, ct2) {
				t.Fatal("OMEMOMessage does not round-trip")
			}
		}
		if k, inner, ok := parseKeyExchange2(data); ok {
			k2, inner2, ok := parseKeyExchange2(encodeKeyExchange2(&k, inner))
			if !ok || k2 != k || !bytes.Equal(inner, inner2) {
				t.Fatal("OMEMOKeyExchange does not round-trip")
			}
		}
	})
}

func FuzzSessionRecord(f *testing.F) {
	for _, g := range generations {
		_, _, state := seedMessages(f, g)
		f.Add(state)
		// A record with an archived state (version 2).
		a := newDevice(f, g, "a@example.org", "fra")
		b := newDevice(f, g, "b@example.org", "frb")
		simultaneous(f, a, b)
		state, _ = b.store.LoadSession(g, a.addr)
		f.Add(state)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := unmarshalSession(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error not of our kind: %v", err)
			}
			return
		}
		if !bytes.Equal(s.marshal(), data) {
			t.Fatal("session record does not round-trip")
		}
	})
}

// FuzzDecrypt feeds arbitrary key elements and payloads to a device with
// a live session: no panic, only our errors, and no state change on error.
func FuzzDecrypt(f *testing.F) {
	for _, g := range generations {
		kx, msg, _ := seedMessages(f, g)
		f.Add(uint8(g), kx, true, []byte("payload"), []byte("iv-of-12byte"))
		f.Add(uint8(g), msg, false, []byte(nil), []byte(nil))
	}
	devs := map[Generation][2]*device{}
	for _, g := range generations {
		a, b := pair(&testing.T{}, g, nil)
		devs[g] = [2]*device{a, b}
	}
	f.Fuzz(func(t *testing.T, gen uint8, key []byte, prekey bool, payload, iv []byte) {
		g := Generation(gen%2 + 1)
		a, b := devs[g][0], devs[g][1]
		before, _ := b.store.LoadSession(g, a.addr)
		keysBefore, _ := b.store.LoadKeys(g)
		_, err := b.m.Decrypt(&Incoming{From: a.addr, Key: key, PreKey: prekey, Payload: payload, IV: iv})
		if err == nil {
			return // a valid message (only seeds can be): state moves on
		}
		if !errors.Is(err, ErrInvalidMessage) && !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrUnknownPreKey) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		after, _ := b.store.LoadSession(g, a.addr)
		keysAfter, _ := b.store.LoadKeys(g)
		if !bytes.Equal(before, after) || len(keysBefore.PreKeys) != len(keysAfter.PreKeys) {
			t.Fatal("a rejected message changed state")
		}
	})
}

func FuzzOpenPayload(f *testing.F) {
	f.Add(uint8(1), make([]byte, 32), []byte("ciphertext"), make([]byte, 12))
	f.Add(uint8(2), make([]byte, 48), make([]byte, 32), []byte(nil))
	f.Fuzz(func(t *testing.T, gen uint8, material, payload, iv []byte) {
		if _, err := openPayload(Generation(gen%2+1), material, payload, iv); err != nil && err != ErrInvalidMessage {
			t.Fatalf("error %v", err)
		}
	})
}
