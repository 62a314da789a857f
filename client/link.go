package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"

	"github.com/balcony-im/balcony/xmltree"
)

// ErrStalled is why a connection was dropped that stayed silent past the
// liveness deadline: the client probed it (a XEP-0198 <r/> or a XEP-0199
// ping) and nothing came back within Config.ProbeTimeout.
var ErrStalled = errors.New("client: the connection went silent: no answer to a liveness probe")

// link is one TCP connection and the XMPP stream on it. The client has at
// most one; a reconnection makes a new one.
type link struct {
	sess *xmpp.Session
	tcp  net.Conn // the TCP connection: closing it releases the socket at once
	live *liveConn
	done chan struct{} // closed when the read loop returned

	// start is the reference of the monotonic times below.
	start time.Time
	// lastRead is when bytes (or, when the connection cannot be watched
	// below TLS, a top-level element) last arrived, in nanoseconds since
	// start.
	lastRead atomic.Int64

	mu      sync.Mutex
	probeAt time.Duration // since start; 0: no probe outstanding
	err     error         // why the client dropped the link, if it did
	closed  bool
	// quiet: the link failed while connecting; its end is not reported
	// (connect returns the error). Guarded by Client.mu.
	quiet bool
}

func newLink(tcp net.Conn, live *liveConn) *link {
	l := &link{tcp: tcp, live: live, done: make(chan struct{}), start: time.Now()}
	if live != nil {
		live.l = l
	}
	return l
}

// send writes one element on l's stream, bounded by ctx (see bounded).
func (l *link) send(ctx context.Context, el *xmltree.Element) error {
	return bounded(ctx, l.tcp.SetWriteDeadline, func(never context.Context) error {
		return l.sess.Send(never, el.TokenReader(NSClient))
	})
}

// aLongTimeAgo is a deadline in the past: I/O waiting on it fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// bounded runs f, a blocking exchange on a connection, so that it ends
// when ctx does: the connection's deadline (set) is put in the past then,
// and cleared once f returned. f gets a context that is never done.
//
// mellium bounds its I/O by a context the same way, but from a goroutine
// that may run only after the exchange returned: seeing the context done
// by then (its caller cancels it on return), it put the deadline in the
// past while a later write of another stanza was in progress, which then
// failed and, crypto/tls making a failed write permanent, took the stream
// down (TestWriteContextEndingAfterTheWrite). Here the deadline is
// cleared before bounded returns, and never touched after. The client's
// writers hold the write lock around bounded; the read loop's replies
// (mellium flushes them after the handler) do not, so one flushed in the
// instant between the end of f and the clearing, if ctx ends exactly
// then, still fails: a window of microseconds that only a context ending
// on its own (a deadline, another goroutine) can hit, against one that
// every cancelled write opened before.
func bounded(ctx context.Context, set func(time.Time) error, f func(never context.Context) error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var mu sync.Mutex
	over := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !over {
			_ = set(aLongTimeAgo)
		}
	})
	err := f(context.WithoutCancel(ctx))
	mu.Lock()
	over = true
	mu.Unlock()
	if !stop() {
		// ctx ended meanwhile: the deadline may be in the past.
		_ = set(time.Time{})
		if err != nil {
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
	}
	return err
}

// touch records that the server sent something.
func (l *link) touch() { l.lastRead.Store(int64(time.Since(l.start))) }

// kill drops the connection now for reason: the socket is closed (the
// read loop ends, blocked writes fail) and released at once.
func (l *link) kill(reason error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = reason
	}
	l.closed = true
	l.mu.Unlock()
	l.tcp.Close()
}

// fail records why the link is being dropped, without closing it (the
// read loop ends it after writing a stream error).
func (l *link) fail(reason error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = reason
	}
	l.mu.Unlock()
}

// reason is why the client dropped the link, nil if it did not.
func (l *link) reason() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// liveConn is the TCP connection, noting when bytes arrive.
type liveConn struct {
	net.Conn
	l *link
}

func (c *liveConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.l != nil {
		c.l.touch()
	}
	return n, err
}

