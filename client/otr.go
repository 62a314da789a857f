package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/xmltree"
)

// Errors of the OTR mechanism that callers branch on.
var (
	// ErrNoOTRSession is returned when a message or an action needs a
	// private OTR conversation with the peer and there is none.
	ErrNoOTRSession = errors.New("client: no private OTR conversation")
	// ErrOTRFullJID is returned when an OTR action is given a bare JID:
	// OTR talks to one resource of a contact (XEP-0364 §3.2).
	ErrOTRFullJID = errors.New("client: OTR needs the contact's full JID (with its resource)")
)

// OTRAutoStart says when the OTR mechanism may start a private
// conversation without an explicit Start.
type OTRAutoStart int

const (
	// OTRAutoStartKnown starts automatically (as the OTR policy allows)
	// only with resources known to run OTR: the resource sent an OTR
	// message or whitespace tag during this session, or the contact's OTR
	// fingerprint is in the store. This is XEP-0364's recommendation and
	// the zero value.
	OTRAutoStartKnown OTRAutoStart = iota
	// OTRAutoStartNever never starts automatically: no AKE on a whitespace
	// tag or an OTR error, no re-AKE after an unreadable message. Only
	// Start (and the peer's query messages) start conversations.
	OTRAutoStartNever
	// OTRAutoStartAlways may start with any resource, also one never seen:
	// with a policy that requires encryption, a message sent without a
	// private conversation is held, a query is sent instead, and the
	// message follows once the AKE completes.
	OTRAutoStartAlways
)

func (a OTRAutoStart) String() string {
	switch a {
	case OTRAutoStartKnown:
		return "known"
	case OTRAutoStartNever:
		return "never"
	case OTRAutoStartAlways:
		return "always"
	}
	return "OTRAutoStart(" + strconv.Itoa(int(a)) + ")"
}

// OTRStore is what the OTR mechanism needs from persistent storage: the
// contacts' fingerprints and trust decisions. *store.Store implements it;
// another backend can plug in by implementing these methods.
type OTRStore interface {
	RecordSeenKey(ctx context.Context, contact string, m store.Mechanism, fingerprint string, data []byte) (store.Seen, error)
	SetTrust(ctx context.Context, contact string, m store.Mechanism, fingerprint string, t store.TrustState) error
	Trust(ctx context.Context, contact string, m store.Mechanism, fingerprint string) (store.TrustState, error)
	ListKeys(ctx context.Context, contact string, m store.Mechanism) ([]store.ContactKey, error)
}

var _ OTRStore = (*store.Store)(nil)

