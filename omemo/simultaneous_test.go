package omemo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// simultaneous starts sessions between a and b at the same moment: each
// sends a key exchange before receiving the other's, then each decrypts
// the other's. It returns the two key exchanges as received by b and a.
func simultaneous(t testing.TB, a, b *device) (toB, toA *Incoming) {
	t.Helper()
	mb, err := a.m.Encrypt([]byte("a first"), []Recipient{b.recipient(t)})
	if err != nil {
		t.Fatal(err)
	}
	ma, err := b.m.Encrypt([]byte("b first"), []Recipient{a.recipient(t)})
	if err != nil {
		t.Fatal(err)
	}
	toB, toA = incoming(t, mb, a.addr, b.addr), incoming(t, ma, b.addr, a.addr)
	if !toB.PreKey || !toA.PreKey {
		t.Fatal("first messages are not key exchanges")
	}
	for _, c := range []struct {
		to   *device
		in   *Incoming
		text string
	}{{b, toB, "a first"}, {a, toA, "b first"}} {
		d, err := c.to.m.Decrypt(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		if string(d.Plaintext) != c.text || !d.NewSession {
			t.Fatalf("got %+v, want %q in a new session", d, c.text)
		}
	}
	return toB, toA
}

// expect decrypts in at to and checks the plaintext.
func expect(t *testing.T, to *device, in *Incoming, text string) {
	t.Helper()
	d, err := to.m.Decrypt(in)
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	if string(d.Plaintext) != text {
		t.Fatalf("got %q, want %q", d.Plaintext, text)
	}
}

// TestSimultaneousSessionStart covers two devices that build sessions
// with each other at the same moment. Both must end up able to read
// everything the other sends, whichever session each side uses, also
// across a restart, and settle on one session.
func TestSimultaneousSessionStart(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			a := newDevice(t, g, "a@example.org", "sim-a"+g.String())
			b := newDevice(t, g, "b@example.org", "sim-b"+g.String())
			toB, toA := simultaneous(t, a, b)
			for _, p := range [][2]*device{{a, b}, {b, a}} {
				s, err := unmarshalSession(sessionBytes(t, p[0], p[1].addr))
				if err != nil {
					t.Fatal(err)
				}
				if len(s.archive) != 1 || s.archive[0].pending == nil || s.origin == nil {
					t.Fatalf("%s: want the passive session current and its own archived", p[0].addr.JID)
				}
			}
			// Copies of the key exchanges: duplicates, no pre-key consumed.
			before, _ := b.m.Bundle()
			if _, err := b.m.Decrypt(toB); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("copy of the key exchange: %v, want ErrDuplicate", err)
			}
			if _, err := a.m.Decrypt(toA); !errors.Is(err, ErrDuplicate) {
				t.Fatalf("copy of the key exchange: %v, want ErrDuplicate", err)
			}
			if after, _ := b.m.Bundle(); len(after.PreKeys) != len(before.PreKeys) {
				t.Fatal("a copy of a key exchange consumed a pre-key")
			}
			// A forged message fails on every state and changes nothing.
			in := send(t, a, b, "a 0")
			recBefore := sessionBytes(t, b, a.addr)
			bad := *in
			bad.Key = bytes.Clone(in.Key)
			bad.Key[len(bad.Key)-1] ^= 1
			if _, err := b.m.Decrypt(&bad); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("forged message: %v", err)
			}
			if !bytes.Equal(recBefore, sessionBytes(t, b, a.addr)) {
				t.Fatal("a rejected message changed the session record")
			}
			expect(t, b, in, "a 0")
			// Restart both: the archived states are stored and reloaded.
			for i, d := range []*device{a, b} {
				m, err := New(Config{Generation: g, Store: d.store, Rand: newDetRand(fmt.Sprint("sim-restart", i)), Now: d.clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				d.m = m
			}
			expect(t, a, send(t, b, a, "b 0"), "b 0")
			for i := 1; i < 4; i++ {
				expect(t, b, send(t, a, b, fmt.Sprint("a ", i)), fmt.Sprint("a ", i))
				expect(t, a, send(t, b, a, fmt.Sprint("b ", i)), fmt.Sprint("b ", i))
			}
			for i := range 3 {
				expect(t, a, send(t, b, a, fmt.Sprint("b burst ", i)), fmt.Sprint("b burst ", i))
			}
			for i := range 3 {
				expect(t, b, send(t, a, b, fmt.Sprint("a burst ", i)), fmt.Sprint("a burst ", i))
			}
			for i := range 3 {
				x, y := send(t, a, b, fmt.Sprint("a crossed ", i)), send(t, b, a, fmt.Sprint("b crossed ", i))
				expect(t, b, x, fmt.Sprint("a crossed ", i))
				expect(t, a, y, fmt.Sprint("b crossed ", i))
			}
			// Both settled on one session: no more key exchanges.
			for _, p := range [][2]*device{{a, b}, {b, a}} {
				msg, err := p[0].m.Encrypt([]byte("last"), []Recipient{{Address: p[1].addr}})
				if err != nil {
					t.Fatal(err)
				}
				if keyFor(t, msg, p[1].addr).PreKey {
					t.Fatalf("%s still sends key exchanges", p[0].addr.JID)
				}
				expect(t, p[1], incoming(t, msg, p[0].addr, p[1].addr), "last")
			}
		})
	}
}

