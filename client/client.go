package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// Namespaces used by this package.
const (
	NSClient      = "jabber:client"
	NSServer      = "jabber:server"
	NSStanzas     = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSHints       = "urn:xmpp:hints"
	NSSID         = "urn:xmpp:sid:0"
	NSReceipts    = "urn:xmpp:receipts"
	NSCarbons     = "urn:xmpp:carbons:2"
	NSForward     = "urn:xmpp:forward:0"
	NSDelay       = "urn:xmpp:delay"
	NSMAM         = "urn:xmpp:mam:2"
	NSRSM         = "http://jabber.org/protocol/rsm"
	NSPubSub      = "http://jabber.org/protocol/pubsub"
	NSPubSubEvent = "http://jabber.org/protocol/pubsub#event"
	NSPubSubOwner = "http://jabber.org/protocol/pubsub#owner"
	NSDataForms   = "jabber:x:data"
	NSDiscoInfo   = "http://jabber.org/protocol/disco#info"
	NSDiscoItems  = "http://jabber.org/protocol/disco#items"
	NSCaps        = "http://jabber.org/protocol/caps"
	NSPing        = "urn:xmpp:ping"
	NSVersion     = "jabber:iq:version"
	NSRoster      = "jabber:iq:roster"
)

// ErrClosed is returned by operations on a closed client.
var ErrClosed = errors.New("client: closed")

// ErrNotConnected is returned when an operation needs a live stream.
var ErrNotConnected = errors.New("client: not connected")

// Client is one account's XMPP connection. It is safe for concurrent use.
//
// Incoming stanzas are read by one goroutine and processed in order by
// another, which delivers events on Events. Events must be drained; they
// are queued without bound so that a slow reader never stalls the stream.
type Client struct {
	cfg Config

	mu        sync.Mutex
	sess      *xmpp.Session
	bound     jid.JID
	closing   bool
	connected bool
	serveDone chan struct{}
	closed    chan struct{}

	events  *queue[Event]
	out     chan Event
	inbox   *queue[inboxItem]
	workers sync.WaitGroup

	disco     discoState
	roster    rosterState
	ownPres   ownPresence
	presence  presenceState
	mam       mamState
	pep       pepState
	pipeline  *Pipeline
	shutdowns []func()

	// offline is true while messages from offline storage may arrive (see
	// endOfflineWindow).
	offline atomic.Bool
	// tls12 caps TLS at 1.2 for this server: it binds logins only with
	// tls-unique (auth.go).
	tls12  atomic.Bool
	jids   jidCache   // parsed addresses of received stanzas
	auth   AuthInfo   // how the current connection logged in
	server ServerInfo // what the server offers, discovered after login
}

// New returns a client for cfg without connecting.
func New(cfg Config) (*Client, error) {
	if cfg.JID.Domainpart() == "" || cfg.JID.Localpart() == "" {
		return nil, errors.New("client: the account JID needs a localpart and a domainpart")
	}
	if _, err := cfg.mechanisms(); err != nil {
		return nil, err
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.CapsNode == "" {
		cfg.CapsNode = "https://balcony.im"
	}
	if cfg.ClientName == "" {
		cfg.ClientName = "Balcony"
	}
	c := &Client{
		cfg:    cfg,
		closed: make(chan struct{}),
		events: newQueue[Event](),
		out:    make(chan Event),
		inbox:  newQueue[inboxItem](),
	}
	c.disco.init()
	c.presence.init()
	c.mam.init()
	c.pep.init()
	c.pipeline = newPipeline(c)
	c.workers.Add(1)
	go c.pumpEvents()
	go c.processInbox()
	return c, nil
}

// Events returns the channel on which events are delivered. It is closed
// after Close.
func (c *Client) Events() <-chan Event { return c.out }

// JID returns the bound full JID, or the configured JID before binding.
func (c *Client) JID() jid.JID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bound.Domainpart() != "" {
		return c.bound
	}
	return c.cfg.JID
}

// Config returns a copy of the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Connected reports whether a stream is established.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Connect establishes the stream (TLS, SASL, resource binding), enables
// carbons, fetches the roster and sends the initial presence. With
// Config.Reconnect, a stream that ends unexpectedly afterwards is
// re-established in the background.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.mu.Unlock()
	return c.connect(ctx)
}

