package client

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// Fate is what became of a message the client sent, as far as it knows.
// A message goes through some of these in order; FateDelivered and
// FateFailed are final, with one exception: a message the client gave up
// because the session it was sealed in ended before its receipt came
// ("may not have been read") is reported FateDelivered after all when the
// receipt does come.
type Fate int

// Fates of a message.
const (
	// FateQueued: the message waits in the outbox (Config.Outbox), held
	// durably until the stream is back.
	FateQueued Fate = iota + 1
	// FateSent: the message was written to the stream. Under stream
	// management (FateEvent.Tracked) the server's acknowledgement
	// follows; without it this is all the client learns from the server.
	FateSent
	// FateAcked: the server acknowledged the message (XEP-0198): it is
	// now the server's responsibility to deliver it, store it or bounce
	// it with an error.
	FateAcked
	// FateDelivered: the recipient's client confirmed it (XEP-0184).
	FateDelivered
	// FateFailed: the message will not arrive: an error came back for
	// it (FateEvent.Condition), or the client gave it up (FateEvent.Err).
	FateFailed
)

func (f Fate) String() string {
	switch f {
	case FateQueued:
		return "queued"
	case FateSent:
		return "sent"
	case FateAcked:
		return "acked"
	case FateDelivered:
		return "delivered"
	case FateFailed:
		return "failed"
	}
	return "unknown"
}

// FateEvent reports a step of the fate of a message sent with
// Client.Send, by its id (Sent.ID).
type FateEvent struct {
	ID   string
	To   jid.JID
	Fate Fate
	// Tracked is set on FateSent when stream management is on: a
	// FateAcked follows once the server has the message (after a
	// resumption or a reconnection if need be).
	Tracked bool
	// Condition is the error condition (RFC 6120 §8.3.3) of an error
	// stanza that failed the message, and Text its text (the remote
	// entity's words: sanitise before showing).
	Condition, Text string
	// Err is why the client gave the message up (ErrGivenUp wrapping the
	// cause), when no error stanza did.
	Err  error
	Time time.Time
}

func (*FateEvent) event() {}

// ErrGivenUp is matched by FateEvent.Err when the client gave a message
// up: it closed before the server acknowledged the message and no
// outbox keeps it, or a queued message could not be sealed when it left.
var ErrGivenUp = errors.New("client: message given up")

// tracked is a message the client sent and follows.
type tracked struct {
	id     string
	to     jid.JID
	outbox int64 // key in the outbox, 0 if the message is not there
	done   bool  // delivered or failed
	// failed: the client gave it up (a receipt may still correct it:
	// "may not have been read" was too pessimistic).
	failed bool
	// bound: sealed with the state of a live session (OTR, Encrypted
	// Sessions; mechanisms that are not Needs.Deferrable), which ends when
	// the stream is lost; receipt: a receipt was asked for.
	bound, receipt bool
	mech           string // EME namespace, "" for the clear
	// replay: the message is one stanza that may be sent again as it is
	// (Needs.Replayable); st is that stanza, kept from the server's
	// acknowledgement (ackedAt) until the receipt, for resendWindow.
	replay  bool
	st      *xmltree.Element
	ackedAt time.Time
}

// fateState follows the messages the client sent, so that
// acknowledgements, receipts and errors become FateEvents. It remembers
// the last maxTracked messages (receipts and errors for older ones are
// still delivered as ReceiptEvent and ErrorEvent).
type fateState struct {
	mu    sync.Mutex
	byID  map[string]*tracked // stanza id -> message
	order []string
	// recent: replayable messages acknowledged within resendWindow whose
	// receipt has not come, oldest first.
	recent []*tracked
}

// resendWindow is how long before the loss of a session the server may
// have acknowledged a message it then lost with the session (still
// queued on its way to the recipient's session when the server
// stopped): such messages are sent again (Needs.Replayable).
const resendWindow = 10 * time.Second

const maxTracked = 4096

func (f *fateState) init() { f.byID = map[string]*tracked{} }

// track starts following message id to "to", sent as the stanzas ids.
func (f *fateState) track(id string, to jid.JID, outbox int64, ids []string) *tracked {
	t := &tracked{id: id, to: to, outbox: outbox}
	f.attach(t, append([]string{id}, ids...))
	return t
}

// follow returns the tracked message id (queued earlier in this process)
// or starts following it, with its stanza ids.
func (f *fateState) follow(id string, to jid.JID, outbox int64, ids []string) *tracked {
	f.mu.Lock()
	t := f.byID[id]
	f.mu.Unlock()
	if t == nil || t.outbox != outbox || !t.to.Equal(to) {
		return f.track(id, to, outbox, ids)
	}
	f.attach(t, ids)
	return t
}