// dial opens the TCP connection (and TLS with DirectTLS) and returns it
// with its link.
func (c *Client) dial(ctx context.Context) (net.Conn, *link, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	if c.cfg.Addr == "" {
		d := dial.Dialer{NoTLS: !c.cfg.DirectTLS, TLSConfig: tlsCfg}
		conn, err := d.Dial(ctx, "tcp", c.cfg.JID)
		if err != nil {
			return nil, nil, fmt.Errorf("client: connecting to %s: %w", c.cfg.JID.Domainpart(), err)
		}
		if tc, ok := conn.(*tls.Conn); ok {
			// TLS over a connection mellium opened: watched from above
			// (top-level elements), closed below.
			return conn, newLink(tc.NetConn(), nil), nil
		}
		lc := &liveConn{Conn: conn}
		return lc, newLink(conn, lc), nil
	}
	var d net.Dialer
	tcp, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("client: connecting to %s: %w", c.cfg.Addr, err)
	}
	lc := &liveConn{Conn: tcp}
	l := newLink(tcp, lc)
	if !c.cfg.DirectTLS {
		return lc, l, nil
	}
	tc := tls.Client(lc, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return nil, nil, fmt.Errorf("client: TLS with %s: %w", c.cfg.Addr, err)
	}
	return tc, l, nil
}

// currentLink returns the link stanzas are written to.
func (c *Client) currentLink() (*link, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, ErrClosed
	}
	if c.link == nil || !c.connected && c.serveDone == nil {
		return nil, ErrNotConnected
	}
	return c.link, nil
}

// linkNow returns the current link and whether its stream is up. The
// caller holds the write lock.
func (c *Client) linkNow() (*link, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, false, ErrClosed
	}
	if c.link == nil {
		return nil, false, ErrNotConnected
	}
	return c.link, c.connected, nil
}

// writeUserStanza is writeStanza for a stanza of a message the user
// sends: it first waits until the queue of stanzas the server has not
// acknowledged has room for it (Config.MaxUnacked). Only the user's
// messages wait: the client's own stanzas (requests, presence, receipts,
// the protocol messages of mechanisms) are few, and the acknowledgements
// the queue waits for may depend on them (a roster request blocked behind
// a full queue kept a new session from ever sending its presence).
func (c *Client) writeUserStanza(ctx context.Context, st *xmltree.Element, msg *tracked) error {
	if _, err := c.currentLink(); err != nil {
		return err
	}
	if err := c.sm.waitRoom(ctx, treeSize(st), func() {
		if l, up, err := c.linkNow(); err == nil && up {
			c.requestAck(l)
		}
	}); err != nil {
		return err
	}
	return c.writeStanza(ctx, st, msg)
}

// writeStanza writes one stanza to the stream, in order with every other
// (under the write lock), and counts it for stream management: the stanza
// is kept until the server acknowledges it, resent after a resumption,
// and msg (the message it completes, if any) learns its fate. With stream
// management on, a failed write is not an error: the connection is
// dropped, and the stanza is resent when the stream is resumed or
// re-established.
func (c *Client) writeStanza(ctx context.Context, st *xmltree.Element, msg *tracked) error {
	if st.Name.Space == "" {
		st.Name.Space = NSClient
	}
	if st.Name.Space != NSClient {
		return fmt.Errorf("client: refusing to send a %s element in namespace %q", st.Name.Local, st.Name.Space)
	}
	if _, err := c.currentLink(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		// Nothing written, nothing counted: the stream stays up.
		return err
	}
	l, up, err := c.linkNow()
	if err != nil {
		return err
	}
	if st.Name.Local == "message" {
		c.seen.sent(st)
	}
	if !up {
		// The stream is down; a resumable session takes the stanza for
		// when it is back.
		if c.sm.hold(st, time.Now(), msg) {
			c.cfg.logger().Debug("stanza held for the resumed stream", "kind", st.Name.Local, "id", st.AttrValue("id"))
			return nil
		}
		return ErrNotConnected
	}
	u, request := c.sm.record(st, time.Now(), msg)
	if err := l.send(ctx, st); err != nil {
		// A stanza may be half written: the stream is unusable.
		l.kill(fmt.Errorf("client: writing to the stream: %w", err))
		if u != nil {
			return nil
		}
		return err
	}
	if st.Name.Local == "message" {
		c.cfg.logger().Debug("message written", "id", st.AttrValue("id"), "to", st.AttrValue("to"), "counted", u != nil)
	}
	if msg != nil {
		c.fates.written(c, msg, u != nil)
	}
	if request {
		c.writeNonza(l, smElement("r"))
		c.noteProbe(l)
	}
	return nil
}

