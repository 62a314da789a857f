package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

func newSM(t testing.TB, count, bytes int) *smState {
	t.Helper()
	s := &smState{}
	s.init(&Config{MaxUnacked: count, MaxUnackedBytes: bytes, AckEvery: 3})
	s.start("sm-1", true, 0, jid.MustParse("a@example.org/r"))
	return s
}

func msg(i int) *xmltree.Element {
	return xmltree.New(NSClient, "message", "id", fmt.Sprint(i)).Append(xmltree.New(NSClient, "body").AppendText("x"))
}

func TestSMAckDropsHandled(t *testing.T) {
	s := newSM(t, 100, 1<<20)
	for i := 1; i <= 5; i++ {
		u, req := s.record(msg(i), time.Now(), nil)
		if u.seq != uint32(i) {
			t.Fatalf("seq %d for stanza %d", u.seq, i)
		}
		if req != (i == 3) {
			t.Fatalf("request after %d stanzas: %v", i, req)
		}
	}
	done, err := s.ack(3)
	if err != nil || len(done) != 3 || done[2].st.AttrValue("id") != "3" {
		t.Fatalf("ack 3: %d %v", len(done), err)
	}
	if n, _ := s.pending(); n != 2 {
		t.Fatalf("%d pending", n)
	}
	// The same h again acknowledges nothing new.
	if done, err := s.ack(3); err != nil || len(done) != 0 {
		t.Fatalf("repeated ack: %d %v", len(done), err)
	}
	// More than was sent is refused and changes nothing.
	var hc *HandledCountError
	if _, err := s.ack(9); !errors.As(err, &hc) || hc.H != 9 || hc.Sent != 5 {
		t.Fatalf("ack 9: %v", err)
	}
	if n, _ := s.pending(); n != 2 {
		t.Fatalf("%d pending after a bad ack", n)
	}
	// An h below the last one is "too high" modulo 2^32 (it would
	// acknowledge four billion stanzas).
	if _, err := s.ack(2); !errors.As(err, &hc) {
		t.Fatalf("ack going back: %v", err)
	}
}

// 'h' wraps from 2^32-1 to 0 (XEP-0198 §4).
func TestSMWrap(t *testing.T) {
	s := newSM(t, 100, 1<<20)
	s.out, s.acked = math.MaxUint32-1, math.MaxUint32-1
	for i := 0; i < 4; i++ {
		s.record(msg(i), time.Now(), nil)
	}
	if s.out != 2 {
		t.Fatalf("out %d after wrapping", s.out)
	}
	done, err := s.ack(1) // MaxUint32, 0, 1: three stanzas
	if err != nil || len(done) != 3 {
		t.Fatalf("ack across the wrap: %d %v", len(done), err)
	}
	if done, err := s.ack(2); err != nil || len(done) != 1 {
		t.Fatalf("last: %d %v", len(done), err)
	}
	s.in = math.MaxUint32
	s.received()
	if s.handled() != 0 {
		t.Fatalf("h %d after wrapping", s.handled())
	}
}