func (c *Client) connect(ctx context.Context) error {
	log := c.cfg.logger()
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	sess, err := c.negotiate(ctx, conn)
	if errors.Is(err, errRetryTLS12) && !c.tls12.Load() {
		// The server binds logins only with tls-unique (auth.go): try
		// again over TLS 1.2, and stay there for this server.
		conn.Close()
		log.Info("reconnecting with TLS 1.2 for channel binding")
		c.tls12.Store(true)
		if conn, err = c.dial(ctx); err != nil {
			return err
		}
		sess, err = c.negotiate(ctx, conn)
	}
	if err != nil {
		conn.Close()
		return err
	}
	done := make(chan struct{})
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		sess.Close()
		conn.Close()
		return ErrClosed
	}
	c.sess = sess
	c.bound = sess.LocalAddr()
	c.connected = true
	c.serveDone = done
	c.mu.Unlock()
	log.Info("connected", "jid", sess.LocalAddr().String(), "tls", tls.VersionName(sess.ConnectionState().Version))
	go c.serve(sess, done)

	if err := c.afterConnect(ctx); err != nil {
		log.Warn("post-connect setup failed", "err", err)
		c.mu.Lock()
		c.connected = false
		c.mu.Unlock()
		sess.Close()
		conn.Close()
		<-done
		return err
	}
	c.emit(&ConnectionEvent{State: Connected, JID: sess.LocalAddr()})
	return nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	if c.cfg.Addr == "" {
		d := dial.Dialer{NoTLS: !c.cfg.DirectTLS, TLSConfig: tlsCfg}
		conn, err := d.Dial(ctx, "tcp", c.cfg.JID)
		if err != nil {
			return nil, fmt.Errorf("client: connecting to %s: %w", c.cfg.JID.Domainpart(), err)
		}
		return conn, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: connecting to %s: %w", c.cfg.Addr, err)
	}
	if !c.cfg.DirectTLS {
		return conn, nil
	}
	tc := tls.Client(conn, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: TLS with %s: %w", c.cfg.Addr, err)
	}
	return tc, nil
}

func (c *Client) negotiate(ctx context.Context, conn net.Conn) (*xmpp.Session, error) {
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
	features = append(features, channelBindingFeature(&auth), saslFeature(pass, mechs, &auth), bindResource(c.cfg.JID.Resourcepart()))
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

// serve runs the read loop for one stream.
func (c *Client) serve(sess *xmpp.Session, done chan struct{}) {
	err := sess.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		return c.handleStanza(sess, t, start)
	}))
	close(done)
	c.mu.Lock()
	if c.sess == sess {
		c.connected = false
	}
	closing := c.closing
	c.mu.Unlock()
	c.presence.reset()
	if closing {
		return
	}
	if err == nil {
		err = io.EOF
	}
	c.cfg.logger().Warn("stream ended", "err", err)
	c.emit(&ConnectionEvent{State: Disconnected, Err: err})
	c.pipeline.streamEnded()
	if c.cfg.Reconnect {
		go c.reconnectLoop()
	}
}

