package client_test

import (
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/faultproxy"
	"github.com/balcony-im/balcony/internal/servertest"
)

// quiet waits until the client wrote nothing for 300ms and returns what
// it wrote so far.
func quiet(t *testing.T, conn *faultproxy.Conn) int64 {
	t.Helper()
	last, _ := conn.Forwarded()
	still := 0
	for deadline := time.Now().Add(10 * time.Second); still < 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client never went quiet")
		}
		n, _ := conn.Forwarded()
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	return last
}

// Abort drops the connection without a byte more (no unavailable
// presence, no last acknowledgement, no stream end) and does not
// reconnect; Close, for comparison, says goodbye.
func TestIntegrationAbort(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice := s.AddUser(t, "alice", "")
		for _, abort := range []bool{true, false} {
			p, via := proxied(t, s)
			c := clienttest.ConnectTo(t, s, alice, "desk", nil, via, func(cfg *client.Config) { cfg.Reconnect = true })
			live := p.Live()
			conn := live[len(live)-1]
			dials := len(p.Conns())
			// The client's own work after connecting (catch-up, caps,
			// carbons) has no end event: wait until nothing moved for
			// 300ms.
			before := quiet(t, conn)
			start := time.Now()
			if abort {
				c.Abort()
			} else {
				c.Close()
			}
			if err := conn.WaitClientClosed(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			after, _ := conn.Forwarded()
			for range c.Events() {
			}
			switch {
			case abort && after != before:
				t.Errorf("Abort wrote %d bytes", after-before)
			case abort && time.Since(start) > time.Second:
				t.Errorf("Abort took %v", time.Since(start))
			case !abort && after == before:
				t.Error("Close wrote nothing: the comparison shows nothing")
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after the end: %v", err)
			}
			if n := len(p.Conns()); n != dials {
				t.Errorf("%d connections, %d before: the client connected again", n, dials)
			}
		}
	})
}
