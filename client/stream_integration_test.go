package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/faultproxy"
	"github.com/balcony-im/balcony/internal/servertest"
	"mellium.im/xmpp/jid"
)

// proxied starts a fault proxy in front of the server and returns a
// configuration change that connects through it.
func proxied(t *testing.T, s *servertest.Server) (*faultproxy.Proxy, func(*client.Config)) {
	t.Helper()
	p, err := faultproxy.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, func(cfg *client.Config) { cfg.Addr = p.Addr() }
}

// TestIntegrationStreamEndReleasesConnection: when the server ends the
// stream (here: another login with the same resource replaces ours), the
// client closes its TCP connection at once, not when the garbage
// collector finds it.
func TestIntegrationStreamEndReleasesConnection(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice := s.AddUser(t, "alice", "")
		p, via := proxied(t, s)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via)
		conns := p.Live()
		if len(conns) != 1 {
			t.Fatalf("%d connections through the proxy", len(conns))
		}
		// The same resource again, directly: the server replaces the first
		// session (RFC 6120 §7.7.2.2) and closes its stream.
		clienttest.ConnectTo(t, s, alice, "desk", nil)
		clienttest.WaitFor(t, a, func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected })
		if err := conns[0].WaitClientClosed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// fast makes a client notice trouble quickly and reconnect at once.
func fast(cfg *client.Config) {
	cfg.Reconnect = true
	cfg.MinBackoff = 10 * time.Millisecond
	cfg.MaxBackoff = 200 * time.Millisecond
	cfg.KeepAlive = 300 * time.Millisecond
	cfg.ProbeTimeout = 700 * time.Millisecond
	cfg.AckAfter = 100 * time.Millisecond
}

// collector gathers a client's events in the background.
type collector struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events []client.Event
}

func collect(t *testing.T, c *client.Client) *collector {
	col := &collector{}
	col.cond = sync.NewCond(&col.mu)
	go func() {
		for ev := range c.Events() {
			col.mu.Lock()
			col.events = append(col.events, ev)
			col.cond.Broadcast()
			col.mu.Unlock()
		}
	}()
	return col
}

// wait blocks until pred holds over the events collected (15 s at most).
func (col *collector) wait(t *testing.T, what string, pred func(evs []client.Event) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	timer := time.AfterFunc(15*time.Second, func() {
		col.mu.Lock()
		col.cond.Broadcast()
		col.mu.Unlock()
	})
	defer timer.Stop()
	col.mu.Lock()
	defer col.mu.Unlock()
	for !pred(col.events) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		col.cond.Wait()
	}
}

// count counts the collected events matching pred.
func count[E client.Event](col *collector, pred func(E) bool) int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return countIn(col.events, pred)
}

func countIn[E client.Event](evs []client.Event, pred func(E) bool) int {
	n := 0
	for _, ev := range evs {
		if e, ok := ev.(E); ok && pred(e) {
			n++
		}
	}
	return n
}

func has[E client.Event](pred func(E) bool) func([]client.Event) bool {
	return func(evs []client.Event) bool {
		for _, ev := range evs {
			if e, ok := ev.(E); ok && pred(e) {
				return true
			}
		}
		return false
	}
}

// reconnected reports a connection after a disconnection.
func reconnected(evs []client.Event) bool {
	down := false
	for _, ev := range evs {
		if e, ok := ev.(*client.ConnectionEvent); ok {
			switch {
			case e.State == client.Disconnected:
				down = true
			case e.State == client.Connected && down:
				return true
			}
		}
	}
	return false
}

func bodies(evs []client.Event, from string) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" && m.From.Bare().String() == from {
			out[m.Body]++
		}
	}
	return out
}

