package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
)

// Outbox is durable storage for messages sent while the client is
// offline (Config.Outbox). The client puts a message there when Send is
// called without a stream, or while older queued messages have not left
// yet; when the stream is back, it sends them in order, sealing each
// then, and removes each once the server acknowledged it (XEP-0198), or
// once written when the server offers no acknowledgements. A message
// keeps its id, so a message sent again after a crash is recognised by
// its recipients (XEP-0359 origin-id). Only messages in the clear and of
// mechanisms that say so (Needs.Deferrable) are queued.
//
// Implementations must be safe for concurrent use; Put must not return
// before the message is durable. Only one client may use an outbox at a
// time.
type Outbox interface {
	// Put stores m and sets m.Key (never 0).
	Put(ctx context.Context, m *QueuedMessage) error
	// Queued returns the stored messages, oldest first.
	Queued(ctx context.Context) ([]QueuedMessage, error)
	// Remove deletes a message that left or failed for good.
	Remove(ctx context.Context, key int64) error
}

// QueuedMessage is a message waiting in the outbox: the plaintext and
// the mechanism to seal it with when it leaves.
type QueuedMessage struct {
	Key       int64
	To        jid.JID
	ID        string // the message id, kept when it leaves
	Type      string
	Thread    string
	Body      string
	Receipt   bool
	Mechanism string // EME namespace, "" for the clear
	Queued    time.Time
}

// OfflineError refuses a message that cannot wait for the stream: its
// mechanism seals with the state of a live session (OTR, Encrypted
// Sessions), which may not survive the outage, and whose plaintext is not
// kept on disk for later. It matches ErrNotConnected.
type OfflineError struct {
	Mechanism string // EME namespace
	Reason    string // why the message is not queued
}

func (e *OfflineError) Error() string {
	return fmt.Sprintf("client: not connected, and messages with %s are not queued: %s", eme.DisplayName(e.Mechanism, ""), e.Reason)
}

// Is makes errors.Is(err, ErrNotConnected) true.
func (e *OfflineError) Is(target error) bool { return target == ErrNotConnected }

// obState is the client's side of the outbox.
type obState struct {
	mu sync.Mutex
	// hold makes new messages queue behind the stored ones: set when the
	// stream ends, cleared when a flush found the outbox empty.
	hold bool
	// released is closed when hold is cleared, and made anew when it is
	// set again.
	released chan struct{}
	inflight map[int64]bool // written, awaiting the server's acknowledgement
	flushing bool
	again    bool // a flush was asked for while one ran
	removals *queue[int64]
	// removed is closed when runRemovals has deleted the last removal,
	// after Close: a message acknowledged before the process exits must
	// not leave a second time at the next start.
	removed chan struct{}
}

func (o *obState) init() {
	o.inflight = map[int64]bool{}
	o.hold = true
	o.released = make(chan struct{})
	o.removals = newQueue[int64]()
	o.removed = make(chan struct{})
}

// holdOn makes new messages wait in the outbox.
func (o *obState) holdOn() {
	o.mu.Lock()
	if !o.hold {
		o.hold = true
		o.released = make(chan struct{})
	}
	o.mu.Unlock()
}

// release lets new messages leave directly. The caller holds o.mu.
func (o *obState) release() {
	if o.hold {
		o.hold = false
		close(o.released)
	}
}

// remove deletes a message from the outbox in the background. Until it
// is deleted, it counts as in flight: a flush meanwhile must not send it
// again.
func (o *obState) remove(c *Client, key int64) {
	o.mu.Lock()
	o.inflight[key] = true
	o.mu.Unlock()
	o.removals.push(key)
}

// runRemovals deletes messages from the outbox, off the read loop.
func (c *Client) runRemovals() {
	defer close(c.ob.removed)
	for {
		key, ok := c.ob.removals.pop()
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.cfg.Outbox.Remove(ctx, key); err != nil {
			c.cfg.logger().Warn("removing a sent message from the outbox failed", "err", err)
		}
		cancel()
		c.ob.mu.Lock()
		delete(c.ob.inflight, key)
		c.ob.mu.Unlock()
	}
}

// deferrable reports whether messages of mechanism may wait in the
// outbox.
func (p *Pipeline) deferrable(mechanism string) bool {
	if mechanism == "" {
		return true
	}
	m, ok, _ := p.mechanism(mechanism)
	return ok && m.Needs().Deferrable
}

// canQueue reports whether out may wait in the outbox.
func (c *Client) canQueue(out *Outgoing, mechanism string) bool {
	return c.cfg.Outbox != nil && len(out.Payload) == 0 && c.pipeline.deferrable(mechanism)
}

