package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"

	"github.com/balcony-im/balcony/xmltree"
)

// Connect establishes the stream (TLS, SASL, resource binding, stream
// management when the server offers it), enables carbons, fetches the
// roster and sends the initial presence. With Config.Reconnect, a stream
// that ends unexpectedly afterwards is resumed, or re-established, in the
// background.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.mu.Unlock()
	return c.connect(ctx)
}

// ErrConnectRefused means Config.BeforeConnect refused a connection
// attempt; the error matches the hook's error as well.
var ErrConnectRefused = errors.New("client: connection refused by BeforeConnect")

// ErrReplaced means the server ended the stream with a conflict stream
// error (RFC 6120 §4.9.3.3): another session bound the same full JID,
// and the server replaced this one. With Config.Reconnect the client
// first tries to resume the session, once (the connection that replaced
// it may have been one of its own: a resumption request on a connection
// that was cut, handled by the server late); when the server refuses,
// it does not log in again: two clients with the same resource would
// otherwise replace each other in turn.
var ErrReplaced = errors.New("client: replaced by another session of the same resource")

// conflictRetryEvery bounds how often a session the server replaced is
// resumed (see serve).
const conflictRetryEvery = time.Minute

// setUpState is where the set-up of a session after login stands.
type setUpState int

const (
	setUpNone    setUpState = iota // not begun, or failed
	setUpRunning                   // under way (its requests survive a resumption)
	setUpDone
)

// connect establishes a stream. The set-up of a new session (roster,
// initial presence) runs before it returns, or, with background (a
// reconnection), after: a reconnection loop never waits on requests that
// only a later resumption of the same session can answer.
func (c *Client) connect(ctx context.Context) error { return c.connectWith(ctx, false) }

