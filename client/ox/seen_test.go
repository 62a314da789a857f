package ox

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/store"
)

// stepClock is a clock moved forward by hand, shared by a mechanism and
// its store.
type stepClock struct{ ns atomic.Int64 }

func (c *stepClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *stepClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// TestOXLastSeenWrittenSparingly: a live message does not write the
// sender key's last use to the store when it was written less than
// seenEvery ago (a write transaction per message made the store the
// limit of OX throughput); after that, it does.
func TestOXLastSeenWrittenSparingly(t *testing.T) {
	clk := &stepClock{}
	clk.ns.Store(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC).UnixNano())
	alice := newOXPeer(t, "alice@example.org/laptop", Config{}, true)
	bj := jid.MustParse("bob@example.org/phone")
	c, err := client.New(client.Config{JID: bj, Password: "unused", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		for range c.Events() {
		}
	}()
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bob := &oxPeer{c: c, st: st, j: bj, key: mustKey(t, bj)}
	ctx := context.Background()
	if err := StoreKey(ctx, st, bob.key, true); err != nil {
		t.Fatal(err)
	}
	if bob.x, err = New(Config{Store: st, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(bob.x); err != nil {
		t.Fatal(err)
	}
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)
	lastSeen := func() time.Time {
		t.Helper()
		recs, err := st.ListKeys(ctx, "alice@example.org", store.OX)
		if err != nil || len(recs) != 1 {
			t.Fatalf("keys %+v, %v", recs, err)
		}
		return recs[0].LastSeen
	}
	learned := lastSeen()

	for i, step := range []struct {
		advance time.Duration
		written bool
	}{
		{time.Second, false},
		{seenEvery - 2*time.Second, false},
		{time.Second, true},
		{time.Minute, false},
	} {
		clk.Add(step.advance)
		before := lastSeen()
		m, ok := bob.receive(alice.seal(t, bob.j.Bare(), "hi"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if !ok || m.Body != "hi" {
			t.Fatalf("step %d: not delivered: %#v", i, m)
		}
		got := lastSeen()
		if want := before; step.written {
			want = clk.Now()
			if !got.Equal(want) {
				t.Errorf("step %d: last seen %v, want %v (now)", i, got, want)
			}
		} else if !got.Equal(want) {
			t.Errorf("step %d: last seen written again: %v, was %v", i, got, want)
		}
	}
	if lastSeen().Equal(learned) {
		t.Error("last seen never updated")
	}
}
