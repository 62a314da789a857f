package pgstore

import (
	"errors"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/storetest"
)

// Two hosts share an account: one holds it at a time, a Lock and a Host
// exclude each other, a released account goes to the other host, and a
// host whose connection the server ends learns it within FenceDelay
// while its accounts are free at once.
func testHosts(t *testing.T, s *Store) {
	a, err := s.Create(ctx, "hosted@example.org", storetest.Options(storetest.Passphrase))
	must(t, err)
	a.Close()
	const j = "hosted@example.org"
	h1, err := s.NewHost(ctx, 100*time.Millisecond)
	must(t, err)
	defer h1.Close()
	h2, err := s.NewHost(ctx, 100*time.Millisecond)
	must(t, err)
	defer h2.Close()
	if n, err := h1.Hosts(ctx); err != nil || n < 2 {
		t.Fatalf("hosts: %d %v", n, err)
	}
	lock := func(h *Host, want bool) {
		t.Helper()
		got, err := h.TryLock(ctx, j)
		if err != nil || got != want {
			t.Fatalf("TryLock: %v %v, want %v", got, err, want)
		}
	}
	lock(h1, true)
	lock(h1, true) // held already: not taken twice
	lock(h2, false)
	if _, err := s.TryLockAccount(ctx, j); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("TryLockAccount while a host holds it: %v", err)
	}
	if served, err := s.Served(ctx); err != nil || !served[j] {
		t.Fatalf("served: %v %v", served, err)
	}
	must(t, h1.Unlock(ctx, j))
	// Taken once above, released once: free now.
	lock(h2, true)
	lock(h1, false)
	// Holds asks the server, not the host's memory.
	must(t, h2.Holds(ctx, j))
	if err := h1.Holds(ctx, j); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Holds on the other host: %v", err)
	}
	id := h2.held[j]
	must(t, h2.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1, $2)`, lockServe, lockKey(id)).Scan(new(bool)))
	if err := h2.Holds(ctx, j); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Holds after the lock was released behind the host's back: %v", err)
	}
	must(t, h2.conn.QueryRow(ctx, `SELECT pg_advisory_lock($1, $2)`, lockServe, lockKey(id)).Scan(new(any)))
	must(t, h2.Holds(ctx, j))
	if _, err := h1.TryLock(ctx, "nobody@example.org"); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("unknown account: %v", err)
	}

	// The server ends h2's connection (and waits until the backend is
	// gone): the account is free at once, and h2 knows within its fence
	// delay.
	var ended bool
	must(t, s.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, h2.conn.PgConn().PID()).Scan(&ended))
	cut := time.Now()
	// Before the host's watchdog notices: the query on the connection
	// itself fails, and the host is lost from then on.
	if err := h2.Holds(ctx, j); !errors.Is(err, ErrHostLost) {
		t.Fatalf("Holds on a terminated connection: %v", err)
	}
	select {
	case <-h2.Lost():
		if d := time.Since(cut); d > h2.FenceDelay() {
			t.Errorf("lost after %v, fence delay %v", d, h2.FenceDelay())
		}
	case <-time.After(10 * h2.FenceDelay()):
		t.Fatal("the host did not notice its connection ended")
	}
	lock(h1, true)
	if _, err := h2.TryLock(ctx, j); !errors.Is(err, ErrHostLost) {
		t.Fatalf("TryLock on a lost host: %v", err)
	}
	if n, err := h1.Hosts(ctx); err != nil || n != 1 {
		t.Fatalf("hosts after the loss: %d %v", n, err)
	}
	h1.Close()
	h1.Close()
	// The server ends the backend after the client has gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		served, err := s.Served(ctx)
		must(t, err)
		if !served[j] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still served 5s after Close")
		}
	}
}