func (c *Client) connectWith(ctx context.Context, background bool) error {
	if c.cfg.BeforeConnect != nil {
		if err := c.cfg.BeforeConnect(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrConnectRefused, err)
		}
	}
	log := c.cfg.logger()
	c.ob.holdOn()
	previd, h, bound, _ := c.sm.token()
	c.mu.Lock()
	resumeOnly := c.resumeOnly
	c.mu.Unlock()
	if resumeOnly && previd == "" {
		c.sm.resumeDone()
		return fmt.Errorf("%w: the session it replaced can no longer be resumed", ErrReplaced)
	}
	setup := func() *streamSetup {
		return &streamSetup{resource: c.cfg.JID.Resourcepart(), enable: !c.cfg.DisableStreamManagement,
			resume: c.cfg.Reconnect, previd: previd, h: h, bound: bound, resumeOnly: resumeOnly}
	}
	st := setup()
	l, err := c.open(ctx, st, setup)
	if err != nil {
		c.sm.resumeDone()
		return err
	}
	sess := l.sess
	var acked, resend, left []*unacked
	if st.resumed {
		if acked, resend, left, err = c.sm.resumed(st.serverH); err != nil {
			// The server claims more than was sent: no resumption.
			c.sm.poison()
			sess.Close()
			l.tcp.Close()
			return err
		}
	} else {
		if st.previd != "" {
			log.Info("the stream could not be resumed", "condition", st.failCondition)
		}
		acked, left = c.sm.abandon(st.failedH, st.failedHasH)
		if st.previd != "" {
			// The server lost our session (it restarted, or gave the
			// session up): what it acknowledged just before may have been
			// lost with it, on its way to the recipient's session.
			c.mu.Lock()
			lost := c.since
			c.mu.Unlock()
			again := c.fates.inFlight(lost)
			for _, u := range again {
				log.Debug("sending again: the server lost the session that acknowledged it", "id", u.st.AttrValue("id"))
			}
			left = append(left, again...)
		}
		if st.enabled {
			c.sm.start(st.id, st.resumable, st.max, sess.LocalAddr())
		}
		// The previous stream's session is gone: mechanisms end their
		// sessions, waiting requests fail, a catch-up is due.
		c.sessionLost()
	}
	c.acked(acked)

	c.wmu.Lock()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.wmu.Unlock()
		sess.Close()
		l.tcp.Close()
		return ErrClosed
	}
	c.link = l
	c.bound = sess.LocalAddr()
	c.connected = true
	c.serveDone = l.done
	c.since = c.cfg.now()
	c.resumed = st.resumed
	if st.resumed {
		c.resumeOnly = false
	} else {
		c.setUp = setUpRunning
	}
	c.unresolved = false
	c.stopped = false
	c.mu.Unlock()
	// Stanzas the server sent before <enabled/> come first.
	var earlyIQs []*xmltree.Element
	for _, e := range st.early {
		if e.Name.Local == "iq" {
			earlyIQs = append(earlyIQs, e)
			continue
		}
		c.dispatch(nil, e)
	}
	go c.serve(l)
	go c.watchdog(l)
	// What the server did not acknowledge leaves first: on a resumed
	// stream everything, as it was (XEP-0198 §5), then what was written
	// while it was down; on a new one the messages, counted anew
	// (requests and presence of the old session mean nothing on the new
	// one).
	c.resend(l, resend, left, st.resumed)
	c.wmu.Unlock()
	for _, e := range earlyIQs {
		c.dispatch(nil, e)
	}
	if st.resumed {
		log.Info("stream resumed", "jid", c.bound.String(), "resent", len(resend))
		c.emit(&ConnectionEvent{State: Connected, JID: c.bound, Resumed: true, Time: c.cfg.now()})
		go c.flushOutbox()
		// A catch-up cut short by the end of the previous stream goes on
		// (nothing is read when none is due), once the session has sent
		// its initial presence: what the server routes to the session
		// before, it stores in the archive, and a catch-up started
		// earlier would miss it. A set-up still under way (its requests
		// survived the resumption) starts the catch-up when it is done.
		// A set-up that failed (the stream went away while it waited) is
		// done again on the resumed stream.
		c.mu.Lock()
		state := c.setUp
		if state == setUpNone {
			c.setUp = setUpRunning
		}
		c.mu.Unlock()
		switch state {
		case setUpDone:
			go c.catchUp()
		case setUpNone:
			go c.setUpAgain()
		}
		return nil
	}
	log.Info("connected", "jid", sess.LocalAddr().String(), "tls", tls.VersionName(sess.ConnectionState().Version),
		"stream_management", st.enabled, "resumable", st.resumable)
	if background {
		go c.setUpAgain()
		return nil
	}
	if err := c.afterConnect(ctx); err != nil {
		log.Warn("post-connect setup failed", "err", err)
		c.mu.Lock()
		if c.link != l {
			// The stream was resumed on another connection meanwhile:
			// the session lives on there, and is set up again on it
			// (setUp stays running).
			c.mu.Unlock()
			go c.setUpAgain()
			return nil
		}
		// The session is abandoned, not resumed: what the server routed
		// to it and did not get acknowledged may be dropped (it is in the
		// archive), so a catch-up is due at the next connection.
		c.setUp = setUpNone
		c.catch.lost(c.since)
		l.quiet = true
		c.connected = false
		c.mu.Unlock()
		l.kill(err)
		<-l.done
		return err
	}
	c.setUpFinished()
	return nil
}

// setUpFinished follows a session's set-up: the session is announced
// connected, the outbox flushed and a catch-up due read.
func (c *Client) setUpFinished() {
	c.mu.Lock()
	c.setUp = setUpDone
	j := c.bound
	c.mu.Unlock()
	c.emit(&ConnectionEvent{State: Connected, JID: j, Time: c.cfg.now()})
	go c.flushOutbox()
	go c.catchUp()
}

// setUpAgain sets up the current session in the background (after a
// reconnection, or when an earlier set-up failed). When it fails, the
// connection is dropped: the stream is resumed, or re-established, and
// the set-up tried again.
func (c *Client) setUpAgain() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.afterConnect(ctx)
	if err == nil {
		c.setUpFinished()
		return
	}
	c.cfg.logger().Warn("post-connect setup failed", "err", err)
	c.mu.Lock()
	c.setUp = setUpNone
	l, up := c.link, c.connected && !c.closing
	c.mu.Unlock()
	if up && l != nil {
		l.kill(fmt.Errorf("client: setting up the session: %w", err))
	}
}

