package client

import (
	"context"
	"slices"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
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

// reusingOutbox gives a new message the key after the highest queued, as
// SQLite gives rowids: the key of a removed message is given again.
type reusingOutbox struct {
	memOutbox
	removed chan int64
}

func (o *reusingOutbox) Put(ctx context.Context, m *QueuedMessage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m.Key = 1
	if n := len(o.msgs); n > 0 {
		m.Key = o.msgs[n-1].Key + 1
	}
	o.msgs = append(o.msgs, *m)
	return nil
}

func (o *reusingOutbox) Remove(ctx context.Context, key int64) error {
	o.mu.Lock()
	o.msgs = slices.DeleteFunc(o.msgs, func(m QueuedMessage) bool { return m.Key == key })
	o.mu.Unlock()
	o.removed <- key
	return nil
}

// A message acknowledged a second time (sent again after the server lost
// the session that had acknowledged it) does not remove from the outbox
// the message queued since under the key it had: that message was lost,
// its last fate "queued" (the fault test through Prosody with OX).
func TestAckedAgainKeepsTheOutbox(t *testing.T) {
	ob := &reusingOutbox{removed: make(chan int64, 4)}
	c, err := New(Config{JID: jid.MustParse("bob@example.org/desk"), Password: "x", Outbox: ob})
	if err != nil {
		t.Fatal(err)
	}
	to := jid.MustParse("alice@example.org")
	first := &QueuedMessage{To: to, ID: "first", Body: "1"}
	if err := ob.Put(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	tr := c.fates.track("first", to, first.Key, nil)
	st := xmltree.New(NSClient, "message", "id", "first")
	c.acked([]*unacked{{st: st, msg: tr}})
	if key := <-ob.removed; key != first.Key {
		t.Fatalf("removed %d, want %d", key, first.Key)
	}
	later := &QueuedMessage{To: to, ID: "later", Body: "2"}
	if err := ob.Put(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	if later.Key != first.Key {
		t.Fatalf("the outbox did not give the key again (%d, %d): the test tests nothing", later.Key, first.Key)
	}
	c.acked([]*unacked{{st: st, msg: tr}})
	c.Close() // waits for the removals asked for
	q, _ := ob.Queued(context.Background())
	if len(q) != 1 || q[0].ID != "later" {
		t.Fatalf("outbox after the second acknowledgement: %+v, want the later message", q)
	}
}
