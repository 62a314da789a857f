package client

import (
	"context"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
)

// memOutbox is an Outbox in memory.
type memOutbox struct {
	mu   sync.Mutex
	next int64
	msgs []QueuedMessage
}

func (o *memOutbox) Put(ctx context.Context, m *QueuedMessage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	m.Key = o.next
	o.msgs = append(o.msgs, *m)
	return nil
}

func (o *memOutbox) Queued(ctx context.Context) ([]QueuedMessage, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]QueuedMessage(nil), o.msgs...), nil
}

func (o *memOutbox) Remove(ctx context.Context, key int64) error { return nil }

// dropsStream is a deferrable mechanism during whose sealing the stream
// goes down (as it may while OX fetches keys).
type dropsStream struct {
	fakeMech
	c *Client
}

func (d *dropsStream) Seal(ctx context.Context, out *Outgoing) (Sealed, error) {
	d.c.mu.Lock()
	d.c.connected = false
	d.c.mu.Unlock()
	return d.fakeMech.Seal(ctx, out)
}

// A message of a mechanism that may wait, sent while the stream seemed up
// but written after it went down, waits in the outbox like one sent
// offline: it is not refused with "not connected" (seen in the fault test:
// a few OX messages of each thousand failed so, although OX messages may
// wait).
func TestSendQueuesWhenTheStreamDropsDuringSealing(t *testing.T) {
	ob := &memOutbox{}
	c, err := New(Config{JID: jid.MustParse("bob@example.org/desk"), Password: "x", Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m := &dropsStream{fakeMech: fakeMech{ns: eme.OX, needs: Needs{Deferrable: true}}, c: c}
	if err := c.Register(m); err != nil {
		t.Fatal(err)
	}
	// Connected, with nothing waiting in the outbox: messages go directly.
	c.mu.Lock()
	c.connected = true
	c.mu.Unlock()
	c.ob.mu.Lock()
	c.ob.release()
	c.ob.mu.Unlock()

	sent, err := c.Send(context.Background(), &Outgoing{To: jid.MustParse("alice@example.org"), Body: "hello"}, eme.OX)
	if err != nil || !sent.Queued {
		t.Fatalf("Send: %+v, %v; want queued", sent, err)
	}
	q, _ := ob.Queued(context.Background())
	if len(q) != 1 || q[0].Body != "hello" || q[0].Mechanism != eme.OX || q[0].ID != sent.ID {
		t.Fatalf("outbox: %+v", q)
	}
}