// open dials and negotiates the stream, a second time over TLS 1.2 when
// the server binds logins only with tls-unique (auth.go).
func (c *Client) open(ctx context.Context, st *streamSetup, fresh func() *streamSetup) (*link, error) {
	conn, l, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	// The negotiation is bounded by ctx through the connection's
	// deadline, set and cleared here (see bounded), not by mellium.
	var sess *xmpp.Session
	negotiate := func(never context.Context) (err error) {
		sess, err = c.negotiate(never, conn, st)
		return err
	}
	err = bounded(ctx, l.tcp.SetDeadline, negotiate)
	if errors.Is(err, errRetryTLS12) && !c.tls12.Load() {
		l.tcp.Close()
		c.cfg.logger().Info("reconnecting with TLS 1.2 for channel binding")
		c.tls12.Store(true)
		if conn, l, err = c.dial(ctx); err != nil {
			return nil, err
		}
		*st = *fresh()
		err = bounded(ctx, l.tcp.SetDeadline, negotiate)
	}
	if err != nil {
		l.tcp.Close()
		return nil, err
	}
	l.sess = sess
	return l, nil
}

// resend writes, under the write lock, what the previous stream left:
// on a resumed stream the stanzas as they were (they keep their sequence
// numbers); then, counted on the new stream, those written while it was
// down (all of them when it was resumed, only the messages otherwise:
// requests and presence of a lost session mean nothing on a new one).
func (c *Client) resend(l *link, resend, left []*unacked, resumed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// broken: a write failed and the link is dropped. What is left is
	// still counted (recorded) so that the next stream sends it, resumed
	// or not: nothing is dropped on the floor.
	broken := false
	for _, u := range resend {
		if err := l.send(ctx, u.st); err != nil {
			l.kill(fmt.Errorf("client: resending: %w", err))
			broken = true
			break
		}
	}
	for _, u := range left {
		if !resumed && u.st.Name.Local != "message" {
			continue
		}
		if !resumed && c.pipeline.sessionBound(u.st) {
			// Sealed in a session that ended with the old stream: the
			// recipient could not read it; its sender is told.
			c.cfg.logger().Debug("not resent: sealed in a session that ended", "id", u.st.AttrValue("id"))
			if u.msg != nil && c.fates.finish(u.msg) {
				c.failBound(u.msg, "before the server acknowledged the message")
			}
			continue
		}
		c.sm.record(u.st, time.Now(), u.msg)
		if broken {
			continue
		}
		if err := l.send(ctx, u.st); err != nil {
			l.kill(fmt.Errorf("client: resending: %w", err))
			broken = true
			continue
		}
		if u.msg != nil {
			c.fates.written(c, u.msg, c.sm.on())
		}
	}
}

func (c *Client) negotiate(ctx context.Context, conn net.Conn, st *streamSetup) (*xmpp.Session, error) {
	mechs, err := c.cfg.mechanisms()
	if err != nil {
		return nil, err
	}
	pass, err := c.cfg.password()
	if err != nil {
		return nil, err
	}
	var features []xmpp.StreamFeature
	if !c.cfg.DirectTLS {
		tlsCfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		features = append(features, xmpp.StartTLS(tlsCfg))
	}
	var auth authState
	features = append(features, channelBindingFeature(&auth), saslFeature(pass, mechs, &auth), bindResource(st))
	sess, err := xmpp.NewClientSession(ctx, c.cfg.JID, conn, features...)
	if err != nil {
		if errors.Is(err, errRetryTLS12) {
			return nil, errRetryTLS12
		}
		if ae, ok := errors.AsType[*AuthError](err); ok {
			return nil, ae
		}
		return nil, fmt.Errorf("client: establishing the XMPP session: %w", err)
	}
	c.mu.Lock()
	c.auth = auth.info
	c.mu.Unlock()
	if sess.State()&xmpp.Secure == 0 {
		sess.Close()
		return nil, errors.New("client: stream is not encrypted")
	}
	return sess, nil
}