// writeNonza writes a stream management element (not a stanza: not
// counted). The caller holds the write lock.
func (c *Client) writeNonza(l *link, el *xmltree.Element) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ProbeTimeout)
	defer cancel()
	if err := l.send(ctx, el); err != nil {
		l.kill(fmt.Errorf("client: writing to the stream: %w", err))
	}
}

// requestAck writes <r/> (XEP-0198 §4) on l.
func (c *Client) requestAck(l *link) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.sm.requested()
	c.writeNonza(l, smElement("r"))
	c.noteProbe(l)
}

// RequestAck asks the server now to acknowledge the stanzas it has not
// (XEP-0198 §4 <r/>), so that their FateAcked comes without waiting for
// Config.AckAfter: for a caller that waits on a message's fate. It does
// nothing without stream management and returns ErrNotConnected while
// the stream is down (the request is made on the next one anyway).
func (c *Client) RequestAck() error {
	l, err := c.currentLink()
	if err != nil {
		return err
	}
	if !c.Connected() {
		return ErrNotConnected
	}
	if n, _ := c.sm.pending(); n == 0 || !c.sm.on() {
		return nil
	}
	c.requestAck(l)
	return nil
}

// noteProbe records that the server owes an answer on l: if nothing
// arrives within the probe timeout, the link is dead.
func (c *Client) noteProbe(l *link) {
	now := time.Since(l.start)
	l.mu.Lock()
	if l.probeAt == 0 || time.Duration(l.lastRead.Load()) >= l.probeAt {
		l.probeAt = now
	}
	l.mu.Unlock()
}

// watchdog runs while l is up: it requests acknowledgements of stanzas
// waiting longer than AckAfter, and probes a silent connection (after
// KeepAlive without a byte) with <r/> under stream management or a
// XEP-0199 ping otherwise; a probe unanswered within ProbeTimeout drops
// the connection (ErrStalled), so that reconnection can start.
func (c *Client) watchdog(l *link) {
	period := min(c.cfg.KeepAlive, c.cfg.ProbeTimeout, c.cfg.AckAfter) / 4
	period = max(period, 5*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-c.closed:
			return
		case <-t.C:
		}
		now := time.Since(l.start)
		last := time.Duration(l.lastRead.Load())
		l.mu.Lock()
		probe := l.probeAt
		if probe != 0 && last >= probe {
			// Answered (or at least something arrived since).
			l.probeAt, probe = 0, 0
		}
		l.mu.Unlock()
		switch {
		case probe != 0 && now-probe >= c.cfg.ProbeTimeout:
			c.cfg.logger().Warn("no answer to a liveness probe: dropping the connection", "silent", (now - last).Round(time.Millisecond))
			l.kill(ErrStalled)
			return
		case probe == 0 && now-last >= c.cfg.KeepAlive:
			c.probe(l)
		}
		if n, oldest := c.sm.pending(); n > 0 && time.Since(oldest) >= c.cfg.AckAfter {
			l.mu.Lock()
			outstanding := l.probeAt != 0
			l.mu.Unlock()
			if !outstanding {
				c.requestAck(l)
			}
		}
	}
}

// probe asks the server for a sign of life.
func (c *Client) probe(l *link) {
	if c.sm.on() {
		c.requestAck(l)
		return
	}
	c.noteProbe(l)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ProbeTimeout)
		defer cancel()
		ping := xmltree.New(NSClient, "iq", "type", "get", "to", c.cfg.JID.Domainpart()).Append(xmltree.New(NSPing, "ping"))
		if _, err := c.IQ(ctx, ping); err != nil {
			var se *StanzaError
			if !errors.As(err, &se) {
				c.cfg.logger().Debug("liveness ping failed", "err", err)
			}
		}
	}()
}