// OTRConfig configures the OTR mechanism.
type OTRConfig struct {
	// Key is the account's long-term DSA key. Either Key or LoadKey is
	// required.
	Key *otr.PrivateKey
	// LoadKey returns the key when Key is nil. It is called once, the first
	// time the key is needed (a conversation starts, Fingerprint), so that
	// an account that never uses OTR never makes an OTR key. InstanceTag
	// must then be set.
	LoadKey func() (*otr.PrivateKey, error)
	// InstanceTag is the account's OTR instance tag (>= 0x100), persisted
	// per account (store.Store.OTRInstanceTag). 0 makes a fresh one, which
	// peers will see as a new client every time.
	InstanceTag uint32
	// Policy is the OTR policy of new conversations; 0 means
	// DefaultOTRPolicy.
	Policy otr.Policy
	// AutoStart limits automatic starts; see OTRAutoStart.
	AutoStart OTRAutoStart
	// FragmentSize is passed to the engine: OTR messages longer than this
	// are sent as fragments. 0 never fragments (XMPP carries long bodies).
	FragmentSize int
	// Store keeps fingerprints and trust. Nil keeps SMP results in memory
	// only, and every fingerprint counts as unverified.
	Store OTRStore
	// HeartbeatEvery is how often encrypted conversations are checked for
	// a due heartbeat (otr.HeartbeatInterval after the last received
	// message); 0 means 10 seconds.
	HeartbeatEvery time.Duration
	// Rand is the randomness source; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// OTRState is what the user is told about a conversation with one
// resource.
type OTRState int

const (
	// OTRPlaintext: no private conversation; messages are not encrypted.
	OTRPlaintext OTRState = iota
	// OTRPrivateUnverified: encrypted, but the peer's fingerprint has not
	// been verified (SMP or an out-of-band comparison).
	OTRPrivateUnverified
	// OTRPrivateVerified: encrypted, to a verified fingerprint.
	OTRPrivateVerified
	// OTRFinished: the peer ended the private conversation; nothing is sent
	// until End or a new Start.
	OTRFinished
)

func (s OTRState) String() string {
	switch s {
	case OTRPlaintext:
		return "plaintext"
	case OTRPrivateUnverified:
		return "private-unverified"
	case OTRPrivateVerified:
		return "private-verified"
	case OTRFinished:
		return "finished"
	}
	return "OTRState(" + strconv.Itoa(int(s)) + ")"
}

// OTRStatus describes the conversation with one resource.
type OTRStatus struct {
	Peer  jid.JID
	State OTRState
	// Fingerprint is the peer's key as authenticated by the current or
	// last AKE (libotr's display form), "" before any.
	Fingerprint string
	// Trust is the stored trust state of that fingerprint ("verified",
	// "undecided", ...), "" if there is none.
	Trust string
	// SSID is the secure session id in hex (users may compare it by voice),
	// "" before any AKE.
	SSID string
	// Version is the OTR protocol version of the session (2 or 3), 0
	// before any AKE.
	Version int
	// OurInstance and TheirInstance are the instance tags (0 when unknown
	// or with a version 2 peer).
	OurInstance, TheirInstance uint32
	// SMP reports an SMP exchange under way or awaiting our answer.
	SMP bool
	// Known reports that the resource is known to run OTR.
	Known bool
	// Instances is the number of the peer's OTR instances tracked.
	Instances int
}

// DefaultOTRPolicy is libotr's opportunistic policy without
// SendWhitespaceTag: answer whitespace tags, OTR errors and queries, but
// do not tag our own plaintext (bots and plain clients see the tag as
// stray whitespace). Add otr.SendWhitespaceTag to advertise OTR.
const DefaultOTRPolicy = otr.PolicyOpportunistic &^ otr.SendWhitespaceTag

// OTR is Off-the-Record Messaging (OTR v3, v2 compatible) used over XMPP
// as XEP-0364 describes, as a message pipeline Mechanism. See the package
// documentation, section "OTR (XEP-0364)". It is safe for concurrent use.
type OTR struct {
	c      *Client
	cfg    OTRConfig
	policy otr.Policy
	auto   OTRAutoStart

	// sendFn, when set (tests), replaces sending through the pipeline.
	sendFn func(ctx context.Context, to jid.JID, stanzas []*xmltree.Element) error

	mu       sync.Mutex
	peers    map[string]*otrPeer // by full JID
	known    map[string]bool     // full JIDs that showed OTR support
	verified map[string]bool     // bare JID + " " + hex, when there is no store
	noTag    map[string]bool     // bare JIDs that answered in plaintext: no more whitespace tags
	hbStop   chan struct{}
	hbDone   chan struct{}
}

var (
	_ Mechanism         = (*OTR)(nil)
	_ PresenceObserver  = (*OTR)(nil)
	_ StreamObserver    = (*OTR)(nil)
	_ ErrorObserver     = (*OTR)(nil)
	_ Shutdowner        = (*OTR)(nil)
	_ Availability      = (*OTR)(nil)
	_ PlaintextObserver = (*OTR)(nil)
)

// otrPeer is the state for one full JID: one conversation per instance of
// the peer's OTR software.
type otrPeer struct {
	jid     jid.JID
	current *otr.Conversation            // the one the user talks to
	byTag   map[uint32]*otr.Conversation // by the peer's instance tag
	// pending answers a query that carried no instance tag while current
	// is bound to an instance: its DH-Commit has receiver 0, so that a
	// restarted peer with a new instance tag can accept it.
	pending   *otr.Conversation
	used      map[*otr.Conversation]time.Time // last message per conversation
	touched   time.Time                       // last use of the peer
	lastReAKE time.Time
	presence  bool     // directed presence sent
	announced bool     // "otr-available" shown
	sent      []string // ids of recent stanzas, to recognise bounces
}

// NewOTR returns the OTR mechanism for c. Register it with
// c.Pipeline().Register(o, true, "...").
func NewOTR(c *Client, cfg OTRConfig) (*OTR, error) {
	if cfg.Key == nil && cfg.LoadKey == nil {
		return nil, errors.New("client: OTRConfig.Key or LoadKey is required")
	}
	if cfg.Key == nil && cfg.InstanceTag == 0 {
		return nil, errors.New("client: OTRConfig.InstanceTag is required with LoadKey")
	}
	if cfg.Policy == 0 {
		cfg.Policy = DefaultOTRPolicy
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &OTR{c: c, cfg: cfg, peers: map[string]*otrPeer{}, known: map[string]bool{}, verified: map[string]bool{}, noTag: map[string]bool{}}
	o.policy, o.auto = cfg.Policy, cfg.AutoStart
	if cfg.Key != nil {
		// Validate the configuration once (instance tag, fragment size).
		conv, err := o.newConv()
		if err != nil {
			return nil, err
		}
		o.cfg.InstanceTag = conv.InstanceTag()
	} else if cfg.InstanceTag < 0x100 {
		return nil, fmt.Errorf("client: OTR instance tag %#x is below 0x100", cfg.InstanceTag)
	}
	return o, nil
}

// SetPolicy changes the policy and auto-start mode, for new conversations
// and for the live ones alike: a message sent after a switch to "always"
// is held until the private conversation is established, never sent in
// the clear.
func (o *OTR) SetPolicy(p otr.Policy, a OTRAutoStart) {
	if p == 0 {
		p = DefaultOTRPolicy
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.policy, o.auto = p, a
	pol := o.convPolicy()
	for _, peer := range o.peers {
		for _, c := range peer.convs() {
			c.SetPolicy(pol)
		}
	}
}

// Policy returns the policy and auto-start mode for new conversations.
func (o *OTR) Policy() (otr.Policy, OTRAutoStart) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.policy, o.auto
}

// Namespace implements Mechanism.
func (o *OTR) Namespace() string { return eme.OTR }

// Needs implements Mechanism: every OTR message carries the XEP-0334
// no-copy and no-permanent-store hints and the XEP-0280 private directive
// (XEP-0364 §3.3); OTR has no fallback body, the body is the OTR message.
func (o *OTR) Needs() Needs {
	return Needs{Hints: []string{"no-copy", "no-permanent-store"}, Private: true}
}

// Fingerprint returns our own fingerprint.
//
// With OTRConfig.LoadKey the key is loaded (or made) now; if that fails,
// the zero Fingerprint is returned and the error is logged.
func (o *OTR) Fingerprint() otr.Fingerprint {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, err := o.keyLocked()
	if err != nil {
		o.c.cfg.logger().Warn("loading the OTR key failed", "err", err)
		return otr.Fingerprint{}
	}
	return k.Fingerprint()
}

// keyLocked returns the account's key, loading it on first use. Callers
// hold o.mu.
func (o *OTR) keyLocked() (*otr.PrivateKey, error) {
	if o.cfg.Key == nil {
		k, err := o.cfg.LoadKey()
		if err != nil {
			return nil, fmt.Errorf("client: the OTR key: %w", err)
		}
		o.cfg.Key = k
	}
	return o.cfg.Key, nil
}

// InstanceTag returns our instance tag.
func (o *OTR) InstanceTag() uint32 { return o.cfg.InstanceTag }

// convPolicy is the engine policy of conversations under the current
// policy and auto-start mode. Callers hold o.mu, except NewOTR.
func (o *OTR) convPolicy() otr.Policy {
	pol := o.policy
	if o.auto == OTRAutoStartNever {
		pol &^= otr.WhitespaceStartAKE | otr.ErrorStartAKE
	}
	return pol
}

// newConv returns a new conversation with the current policy. Callers
// hold o.mu, except NewOTR.
func (o *OTR) newConv() (*otr.Conversation, error) {
	key, err := o.keyLocked()
	if err != nil {
		return nil, err
	}
	return otr.NewConversation(otr.Config{
		PrivateKey: key, InstanceTag: o.cfg.InstanceTag, Policy: o.convPolicy(),
		FragmentSize: o.cfg.FragmentSize, Rand: o.cfg.Rand, Now: o.cfg.Now,
	})
}

// Bounds on the OTR state anyone can make Balcony keep: OTR messages may
// come from any number of resources and instance tags, each with an
// incomplete fragmented message of up to 1 MiB.
const (
	maxOTRInstances    = 4       // conversations per full JID (peer instances)
	maxOTRResources    = 16      // full JIDs per contact
	maxOTRPeers        = 1024    // full JIDs in all
	maxOTRFragsContact = 1 << 20 // incomplete fragments of one contact
	maxOTRFragsTotal   = 8 << 20 // of everyone
)

func (o *OTR) peer(j jid.JID) *otrPeer {
	k := j.String()
	p := o.peers[k]
	if p == nil {
		o.makeRoom(j)
		p = &otrPeer{jid: j, byTag: map[uint32]*otr.Conversation{}, used: map[*otr.Conversation]time.Time{}}
		o.peers[k] = p
	}
	p.touched = o.cfg.Now()
	return p
}

// makeRoom evicts peers before j gets one: the least recently used of j's
// contact beyond maxOTRResources, and of everyone beyond maxOTRPeers.
// Peers without a private conversation go first. Callers hold o.mu.
func (o *OTR) makeRoom(j jid.JID) {
	bare := j.Bare()
	for {
		var same []*otrPeer
		all := make([]*otrPeer, 0, len(o.peers))
		for _, p := range o.peers {
			all = append(all, p)
			if p.jid.Bare().Equal(bare) {
				same = append(same, p)
			}
		}
		var victim *otrPeer
		switch {
		case len(same) >= maxOTRResources:
			victim = evictable(same)
		case len(all) >= maxOTRPeers:
			victim = evictable(all)
		default:
			return
		}
		for _, c := range victim.convs() {
			_, _ = c.End() // wipes the session keys; nothing is sent
		}
		delete(o.peers, victim.jid.String())
		delete(o.known, victim.jid.String())
	}
}

// evictable returns the peer to forget first: the least recently used one
// without a private conversation, or else the least recently used one.
func evictable(peers []*otrPeer) *otrPeer {
	var best *otrPeer
	better := func(p *otrPeer) bool {
		if best == nil {
			return true
		}
		pp, bp := p.private(), best.private()
		if pp != bp {
			return !pp
		}
		return p.touched.Before(best.touched)
	}
	for _, p := range peers {
		if better(p) {
			best = p
		}
	}
	return best
}

// private reports whether the peer's current conversation is encrypted.
func (p *otrPeer) private() bool { return p.current != nil && p.current.State() == otr.Encrypted }

// addInstance records conv as the conversation with the peer's instance
// tag, forgetting the least recently used other instance beyond
// maxOTRInstances. Callers hold o.mu.
func (o *OTR) addInstance(p *otrPeer, tag uint32, conv *otr.Conversation) {
	for len(p.byTag) >= maxOTRInstances {
		var oldTag uint32
		var oldest *otr.Conversation
		for t, c := range p.byTag {
			if c == p.current || c == p.pending {
				continue
			}
			if oldest == nil || p.used[c].Before(p.used[oldest]) {
				oldTag, oldest = t, c
			}
		}
		if oldest == nil {
			break
		}
		_, _ = oldest.End()
		delete(p.byTag, oldTag)
		delete(p.used, oldest)
	}
	p.byTag[tag] = conv
}

// boundFragments drops the incomplete fragmented message conv holds when
// the contact's, or everyone's, incomplete messages exceed their budget.
// Callers hold o.mu.
func (o *OTR) boundFragments(p *otrPeer, conv *otr.Conversation) {
	if conv.PendingFragments() == 0 {
		return
	}
	contact, total := 0, 0
	for _, q := range o.peers {
		for _, c := range q.convs() {
			n := c.PendingFragments()
			total += n
			if q.jid.Bare().Equal(p.jid.Bare()) {
				contact += n
			}
		}
	}
	if contact > maxOTRFragsContact || total > maxOTRFragsTotal {
		conv.DiscardFragments()
	}
}

// currentConv returns the peer's current conversation, creating it.
func (o *OTR) currentConv(p *otrPeer) (*otr.Conversation, error) {
	if p.current == nil {
		c, err := o.newConv()
		if err != nil {
			return nil, err
		}
		p.current = c
	}
	return p.current, nil
}

// route picks the conversation for an incoming OTR message (see "Instance
// tags and several peer instances" in package otr).
func (o *OTR) route(p *otrPeer, body string, kind eme.OTRKind) (*otr.Conversation, error) {
	sender, _, tagged := otr.InstanceTags([]byte(body))
	if !tagged {
		if kind == eme.OTRQuery && p.current != nil && p.current.TheirInstanceTag() != 0 {
			if p.pending == nil {
				c, err := o.newConv()
				if err != nil {
					return nil, err
				}
				p.pending = c
			}
			return p.pending, nil
		}
		return o.currentConv(p)
	}
	if kind == eme.OTRKeyExchange && p.pending != nil {
		if t := p.pending.TheirInstanceTag(); t == 0 || t == sender {
			return p.pending, nil
		}
	}
	if c := p.byTag[sender]; c != nil {
		return c, nil
	}
	if p.current != nil && (p.current.TheirInstanceTag() == 0 || p.current.TheirInstanceTag() == sender) {
		return p.current, nil
	}
	c, err := o.newConv()
	if err != nil {
		return nil, err
	}
	o.addInstance(p, sender, c)
	if p.current == nil {
		p.current = c
	}
	return c, nil
}

// mayAutoStart reports whether the auto-start mode allows starting with
// the resource j on our own initiative. Callers hold o.mu.
func (o *OTR) mayAutoStart(ctx context.Context, j jid.JID) bool {
	switch o.auto {
	case OTRAutoStartAlways:
		return true
	case OTRAutoStartKnown:
		return o.isKnown(ctx, j)
	}
	return false
}

// isKnown reports whether j showed OTR support or its contact has an OTR
// fingerprint in the store. Callers hold o.mu.
func (o *OTR) isKnown(ctx context.Context, j jid.JID) bool {
	if o.known[j.String()] {
		return true
	}
	if o.cfg.Store == nil {
		return false
	}
	keys, err := o.cfg.Store.ListKeys(ctx, j.Bare().String(), store.OTR)
	return err == nil && len(keys) > 0
}

// Seal implements Mechanism. The recipient must be a full JID with a
// private conversation; otherwise Seal fails with ErrOTRFullJID or
// ErrNoOTRSession, and never sends the message in the clear. With
// OTRAutoStartAlways and a policy that requires encryption, a message
// without a conversation is held and a query is sent instead.
func (o *OTR) Seal(ctx context.Context, out *Outgoing) (Sealed, error) {
	if out.To.Resourcepart() == "" {
		return Sealed{}, fmt.Errorf("%w: %s", ErrOTRFullJID, out.To)
	}
	if out.Body == "" {
		return Sealed{}, errors.New("client: OTR carries only text: the message has no body")
	}
	if out.Type == "groupchat" {
		return Sealed{}, errors.New("client: OTR works between two parties only, not in group chats")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(out.To)
	conv := p.current
	state := otr.Plaintext
	if conv != nil {
		state = conv.State()
	}
	switch state {
	case otr.Finished:
		return Sealed{}, fmt.Errorf("client: %s ended the private OTR conversation; end it too or start a new one: %w", out.To, otr.ErrFinished)
	case otr.Plaintext:
		if o.policy&otr.RequireEncryption == 0 || !o.mayAutoStart(ctx, out.To) {
			return Sealed{}, fmt.Errorf("%w with %s: start one first", ErrNoOTRSession, out.To)
		}
	}
	conv, err := o.currentConv(p)
	if err != nil {
		return Sealed{}, err
	}
	if conv.State() != otr.Encrypted && conv.Policy()&otr.RequireEncryption == 0 {
		// Started under another policy: "always" applies now.
		conv.SetPolicy(o.convPolicy())
	}
	msgs, err := conv.Send([]byte(out.Body))
	if err != nil {
		return Sealed{}, fmt.Errorf("client: OTR: %w", err)
	}
	var res Sealed
	for i, m := range msgs {
		k, _ := eme.ClassifyOTR(string(m))
		if k == eme.OTRNone || k == eme.OTRWhitespaceTag {
			// Never let text typed for a private conversation out in the
			// clear.
			return Sealed{}, errors.New("client: OTR engine returned plaintext for a private message; not sent")
		}
		if k == eme.OTRQuery {
			// The engine holds the message and asks for a private
			// conversation; the message leaves once it is established.
			res.Held = true
		}
		id := NewID()
		if i == 0 && out.ID != "" {
			id = out.ID
		}
		res.Stanzas = append(res.Stanzas, otrStanza(out.To, id, bareQuery(m)))
		p.remember(id)
	}
	o.sendPresence(ctx, p)
	return res, nil
}

// bareQuery returns a query message without the explanation the engine
// adds for people without OTR: over XMPP the EME tag does that, and
// XEP-0364 §2 asks for the query string alone. Other messages are
// returned unchanged.
func bareQuery(m []byte) []byte {
	if k, _ := eme.ClassifyOTR(string(m)); k != eme.OTRQuery || !bytes.HasPrefix(m, []byte("?OTR")) {
		return m
	}
	rest := m[len("?OTR"):]
	n := len("?OTR")
	if bytes.HasPrefix(rest, []byte("?")) {
		rest, n = rest[1:], n+1
	}
	if !bytes.HasPrefix(rest, []byte("v")) {
		return m[:n]
	}
	if j := bytes.IndexByte(rest, '?'); j >= 0 {
		return m[:n+j+1]
	}
	return m
}

func otrStanza(to jid.JID, id string, body []byte) *xmltree.Element {
	st := xmltree.New(NSClient, "message", "to", to.String(), "type", "chat", "id", id)
	st.Append(xmltree.New(NSClient, "body").AppendText(string(body)))
	return st
}

func (p *otrPeer) remember(id string) {
	const keep = 64
	if len(p.sent) >= keep {
		p.sent = append(p.sent[:0], p.sent[len(p.sent)-keep/2:]...)
	}
	p.sent = append(p.sent, id)
}

// lockWire takes the pipeline's send lock, which the pipeline holds while
// it seals and writes a message. Every method that sends OTR protocol
// messages takes it before o.mu (the pipeline's order: send lock, then
// Seal, then o.mu), so that data messages, whose counters must arrive in
// order, leave in the order they were made, sealed or not.
func (o *OTR) lockWire() (unlock func()) {
	if o.c == nil {
		return func() {}
	}
	o.c.pipeline.sendMu.Lock()
	return o.c.pipeline.sendMu.Unlock
}

// send transmits protocol messages to the peer. Callers hold the wire lock
// and o.mu, so that data messages leave in the order they were made.
func (o *OTR) send(ctx context.Context, p *otrPeer, bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	var sts []*xmltree.Element
	for _, b := range bodies {
		id := NewID()
		p.remember(id)
		sts = append(sts, otrStanza(p.jid, id, bareQuery(b)))
	}
	if o.sendFn != nil {
		return o.sendFn(ctx, p.jid, sts)
	}
	if o.c == nil {
		return ErrNotConnected
	}
	return o.c.Pipeline().SendProtocol(ctx, p.jid, eme.OTR, sts)
}

// sendPresence sends directed presence to the peer once per conversation
// (RFC 6121 §4.6), so that its server tells it when we go offline even
// without a presence subscription, and it can end the session (XEP-0364
// §5.1). Callers hold o.mu.
func (o *OTR) sendPresence(ctx context.Context, p *otrPeer) {
	if p.presence || o.c == nil {
		return
	}
	p.presence = true
	if err := o.c.SendElement(ctx, xmltree.New(NSClient, "presence", "to", p.jid.String())); err != nil {
		o.c.cfg.logger().Warn("sending directed presence failed", "err", err)
	}
}

// copyDetail explains why copies are never read.
const (
	copyDetailCarbon  = "it is a copy for another of your devices; OTR messages can be read only by the device they were sent to"
	copyDetailArchive = "it is an archived copy; OTR messages can be read only once, live, by the device they were sent to"
)

// Open implements Mechanism. Live OTR messages go to the conversation of
// the sender's full JID and instance; copies (carbons, archive) never touch
// any state: encrypted ones give a notice (once per fragmented message),
// session set-up inside them is silently ignored (XEP-0364 §3.2).
func (o *OTR) Open(ctx context.Context, in *Incoming) (*Opened, error) {
	body := in.Stanza.ChildText(NSClient, "body")
	kind := in.Detection.OTR
	if kind == eme.OTRNone {
		kind, _ = eme.ClassifyOTR(body)
	}
	switch {
	case kind == eme.OTRNone:
		return nil, &OpenError{Reason: eme.ReasonMalformed, Detail: "tagged as OTR, but the body is not an OTR message"}
	case kind == eme.OTRWhitespaceTag && (in.Detection.Encrypted || in.Detection.Control):
		// Plaintext with an EME tag: whatever we returned, the pipeline
		// would show it as encrypted. Only untagged plaintext is shown.
		return nil, &OpenError{Reason: eme.ReasonMalformed, Detail: "tagged as OTR, but the body is plaintext"}
	case in.Origin.Copy():
		return openCopy(in, body, kind)
	}

	defer o.lockWire()()
	o.mu.Lock()
	p := o.peer(in.From)
	o.known[in.From.String()] = true
	conv, err := o.route(p, body, kind)
	if err != nil {
		o.mu.Unlock()
		return nil, &OpenError{Reason: eme.ReasonUnspecified, Err: err}
	}
	res, rerr := conv.Receive([]byte(body))
	p.used[conv] = o.cfg.Now()
	if len(p.used) > maxOTRInstances+2 {
		// Forget the use of conversations replaced meanwhile.
		live := p.convs()
		for c := range p.used {
			if !slices.Contains(live, c) {
				delete(p.used, c)
			}
		}
	}
	if t := conv.TheirInstanceTag(); t != 0 && conv != p.pending && p.byTag[t] == nil {
		o.addInstance(p, t, conv)
	}
	o.boundFragments(p, conv)
	var events []*SecurityEvent
	var unreadable, otherInstance, malformed, secure, unencrypted bool
	toSend := res.ToSend
	for _, e := range res.Events {
		switch e.Kind {
		case otr.EventUnencrypted:
			unencrypted = true
		case otr.EventUnreadable:
			unreadable = true
		case otr.EventOtherInstance:
			otherInstance = true
		case otr.EventMalformed:
			malformed = true
		case otr.EventGoneSecure, otr.EventRefreshed:
			secure = true
			events = append(events, o.goneSecure(ctx, p, conv, e.Kind == otr.EventRefreshed)...)
		default:
			if ev := o.securityEvent(ctx, p, conv, e); ev != nil {
				events = append(events, ev)
			}
		}
	}
	// An unreadable message sent to our bare JID was most likely meant for
	// another of our resources: do not disturb its session.
	toBare := in.To.Domainpart() != "" && in.To.Resourcepart() == ""
	reAKE := false
	if unreadable && !toBare && o.mayAutoStart(ctx, in.From) && o.cfg.Now().Sub(p.lastReAKE) > 5*time.Second {
		// XEP-0364 users' top complaint: a stale session after the peer
		// reconnected. Start a new one right away (per policy).
		p.lastReAKE = o.cfg.Now()
		reAKE = true
		if c, err := o.currentConv(p); err == nil {
			if q, err := c.StartAKE(); err == nil {
				toSend = append(toSend, q...)
			}
		}
	}
	if toBare && rerr != nil {
		toSend = nil
	}
	if err := o.send(ctx, p, toSend); err != nil && o.c != nil {
		o.c.cfg.logger().Warn("sending OTR reply failed", "err", err)
	}
	if secure {
		o.sendPresence(ctx, p)
		o.startHeartbeat()
	}
	fpr, verified, trust := o.peerKey(ctx, p, conv)
	state := conv.State()
	auto := o.auto
	announced := p.announced
	if kind == eme.OTRWhitespaceTag {
		p.announced = true
	}
	o.mu.Unlock()

	switch {
	case unreadable:
		detail := "there is no private conversation with " + in.From.String()
		if state == otr.Encrypted {
			detail = "the private conversation with " + in.From.String() + " is out of date (their client may have restarted)"
		}
		switch {
		case toBare:
			detail += "; it was sent to your bare JID and was probably meant for another of your devices"
		case reAKE:
			detail += "; a new one is being started"
		default:
			detail += "; they were told it could not be read"
		}
		return nil, &OpenError{Reason: eme.ReasonNoSession, Detail: detail, Err: rerr}
	case malformed:
		return nil, &OpenError{Reason: eme.ReasonMalformed, Err: rerr}
	case otherInstance && kind.Encrypted():
		return nil, &OpenError{Reason: eme.ReasonNoKey, Detail: "it was meant for another OTR instance of this account"}
	case rerr != nil && kind.Encrypted():
		return nil, &OpenError{Reason: eme.ReasonVerificationFailed, Err: rerr}
	case rerr != nil:
		// A rejected key exchange message changes nothing; tell the user.
		events = append(events, &SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: "otr-error",
			Text: "an invalid OTR key exchange message from " + in.From.String() + " was ignored"})
		return &Opened{Silent: true, Events: events}, nil
	}
	if kind == eme.OTRWhitespaceTag {
		// Plaintext offering OTR: the pipeline shows it as plaintext.
		if state == otr.Plaintext && !secure && auto == OTRAutoStartNever && !announced {
			events = append(events, &SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: "otr-available",
				Text: in.From.String() + " can talk privately with OTR (start with: balcony otr start " + in.From.String() + ")"})
		}
		op := &Opened{Body: string(res.Plaintext), Events: events}
		if unencrypted || state == otr.Encrypted {
			op.Security.Warnings = append(op.Security.Warnings, "this message was sent in the clear, outside the private OTR conversation with "+in.From.String())
		}
		return op, nil
	}
	if res.Plaintext == nil {
		return &Opened{Silent: true, Events: events}, nil
	}
	if !res.Encrypted {
		// Text that came through OTR unencrypted (a query for a version
		// we do not speak): show it as what it is.
		events = append(events, &SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: "otr-unsupported",
			Text: in.From.String() + " asked for a private conversation with an OTR version Balcony does not support"})
		return &Opened{Silent: true, Events: events}, nil
	}
	// A data message is authenticated by the session's MAC keys, which the
	// AKE bound to the contact's DSA key.
	sec := Security{Mechanism: eme.OTR, Name: eme.DisplayName(eme.OTR, ""), Verified: verified, Authenticated: true, Fingerprint: fpr, Trust: trust}
	if trust == store.Untrusted.String() {
		sec.Warnings = append(sec.Warnings, "the contact's OTR key "+fpr+" is marked untrusted")
		sec.Verified = false
	}
	return &Opened{Body: OTRText(string(res.Plaintext)), Security: sec, Events: events}, nil
}

