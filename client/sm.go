package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// NSStreamManagement is the namespace of XEP-0198 Stream Management
// (version 3, Draft), with which client and server acknowledge the
// stanzas they handled and resume a stream cut by the network.
const NSStreamManagement = "urn:xmpp:sm:3"

// Defaults of the stream management and liveness settings (Config).
const (
	DefaultAckEvery        = 5
	DefaultAckAfter        = 2 * time.Second
	DefaultMaxUnacked      = 500
	DefaultMaxUnackedBytes = 4 << 20
	DefaultKeepAlive       = 60 * time.Second
	DefaultProbeTimeout    = 20 * time.Second
	// defaultResumeWindow is how long a stream is held resumable when the
	// server did not say (XEP-0198 §5 'max').
	defaultResumeWindow = 5 * time.Minute
)

// HandledCountError is the server acknowledging more stanzas than the
// client sent (XEP-0198 §6): the client ends the stream with an error.
type HandledCountError struct {
	H    uint32 // what the server acknowledged
	Sent uint32 // what the client sent
}

func (e *HandledCountError) Error() string {
	return fmt.Sprintf("client: the server acknowledged %d stanzas, but only %d were sent", e.H, e.Sent)
}

// unacked is a stanza sent under stream management that the server has
// not acknowledged yet: the client is responsible for it (XEP-0198 §4).
type unacked struct {
	seq  uint32
	st   *xmltree.Element
	size int
	at   time.Time
	// msg is set on the last stanza written for a message the user sent:
	// its acknowledgement is the message's.
	msg *tracked
}

// smState is the client's side of one XEP-0198 session: the counters,
// the stanzas the server has not acknowledged, and what resumption needs.
// It is kept across the streams that resume the session. It does no I/O;
// the connection code calls it under the write lock for what it sends and
// from the read loop for what it receives.
type smState struct {
	mu sync.Mutex

	maxCount, maxBytes int
	ackEvery           int

	enabled bool   // <enabled/> received: acks flow on the current stream
	id      string // SM-ID; "" when the server allows no resumption
	max     time.Duration
	bound   jid.JID // the full JID of the session, restored by resumption

	in    uint32 // stanzas received since <enabled/> ('h' we report)
	out   uint32 // stanzas sent since <enable/>
	acked uint32 // the last 'h' the server reported

	queue []*unacked
	// waiting are stanzas written while the stream of a resumable session
	// was down: they leave, counted, when it is back.
	waiting  []*unacked
	bytes    int
	sinceReq int // stanzas sent since the last <r/>
	room     chan struct{}

	// lost is when the stream of a resumable session ended; zero while a
	// stream is up or when nothing can be resumed.
	lost     time.Time
	resuming bool // a reconnection is trying to resume
}

func (s *smState) init(cfg *Config) {
	s.maxCount, s.maxBytes, s.ackEvery = cfg.MaxUnacked, cfg.MaxUnackedBytes, cfg.AckEvery
	s.room = make(chan struct{})
}

// on reports whether acks flow on the current stream.
func (s *smState) on() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enabled
}

// start begins a new session on a stream where <enable/> was just sent
// and <enabled/> read: the counters start at zero (§4, the note on
// counters). Stanzas of a previous session must have been taken first.
func (s *smState) start(id string, resume bool, max time.Duration, bound jid.JID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = true
	s.id = ""
	if resume {
		s.id = id
	}
	s.max = max
	if s.max <= 0 {
		s.max = defaultResumeWindow
	}
	s.bound = bound
	s.in, s.out, s.acked = 0, 0, 0
	s.sinceReq = 0
	s.lost = time.Time{}
	s.resuming = false
}

// record counts a stanza written on the current stream and keeps it
// until acknowledged. It returns nil when stream management is off, and
// whether an acknowledgement should be requested now (every ackEvery
// stanzas).
func (s *smState) record(st *xmltree.Element, now time.Time, msg *tracked) (*unacked, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled {
		return nil, false
	}
	s.out++
	u := &unacked{seq: s.out, st: st, size: treeSize(st), at: now, msg: msg}
	s.queue = append(s.queue, u)
	s.bytes += u.size
	s.sinceReq++
	req := s.ackEvery > 0 && s.sinceReq >= s.ackEvery
	if req {
		s.sinceReq = 0
	}
	return u, req
}

// hold keeps a stanza written while the stream of a resumable session is
// down; it reports false when there is no such session.
// canHold reports whether a stanza written now would be held for a
// resumption (see hold).
func (s *smState) canHold() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id != "" && !s.lost.IsZero()
}

func (s *smState) hold(st *xmltree.Element, now time.Time, msg *tracked) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == "" || s.lost.IsZero() {
		return false
	}
	u := &unacked{st: st, size: treeSize(st), at: now, msg: msg}
	s.waiting = append(s.waiting, u)
	s.bytes += u.size
	return true
}

// requested notes an <r/> written outside record.
func (s *smState) requested() {
	s.mu.Lock()
	s.sinceReq = 0
	s.mu.Unlock()
}

// ack handles an 'h' from the server (<a/>, <resumed/>, <failed/>): the
// stanzas it covers leave the queue and are returned, oldest first. An h
// beyond what was sent is a *HandledCountError and changes nothing.
func (s *smState) ack(h uint32) ([]*unacked, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := h - s.acked // modulo 2^32 (§4)
	pending := s.out - s.acked
	if n > pending || int(n) > len(s.queue) {
		return nil, &HandledCountError{H: h, Sent: s.out}
	}
	done := s.queue[:n:n]
	s.queue = append([]*unacked(nil), s.queue[n:]...)
	for _, u := range done {
		s.bytes -= u.size
	}
	s.acked = h
	if n > 0 {
		close(s.room)
		s.room = make(chan struct{})
	}
	return done, nil
}

