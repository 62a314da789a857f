package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/xmltree"
	"mellium.im/xmpp/jid"
)

// A write whose context ends right after it must not break a later write.
// mellium's Session.Send watches the context from a goroutine that may run
// only after the write returned; seeing the context done, it set a write
// deadline in the past, and the write of another stanza in progress then
// failed, taking the stream down (crypto/tls makes a failed write
// permanent). Seen as "client: not connected" right after a successful
// connection (TestIntegrationOfflineDelay, TestIntegrationOX in CI).
func TestWriteContextEndingAfterTheWrite(t *testing.T) {
	w := newFarEnd(t)
	c := w.c
	const writers, each = 4, 1500
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				ctx, cancel := context.WithCancel(context.Background())
				st := xmltree.New(NSClient, "message", "to", "alice@example.org", "id", NewID()).
					Append(xmltree.New(NSClient, "body").AppendText("x"))
				err := c.writeStanza(ctx, st, nil)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case <-w.done:
		t.Fatalf("the stream ended: %v", w.c.link.reason())
	default:
	}
	if !c.Connected() {
		t.Fatal("not connected after the writes")
	}
}

// The stream negotiation ends with the context that bounds it, even when
// the server accepts the connection and then says nothing: the client
// sets the connection's deadline itself (bounded), since mellium is given
// a context that never ends.
func TestNegotiationEndsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	c, err := New(Config{JID: jid.MustParse("bob@example.org/desk"), Password: "x", Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Connect(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("connect: %v, want the context's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the negotiation outlived its context by 10 s")
	}
	if c.Connected() {
		t.Fatal("connected to a silent server")
	}
}