// openCopy handles a carbon or archived copy of an OTR message.
func openCopy(in *Incoming, body string, kind eme.OTRKind) (*Opened, error) {
	detail := copyDetailCarbon
	if in.Origin.Archived {
		detail = copyDetailArchive
	}
	switch kind {
	case eme.OTRFragment:
		if k, ok := otrFragmentIndex(body); ok && k > 1 {
			return &Opened{Silent: true}, nil // one notice per message
		}
		return nil, &OpenError{Reason: eme.ReasonNoKey, Detail: detail}
	case eme.OTRData, eme.OTREncoded:
		return nil, &OpenError{Reason: eme.ReasonNoKey, Detail: detail}
	}
	// Query, error, key exchange: never start or change anything from a
	// copy (XEP-0364 §3.2: silently ignored).
	return &Opened{Silent: true}, nil
}

// otrFragmentIndex returns k of a fragment "?OTR|s|r,k,n,..." or
// "?OTR,k,n,...".
func otrFragmentIndex(body string) (int, bool) {
	var rest string
	if i := strings.Index(body, "?OTR|"); i >= 0 {
		rest = body[i+5:]
		for n := 0; n < 2; n++ {
			j := strings.IndexAny(rest, "|,")
			if j < 0 {
				return 0, false
			}
			rest = rest[j+1:]
		}
	} else if i := strings.Index(body, "?OTR,"); i >= 0 {
		rest = body[i+5:]
	} else {
		return 0, false
	}
	j := strings.IndexByte(rest, ',')
	if j < 0 {
		return 0, false
	}
	k, err := strconv.Atoi(rest[:j])
	return k, err == nil
}