// received counts a stanza read from the stream.
func (s *smState) received() {
	s.mu.Lock()
	if s.enabled {
		s.in++
	}
	s.mu.Unlock()
}

// handled is the 'h' to report.
func (s *smState) handled() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in
}

// pending returns how many stanzas await an acknowledgement and when the
// oldest of them was sent.
func (s *smState) pending() (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return 0, time.Time{}
	}
	return len(s.queue), s.queue[0].at
}

// ended notes that the stream ended: it reports whether the session can
// be resumed, and for how long.
func (s *smState) ended(now time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = false
	if s.id == "" {
		return false, 0
	}
	s.lost = now
	return true, s.max
}

// resumable reports whether the session has an id to resume it by.
func (s *smState) resumable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id != ""
}

// token returns what a <resume/> needs, and marks a resumption under
// way, or ok false when there is nothing to resume.
func (s *smState) token() (previd string, h uint32, bound jid.JID, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == "" || s.lost.IsZero() {
		return "", 0, jid.JID{}, false
	}
	s.resuming = true
	return s.id, s.in, s.bound, true
}

// resumeDone notes that a reconnection ended before the server answered
// the resumption.
func (s *smState) resumeDone() {
	s.mu.Lock()
	s.resuming = false
	s.mu.Unlock()
}

// waitEmpty waits until the server acknowledged every stanza, the
// session ends or ctx does.
func (s *smState) waitEmpty(ctx context.Context) {
	for {
		s.mu.Lock()
		empty := !s.enabled || len(s.queue) == 0
		room := s.room
		s.mu.Unlock()
		if empty {
			return
		}
		select {
		case <-room:
		case <-ctx.Done():
			return
		}
	}
}

// expire forgets a session whose resumption window closed, unless a
// resumption is under way (it decides then). It reports whether the
// session was forgotten.
func (s *smState) expire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resuming || s.lost.IsZero() {
		return false
	}
	s.id = ""
	s.lost = time.Time{}
	return true
}

// poison makes the session impossible to resume (the server lied about
// what it handled); what it did not acknowledge stays queued for the next
// session.
func (s *smState) poison() {
	s.mu.Lock()
	s.id = ""
	s.mu.Unlock()
}

// resumed continues the session on a new stream after <resumed h/>: it
// returns the stanzas the server acknowledged, those to send again, in
// order (§5: they keep their sequence numbers), and those written while
// the stream was down (to send, counted, after them).
func (s *smState) resumed(h uint32) (acked, resend, waiting []*unacked, err error) {
	acked, err = s.ack(h)
	if err != nil {
		return nil, nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = true
	s.lost = time.Time{}
	s.resuming = false
	s.sinceReq = 0
	waiting = s.waiting
	s.waiting = nil
	for _, u := range waiting {
		s.bytes -= u.size
	}
	return acked, append([]*unacked(nil), s.queue...), waiting, nil
}

// abandon ends the session for good (resumption failed or impossible)
// and returns the stanzas the server never acknowledged, oldest first.
// With hasH, the server said how many it handled (<failed h/>): those are
// returned as acked.
func (s *smState) abandon(h uint32, hasH bool) (acked, left []*unacked) {
	if hasH {
		acked, _ = s.ack(h)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	left = append(s.queue, s.waiting...)
	s.queue, s.waiting = nil, nil
	s.bytes = 0
	s.enabled = false
	s.id = ""
	s.lost = time.Time{}
	s.resuming = false
	close(s.room)
	s.room = make(chan struct{})
	return acked, left
}

// ErrUnackedFull is returned (wrapped, with the context's error) by a
// send that waited in vain for the server to acknowledge enough stanzas
// to bring the queue of unacknowledged ones under its bounds
// (Config.MaxUnacked, Config.MaxUnackedBytes).
var ErrUnackedFull = errors.New("client: too many stanzas await the server's acknowledgement")

// waitRoom blocks until a stanza of size bytes fits in the queue, the
// queue is not in use, or ctx ends. ask is called (at most once) when it
// has to wait, to request an acknowledgement.
func (s *smState) waitRoom(ctx context.Context, size int, ask func()) error {
	asked := false
	for {
		s.mu.Lock()
		n := len(s.queue) + len(s.waiting)
		active := s.enabled || !s.lost.IsZero()
		fits := !active || n == 0 || (n < s.maxCount && s.bytes+size <= s.maxBytes)
		room := s.room
		s.mu.Unlock()
		if fits {
			return nil
		}
		if !asked && ask != nil {
			asked = true
			ask()
		}
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrUnackedFull, ctx.Err())
		}
	}
}

// smElement builds a stream management element.
func smElement(local string, attrs ...string) *xmltree.Element {
	return xmltree.New(NSStreamManagement, local, attrs...)
}

// ackElement is <a h/>.
func ackElement(h uint32) *xmltree.Element {
	return smElement("a", "h", strconv.FormatUint(uint64(h), 10))
}

// parseH reads an 'h' attribute (xs:unsignedInt).
func parseH(el *xmltree.Element) (uint32, bool) {
	v, ok := el.LookupAttr("h")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

// xsBool reads an xs:boolean attribute.
func xsBool(v string) bool { return v == "true" || v == "1" }

// treeSize estimates the bytes a tree takes on the wire.
func treeSize(e *xmltree.Element) int {
	n := 2*len(e.Name.Local) + len(e.Name.Space) + 16
	for _, a := range e.Attr {
		n += len(a.Name.Local) + len(a.Value) + 4
	}
	for _, ch := range e.Children {
		switch ch := ch.(type) {
		case *xmltree.Element:
			n += treeSize(ch)
		case xmltree.CharData:
			n += len(ch)
		}
	}
	return n
}