// TestSessionArchiveBound replaces a device's session four times (the
// peer reinstalled, say): the last three states still decrypt, in any
// order, and the oldest is gone.
func TestSessionArchiveBound(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			b := newDevice(t, g, "b@example.org", "bound-b"+g.String())
			var as []*device
			for i := range maxArchived + 2 {
				a := newDevice(t, g, "a@example.org", fmt.Sprint("bound-a", i, g))
				a.addr.DeviceID = 1234 // one device, four installations
				msg, err := a.m.Encrypt([]byte("hello"), []Recipient{b.recipient(t)})
				if err != nil {
					t.Fatal(err)
				}
				expect(t, b, incoming(t, msg, a.addr, b.addr), "hello")
				msg, err = b.m.EncryptEmpty([]Recipient{{Address: a.addr}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := a.m.Decrypt(incoming(t, msg, b.addr, a.addr)); err != nil {
					t.Fatal(err)
				}
				s, err := unmarshalSession(sessionBytes(t, b, a.addr))
				if err != nil {
					t.Fatal(err)
				}
				if len(s.archive) != min(i, maxArchived) {
					t.Fatalf("%d archived states after %d sessions", len(s.archive), i+1)
				}
				as = append(as, a)
			}
			for _, i := range []int{2, 1, 3, 1, 2} {
				expect(t, b, send(t, as[i], b, fmt.Sprint("from ", i)), fmt.Sprint("from ", i))
			}
			before := sessionBytes(t, b, as[0].addr)
			if _, err := b.m.Decrypt(send(t, as[0], b, "lost")); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("message on a dropped state: %v, want ErrInvalidMessage", err)
			}
			if !bytes.Equal(before, sessionBytes(t, b, as[0].addr)) {
				t.Fatal("a rejected message changed the session record")
			}
		})
	}
}

// TestSessionRecordV1 loads session records written before states were
// archived (testdata/session-v1-*.hex, version 1): they parse, are
// written back unchanged, and the session goes on.
func TestSessionRecordV1(t *testing.T) {
	for _, g := range generations {
		t.Run(g.String(), func(t *testing.T) {
			name := map[Generation]string{V03: "03", V2: "2"}[g]
			h, err := os.ReadFile("testdata/session-v1-" + name + ".hex")
			if err != nil {
				t.Fatal(err)
			}
			rec, err := hex.DecodeString(strings.TrimSpace(string(h)))
			if err != nil {
				t.Fatal(err)
			}
			if rec[3] != stateVersion1 {
				t.Fatalf("testdata record has version %d", rec[3])
			}
			s, err := unmarshalSession(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.marshal(), rec) || len(s.skipped) != 1 {
				t.Fatal("version 1 record does not round-trip")
			}
			// The same conversation that wrote the record, replayed with the
			// same randomness; b then restarts from the stored record.
			a, b := pair(t, g, nil)
			for range 3 {
				expect(t, b, send(t, a, b, "x"), "x")
			}
			skipped := send(t, a, b, "skipped")
			expect(t, b, send(t, a, b, "y"), "y")
			if err := b.store.StoreSession(g, a.addr, rec); err != nil {
				t.Fatal(err)
			}
			m, err := New(Config{Generation: g, Store: b.store, Rand: newDetRand("v1"), Now: b.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			b.m = m
			expect(t, b, skipped, "skipped")
			expect(t, a, send(t, b, a, "reply"), "reply")
			expect(t, b, send(t, a, b, "z"), "z")
		})
	}
}

func TestSessionRecordArchiveErrors(t *testing.T) {
	a := newDevice(t, V2, "a@example.org", "rec-a")
	b := newDevice(t, V2, "b@example.org", "rec-b")
	simultaneous(t, a, b)
	rec := sessionBytes(t, b, a.addr)
	if rec[3] != stateVersion2 {
		t.Fatalf("record with an archived state has version %d", rec[3])
	}
	if _, err := unmarshalSession(rec); err != nil {
		t.Fatal(err)
	}
	s, _ := unmarshalSession(rec)
	inner := s.archive[0].marshal()
	body := rec[:len(rec)-1-3-len(inner)]
	// with returns body with the given archived records.
	with := func(recs ...[]byte) []byte {
		out := append(bytes.Clone(body), byte(len(recs)))
		for _, r := range recs {
			out = append(out, byte(len(r)>>16), byte(len(r)>>8), byte(len(r)))
			out = append(out, r...)
		}
		return out
	}
	if !bytes.Equal(with(inner), rec) {
		t.Fatal("record layout is not the documented one")
	}
	other := bytes.Clone(inner)
	other[4] = byte(V03)
	for name, bad := range map[string][]byte{
		"truncated":         rec[:len(rec)-1],
		"trailing":          append(bytes.Clone(rec), 0),
		"no archived state": with(),
		"nested archive":    with(rec),
		"too many":          with(inner, inner, inner),
		"other generation":  with(other),
	} {
		if _, err := unmarshalSession(bad); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: %v, want ErrCorruptState", name, err)
		}
	}
	if _, err := unmarshalSession(with(inner, inner)); err != nil {
		t.Fatalf("two archived states: %v", err)
	}
}