// TestIntegrationStreamManagement: on both servers, stream management is
// enabled with resumption, the server acknowledges messages (FateAcked),
// and a connection cut in the middle of the traffic, then a silent stall,
// are resumed with every message delivered exactly once both ways.
func TestIntegrationStreamManagement(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice, bob := s.AddUser(t, "alice", ""), s.AddUser(t, "bob", "")
		p, via := proxied(t, s)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast)
		b := clienttest.ConnectTo(t, s, bob, "phone", nil, fast)
		st := a.ConnectionStatus()
		if !st.Connected || !st.StreamManagement || !st.Resumable {
			t.Fatalf("status %+v", st)
		}
		ac, bc := collect(t, a), collect(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		n := 0
		sendBoth := func(k int) {
			for i := 0; i < k; i++ {
				n++
				if _, err := a.Send(ctx, &client.Outgoing{To: b.JID().Bare(), Body: fmt.Sprintf("a%d", n)}, ""); err != nil {
					t.Fatalf("alice sending: %v", err)
				}
				if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: fmt.Sprintf("b%d", n)}, ""); err != nil {
					t.Fatalf("bob sending: %v", err)
				}
			}
		}
		sendBoth(5)
		ac.wait(t, "alice's messages acknowledged", func(evs []client.Event) bool {
			return countIn(evs, func(f *client.FateEvent) bool { return f.Fate == client.FateAcked }) == 5
		})

		// A cut in the middle of the traffic.
		cut := p.CutAfter(3000)
		sendBoth(20)
		<-cut
		ac.wait(t, "a resumed stream", has(func(e *client.ConnectionEvent) bool { return e.State == client.Connected && e.Resumed }))
		sendBoth(5)

		// A silent stall: detected by the unanswered <r/>, then resumed.
		stalled := p.Stall()
		start := time.Now()
		if err := stalled[0].WaitClientClosed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("stall detected after %v", d)
		}
		ac.wait(t, "a second resumed stream", func(evs []client.Event) bool {
			return countIn(evs, func(e *client.ConnectionEvent) bool { return e.State == client.Connected && e.Resumed }) >= 2
		})
		if count(ac, func(e *client.ConnectionEvent) bool {
			return e.State == client.Disconnected && errors.Is(e.Err, client.ErrStalled)
		}) != 1 {
			t.Error("the stall was not reported as ErrStalled")
		}
		sendBoth(5)

		for _, side := range []struct {
			col  *collector
			from string
			pfx  string
		}{{bc, alice.JID.String(), "a"}, {ac, bob.JID.String(), "b"}} {
			side.col.wait(t, "every message from "+side.from, func(evs []client.Event) bool { return len(bodies(evs, side.from)) == n })
			side.col.mu.Lock()
			got := bodies(side.col.events, side.from)
			side.col.mu.Unlock()
			for body, k := range got {
				if k != 1 || !strings.HasPrefix(body, side.pfx) {
					t.Errorf("%q delivered %d times", body, k)
				}
			}
		}
		// No OTR-like session was ended: the stream was never lost.
		if st := a.ConnectionStatus(); !st.Resumed {
			t.Errorf("status after resumption %+v", st)
		}
	})
}

func messagesFrom(evs []client.Event, from string, pred func(*client.MessageEvent) bool) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" && m.From.Bare().String() == from && (pred == nil || pred(m)) {
			out[m.Body]++
		}
	}
	return out
}

// TestIntegrationCatchUp: messages that reached the account while this
// client was away and were not kept for it (another resource took them,
// so the server stored nothing offline) are fetched from the archive
// after a reconnection that could not resume anything, marked CatchUp,
// each once, acknowledged to their sender with a receipt; what this
// client had already seen is not delivered again.
func TestIntegrationCatchUp(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice, bob := s.AddUser(t, "alice", ""), s.AddUser(t, "bob", "")
		p, via := proxied(t, s)
		noSM := func(cfg *client.Config) { cfg.DisableStreamManagement = true }
		desk := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast, noSM)
		phone := clienttest.ConnectTo(t, s, alice, "phone", nil)
		b := clienttest.ConnectTo(t, s, bob, "pc", nil)
		dc, bc := collect(t, desk), collect(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		send := func(body string) {
			if _, err := b.Send(ctx, &client.Outgoing{To: alice.JID, Body: body, Receipt: true}, ""); err != nil {
				t.Fatal(err)
			}
		}
		send("seen before")
		dc.wait(t, "the first message", func(evs []client.Event) bool { return len(messagesFrom(evs, bob.JID.String(), nil)) == 1 })
		if desk.ArchiveCursor() == "" {
			t.Fatal("no archive id noted for the message")
		}

		// The desk goes away and cannot come back for a while; the phone
		// gets what bob sends meanwhile.
		p.Refuse(true)
		p.Cut()
		dc.wait(t, "the disconnection", has(func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected }))
		for i := 1; i <= 3; i++ {
			send(fmt.Sprintf("while away %d", i))
			clienttest.WaitFor(t, phone, func(m *client.MessageEvent) bool { return m.Body == fmt.Sprintf("while away %d", i) })
		}
		p.Refuse(false)
		dc.wait(t, "the messages from the archive", func(evs []client.Event) bool {
			return len(messagesFrom(evs, bob.JID.String(), nil)) == 4
		})
		dc.mu.Lock()
		got := messagesFrom(dc.events, bob.JID.String(), nil)
		caught := messagesFrom(dc.events, bob.JID.String(), func(m *client.MessageEvent) bool { return m.Origin.CatchUp })
		dc.mu.Unlock()
		for body, n := range got {
			if n != 1 {
				t.Errorf("%q delivered %d times", body, n)
			}
		}
		if len(caught) != 3 || caught["seen before"] != 0 {
			t.Errorf("caught up %v", caught)
		}
		// The desk's receipts reach bob for what it caught up (the phone
		// sent its own for the live copies).
		dc.mu.Lock()
		ids := map[string]bool{}
		for _, ev := range dc.events {
			if m, ok := ev.(*client.MessageEvent); ok && m.Origin.CatchUp && m.Body != "" {
				ids[m.ID] = true
			}
		}
		dc.mu.Unlock()
		bc.wait(t, "receipts from the desk", func(evs []client.Event) bool {
			return countIn(evs, func(r *client.ReceiptEvent) bool { return r.From.Resourcepart() == "desk" && ids[r.ID] }) >= len(ids)
		})
	})
}