// queue puts out into the outbox when it must wait: the client is offline
// or older messages wait there. It reports whether it did.
func (c *Client) queue(ctx context.Context, out *Outgoing, mechanism string) (Sent, bool, error) {
	if c.cfg.Outbox == nil {
		return Sent{}, false, nil
	}
	deferrable := c.pipeline.deferrable(mechanism)
	c.ob.mu.Lock()
	for c.ob.hold && c.Connected() && deferrable {
		// Connected, and the queued messages are leaving: this one follows
		// them, sent directly (so that an error sealing it is its
		// sender's at once).
		released := c.ob.released
		c.ob.mu.Unlock()
		t := time.NewTimer(time.Second)
		select {
		case <-released:
		case <-t.C: // the connection may have dropped meanwhile
		case <-ctx.Done():
			t.Stop()
			return Sent{}, true, fmt.Errorf("client: waiting for queued messages to leave first: %w", ctx.Err())
		}
		t.Stop()
		c.ob.mu.Lock()
	}
	defer c.ob.mu.Unlock()
	if c.Connected() && (!c.ob.hold || !deferrable) {
		// Messages of a mechanism that cannot wait never queue behind
		// those of others.
		return Sent{}, false, nil
	}
	if !deferrable && c.sm.canHold() {
		// The stream is down but may be resumed, and the session with it:
		// the message is sealed now and held for the resumed stream, or
		// reported failed if the stream is not resumed after all.
		return Sent{}, false, nil
	}
	if !deferrable {
		return Sent{}, true, &OfflineError{Mechanism: mechanism,
			Reason: "its mechanism seals with a live session, which may not survive the outage"}
	}
	if len(out.Payload) > 0 {
		return Sent{}, true, errors.New("client: not connected, and a message with a payload is not queued")
	}
	m := &QueuedMessage{To: out.To, ID: out.ID, Type: out.Type, Thread: out.Thread, Body: out.Body,
		Receipt: out.Receipt, Mechanism: mechanism, Queued: c.cfg.now()}
	if err := c.cfg.Outbox.Put(ctx, m); err != nil {
		return Sent{}, true, fmt.Errorf("client: queueing the message: %w", err)
	}
	t := c.fates.track(out.ID, out.To, m.Key, nil)
	c.fate(t, FateQueued, nil)
	if c.Connected() {
		go c.flushOutbox()
	}
	return Sent{ID: out.ID, IDs: []string{out.ID}, Queued: true}, true, nil
}

// flushOutbox sends the queued messages, in order, once the stream is up;
// new messages queue behind them until the outbox is empty.
func (c *Client) flushOutbox() {
	if c.cfg.Outbox == nil {
		return
	}
	c.ob.mu.Lock()
	if c.ob.flushing {
		// The running flush may be about to give up on a stream that went
		// away: it starts over when it ends.
		c.ob.again = true
		c.ob.mu.Unlock()
		return
	}
	c.ob.flushing = true
	c.ob.mu.Unlock()
	defer func() {
		c.ob.mu.Lock()
		c.ob.flushing = false
		again := c.ob.again
		c.ob.again = false
		c.ob.mu.Unlock()
		if again && c.Connected() {
			go c.flushOutbox()
		}
	}()
	log := c.cfg.logger()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c.ob.mu.Lock()
		if !c.Connected() {
			c.ob.mu.Unlock()
			cancel()
			return
		}
		list, err := c.cfg.Outbox.Queued(ctx)
		var todo []QueuedMessage
		for _, m := range list {
			if !c.ob.inflight[m.Key] {
				todo = append(todo, m)
			}
		}
		if err != nil || len(todo) == 0 {
			if err != nil {
				log.Warn("reading the outbox failed; sending new messages directly", "err", err)
			}
			c.ob.release()
			c.ob.mu.Unlock()
			cancel()
			return
		}
		for _, m := range todo {
			c.ob.inflight[m.Key] = true
		}
		c.ob.mu.Unlock()
		for i, m := range todo {
			out := &Outgoing{To: m.To, ID: m.ID, Type: m.Type, Thread: m.Thread, Body: m.Body, Receipt: m.Receipt}
			_, err := c.pipeline.sendNow(ctx, out, m.Mechanism, m.Key)
			if err == nil {
				continue
			}
			if errors.Is(err, ErrNotConnected) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
				// It stays queued for the next stream.
				c.ob.mu.Lock()
				for _, k := range todo[i:] {
					delete(c.ob.inflight, k.Key)
				}
				c.ob.mu.Unlock()
				cancel()
				return
			}
			// It cannot leave (no key for the recipient, a policy that
			// refuses it): it will never leave; the sender learns why.
			log.Warn("a queued message cannot be sent", "err", err)
			t := c.fates.lookup(m.ID)
			if t == nil {
				t = c.fates.track(m.ID, m.To, m.Key, nil)
			}
			if c.fates.finish(t) {
				c.fate(t, FateFailed, func(e *FateEvent) { e.Err = fmt.Errorf("%w: %w", ErrGivenUp, err) })
			}
			c.ob.remove(c, m.Key)
		}
		cancel()
	}
}