func (c *Client) reconnectLoop() {
	delay := c.cfg.MinBackoff
	for {
		d := jitter(delay)
		c.emit(&ConnectionEvent{State: Reconnecting, Retry: d})
		t := time.NewTimer(d)
		select {
		case <-c.closed:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.connect(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrClosed) {
			return
		}
		c.cfg.logger().Warn("reconnect failed", "err", err)
		delay *= 2
		if delay > c.cfg.MaxBackoff {
			delay = c.cfg.MaxBackoff
		}
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

// Disconnect drops the current stream without closing the client, as a
// network failure would (for tests and for the "reconnect now" command).
func (c *Client) Disconnect() error {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return ErrNotConnected
	}
	return sess.Conn().Close()
}

// OnShutdown registers fn to run during Close after the stream and the TCP
// connection are closed (XEP-0364 §5.2: end the stream, then TCP, then the
// end-to-end sessions).
func (c *Client) OnShutdown(fn func()) {
	c.mu.Lock()
	c.shutdowns = append(c.shutdowns, fn)
	c.mu.Unlock()
}

// Close lets mechanisms end their sessions (PreCloser), sends unavailable
// presence, ends the stream, closes the connection, runs the shutdown hooks
// (Shutdowner, OnShutdown), stops processing and closes the Events
// channel.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	connected := c.connected
	c.mu.Unlock()
	if connected {
		// Mechanisms end their sessions while the stream still works, but
		// only after every stanza received so far was processed: a message
		// that arrived before Close is read in its session, not refused
		// because the session ended meanwhile.
		c.afterReceived(3 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c.pipeline.closing(ctx)
		cancel()
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	sess, done := c.sess, c.serveDone
	c.connected = false
	hooks := c.shutdowns
	c.mu.Unlock()
	close(c.closed)
	var err error
	if sess != nil {
		// Send unavailable presence, then </stream:stream>, and wait for the
		// server to close its side (bounded), then close TCP.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.sendPresenceSession(ctx, sess, "unavailable", "", "")
		cancel()
		// Closing our output stream; Serve returns when the server closes
		// its stream in answer (bounded by the timer below).
		err = sess.Close()
		if done != nil {
			select {
			case <-done:
			case <-time.After(3 * time.Second):
			}
		}
		if cerr := sess.Conn().Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	for _, h := range hooks {
		h()
	}
	// Stanzas already received are still processed, and their events
	// stay readable on Events (see pumpEvents) until it is closed.
	c.inbox.close()
	c.workers.Wait()
	return err
}

func (c *Client) session() (*xmpp.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, ErrClosed
	}
	if c.sess == nil || !c.connected && c.serveDone == nil {
		return nil, ErrNotConnected
	}
	return c.sess, nil
}

// emit queues an event for Events, its texts in the user's language.
func (c *Client) emit(e Event) {
	c.pipeline.localize(e)
	c.events.offer(e, c.out)
}

// drainGrace is how long events left when the client closes wait for a
// reader before they are dropped.
const drainGrace = 2 * time.Second

// pumpEvents hands queued events to the Events channel. After Close, the
// events of everything already received are still delivered to a reader
// that keeps reading (a listener stopped by a signal prints the messages
// it received and acknowledged); when nobody reads for drainGrace, the
// rest is dropped, so that an undrained channel never keeps the
// goroutine alive. Close does not wait for this goroutine.
func (c *Client) pumpEvents() {
	defer close(c.out)
	var grace *time.Timer
	for {
		e, ok := c.events.popInFlight()
		if !ok {
			return
		}
		select {
		case c.out <- e:
			c.events.landed()
			continue
		case <-c.closed:
		}
		if grace == nil {
			grace = time.NewTimer(drainGrace)
			defer grace.Stop()
		}
		select {
		case c.out <- e:
			c.events.landed()
		case <-grace.C:
			for {
				if _, ok := c.events.pop(); !ok {
					return
				}
			}
		}
	}
}

// Inject handles st as if it had been read from the stream: it is queued
// behind the stanzas received so far, processed like them (IQs excepted:
// Inject takes messages and presence), and its events arrive on Events.
// It is for tests, benchmarks and bridges that receive stanzas elsewhere;
// nothing is sent for it but what a received stanza causes (receipts,
// protocol replies).
func (c *Client) Inject(st *xmltree.Element) {
	if st.Name.Space == "" {
		st.Name.Space = NSClient
	}
	c.inbox.push(inboxItem{st: st})
}

// inboxItem is a received stanza, or a function to run in its place in
// the order of arrival.
type inboxItem struct {
	st *xmltree.Element
	fn func()
}

// afterReceived waits (at most max) until every stanza queued so far was
// processed.
func (c *Client) afterReceived(max time.Duration) {
	done := make(chan struct{})
	if !c.inbox.push(inboxItem{fn: func() { close(done) }}) {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// processInbox hands received stanzas to the lanes (in order per sender,
// concurrently across senders). A function queued with inboxItem runs
// once every stanza queued before it was processed.
func (c *Client) processInbox() {
	defer c.workers.Done()
	defer c.events.close()
	l := newLanes(c.process, c.jids.parse)
	defer l.close()
	defer l.wait()
	for {
		it, ok := c.inbox.pop()
		if !ok {
			return
		}
		if it.fn != nil {
			l.wait()
			it.fn()
			continue
		}
		l.add(it.st)
	}
}

// NewID returns a random stanza id (128 bits, URL-safe base64).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// bareEqual compares two JIDs' bare forms.
func bareEqual(a, b jid.JID) bool { return a.Bare().Equal(b.Bare()) }

func trimmed(s string) string { return strings.TrimSpace(s) }