// goneSecure updates routing after an AKE and records the peer's key.
// Callers hold o.mu.
func (o *OTR) goneSecure(ctx context.Context, p *otrPeer, conv *otr.Conversation, refreshed bool) []*SecurityEvent {
	if tag := conv.TheirInstanceTag(); tag != 0 {
		if old := p.byTag[tag]; old != nil && old != conv {
			_, _ = old.End() // forget its keys; the peer replaced it
		}
		p.byTag[tag] = conv
	}
	if p.pending == conv {
		p.pending = nil
	}
	p.current = conv
	key := conv.TheirKey()
	fp := key.Fingerprint()
	bare := p.jid.Bare().String()
	var events []*SecurityEvent
	verified := false
	if o.cfg.Store != nil {
		data, _ := key.MarshalBinary()
		seen, err := o.cfg.Store.RecordSeenKey(ctx, bare, store.OTR, strings.ToUpper(fp.Hex()), data)
		if err == nil {
			verified = seen.Key.Trust == store.Verified
			if seen.Change != nil {
				events = append(events, &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-fingerprint-changed", Fingerprint: fp.String(),
					Text: bare + " uses a new OTR key; verify it (balcony otr smp " + p.jid.String() + ") before trusting this conversation"})
			}
		} else if o.c != nil {
			o.c.cfg.logger().Warn("recording OTR fingerprint failed", "err", err)
		}
	} else {
		verified = o.verified[bare+" "+fp.Hex()]
	}
	what := "private conversation with " + p.jid.String() + " started"
	if refreshed {
		what = "private conversation with " + p.jid.String() + " refreshed"
	}
	if verified {
		events = append(events, &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-verified", Fingerprint: fp.String(),
			Text: what + "; their fingerprint is verified"})
	} else {
		events = append(events, &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-private", Fingerprint: fp.String(),
			Text: what + "; their fingerprint is unverified (verify with balcony otr smp " + p.jid.String() + ")"})
	}
	return events
}

