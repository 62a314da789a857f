package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/stream"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/servertest"
)

var errNoRight = errors.New("no right to connect")

// Config.BeforeConnect is asked before every attempt: a refusal stops
// Connect before anything is dialled, and stops the automatic
// reconnection after a network cut (resumption included), reported by a
// Disconnected event.
func TestIntegrationBeforeConnect(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice := s.AddUser(t, "alice", "")
		p, via := proxied(t, s)
		var allowed atomic.Bool
		var asked atomic.Int32
		hook := func(cfg *client.Config) {
			cfg.BeforeConnect = func(ctx context.Context) error {
				asked.Add(1)
				if !allowed.Load() {
					return errNoRight
				}
				return nil
			}
		}
		// Refused at once: nothing dialled.
		cfg := client.Config{JID: alice.JID, Password: alice.Password, Addr: p.Addr(), CAFile: s.CAFile}
		hook(&cfg)
		c, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(context.Background()); !errors.Is(err, client.ErrConnectRefused) || !errors.Is(err, errNoRight) {
			t.Fatalf("Connect: %v, want the hook's refusal", err)
		}
		c.Close()
		if n := len(p.Conns()); n != 0 || asked.Load() != 1 {
			t.Fatalf("%d connections, hook asked %d times", n, asked.Load())
		}
		// Allowed, then refused after a network cut.
		allowed.Store(true)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast, hook)
		if asked.Load() != 2 {
			t.Fatalf("hook asked %d times, want 2", asked.Load())
		}
		dials := len(p.Conns()) // two with ejabberd: the TLS 1.2 retry for channel binding
		allowed.Store(false)
		if err := a.Disconnect(); err != nil {
			t.Fatal(err)
		}
		ev := clienttest.WaitFor(t, a, func(e *client.ConnectionEvent) bool {
			return e.State == client.Disconnected && e.Err != nil && errors.Is(e.Err, client.ErrConnectRefused)
		})
		if !errors.Is(ev.Err, errNoRight) {
			t.Errorf("reported %v, want the hook's error", ev.Err)
		}
		if n := len(p.Conns()); n != dials {
			t.Errorf("%d connections through the proxy, %d before: the client connected again", n, dials)
		}
		if st := a.ConnectionStatus(); st.Reconnecting || st.Connected {
			t.Errorf("status %+v after the refusal", st)
		}
	})
}

// A session the server replaced (conflict: another session bound the
// same full JID, RFC 6120 §4.9.3.3, §7.7.2.2) is not logged in again,
// even with Reconnect: otherwise the two would replace each other in
// turn. The client tries one resumption (the replacing connection might
// have been one of its own), which the server refuses, and stops.
func TestIntegrationReplacedNoReconnect(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice := s.AddUser(t, "alice", "")
		p, via := proxied(t, s)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast)
		dials := len(p.Conns())
		b := clienttest.ConnectTo(t, s, alice, "desk", nil)
		first := clienttest.WaitFor(t, a, func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected })
		if !errors.Is(first.Err, stream.Conflict) {
			t.Fatalf("stream ended with %v, want a conflict", first.Err)
		}
		ev := first
		if !errors.Is(ev.Err, client.ErrReplaced) {
			// The one resumption tried, and refused.
			ev = clienttest.WaitFor(t, a, func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected })
			dials++
		}
		if !errors.Is(ev.Err, client.ErrReplaced) {
			t.Fatalf("the client ended with %v, want ErrReplaced", ev.Err)
		}
		// Decided before the event: no reconnection is under way, and
		// the session is not resumable any more.
		if st := a.ConnectionStatus(); st.Reconnecting || st.Resumable || ev.Resumable {
			t.Fatalf("status %+v, event %+v: reconnecting after being replaced", st, ev)
		}
		a.Close()
		for e := range a.Events() {
			if ce, ok := e.(*client.ConnectionEvent); ok && ce.State == client.Connected {
				t.Errorf("event %v after being replaced", ce.State)
			}
		}
		if n := len(p.Conns()); n != dials {
			t.Errorf("%d connections through the proxy, %d before: the client connected again", n, dials)
		}
		if st := b.ConnectionStatus(); !st.Connected {
			t.Errorf("the replacing session is down: %+v", st)
		}
	})
}
