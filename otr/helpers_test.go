package otr

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fakeClock is an injectable clock.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time          { return f.t }
func (f *fakeClock) advance(d time.Duration) { f.t = f.t.Add(d) }

// side is one party of an in-memory conversation.
type side struct {
	name  string
	conv  *Conversation
	clock *fakeClock
	// everything Receive returned, in order
	texts  []string
	enc    []bool
	events []Event
	errs   []error
	sent   [][]byte // everything this side transmitted
}

func (s *side) has(k EventKind) bool {
	for _, e := range s.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

func (s *side) count(k EventKind) int {
	n := 0
	for _, e := range s.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (s *side) event(k EventKind) *Event {
	for i := range s.events {
		if s.events[i].Kind == k {
			return &s.events[i]
		}
	}
	return nil
}

func (s *side) clear() {
	s.texts, s.enc, s.events, s.errs, s.sent = nil, nil, nil, nil, nil
}

// duo is two Conversations wired together in memory.
type duo struct {
	t    testing.TB
	a, b *side
	// filter, if set, may drop or alter a message in transit
	filter func(from *side, msg []byte) [][]byte
}

func newSide(t testing.TB, name string, key *PrivateKey, cfg Config) *side {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.PrivateKey = key
	if cfg.Now == nil {
		cfg.Now = clock.now
	}
	c, err := NewConversation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &side{name: name, conv: c, clock: clock}
}

func newDuo(t testing.TB, cfgA, cfgB Config) *duo {
	t.Helper()
	return &duo{t: t, a: newSide(t, "alice", aliceKey(t), cfgA), b: newSide(t, "bob", bobKey(t), cfgB)}
}

func (d *duo) other(s *side) *side {
	if s == d.a {
		return d.b
	}
	return d.a
}

// deliver transmits msgs from s and relays every reply until both sides are
// quiet. It returns how many messages were delivered in all.
func (d *duo) deliver(from *side, msgs [][]byte) int {
	d.t.Helper()
	type hop struct {
		from *side
		msg  []byte
	}
	var q []hop
	for _, m := range msgs {
		q = append(q, hop{from, m})
	}
	n := 0
	for len(q) > 0 {
		if n > 100000 {
			d.t.Fatal("messages keep bouncing")
		}
		h := q[0]
		q = q[1:]
		h.from.sent = append(h.from.sent, h.msg)
		ms := [][]byte{h.msg}
		if d.filter != nil {
			ms = d.filter(h.from, h.msg)
		}
		to := d.other(h.from)
		for _, m := range ms {
			n++
			r, err := to.conv.Receive(m)
			if r == nil {
				d.t.Fatal("Receive returned nil")
			}
			to.record(r, err)
			for _, m := range r.ToSend {
				q = append(q, hop{to, m})
			}
		}
	}
	return n
}

func (s *side) record(r *Received, err error) {
	if r.Plaintext != nil {
		s.texts = append(s.texts, string(r.Plaintext))
		s.enc = append(s.enc, r.Encrypted)
	}
	s.events = append(s.events, r.Events...)
	if err != nil {
		s.errs = append(s.errs, err)
	}
}

// send has s send text and relays everything.
func (d *duo) send(s *side, text string) [][]byte {
	d.t.Helper()
	msgs, err := s.conv.Send([]byte(text))
	if err != nil {
		d.t.Fatalf("%s: Send: %v", s.name, err)
	}
	d.deliver(s, msgs)
	return msgs
}

// sendPrivately sends text from s and checks the other side shows it,
// encrypted, exactly once.
func (d *duo) sendPrivately(s *side, text string) [][]byte {
	d.t.Helper()
	to := d.other(s)
	n := len(to.texts)
	msgs := d.send(s, text)
	if len(to.texts) != n+1 || to.texts[n] != text || !to.enc[n] {
		d.t.Fatalf("%s sent %q privately; %s got %q (encrypted %v)", s.name, text, to.name, to.texts[n:], to.enc[n:])
	}
	return msgs
}

// ake runs an AKE started by s's query and checks both sides are secure.
func (d *duo) ake(s *side) {
	d.t.Helper()
	q, err := s.conv.StartAKE()
	if err != nil {
		d.t.Fatal(err)
	}
	d.deliver(s, q)
	d.checkSecure()
}

func (d *duo) checkSecure() {
	d.t.Helper()
	a, b := d.a.conv, d.b.conv
	if a.State() != Encrypted || b.State() != Encrypted {
		d.t.Fatalf("states after AKE: %v / %v (errors %v / %v)", a.State(), b.State(), d.a.errs, d.b.errs)
	}
	if a.SSID() != b.SSID() || a.SSID() == [8]byte{} {
		d.t.Fatalf("SSIDs differ: %x / %x", a.SSID(), b.SSID())
	}
	if !a.TheirKey().Equal(d.b.conv.key.Public()) || !b.TheirKey().Equal(d.a.conv.key.Public()) {
		d.t.Fatal("peers' keys not as expected")
	}
	if a.ProtocolVersion() != b.ProtocolVersion() {
		d.t.Fatal("versions differ")
	}
	if a.ProtocolVersion() == 3 && (a.TheirInstanceTag() != b.InstanceTag() || b.TheirInstanceTag() != a.InstanceTag()) {
		d.t.Fatalf("instance tags: %x sees %x, %x sees %x", a.InstanceTag(), a.TheirInstanceTag(), b.InstanceTag(), b.TheirInstanceTag())
	}
	for _, s := range []*side{d.a, d.b} {
		if len(s.errs) > 0 {
			d.t.Fatalf("%s: errors during the AKE: %v", s.name, s.errs)
		}
	}
}

func (d *duo) noErrors() {
	d.t.Helper()
	for _, s := range []*side{d.a, d.b} {
		if len(s.errs) > 0 {
			d.t.Fatalf("%s: errors: %v", s.name, s.errs)
		}
		for _, e := range s.events {
			switch e.Kind {
			case EventUnreadable, EventMalformed, EventError, EventSMPCheated:
				d.t.Fatalf("%s: event %v", s.name, e.Kind)
			}
		}
	}
}

func isInvalid(err error) bool { return errors.Is(err, ErrInvalidMessage) }

// receiveOne hands one message to s without relaying replies.
func receiveOne(t testing.TB, s *side, msg []byte) (*Received, error) {
	t.Helper()
	r, err := s.conv.Receive(bytes.Clone(msg))
	if r == nil {
		t.Fatal("Receive returned nil")
	}
	s.record(r, err)
	return r, err
}