// A full queue makes senders wait for an acknowledgement (asked for
// once), and lets them go when the server acknowledges; a sender whose
// context ends first gets ErrUnackedFull.
func TestSMBounds(t *testing.T) {
	s := newSM(t, 2, 1<<20)
	s.record(msg(1), time.Now(), nil)
	s.record(msg(2), time.Now(), nil)
	asked := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.waitRoom(ctx, 10, func() { asked++ }); !errors.Is(err, ErrUnackedFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full queue: %v", err)
	}
	if asked != 1 {
		t.Fatalf("asked %d times", asked)
	}
	done := make(chan error)
	go func() { done <- s.waitRoom(context.Background(), 10, nil) }()
	if _, err := s.ack(1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The byte bound too, but one stanza always fits in an empty queue.
	b := newSM(t, 100, 50)
	if err := b.waitRoom(context.Background(), 1000, nil); err != nil {
		t.Fatal(err)
	}
	b.record(msg(1), time.Now(), nil)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := b.waitRoom(ctx2, 1000, nil); !errors.Is(err, ErrUnackedFull) {
		t.Fatalf("byte bound: %v", err)
	}
}

// After a cut, stanzas written while the stream is down wait; resumption
// acknowledges what the server handled, resends the rest with its
// sequence numbers, then what waited.
func TestSMResume(t *testing.T) {
	s := newSM(t, 100, 1<<20)
	for i := 1; i <= 4; i++ {
		s.record(msg(i), time.Now(), nil)
	}
	s.received()
	s.received()
	if ok, _ := s.ended(time.Now()); !ok {
		t.Fatal("not resumable")
	}
	if !s.hold(msg(5), time.Now(), nil) {
		t.Fatal("a stanza written while down was refused")
	}
	id, h, bound, ok := s.token()
	if !ok || id != "sm-1" || h != 2 || bound.String() != "a@example.org/r" {
		t.Fatalf("token %q %d %s %v", id, h, bound, ok)
	}
	if s.expire() {
		t.Fatal("expired during a resumption")
	}
	acked, resend, waiting, err := s.resumed(2)
	if err != nil || len(acked) != 2 || len(resend) != 2 || resend[0].seq != 3 || len(waiting) != 1 {
		t.Fatalf("resumed: %d %d %d %v", len(acked), len(resend), len(waiting), err)
	}
	if !s.on() {
		t.Fatal("off after resumption")
	}
}

// A session that cannot be resumed gives back what the server did not
// acknowledge, after what its <failed h/> covers.
func TestSMAbandon(t *testing.T) {
	s := newSM(t, 100, 1<<20)
	for i := 1; i <= 3; i++ {
		s.record(msg(i), time.Now(), nil)
	}
	s.ended(time.Now())
	s.hold(msg(4), time.Now(), nil)
	acked, left := s.abandon(1, true)
	if len(acked) != 1 || len(left) != 3 || left[2].st.AttrValue("id") != "4" {
		t.Fatalf("abandon: %d acked, %d left", len(acked), len(left))
	}
	if _, _, _, ok := s.token(); ok {
		t.Fatal("token after abandon")
	}
	if s.hold(msg(5), time.Now(), nil) {
		t.Fatal("held without a session")
	}
	// An expired window forgets the session.
	s2 := newSM(t, 100, 1<<20)
	s2.ended(time.Now())
	if !s2.expire() {
		t.Fatal("not expired")
	}
	if _, _, _, ok := s2.token(); ok {
		t.Fatal("token after expiry")
	}
	// Without resumption nothing is held.
	s3 := newSM(t, 100, 1<<20)
	s3.start("", false, 0, jid.JID{})
	if ok, _ := s3.ended(time.Now()); ok || s3.hold(msg(1), time.Now(), nil) {
		t.Fatal("resumable without resumption")
	}
}

// FuzzSMAcks feeds a session arbitrary 'h' values between sends: it
// never panics, never acknowledges more than was sent, and keeps the
// queue and its byte count consistent.
func FuzzSMAcks(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0, 5})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := newSM(t, 1000, 1<<30)
		sent := 0
		for _, op := range ops {
			if op&1 == 0 {
				s.record(msg(sent), time.Now(), nil)
				sent++
				continue
			}
			before := len(s.queue)
			done, err := s.ack(s.acked + uint32(op>>1))
			if err != nil && len(s.queue) != before {
				t.Fatal("a refused ack changed the queue")
			}
			if err == nil && len(done) != int(op>>1) {
				t.Fatalf("acknowledged %d for %d", len(done), op>>1)
			}
		}
		total := 0
		for _, u := range s.queue {
			total += u.size
		}
		if total != s.bytes || uint32(len(s.queue)) != s.out-s.acked {
			t.Fatalf("queue %d stanzas, %d bytes (count says %d, %d)", len(s.queue), total, s.out-s.acked, s.bytes)
		}
	})
}

// An IQ answer counts only from whom the request went to.
func TestAnsweredBy(t *testing.T) {
	c := newTestClient(t)
	for _, tc := range []struct {
		to, from string
		ok       bool
	}{
		{"", "", true},
		{"", "bob@example.org", true},
		{"", "bob@example.org/desk", true},
		{"", "mallory@example.org", false},
		{"", "example.org", false},
		{"example.org", "example.org", true},
		{"example.org", "", false},
		{"example.org", "mallory@example.org", false},
		{"alice@example.org/home", "alice@example.org/home", true},
		{"alice@example.org/home", "alice@example.org/other", false},
		{"bob@example.org", "", true},
		{"pubsub.example.org", "PubSub.example.org", true},
	} {
		if got := answeredBy(c, tc.to, tc.from); got != tc.ok {
			t.Errorf("request to %q answered from %q: %v, want %v", tc.to, tc.from, got, tc.ok)
		}
	}
}
