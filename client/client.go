package client

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	link      *link // the current connection, nil before the first
	bound     jid.JID
	closing   bool
	connected bool
	serveDone chan struct{}
	closed    chan struct{}
	// since is when the connection state last changed; resumed tells
	// whether the current stream resumed the one before.
	since   time.Time
	resumed bool
	// unresolved: a stream ended and it is not known yet whether its
	// session will be resumed (sessionLost has not run for it).
	unresolved bool
	// setUp is where the session's set-up after login (afterConnect:
	// roster, initial presence) stands: a stream that resumes a session
	// whose set-up is under way leaves the catch-up to it, and one whose
	// set-up failed sets it up again.
	setUp setUpState
	// resumeOnly: the server replaced the session (conflict), and only
	// its resumption is tried (see serve); conflictAt is when.
	resumeOnly bool
	conflictAt time.Time
	// stopped: the client no longer reconnects by itself (replaced, or
	// refused by Config.BeforeConnect).
	stopped bool

	// wmu orders every write to the stream with its stream management
	// count (link.go: writeStanza). Lock order: pipeline.sendMu, then
	// wmu, then mu.
	wmu   sync.Mutex
	sm    smState
	iqs   iqState
	fates fateState
	ob    obState
	seen  seenSet
	catch catchState

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
	cfg.defaults()
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
	c.sm.init(&c.cfg)
	c.iqs.init()
	c.fates.init()
	c.ob.init()
	c.seen.init(cfg.DedupeWindow)
	if cfg.LastArchiveID != "" {
		// Catch up from the archive at the first connection: what arrived
		// since the last run.
		c.catch.cursor = cfg.LastArchiveID
		c.catch.lost(time.Time{})
	}
	c.pipeline = newPipeline(c)
	c.workers.Add(1)
	go c.pumpEvents()
	go c.processInbox()
	if cfg.Outbox != nil {
		go c.runRemovals()
	}
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

// OnShutdown registers fn to run during Close after the stream and the TCP
// connection are closed (XEP-0364 §5.2: end the stream, then TCP, then the
// end-to-end sessions).
func (c *Client) OnShutdown(fn func()) {
	c.mu.Lock()
	c.shutdowns = append(c.shutdowns, fn)
	c.mu.Unlock()
}

// emit queues an event for Events, its texts in the user's language.
func (c *Client) emit(e Event) {
	c.pipeline.localize(e)
	c.events.offer(e, c.out)
	c.observeFate(e)
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