func (c *Client) afterConnect(ctx context.Context) error {
	server := c.discoverServer(ctx)
	c.mu.Lock()
	c.server = server
	c.mu.Unlock()
	if !c.cfg.DisableCarbons && server.Carbons {
		// Without carbons the account's other devices do not see this
		// conversation; nothing else depends on them.
		if err := c.EnableCarbons(ctx); err != nil {
			c.cfg.logger().Warn("enabling carbons failed; continuing without", "err", err)
		}
	}
	if _, err := c.FetchRoster(ctx); err != nil {
		return fmt.Errorf("client: fetching the roster: %w", err)
	}
	if !c.cfg.DisablePresence {
		c.inbox.push(inboxItem{fn: func() { c.offline.Store(true) }})
		if err := c.SendPresence(ctx, "", c.cfg.Status); err != nil {
			return fmt.Errorf("client: sending presence: %w", err)
		}
		c.endOfflineWindow(ctx)
	}
	return nil
}

// endOfflineWindow closes the offline window opened by the initial
// presence. The server sends the messages it stored while we were offline
// when it handles that presence (XEP-0160), and it handles our stanzas in
// order: every stored message is on the stream before the answer to a
// ping sent after the presence. Stanzas are queued in the order they are
// read, so the marker pushed after the answer follows them.
func (c *Client) endOfflineWindow(ctx context.Context) {
	ping := xmltree.New(NSClient, "iq", "type", "get", "to", c.JID().Domainpart()).Append(xmltree.New(NSPing, "ping"))
	if _, err := c.IQ(ctx, ping); err != nil {
		c.cfg.logger().Info("no answer to the ping after the initial presence", "err", err)
	}
	c.inbox.push(inboxItem{fn: func() { c.offline.Store(false) }})
}

// serve runs the read loop of one link, and handles its end.
func (c *Client) serve(l *link) {
	err := l.sess.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		return c.handleStanza(l, t, start)
	}))
	// The socket is released now, whatever ended the stream.
	l.tcp.Close()
	if r := l.reason(); r != nil {
		err = r
	}
	close(l.done)
	now := c.cfg.now()
	// Writers see the stream down and the session resumable (or not)
	// at once.
	c.wmu.Lock()
	c.mu.Lock()
	current := c.link == l && !l.quiet
	if current {
		c.connected = false
		c.since = now
		c.resumed = false
		c.unresolved = true
	}
	closing := c.closing
	replaced := errors.Is(err, stream.Conflict)
	// The connection that replaced this one may be one of ours: a
	// resumption request written on a connection that was then cut,
	// which the server handled after a later one. The session is then
	// resumable again (that connection is gone too), while a session
	// replaced by another client's login is not: one resumption, and
	// nothing else, is tried (at most once a minute, so that two
	// clients never take a session from each other in turn).
	retry := current && replaced && c.cfg.Reconnect && c.sm.resumable() && now.Sub(c.conflictAt) > conflictRetryEvery
	if retry {
		c.conflictAt = now
		c.resumeOnly = true
		replaced = false
	}
	if current && replaced {
		c.stopped = true
	}
	c.mu.Unlock()
	if closing || !current {
		c.wmu.Unlock()
		return
	}
	resumable, window := c.sm.ended(now)
	c.wmu.Unlock()
	c.ob.holdOn()
	if err == nil {
		err = io.EOF
	}
	if replaced {
		err = fmt.Errorf("%w: %w", ErrReplaced, err)
	}
	resumable = resumable && c.cfg.Reconnect && !replaced
	c.cfg.logger().Warn("stream ended", "err", err, "resumable", resumable)
	c.emit(&ConnectionEvent{State: Disconnected, Err: err, Resumable: resumable, Time: now})
	if resumable {
		// Sessions of mechanisms live on while the stream may come back;
		// once the server has given it up, they end.
		time.AfterFunc(window, func() {
			if c.sm.expire() {
				c.sessionLost()
			}
		})
	} else {
		c.sm.expire()
		c.sessionLost()
	}
	if c.cfg.Reconnect && !replaced {
		go c.reconnectLoop()
	}
}