// attach maps stanza ids to t.
func (f *fateState) attach(t *tracked, ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sid := range ids {
		if f.byID[sid] == t {
			continue
		}
		if _, ok := f.byID[sid]; !ok {
			f.order = append(f.order, sid)
		}
		f.byID[sid] = t
	}
	for len(f.order) > maxTracked {
		delete(f.byID, f.order[0])
		f.order[0] = ""
		f.order = f.order[1:]
	}
}

// lookup returns the message a stanza id belongs to.
func (f *fateState) lookup(id string) *tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id]
}

// correct reports whether t was reported failed and may now be reported
// delivered after all (once).
func (f *fateState) correct(t *tracked) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !t.failed {
		return false
	}
	t.failed = false
	return true
}

// finish marks t final; it reports false when it was already.
func (f *fateState) finish(t *tracked) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// bindTo records how t was sent: with the session-bound mechanism mech
// ("" when it does not depend on a session) and whether a receipt was
// asked for.
func (f *fateState) bindTo(t *tracked, mech string, bound, receipt bool) {
	f.mu.Lock()
	t.mech, t.bound, t.receipt = mech, bound, receipt
	f.mu.Unlock()
}

// takeOutbox returns t's key in the outbox, once: its row is removed
// once. A message acknowledged a second time (sent again after the server
// lost it) must not remove the row of a message queued since, which the
// store may have given the same key.
func (f *fateState) takeOutbox(t *tracked) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := t.outbox
	t.outbox = 0
	return key
}

// replayable marks t as a message that may be sent again as it is.
func (f *fateState) replayable(t *tracked) {
	f.mu.Lock()
	t.replay = true
	f.mu.Unlock()
}

// ackedAt notes that the server acknowledged t's stanza st at now: a
// replayable message that asked for a receipt is kept for resendWindow.
func (f *fateState) ackedAt(t *tracked, st *xmltree.Element, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prune(now)
	if !t.replay || !t.receipt || t.done || st == nil {
		return
	}
	t.st, t.ackedAt = st, now
	f.recent = append(f.recent, t)
}

// prune forgets the stanzas of messages confirmed or acknowledged before
// resendWindow. The caller holds f.mu.
func (f *fateState) prune(now time.Time) {
	n := 0
	for _, t := range f.recent {
		if t.done || now.Sub(t.ackedAt) > resendWindow {
			t.st = nil
			continue
		}
		f.recent[n] = t
		n++
	}
	clear(f.recent[n:])
	f.recent = f.recent[:n]
}

// inFlight returns, oldest first, the replayable messages the server
// acknowledged within resendWindow before lost, the time a session the
// server then lost ended, and whose receipt has not come: the server may
// have lost them with it. Each is returned once.
func (f *fateState) inFlight(lost time.Time) []*unacked {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*unacked
	for _, t := range f.recent {
		if t.done || t.st == nil || lost.Sub(t.ackedAt) > resendWindow {
			continue
		}
		out = append(out, &unacked{st: t.st, size: treeSize(t.st), at: t.ackedAt, msg: t})
		t.st = nil
	}
	f.prune(lost)
	return out
}

// sessionGone marks final, and returns, the messages sealed with a
// session that ended with the stream and whose delivery the recipient
// has not confirmed although asked to: the session that could read them
// is gone on both sides, so nothing more will be learnt of them.
func (f *fateState) sessionGone() []*tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.unconfirmed(nil, func(*tracked) bool { return true })
	for _, t := range out {
		t.done = true
	}
	return out
}

// unconfirmed returns, in the order they were sent and each once, the
// messages sent before stop (all when nil) that were sealed with a
// session, asked for a receipt, have neither a receipt nor an error, and
// satisfy keep. The caller holds f.mu.
func (f *fateState) unconfirmed(stop *tracked, keep func(*tracked) bool) []*tracked {
	var out []*tracked
	seen := map[*tracked]bool{}
	for _, id := range f.order {
		e := f.byID[id]
		if e != nil && e == stop {
			break
		}
		if e == nil || seen[e] {
			continue
		}
		seen[e] = true
		if !e.done && e.bound && e.receipt && keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// overtaken returns the messages sent before t to the same contact,
// sealed with a session (bound) and asking for a receipt, that are neither
// confirmed nor failed: t's receipt says that the recipient read a later
// message, and within a session messages arrive in order (RFC 6120 §10.1)
// and are read in order, so an earlier one without receipt or error was
// most likely lost on the way (a server that acknowledged a stanza and
// never delivered it; such messages are not archived, so nothing brings
// them back).
func (f *fateState) overtaken(t *tracked) []*tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !t.bound || !t.receipt {
		return nil
	}
	return f.unconfirmed(t, func(e *tracked) bool {
		return e.mech == t.mech && e.to.Bare().Equal(t.to.Bare())
	})
}

// sealedFor returns the messages sealed with mechanism mech for peer (a
// full JID, or a bare one for all its resources) that asked for a receipt
// and have neither a receipt nor an error.
func (f *fateState) sealedFor(mech string, peer jid.JID) []*tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unconfirmed(nil, func(e *tracked) bool {
		if e.mech != mech || !e.to.Bare().Equal(peer.Bare()) {
			return false
		}
		return peer.Resourcepart() == "" || e.to.Resourcepart() == "" || e.to.Equal(peer)
	})
}