// securityEvent turns an engine event into a security event, handling
// SMP results. Callers hold o.mu.
func (o *OTR) securityEvent(ctx context.Context, p *otrPeer, conv *otr.Conversation, e otr.Event) *SecurityEvent {
	who := p.jid.String()
	ev := &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR}
	answer := "answer with: balcony otr smp-answer " + who + " --secret-file FILE"
	switch e.Kind {
	case otr.EventPeerEnded:
		ev.Kind = "otr-finished"
		ev.Text = who + " ended the private conversation; nothing more is sent to them with OTR until you end it too (balcony otr end " + who + ") or start a new one"
	case otr.EventError:
		ev.Kind = "otr-error"
		ev.Text = who + "'s OTR software reported an error: " + eme.QuoteRemote(e.Text)
	case otr.EventSMPSecretRequested:
		ev.Kind = "otr-smp-request"
		ev.Text = who + " wants to verify this conversation with a secret you share; " + answer
	case otr.EventSMPQuestion:
		ev.Kind = "otr-smp-question"
		ev.Text = who + " wants to verify this conversation and asks: " + eme.QuoteRemote(e.Text) + "; " + answer
	case otr.EventSMPSucceeded:
		ev.Kind = "otr-smp-succeeded"
		fp := conv.TheirKey().Fingerprint()
		ev.Fingerprint = fp.String()
		ev.Text = "verification succeeded: " + who + " knows the shared secret; their fingerprint is now verified"
		bare := p.jid.Bare().String()
		if o.cfg.Store != nil {
			if err := o.cfg.Store.SetTrust(ctx, bare, store.OTR, strings.ToUpper(fp.Hex()), store.Verified); err != nil {
				ev.Text = "verification succeeded, but recording it failed: " + err.Error()
			}
		} else {
			o.verified[bare+" "+fp.Hex()] = true
		}
	case otr.EventSMPFailed:
		ev.Kind = "otr-smp-failed"
		ev.Text = "verification with " + who + " failed: the secrets differ (or someone is in the middle)"
	case otr.EventSMPCheated:
		ev.Kind = "otr-smp-failed"
		ev.Text = "verification with " + who + " failed: an invalid SMP message was received and the exchange aborted"
	case otr.EventSMPAborted:
		ev.Kind = "otr-smp-aborted"
		ev.Text = who + " aborted the verification"
	default:
		return nil
	}
	return ev
}