// TestIntegrationStreamLost: after a server restart the stream cannot be
// resumed; the client binds again, says so (Resumed false), and every
// message of the conversation arrives exactly once.
func TestIntegrationStreamLost(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice, bob := s.AddUser(t, "alice", ""), s.AddUser(t, "bob", "")
		_, via := proxied(t, s)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast)
		b := clienttest.ConnectTo(t, s, bob, "pc", nil, fast)
		ac, bc := collect(t, a), collect(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := 0; i < 3; i++ {
			if _, err := b.Send(ctx, &client.Outgoing{To: alice.JID, Body: fmt.Sprintf("before %d", i)}, ""); err != nil {
				t.Fatal(err)
			}
		}
		ac.wait(t, "the first messages", func(evs []client.Event) bool { return len(messagesFrom(evs, bob.JID.String(), nil)) == 3 })
		s.Restart(t)
		for _, col := range []*collector{ac, bc} {
			col.wait(t, "a new stream", reconnected)
		}
		for i := 0; i < 3; i++ {
			if _, err := b.Send(ctx, &client.Outgoing{To: alice.JID, Body: fmt.Sprintf("after %d", i)}, ""); err != nil {
				t.Fatal(err)
			}
		}
		ac.wait(t, "every message", func(evs []client.Event) bool { return len(messagesFrom(evs, bob.JID.String(), nil)) == 6 })
		ac.mu.Lock()
		defer ac.mu.Unlock()
		for body, n := range messagesFrom(ac.events, bob.JID.String(), nil) {
			if n != 1 {
				t.Errorf("%q delivered %d times", body, n)
			}
		}
		if st := a.ConnectionStatus(); !st.Connected || st.Resumed || !st.StreamManagement {
			t.Errorf("status %+v", st)
		}
	})
}

// TestIntegrationLivenessPing: without stream management a silent stall
// is detected with a XEP-0199 ping, within KeepAlive + ProbeTimeout; the
// connection is closed at once and the client connects again.
func TestIntegrationLivenessPing(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice := s.AddUser(t, "alice", "")
		p, via := proxied(t, s)
		a := clienttest.ConnectTo(t, s, alice, "desk", nil, via, fast, func(cfg *client.Config) { cfg.DisableStreamManagement = true })
		if st := a.ConnectionStatus(); st.StreamManagement {
			t.Fatalf("status %+v", st)
		}
		ac := collect(t, a)
		stalled := p.Stall()
		start := time.Now()
		if err := stalled[0].WaitClientClosed(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		cfg := a.Config()
		if d, bound := time.Since(start), cfg.KeepAlive+cfg.ProbeTimeout+time.Second; d > bound {
			t.Errorf("stall detected after %v (bound %v)", d, bound)
		}
		ac.wait(t, "the reconnection", reconnected)
		if count(ac, func(e *client.ConnectionEvent) bool {
			return e.State == client.Disconnected && errors.Is(e.Err, client.ErrStalled)
		}) != 1 {
			t.Error("the stall was not reported as ErrStalled")
		}
		// The connection works.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.QueryInfo(ctx, jid.MustParse(s.Domain), ""); err != nil {
			t.Fatal(err)
		}
	})
}
