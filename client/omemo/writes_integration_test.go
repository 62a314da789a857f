package omemo_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/trust"
)

// writeCounter counts the store's write transactions.
type writeCounter struct {
	omemo.Store
	n atomic.Int64
}

func (w *writeCounter) RecordSeenKey(ctx context.Context, contact string, m trust.Mechanism, fpr string, data []byte) (trust.Seen, error) {
	w.n.Add(1)
	return w.Store.RecordSeenKey(ctx, contact, m, fpr, data)
}

func (w *writeCounter) SetAnnouncedKeys(ctx context.Context, contact string, m trust.Mechanism, fprs []string) error {
	w.n.Add(1)
	return w.Store.SetAnnouncedKeys(ctx, contact, m, fprs)
}

func (w *writeCounter) UpdateMechanismState(ctx context.Context, m trust.Mechanism, set map[string][]byte, remove []string) error {
	w.n.Add(1)
	return w.Store.UpdateMechanismState(ctx, m, set, remove)
}

// TestStoreWritesPerMessage: once a conversation runs, reading a message
// writes the store once (the session), not also the key's last use and
// the device's last message every time: those are written at most every
// ten minutes (each write is a transaction with an fsync).
func TestStoreWritesPerMessage(t *testing.T) {
	srv := servertest.StartProsody(t)
	counter := &writeCounter{}
	alice := connect(t, srv, srv.AddUser(t, "alice", ""), devOptions{})
	bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{wrap: func(s omemo.Store) omemo.Store {
		counter.Store = s
		return counter
	}})
	for _, g := range gens {
		// The session is built and answered: alice's next messages are
		// plain ratchet messages.
		alice.send(t, bob.bare, g, "first, "+g.String())
		bob.message(t, alice.bare, "first, "+g.String())
		bob.send(t, alice.bare, g, "reply, "+g.String())
		alice.message(t, bob.bare, "reply, "+g.String())
		alice.send(t, bob.bare, g, "second, "+g.String())
		bob.message(t, alice.bare, "second, "+g.String())

		// A bundle republished after the first message's pre-key was
		// used may still be committing: not a write of these messages.
		bob.d.WaitBackground()
		const n = 20
		before := counter.n.Load()
		for i := range n {
			body := fmt.Sprintf("%v message %d", g, i)
			alice.send(t, bob.bare, g, body)
			bob.message(t, alice.bare, body)
		}
		w := counter.n.Load() - before
		t.Logf("%v: %d store writes for %d messages read", g, w, n)
		if w > n {
			t.Errorf("%v: reading %d messages wrote the store %d times, want at most %d", g, n, w, n)
		}
	}
}