// sessionLost runs once for a stream that ended and will not be resumed:
// the presence of contacts is forgotten, requests waiting for answers
// fail (ErrStreamLost), a catch-up from the archive is due, and, after
// every stanza already received was processed, mechanisms end the
// sessions that depended on the stream (StreamObserver).
func (c *Client) sessionLost() {
	c.mu.Lock()
	if !c.unresolved {
		c.mu.Unlock()
		return
	}
	c.unresolved = false
	since := c.since
	c.mu.Unlock()
	c.presence.reset()
	c.iqs.failAll()
	for _, t := range c.fates.sessionGone() {
		c.failBound(t, "before the recipient confirmed the message, which may not have been read")
	}
	c.catch.lost(since)
	ended := c.pipeline.streamEnded
	if !c.inbox.push(inboxItem{fn: ended}) {
		ended()
	}
}

func (c *Client) reconnectLoop() {
	delay := c.cfg.MinBackoff
	for {
		d := jitter(delay)
		c.emit(&ConnectionEvent{State: Reconnecting, Retry: d, Time: c.cfg.now()})
		t := time.NewTimer(d)
		select {
		case <-c.closed:
			t.Stop()
			return
		case <-t.C:
		}
		// Close may have come with the timer (select picks either): an
		// attempt after it would log in again, and a session bound with
		// this resource replaces the one of whoever uses it now (the next
		// process on the same account). Close also cuts an attempt short.
		if c.isClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			select {
			case <-c.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := c.connectWith(ctx, true)
		cancel()
		if err == nil || errors.Is(err, ErrClosed) || c.isClosed() {
			return
		}
		if errors.Is(err, ErrConnectRefused) || errors.Is(err, ErrReplaced) {
			c.mu.Lock()
			c.stopped = true
			c.resumeOnly = false
			c.mu.Unlock()
			// Nothing will resume the session now: requests waiting for
			// answers fail and mechanisms end their sessions at once, not
			// when the server's resumption window would have closed, and
			// the status no longer calls the session resumable.
			c.sm.expire()
			c.sessionLost()
			c.cfg.logger().Warn("reconnecting given up", "err", err)
			c.emit(&ConnectionEvent{State: Disconnected, Err: err, Time: c.cfg.now()})
			return
		}
		c.cfg.logger().Warn("reconnect failed", "err", err)
		delay *= 2
		if delay > c.cfg.MaxBackoff {
			delay = c.cfg.MaxBackoff
		}
	}
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// jitter returns a duration uniformly in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)+1))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(n.Int64())
}

// Disconnect drops the current connection without closing the client, as
// a network failure would (for tests and for the "reconnect now"
// command): the stream is not closed, so the server keeps its session
// for resumption.
func (c *Client) Disconnect() error {
	l, err := c.currentLink()
	if err != nil {
		return ErrNotConnected
	}
	return l.tcp.Close()
}

// ConnectionStatus describes the connection at one moment.
type ConnectionStatus struct {
	Connected bool
	// Since is when the client connected, or lost the connection; zero
	// before the first connection.
	Since time.Time
	// Resumed: the current stream resumed an earlier one (XEP-0198 §5).
	Resumed bool
	// StreamManagement: the server acknowledges stanzas (XEP-0198).
	StreamManagement bool
	// Resumable: a cut stream can be resumed.
	Resumable bool
	// Unacked is how many stanzas the server has not acknowledged yet.
	Unacked int
	// Stalled: connected, but a liveness probe (an ack request or a
	// ping) has gone unanswered for a while (stalledAfter): the
	// connection is dropped and re-established if no answer comes within
	// Config.ProbeTimeout of the probe.
	Stalled bool
	// Silent is how long nothing was heard from the server.
	Silent time.Duration
	// Reconnecting: not connected, and the client is trying again
	// (Config.Reconnect).
	Reconnecting bool
}

// stalledAfter is how long a probe must go unanswered before
// ConnectionStatus calls the connection stalled: longer than a round trip
// on any working network.
func (c *Client) stalledAfter() time.Duration { return min(time.Second, c.cfg.ProbeTimeout/4) }

// ConnectionStatus returns the state of the connection.
func (c *Client) ConnectionStatus() ConnectionStatus {
	c.mu.Lock()
	st := ConnectionStatus{Connected: c.connected, Since: c.since, Resumed: c.resumed,
		Reconnecting: !c.connected && !c.closing && !c.stopped && c.cfg.Reconnect && !c.since.IsZero()}
	l := c.link
	c.mu.Unlock()
	if st.Connected && l != nil {
		now := time.Since(l.start)
		last := time.Duration(l.lastRead.Load())
		l.mu.Lock()
		probe := l.probeAt
		l.mu.Unlock()
		st.Silent = max(now-last, 0)
		st.Stalled = probe != 0 && last < probe && now-probe >= c.stalledAfter()
	}
	c.sm.mu.Lock()
	st.StreamManagement = c.sm.enabled
	st.Resumable = c.sm.id != ""
	st.Unacked = len(c.sm.queue)
	c.sm.mu.Unlock()
	return st
}

// Close lets mechanisms end their sessions (PreCloser), waits briefly for
// the server to acknowledge what was sent, sends unavailable presence,
// ends the stream, closes the connection, runs the shutdown hooks
// (Shutdowner, OnShutdown), stops processing and closes the Events
// channel. A message the server never acknowledged stays in the outbox,
// if it came from there, and is given up otherwise (FateFailed).
func (c *Client) Close() error { return c.close(false) }

// Abort closes the client at once: the connection is dropped without
// Close's closing handshake (mechanisms do not end their sessions, no
// unavailable presence, no last acknowledgement, so the server keeps
// what it sent unacknowledged and archived for whoever takes over), then
// the shutdown hooks run, and stanzas already received are processed and
// their events delivered before Events is closed. It is for a process
// that must stop acting for the account now, having lost the right to
// (balcony serve when its database connection is lost).
func (c *Client) Abort() error { return c.close(true) }

func (c *Client) close(abort bool) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	connected := c.connected
	c.mu.Unlock()
	if connected && !abort {
		// Mechanisms end their sessions while the stream still works, but
		// only after every stanza received so far was processed: a message
		// that arrived before Close is read in its session, not refused
		// because the session ended meanwhile.
		c.afterReceived(3 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c.pipeline.closing(ctx)
		cancel()
		c.settle(2 * time.Second)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	l := c.link
	c.connected = false
	hooks := c.shutdowns
	c.mu.Unlock()
	close(c.closed)
	var err error
	if l != nil && connected && !abort {
		// Unavailable presence, the last <a h/> (XEP-0198 §4: so that the
		// server does not send again what was handled), then
		// </stream:stream>; wait for the server to close its side
		// (bounded), then close TCP.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.wmu.Lock()
		_ = l.send(ctx, c.presenceStanza("unavailable", "", ""))
		if c.sm.on() {
			_ = l.send(ctx, ackElement(c.sm.handled()))
		}
		c.wmu.Unlock()
		cancel()
		err = l.sess.Close()
		select {
		case <-l.done:
		case <-time.After(3 * time.Second):
		}
		if cerr := l.sess.Conn().Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	if l != nil {
		l.tcp.Close()
	}
	c.giveUp()
	for _, h := range hooks {
		h()
	}
	// Stanzas already received are still processed, and their events
	// stay readable on Events (see pumpEvents) until it is closed.
	c.inbox.close()
	c.workers.Wait()
	c.ob.removals.close()
	if c.cfg.Outbox != nil {
		<-c.ob.removed
	}
	return err
}

// settle asks the server to acknowledge what it has not and waits up to
// d for it.
func (c *Client) settle(d time.Duration) {
	if n, _ := c.sm.pending(); n == 0 || !c.sm.on() {
		return
	}
	l, err := c.currentLink()
	if err != nil {
		return
	}
	c.requestAck(l)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c.sm.waitEmpty(ctx)
}

// giveUp settles the fate of the messages the server never acknowledged
// when the client closes.
func (c *Client) giveUp() {
	_, left := c.sm.abandon(0, false)
	for _, u := range left {
		t := u.msg
		if t == nil {
			continue
		}
		if t.outbox != 0 {
			c.fate(t, FateQueued, nil)
			continue
		}
		if c.fates.finish(t) {
			c.fate(t, FateFailed, func(e *FateEvent) {
				e.Err = fmt.Errorf("%w: the client closed before the server acknowledged it", ErrGivenUp)
			})
		}
	}
}