// overtakenGrace is how long a message overtaken by a confirmed one may
// still be confirmed (or refused) before it is reported lost: receipts may
// cross on the way.
const overtakenGrace = 5 * time.Second

// failOvertaken reports the messages in ts failed, after overtakenGrace,
// unless their fate was settled meanwhile.
func (c *Client) failOvertaken(ts []*tracked) {
	c.failLater(ts, "a later message to the same contact was confirmed and this one never was: it was lost on the way")
}

// failLater reports the messages in ts given up for the reason why after
// overtakenGrace (a receipt may be on its way), unless their fate was
// settled meanwhile.
func (c *Client) failLater(ts []*tracked, why string) {
	if len(ts) == 0 {
		return
	}
	time.AfterFunc(overtakenGrace, func() {
		for _, e := range ts {
			if c.fates.finish(e) {
				c.fate(e, FateFailed, func(ev *FateEvent) {
					ev.Err = fmt.Errorf("%w: %s", ErrGivenUp, why)
				})
			}
		}
	})
}

// failBound reports t failed because its session ended with the stream.
func (c *Client) failBound(t *tracked, why string) {
	name := eme.DisplayName(t.mech, "")
	c.fate(t, FateFailed, func(e *FateEvent) {
		e.Err = fmt.Errorf("%w: the %s session ended with the connection %s", ErrGivenUp, name, why)
	})
}

// fate emits a FateEvent for t.
func (c *Client) fate(t *tracked, fate Fate, mod func(*FateEvent)) {
	ev := &FateEvent{ID: t.id, To: t.to, Fate: fate, Time: c.cfg.now()}
	if mod != nil {
		mod(ev)
	}
	c.cfg.logger().Debug("fate", "id", t.id, "fate", fate.String(), "err", ev.Err, "condition", ev.Condition)
	c.fates.mu.Lock()
	// Only a message the client gave up may be corrected by a receipt; an
	// error from the recipient or a server is final.
	t.failed = fate == FateFailed && ev.Condition == "" && errors.Is(ev.Err, ErrGivenUp)
	c.fates.mu.Unlock()
	c.events.push(ev)
}

// written reports that the last stanza of message t left.
func (f *fateState) written(c *Client, t *tracked, underSM bool) {
	if !f.settled(t) {
		c.fate(t, FateSent, func(e *FateEvent) { e.Tracked = underSM })
	}
	if !underSM {
		// Nothing more will be learnt from the server: the outbox has
		// done its part.
		if key := f.takeOutbox(t); key != 0 {
			c.ob.remove(c, key)
		}
	}
}

// settled reports whether t has its final fate (delivered or failed).
func (f *fateState) settled(t *tracked) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return t.done
}

// acked reports stanzas the server acknowledged. A message whose fate is
// already final is not reported acked after it: an acknowledgement can
// come late (after a resumption), when the recipient's error or receipt
// has already come.
func (c *Client) acked(us []*unacked) {
	for _, u := range us {
		if u.msg == nil {
			continue
		}
		if !c.fates.settled(u.msg) {
			c.fate(u.msg, FateAcked, nil)
		}
		c.fates.ackedAt(u.msg, u.st, c.cfg.now())
		if key := c.fates.takeOutbox(u.msg); key != 0 {
			c.ob.remove(c, key)
		}
	}
}

// observeFate turns a receipt or an error for a message we sent into its
// FateEvent. A receipt counts only from the recipient, an error from the
// recipient, the recipient's server or our own: anyone else who learnt
// an id can neither confirm nor fail the message.
func (c *Client) observeFate(ev Event) {
	switch ev := ev.(type) {
	case *ReceiptEvent:
		t := c.fates.lookup(ev.ID)
		if t == nil || !ev.From.Bare().Equal(t.to.Bare()) {
			return
		}
		switch {
		case c.fates.finish(t):
			c.fate(t, FateDelivered, nil)
			c.failOvertaken(c.fates.overtaken(t))
		case c.fates.correct(t):
			// Given up too soon (its session ended before the receipt
			// came): the recipient did read it.
			c.fate(t, FateDelivered, nil)
		}
	case *ErrorEvent:
		t := c.fates.lookup(ev.ID)
		if t == nil {
			return
		}
		from := ev.From.String()
		if !ev.From.Bare().Equal(t.to.Bare()) && from != t.to.Domainpart() && from != c.cfg.JID.Domainpart() {
			return
		}
		if c.fates.finish(t) {
			c.fate(t, FateFailed, func(e *FateEvent) { e.Condition, e.Text = ev.Condition, ev.Text })
		}
	}
}