// peerKey returns the fingerprint (display form) of conv's peer key and
// its trust. Callers hold o.mu.
func (o *OTR) peerKey(ctx context.Context, p *otrPeer, conv *otr.Conversation) (fpr string, verified bool, trust string) {
	key := conv.TheirKey()
	if key == nil {
		return "", false, ""
	}
	fp := key.Fingerprint()
	bare := p.jid.Bare().String()
	if o.cfg.Store == nil {
		if o.verified[bare+" "+fp.Hex()] {
			return fp.String(), true, store.Verified.String()
		}
		return fp.String(), false, store.Undecided.String()
	}
	t, err := o.cfg.Store.Trust(ctx, bare, store.OTR, strings.ToUpper(fp.Hex()))
	if err != nil {
		return fp.String(), false, ""
	}
	return fp.String(), t == store.Verified, t.String()
}

// Start asks peer (a full JID) for a private conversation by sending an OTR
// query; with a private conversation under way it refreshes its keys. A
// manual start is always allowed, whatever the policy (XEP-0364 §4). The
// result arrives as a SecurityEvent of kind "otr-private" or
// "otr-verified".
func (o *OTR) Start(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrOTRFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(peer)
	conv, err := o.currentConv(p)
	if err != nil {
		return err
	}
	if conv.State() == otr.Finished {
		_, _ = conv.End()
	}
	msgs, err := conv.StartAKE()
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	o.sendPresence(ctx, p)
	return o.send(ctx, p, msgs)
}

