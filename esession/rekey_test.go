package esession

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
	"time"
)

// rekeyPair negotiates a session between two parties that re-key after
// freq stanzas, on a test clock.
func rekeyPair(t *testing.T, freq uint32, now *time.Time) (*party, *party, *Session, *Session) {
	t.Helper()
	clock := func() time.Time { return *now }
	a := newParty(t, aliceJID, Config{RekeyFreq: freq, Now: clock})
	b := newParty(t, bobJID, Config{RekeyFreq: freq, Now: clock})
	sa, sb, _, _ := negotiate(t, a, b)
	return a, b, sa, sb
}

// exchange sends text from s (of the party from) to m and checks it
// arrives.
func exchange(t *testing.T, s *Session, from string, m *Manager, text string) Outbound {
	t.Helper()
	o, err := s.Seal(els(t, "<body>"+text+"</body>")...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := deliverErr(t, o, from, m, true)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	if body, _ := eventOf[Message](t, r).Body(); body != text {
		t.Fatalf("received %q, want %q", body, text)
	}
	return o
}

func hasChild(o Outbound, name string) bool {
	return bytes.Contains(payloadXML(o), []byte("<"+name+">"))
}

func TestRekeyByFrequency(t *testing.T) {
	now := timeAt(0)
	a, b, sa, sb := rekeyPair(t, 2, &now)
	if p := sa.Params(); p.RekeyFreq != 2 {
		t.Fatalf("rekey_freq %d", p.RekeyFreq)
	}
	oldSend := sa.ch.send.kc
	if o := exchange(t, sa, aliceJID, b.m, "one"); hasChild(o, "key") {
		t.Error("re-keyed before rekey_freq stanzas")
	}
	exchange(t, sb, bobJID, a.m, "two")
	ctr := sa.ch.send.ctr
	o := exchange(t, sa, aliceJID, b.m, "three")
	if !hasChild(o, "key") {
		t.Fatalf("no <key/> after %d stanzas: %s", 2, payloadXML(o))
	}
	if sa.ch.send.kc == oldSend {
		t.Error("alice still sends under the old key")
	}
	want := ctr
	want.add(2) // "<body>three</body>", padded to two blocks
	if sa.ch.send.ctr != want {
		t.Error("the counter did not continue")
	}
	if len(sa.ch.rk.sets) != 2 || len(sb.ch.rk.sets) != 1 {
		t.Fatalf("sets %d %d", len(sa.ch.rk.sets), len(sb.ch.rk.sets))
	}
	// Bob answers under his new keys, saying he has Alice's key.
	o = exchange(t, sb, bobJID, a.m, "four")
	if !hasChild(o, "new") || !bytes.Contains(payloadXML(o), []byte("<new>1</new>")) {
		t.Errorf("no <new>1</new>: %s", payloadXML(o))
	}
	if len(sa.ch.rk.sets) != 1 {
		t.Error("alice kept the old set after bob used the new one")
	}
	for i, text := range []string{"five", "six", "seven", "eight"} {
		s, from, m := sa, aliceJID, b.m
		if i%2 == 1 {
			s, from, m = sb, bobJID, a.m
		}
		exchange(t, s, from, m, text)
	}
}

func TestRekeyByUser(t *testing.T) {
	now := timeAt(0)
	a, b, sa, sb := rekeyPair(t, 1, &now)
	if _, err := sa.Rekey(); !errors.Is(err, ErrRekeyTooSoon) {
		t.Errorf("Rekey before any stanza: %v", err)
	}
	exchange(t, sa, aliceJID, b.m, "hello")
	o, err := sb.Rekey()
	if err != nil {
		t.Fatal(err)
	}
	if !o.Encrypted || hasChild(o, "data") || !hasChild(o, "key") {
		t.Fatalf("re-key stanza %s", payloadXML(o))
	}
	r, err := deliverErr(t, o, bobJID, a.m, true)
	if err != nil || len(r.Events) != 0 {
		t.Fatalf("alice on a bare re-key: %v %#v", err, r.Events)
	}
	exchange(t, sa, aliceJID, b.m, "after")
	exchange(t, sb, bobJID, a.m, "reply")
	// A session without re-keying (XEP-0217) refuses.
	c := newParty(t, aliceJID, Config{})
	d := newParty(t, bobJID, Config{})
	sc, _, _, _ := negotiate(t, c, d)
	if _, err := sc.Rekey(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Rekey in an XEP-0217 session: %v", err)
	}
}

// Both sides start a key exchange before seeing the other's: each keeps
// its own sending keys and takes the other's (XEP-0200 §9.3).
func TestRekeyCrossing(t *testing.T) {
	now := timeAt(0)
	a, b, sa, sb := rekeyPair(t, 3, &now)
	exchange(t, sa, aliceJID, b.m, "hi")
	exchange(t, sb, bobJID, a.m, "hi back")
	exchange(t, sa, aliceJID, b.m, "three stanzas: both may re-key")
	oa, err := sa.Rekey()
	if err != nil {
		t.Fatal(err)
	}
	ob, err := sb.Rekey()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		o    Outbound
		from string
		m    *Manager
	}{{oa, aliceJID, b.m}, {ob, bobJID, a.m}} {
		if _, err := deliverErr(t, d.o, d.from, d.m, true); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		s, from, m := sa, aliceJID, b.m
		if i%2 == 1 {
			s, from, m = sb, bobJID, a.m
		}
		exchange(t, s, from, m, "after crossing")
	}
	if len(sa.ch.rk.sets) != 1 || len(sb.ch.rk.sets) != 1 {
		t.Errorf("sets %d %d", len(sa.ch.rk.sets), len(sb.ch.rk.sets))
	}
}

