package omemo

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// detRand is a deterministic randomness source for reproducible tests:
// SHA-256 in counter mode over a seed.
type detRand struct {
	seed string
	ctr  uint64
	buf  []byte
}

func newDetRand(seed string) *detRand { return &detRand{seed: seed} }

func (r *detRand) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(r.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], r.ctr)
			r.ctr++
			h := sha256.Sum256(append([]byte(r.seed), c[:]...))
			r.buf = h[:]
		}
		k := copy(p, r.buf)
		p, r.buf = p[k:], r.buf[k:]
	}
	return n, nil
}

// testClock is an injectable clock.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time { return c.t }

// device is one party in an in-memory test.
type device struct {
	m     *Manager
	store *MemoryStore
	addr  Address
	clock *testClock
}

func newDevice(t testing.TB, g Generation, jid, seed string) *device {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := new(MemoryStore)
	m, err := New(Config{Generation: g, Store: st, Rand: newDetRand(seed), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &device{m: m, store: st, addr: Address{JID: jid, DeviceID: m.DeviceID()}, clock: clock}
}

func (d *device) recipient(t testing.TB) Recipient {
	t.Helper()
	b, err := d.m.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	return Recipient{Address: d.addr, Bundle: b}
}

// keyFor returns the key element of msg for device to.
func keyFor(t testing.TB, msg *Message, to Address) Key {
	t.Helper()
	for _, k := range msg.Keys {
		if k.Address == to {
			return k
		}
	}
	t.Fatalf("no key for %v", to)
	return Key{}
}

// incoming builds what device to receives from msg sent by from.
func incoming(t testing.TB, msg *Message, from, to Address) *Incoming {
	k := keyFor(t, msg, to)
	return &Incoming{From: from, Key: k.Data, PreKey: k.PreKey, Payload: msg.Payload, IV: msg.IV}
}

var basepoint = x25519Base[:]
