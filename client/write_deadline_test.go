package client

import (
	"context"
	"sync"
	"testing"

	"github.com/balcony-im/balcony/xmltree"
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