// End ends the private conversations with peer (every instance of it):
// the peer is told when a conversation was encrypted, and we return to
// plaintext.
func (o *OTR) End(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrOTRFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[peer.String()]
	if p == nil {
		return fmt.Errorf("%w with %s", ErrNoOTRSession, peer)
	}
	var msgs [][]byte
	for _, c := range p.convs() {
		m, err := c.End()
		if err == nil {
			msgs = append(msgs, m...)
		}
	}
	delete(o.peers, peer.String())
	return o.send(ctx, p, msgs)
}

// convs returns the peer's distinct conversations.
func (p *otrPeer) convs() []*otr.Conversation {
	seen := map[*otr.Conversation]bool{}
	var out []*otr.Conversation
	add := func(c *otr.Conversation) {
		if c != nil && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	add(p.current)
	add(p.pending)
	tags := make([]uint32, 0, len(p.byTag))
	for t := range p.byTag {
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	for _, t := range tags {
		add(p.byTag[t])
	}
	return out
}

// OutgoingPlaintext implements PlaintextObserver: with the
// SendWhitespaceTag policy, a plaintext message carries the OTR whitespace
// tag (Protocol-v3 "Tagged plaintext messages") until the contact answers
// in plaintext without one.
func (o *OTR) OutgoingPlaintext(to jid.JID, body string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if body == "" || o.policy&otr.SendWhitespaceTag == 0 || o.noTag[to.Bare().String()] {
		return body
	}
	return body + string(otr.WhitespaceTag(o.policy))
}

// IncomingPlaintext implements PlaintextObserver: an untagged plaintext
// answer stops our whitespace tags to that contact, and plaintext from a
// resource we have a private conversation with is flagged.
func (o *OTR) IncomingPlaintext(in *Incoming) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.noTag[in.From.Bare().String()] = true
	if p := o.peers[in.From.String()]; p != nil && p.current != nil && p.current.State() == otr.Encrypted {
		return []string{"this message was sent in the clear, outside the private OTR conversation with " + in.From.String()}
	}
	return nil
}

// Usable implements Availability: a message to "to" can be sealed now,
// because to is a full JID with an encrypted conversation.
func (o *OTR) Usable(_ context.Context, to jid.JID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[to.String()]
	return to.Resourcepart() != "" && p != nil && p.current != nil && p.current.State() == otr.Encrypted
}

// encrypted returns the peer's current conversation if it is encrypted.
func (o *OTR) encrypted(peer jid.JID) (*otrPeer, *otr.Conversation, error) {
	if peer.Resourcepart() == "" {
		return nil, nil, fmt.Errorf("%w: %s", ErrOTRFullJID, peer)
	}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil || p.current.State() != otr.Encrypted {
		return nil, nil, fmt.Errorf("%w with %s", ErrNoOTRSession, peer)
	}
	return p, p.current, nil
}

// StartSMP starts verifying the private conversation with peer by the
// Socialist Millionaires' Protocol: the peer must answer with the same
// secret. question, if not empty, is shown to the peer. The outcome
// arrives as a SecurityEvent: "otr-smp-succeeded" (the fingerprint is then
// recorded as verified), "otr-smp-failed" or "otr-smp-aborted".
func (o *OTR) StartSMP(ctx context.Context, peer jid.JID, question string, secret []byte) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.StartSMP(question, secret)
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// AnswerSMP answers the peer's SMP request with the user's secret. It
// fails with an error wrapping otr.ErrNoSMP if the peer has not asked.
func (o *OTR) AnswerSMP(ctx context.Context, peer jid.JID, secret []byte) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.AnswerSMP(secret)
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// AbortSMP aborts an SMP exchange with peer.
func (o *OTR) AbortSMP(ctx context.Context, peer jid.JID) error {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, conv, err := o.encrypted(peer)
	if err != nil {
		return err
	}
	msgs, err := conv.AbortSMP()
	if err != nil {
		return fmt.Errorf("client: OTR: %w", err)
	}
	return o.send(ctx, p, msgs)
}

// Status returns the state of the conversation with peer (a full JID);
// a peer without one is in OTRPlaintext.
func (o *OTR) Status(ctx context.Context, peer jid.JID) OTRStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := OTRStatus{Peer: peer, OurInstance: o.cfg.InstanceTag, Known: o.isKnown(ctx, peer)}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil {
		return st
	}
	return o.status(ctx, p, st)
}

func (o *OTR) status(ctx context.Context, p *otrPeer, st OTRStatus) OTRStatus {
	conv := p.current
	st.Instances = len(p.byTag)
	st.Version = conv.ProtocolVersion()
	st.TheirInstance = conv.TheirInstanceTag()
	st.SMP = conv.SMPInProgress()
	fpr, verified, trust := o.peerKey(ctx, p, conv)
	st.Fingerprint, st.Trust = fpr, trust
	if conv.TheirKey() != nil {
		ssid := conv.SSID()
		st.SSID = hex.EncodeToString(ssid[:])
	}
	switch conv.State() {
	case otr.Encrypted:
		st.State = OTRPrivateUnverified
		if verified {
			st.State = OTRPrivateVerified
		}
	case otr.Finished:
		st.State = OTRFinished
	}
	return st
}