// The older receiving keys stay for the grace period, then go: a stanza
// under them fails afterwards and ends the session, keys wiped.
func TestRekeyGrace(t *testing.T) {
	for _, late := range []bool{false, true} {
		now := timeAt(0)
		a, b, sa, sb := rekeyPair(t, 1, &now)
		exchange(t, sa, aliceJID, b.m, "hi")
		oa, err := sa.Rekey()
		if err != nil {
			t.Fatal(err)
		}
		// Bob sends before he has Alice's key: under the old keys.
		crossing, _ := sb.Seal(els(t, "<body>crossing</body>")...)
		deliver(t, oa, aliceJID, b.m, true)
		now = now.Add(30 * time.Second)
		if late {
			now = now.Add(31 * time.Second)
		}
		a.m.Tick(now)
		pa := probe(sa)
		r, err := deliverErr(t, crossing, bobJID, a.m, true)
		if !late {
			if err != nil || len(r.Events) != 1 {
				t.Fatalf("within the grace period: %v %#v", err, r.Events)
			}
			continue
		}
		if !errors.Is(err, ErrAuthentication) {
			t.Fatalf("after the grace period: %v", err)
		}
		pa.check(t)
	}
}

func TestRekeyByBlockCount(t *testing.T) {
	now := timeAt(0)
	a, b, sa, _ := rekeyPair(t, 1000, &now)
	sa.ch.send.used = rekeyBlocks
	if o := exchange(t, sa, aliceJID, b.m, "many blocks"); !hasChild(o, "key") {
		t.Error("no key exchange at the block limit")
	}
	if sa.ch.send.used != 0 {
		t.Errorf("blocks under the new key: %d", sa.ch.send.used)
	}
	exchange(t, sa, aliceJID, b.m, "after")
	_ = a
}

func TestIdleSessions(t *testing.T) {
	now := timeAt(0)
	a, b, sa, sb := rekeyPair(t, 1, &now)
	exchange(t, sa, aliceJID, b.m, "hi")
	if r := a.m.Tick(now.Add(59 * time.Minute)); len(r.Out) != 0 {
		t.Fatal("acted before the idle timeout")
	}
	now = now.Add(61 * time.Minute)
	r := a.m.Tick(now)
	if eventOf[Rekeyed](t, r).Session != sa || len(r.Out) != 1 || !hasChild(r.Out[0], "key") {
		t.Fatalf("idle re-key: %#v", r)
	}
	deliver(t, r.Out[0], aliceJID, b.m, true)
	exchange(t, sb, bobJID, a.m, "still here")
	// A session that cannot re-key is terminated, explicitly.
	c := newParty(t, aliceJID, Config{Now: func() time.Time { return now }})
	d := newParty(t, bobJID, Config{Now: func() time.Time { return now }})
	sc, sd, _, _ := negotiate(t, c, d)
	pc := probe(sc)
	now = now.Add(2 * time.Hour)
	r = c.m.Tick(now)
	if te := eventOf[Terminated](t, r); te.Reason != "inactive" || len(r.Out) != 1 || !r.Out[0].Encrypted {
		t.Fatalf("idle terminate: %#v", r)
	}
	pc.check(t)
	eventOf[Terminated](t, deliver(t, r.Out[0], aliceJID, d.m, true))
	if sd.State() != StateEnded {
		t.Error("the peer did not end")
	}
	// Negative IdleTimeout turns it off.
	e := newParty(t, aliceJID, Config{IdleTimeout: -1, Now: func() time.Time { return now }})
	f := newParty(t, bobJID, Config{})
	se, _, _, _ := negotiate(t, e, f)
	if r := e.m.Tick(now.Add(1000 * time.Hour)); len(r.Out) != 0 || se.State() != StateActive {
		t.Error("idle timeout not off")
	}
}

// badPubGroup sends 1 as its public value.
type badPubGroup struct{ dhGroup }

func (badPubGroup) Public([]byte) *big.Int { return big.NewInt(1) }

// Every failure around a key exchange ends the session with its keys
// wiped.
func TestRekeyFailures(t *testing.T) {
	cases := map[string]func(t *testing.T, sa *Session) []Outbound{
		"MAC failure after re-key": func(t *testing.T, sa *Session) []Outbound {
			ok, _ := sa.Rekey()
			o, _ := sa.Seal(els(t, "<body>x</body>")...)
			p := payloadXML(o)
			p[bytes.Index(p, []byte("<mac>"))+6] ^= 1
			return []Outbound{ok, withPayloadXML(t, o, p)}
		},
		"re-key replayed": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Rekey()
			return []Outbound{o, o}
		},
		"public value 1": func(t *testing.T, sa *Session) []Outbound {
			sa.ch.rk.group = badPubGroup{sa.ch.rk.group}
			o, _ := sa.Rekey()
			return []Outbound{o}
		},
		"new beyond the sets": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>x</body>")...)
			p := bytes.Replace(payloadXML(o), []byte("<mac>"), []byte("<new>3</new><mac>"), 1)
			return []Outbound{withPayloadXML(t, o, p)}
		},
		"two keys": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Rekey()
			p := bytes.Replace(payloadXML(o), []byte("<mac>"), []byte("<key>AQ==</key><mac>"), 1)
			return []Outbound{withPayloadXML(t, o, p)}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			now := timeAt(0)
			a, b, sa, sb := rekeyPair(t, 1, &now)
			exchange(t, sb, bobJID, a.m, "hello")
			pb := probe(sb)
			var err error
			for _, o := range mk(t, sa) {
				if _, err = deliverErr(t, o, aliceJID, b.m, true); err != nil {
					break
				}
			}
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			pb.check(t)
		})
	}
}