// Sessions returns the state of every conversation, ordered by JID.
func (o *OTR) Sessions(ctx context.Context) []OTRStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []OTRStatus
	for k, p := range o.peers {
		if p.current == nil {
			continue
		}
		out = append(out, o.status(ctx, p, OTRStatus{Peer: p.jid, OurInstance: o.cfg.InstanceTag, Known: o.known[k]}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.String() < out[j].Peer.String() })
	return out
}

// endPeer forgets a peer's conversations without sending anything (the
// peer or we are gone) and reports whether one was not in plaintext.
// Callers hold o.mu.
func (o *OTR) endPeer(p *otrPeer) bool {
	active := false
	for _, c := range p.convs() {
		if c.State() != otr.Plaintext {
			active = true
		}
		_, _ = c.End()
	}
	delete(o.peers, p.jid.String())
	return active
}

// Presence implements PresenceObserver: when a resource goes offline its
// OTR sessions end (XEP-0364 §5.1).
func (o *OTR) Presence(_ context.Context, ev *PresenceEvent) []*SecurityEvent {
	if ev.Available {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*SecurityEvent
	for _, p := range o.peersOf(ev.From) {
		if o.endPeer(p) {
			events = append(events, &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-finished",
				Text: p.jid.String() + " went offline; the private conversation ended"})
		}
	}
	return events
}

// peersOf returns the peers j stands for: itself, or every resource of a
// bare JID. Callers hold o.mu.
func (o *OTR) peersOf(j jid.JID) []*otrPeer {
	var out []*otrPeer
	for _, p := range o.peers {
		if p.jid.Equal(j) || j.Resourcepart() == "" && p.jid.Bare().Equal(j) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].jid.String() < out[k].jid.String() })
	return out
}

// MessageError implements ErrorObserver: a bounce of one of our OTR
// messages saying the resource is gone ends its sessions.
func (o *OTR) MessageError(ev *ErrorEvent) []*SecurityEvent {
	switch ev.Condition {
	case "service-unavailable", "recipient-unavailable", "item-not-found", "gone", "remote-server-not-found":
	default:
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[ev.From.String()]
	if p == nil || !contains(p.sent, ev.ID) {
		return nil
	}
	if !o.endPeer(p) {
		return nil
	}
	return []*SecurityEvent{{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-finished",
		Text: p.jid.String() + " is not available (" + ev.Condition + "); the private conversation ended"}}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// StreamEnded implements StreamObserver: every OTR session ends with the
// XMPP session that carried it (XEP-0364 §5.2).
func (o *OTR) StreamEnded() []*SecurityEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*SecurityEvent
	ps := make([]*otrPeer, 0, len(o.peers))
	for _, p := range o.peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, k int) bool { return ps[i].jid.String() < ps[k].jid.String() })
	for _, p := range ps {
		if o.endPeer(p) {
			events = append(events, &SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: "otr-finished",
				Text: "our connection ended; the private conversation with " + p.jid.String() + " ended"})
		}
	}
	o.stopHeartbeatLocked()
	return events
}

// Shutdown implements Shutdowner. The client calls it after closing the
// stream and the TCP connection (XEP-0364 §5.2): every conversation is
// forgotten, nothing is sent. The mechanism stays usable and starts over.
func (o *OTR) Shutdown() {
	o.mu.Lock()
	for _, p := range o.peers {
		o.endPeer(p)
	}
	o.stopHeartbeatLocked()
	o.mu.Unlock()
}

// startHeartbeat starts the heartbeat goroutine if it is not running.
// Callers hold o.mu.
func (o *OTR) startHeartbeat() {
	if o.hbStop != nil || (o.c == nil && o.sendFn == nil) {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	o.hbStop, o.hbDone = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(o.cfg.HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				o.heartbeat()
			}
		}
	}()
}

// stopHeartbeatLocked stops the heartbeat goroutine. Callers hold o.mu;
// the goroutine may be waiting for it, so it is not waited for.
func (o *OTR) stopHeartbeatLocked() {
	if o.hbStop != nil {
		close(o.hbStop)
		o.hbStop, o.hbDone = nil, nil
	}
}

// heartbeat sends the heartbeats that are due, so that peers can rotate
// keys after a silence.
func (o *OTR) heartbeat() {
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range o.peers {
		for _, c := range p.convs() {
			msgs, err := c.Heartbeat()
			if err == nil && len(msgs) > 0 {
				_ = o.send(ctx, p, msgs)
			}
		}
	}
}

// OTRFingerprintURI returns the xmpp: URI that shares an account's OTR
// fingerprint out of band (XEP-0364 §6), e.g.
// "xmpp:alice@example.org?otr-fingerprint=AEA4D5...".
func OTRFingerprintURI(account jid.JID, f otr.Fingerprint) string {
	return "xmpp:" + uriEscape(account.Bare().String()) + "?otr-fingerprint=" + strings.ToUpper(f.Hex())
}

// ParseOTRFingerprintURI parses an xmpp: URI with an otr-fingerprint
// query component and returns the bare JID and the fingerprint.
func ParseOTRFingerprintURI(uri string) (jid.JID, otr.Fingerprint, error) {
	rest, ok := strings.CutPrefix(uri, "xmpp:")
	if !ok {
		return jid.JID{}, otr.Fingerprint{}, errors.New("client: not an xmpp: URI")
	}
	rest = strings.TrimPrefix(rest, "//")
	path, query, _ := strings.Cut(rest, "?")
	path, _, _ = strings.Cut(path, "#")
	js, err := uriUnescape(path)
	if err != nil {
		return jid.JID{}, otr.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	j, err := jid.Parse(js)
	if err != nil {
		return jid.JID{}, otr.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	query, _, _ = strings.Cut(query, "#")
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "otr-fingerprint" {
			continue
		}
		f, err := otr.ParseFingerprint(v)
		if err != nil {
			return jid.JID{}, otr.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
		}
		return j.Bare(), f, nil
	}
	return jid.JID{}, otr.Fingerprint{}, errors.New("client: the xmpp: URI has no otr-fingerprint")
}

// uriEscape percent-encodes what may not appear in the path of an xmpp:
// URI (RFC 5122 §2.2, as an IRI: non-ASCII characters are kept).
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func uriUnescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("bad percent-encoding")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad percent-encoding")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
