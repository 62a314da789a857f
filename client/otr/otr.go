package otr

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

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// Errors of the OTR mechanism that callers branch on.
var (
	// ErrNoSession is returned when a message or an action needs a
	// private OTR conversation with the peer and there is none.
	ErrNoSession = errors.New("client: no private OTR conversation")
	// ErrFullJID is returned when an OTR action is given a bare JID:
	// OTR talks to one resource of a contact (XEP-0364 §3.2).
	ErrFullJID = errors.New("client: OTR needs the contact's full JID (with its resource)")
)

// AutoStart says when the OTR mechanism may start a private
// conversation without an explicit Start.
type AutoStart int

const (
	// AutoStartKnown starts automatically (as the OTR policy allows)
	// only with resources known to run OTR: the resource sent an OTR
	// message or whitespace tag during this session, or the contact's OTR
	// fingerprint is in the store. This is XEP-0364's recommendation and
	// the zero value.
	AutoStartKnown AutoStart = iota
	// AutoStartNever never starts automatically: no AKE on a whitespace
	// tag or an OTR error, no re-AKE after an unreadable message. Only
	// Start (and the peer's query messages) start conversations.
	AutoStartNever
	// AutoStartAlways may start with any resource, also one never seen:
	// with a policy that requires encryption, a message sent without a
	// private conversation is held, a query is sent instead, and the
	// message follows once the AKE completes.
	AutoStartAlways
)

func (a AutoStart) String() string {
	switch a {
	case AutoStartKnown:
		return "known"
	case AutoStartNever:
		return "never"
	case AutoStartAlways:
		return "always"
	}
	return "AutoStart(" + strconv.Itoa(int(a)) + ")"
}

// Store is what the OTR mechanism needs from persistent storage: the
// contacts' fingerprints and trust decisions. *store.Store implements it;
// another backend can plug in by implementing these methods.
type Store interface {
	RecordSeenKey(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, data []byte) (trust.Seen, error)
	SetTrust(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, t trust.State) error
	Trust(ctx context.Context, contact string, m trust.Mechanism, fingerprint string) (trust.State, error)
	ListKeys(ctx context.Context, contact string, m trust.Mechanism) ([]trust.ContactKey, error)
}

// Config configures the OTR mechanism.
type Config struct {
	// Key is the account's long-term DSA key. Either Key or LoadKey is
	// required.
	Key *engine.PrivateKey
	// LoadKey returns the key when Key is nil. It is called once, the first
	// time the key is needed (a conversation starts, Fingerprint), so that
	// an account that never uses OTR never makes an OTR key. InstanceTag
	// must then be set.
	LoadKey func() (*engine.PrivateKey, error)
	// InstanceTag is the account's OTR instance tag (>= 0x100), persisted
	// per account (store.Store.OTRInstanceTag). 0 makes a fresh one, which
	// peers will see as a new client every time.
	InstanceTag uint32
	// Policy is the OTR policy of conversations. As in the engine, the
	// zero Policy is engine.PolicyNever: the mechanism stays registered
	// but disabled, so incoming OTR messages give "not enabled" notices.
	// DefaultPolicy is Balcony's default.
	Policy engine.Policy
	// AutoStart limits automatic starts; see AutoStart.
	AutoStart AutoStart
	// FragmentSize is passed to the engine: OTR messages longer than this
	// are sent as fragments. 0 never fragments (XMPP carries long bodies).
	FragmentSize int
	// Store keeps fingerprints and trust. Nil keeps SMP results in memory
	// only, and every fingerprint counts as unverified.
	Store Store
	// HeartbeatEvery is how often encrypted conversations are checked for
	// a due heartbeat (otr.HeartbeatInterval after the last received
	// message); 0 means 10 seconds.
	HeartbeatEvery time.Duration
	// Rand is the randomness source; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// State is what the user is told about a conversation with one
// resource.
type State int

const (
	// StatePlaintext: no private conversation; messages are not encrypted.
	StatePlaintext State = iota
	// StatePrivateUnverified: encrypted, but the peer's fingerprint has not
	// been verified (SMP or an out-of-band comparison).
	StatePrivateUnverified
	// StatePrivateVerified: encrypted, to a verified fingerprint.
	StatePrivateVerified
	// StateFinished: the peer ended the private conversation; nothing is sent
	// until End or a new Start.
	StateFinished
)

func (s State) String() string {
	switch s {
	case StatePlaintext:
		return "plaintext"
	case StatePrivateUnverified:
		return "private-unverified"
	case StatePrivateVerified:
		return "private-verified"
	case StateFinished:
		return "finished"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Status describes the conversation with one resource.
type Status struct {
	Peer  jid.JID
	State State
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

// DefaultPolicy is libotr's opportunistic policy without
// SendWhitespaceTag: answer whitespace tags, OTR errors and queries, but
// do not tag our own plaintext (bots and plain clients see the tag as
// stray whitespace). Add otr.SendWhitespaceTag to advertise OTR.
const DefaultPolicy = engine.PolicyOpportunistic &^ engine.SendWhitespaceTag

// OTR is Off-the-Record Messaging (OTR v3, v2 compatible) used over XMPP
// as XEP-0364 describes, as a message pipeline Mechanism. See the package
// documentation, section "OTR (XEP-0364)". It is safe for concurrent use.
type Mechanism struct {
	h      client.Host // set by Attach
	wire   client.Wire // the send lock, while a method holds it (lockWire)
	cfg    Config
	policy engine.Policy
	auto   AutoStart

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
	_ client.Mechanism         = (*Mechanism)(nil)
	_ client.Attacher          = (*Mechanism)(nil)
	_ client.PresenceObserver  = (*Mechanism)(nil)
	_ client.StreamObserver    = (*Mechanism)(nil)
	_ client.ErrorObserver     = (*Mechanism)(nil)
	_ client.Shutdowner        = (*Mechanism)(nil)
	_ client.Availability      = (*Mechanism)(nil)
	_ client.PlaintextObserver = (*Mechanism)(nil)
)

// otrPeer is the state for one full JID: one conversation per instance of
// the peer's OTR software.
type otrPeer struct {
	jid     jid.JID
	current *engine.Conversation            // the one the user talks to
	byTag   map[uint32]*engine.Conversation // by the peer's instance tag
	// pending answers a query that carried no instance tag while current
	// is bound to an instance: its DH-Commit has receiver 0, so that a
	// restarted peer with a new instance tag can accept it.
	pending   *engine.Conversation
	used      map[*engine.Conversation]time.Time // last message per conversation
	touched   time.Time                          // last use of the peer
	lastReAKE time.Time
	presence  bool     // directed presence sent
	announced bool     // "otr-available" shown
	sent      []string // ids of recent stanzas, to recognise bounces
}

// New returns the OTR mechanism; plug it into a client with
// Client.Register.
func New(cfg Config) (*Mechanism, error) {
	if cfg.Key == nil && cfg.LoadKey == nil {
		return nil, errors.New("client: Config.Key or LoadKey is required")
	}
	if cfg.Key == nil && cfg.InstanceTag == 0 {
		return nil, errors.New("client: Config.InstanceTag is required with LoadKey")
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &Mechanism{cfg: cfg, peers: map[string]*otrPeer{}, known: map[string]bool{}, verified: map[string]bool{}, noTag: map[string]bool{}}
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
// the clear. engine.PolicyNever (the zero Policy) disables the mechanism,
// any other policy enables it.
func (o *Mechanism) SetPolicy(p engine.Policy, a AutoStart) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.h != nil {
		o.h.SetEnabled(enabledBy(p))
	}
	o.policy, o.auto = p, a
	pol := o.convPolicy()
	for _, peer := range o.peers {
		for _, c := range peer.convs() {
			c.SetPolicy(pol)
		}
	}
}

// Policy returns the policy and auto-start mode for new conversations.
func (o *Mechanism) Policy() (engine.Policy, AutoStart) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.policy, o.auto
}

// Attach implements client.Attacher.
func (o *Mechanism) Attach(h client.Host) error {
	o.mu.Lock()
	o.h = h
	enabled := enabledBy(o.policy)
	o.mu.Unlock()
	h.SetEnabled(enabled)
	return nil
}

// enabledBy reports whether policy p allows any OTR version: the engine's
// PolicyNever does not.
func enabledBy(p engine.Policy) bool {
	return p&(engine.AllowV2|engine.AllowV3) != 0
}

// presenceTo sends directed presence to peer. The caller holds the wire:
// presence goes out in order with the OTR messages.
func (o *Mechanism) presenceTo(ctx context.Context, peer jid.JID) error {
	if o.wire != nil {
		return o.wire.Send(ctx, peer, xmltree.New(client.NSClient, "presence", "to", peer.String()))
	}
	return o.h.SendPresence(ctx, peer)
}

// Namespace implements Mechanism.
func (o *Mechanism) Namespace() string { return eme.OTR }

// Needs implements Mechanism: every OTR message carries the XEP-0334
// no-copy and no-permanent-store hints and the XEP-0280 private directive
// (XEP-0364 §3.3); OTR has no fallback body, the body is the OTR message.
func (o *Mechanism) Needs() client.Needs {
	return client.Needs{Hints: []string{"no-copy", "no-permanent-store"}, Private: true}
}

// Fingerprint returns our own fingerprint.
//
// With Config.LoadKey the key is loaded (or made) now; if that fails,
// the zero Fingerprint is returned and the error is logged.
func (o *Mechanism) Fingerprint() engine.Fingerprint {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, err := o.keyLocked()
	if err != nil {
		if o.h != nil {
			o.h.Logger().Warn("loading the OTR key failed", "err", err)
		}
		return engine.Fingerprint{}
	}
	return k.Fingerprint()
}

// keyLocked returns the account's key, loading it on first use. Callers
// hold o.mu.
func (o *Mechanism) keyLocked() (*engine.PrivateKey, error) {
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
func (o *Mechanism) InstanceTag() uint32 { return o.cfg.InstanceTag }

// convPolicy is the engine policy of conversations under the current
// policy and auto-start mode. Callers hold o.mu, except New.
func (o *Mechanism) convPolicy() engine.Policy {
	pol := o.policy
	if o.auto == AutoStartNever {
		pol &^= engine.WhitespaceStartAKE | engine.ErrorStartAKE
	}
	return pol
}

// newConv returns a new conversation with the current policy. Callers
// hold o.mu, except New.
func (o *Mechanism) newConv() (*engine.Conversation, error) {
	key, err := o.keyLocked()
	if err != nil {
		return nil, err
	}
	return engine.NewConversation(engine.Config{
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

func (o *Mechanism) peer(j jid.JID) *otrPeer {
	k := j.String()
	p := o.peers[k]
	if p == nil {
		o.makeRoom(j)
		p = &otrPeer{jid: j, byTag: map[uint32]*engine.Conversation{}, used: map[*engine.Conversation]time.Time{}}
		o.peers[k] = p
	}
	p.touched = o.cfg.Now()
	return p
}

// makeRoom evicts peers before j gets one: the least recently used of j's
// contact beyond maxOTRResources, and of everyone beyond maxOTRPeers.
// Peers without a private conversation go first. Callers hold o.mu.
func (o *Mechanism) makeRoom(j jid.JID) {
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
func (p *otrPeer) private() bool { return p.current != nil && p.current.State() == engine.Encrypted }

// addInstance records conv as the conversation with the peer's instance
// tag, forgetting the least recently used other instance beyond
// maxOTRInstances. Callers hold o.mu.
func (o *Mechanism) addInstance(p *otrPeer, tag uint32, conv *engine.Conversation) {
	for len(p.byTag) >= maxOTRInstances {
		var oldTag uint32
		var oldest *engine.Conversation
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
func (o *Mechanism) boundFragments(p *otrPeer, conv *engine.Conversation) {
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
func (o *Mechanism) currentConv(p *otrPeer) (*engine.Conversation, error) {
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
func (o *Mechanism) route(p *otrPeer, body string, kind eme.OTRKind) (*engine.Conversation, error) {
	sender, _, tagged := engine.InstanceTags([]byte(body))
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
func (o *Mechanism) mayAutoStart(ctx context.Context, j jid.JID) bool {
	switch o.auto {
	case AutoStartAlways:
		return true
	case AutoStartKnown:
		return o.isKnown(ctx, j)
	}
	return false
}

// isKnown reports whether j showed OTR support or its contact has an OTR
// fingerprint in the store. Callers hold o.mu.
func (o *Mechanism) isKnown(ctx context.Context, j jid.JID) bool {
	if o.known[j.String()] {
		return true
	}
	if o.cfg.Store == nil {
		return false
	}
	keys, err := o.cfg.Store.ListKeys(ctx, j.Bare().String(), trust.OTR)
	return err == nil && len(keys) > 0
}

// Seal implements Mechanism. The recipient must be a full JID with a
// private conversation; otherwise Seal fails with ErrFullJID or
// ErrNoSession, and never sends the message in the clear. With
// AutoStartAlways and a policy that requires encryption, a message
// without a conversation is held and a query is sent instead.
func (o *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	if out.To.Resourcepart() == "" {
		return client.Sealed{}, fmt.Errorf("%w: %s", ErrFullJID, out.To)
	}
	if out.Body == "" {
		return client.Sealed{}, errors.New("client: OTR carries only text: the message has no body")
	}
	if out.Type == "groupchat" {
		return client.Sealed{}, errors.New("client: OTR works between two parties only, not in group chats")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(out.To)
	conv := p.current
	state := engine.Plaintext
	if conv != nil {
		state = conv.State()
	}
	switch state {
	case engine.Finished:
		return client.Sealed{}, fmt.Errorf("client: %s ended the private OTR conversation; end it too or start a new one: %w", out.To, engine.ErrFinished)
	case engine.Plaintext:
		if o.policy&engine.RequireEncryption == 0 || !o.mayAutoStart(ctx, out.To) {
			return client.Sealed{}, fmt.Errorf("%w with %s: start one first", ErrNoSession, out.To)
		}
	}
	conv, err := o.currentConv(p)
	if err != nil {
		return client.Sealed{}, err
	}
	if conv.State() != engine.Encrypted && conv.Policy()&engine.RequireEncryption == 0 {
		// Started under another policy: "always" applies now.
		conv.SetPolicy(o.convPolicy())
	}
	msgs, err := conv.Send([]byte(out.Body))
	if err != nil {
		return client.Sealed{}, fmt.Errorf("client: OTR: %w", err)
	}
	var res client.Sealed
	for i, m := range msgs {
		k, _ := eme.ClassifyOTR(string(m))
		if k == eme.OTRNone || k == eme.OTRWhitespaceTag {
			// Never let text typed for a private conversation out in the
			// clear.
			return client.Sealed{}, errors.New("client: OTR engine returned plaintext for a private message; not sent")
		}
		if k == eme.OTRQuery {
			// The engine holds the message and asks for a private
			// conversation; the message leaves once it is established.
			res.Held = true
		}
		id := client.NewID()
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
	st := xmltree.New(client.NSClient, "message", "to", to.String(), "type", "chat", "id", id)
	st.Append(xmltree.New(client.NSClient, "body").AppendText(string(body)))
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
func (o *Mechanism) lockWire() (unlock func()) {
	if o.h == nil {
		return func() {}
	}
	w := o.h.Hold()
	o.wire = w
	return func() {
		o.wire = nil
		w.Release()
	}
}

// send transmits protocol messages to the peer. Callers hold the wire lock
// and o.mu, so that data messages leave in the order they were made.
func (o *Mechanism) send(ctx context.Context, p *otrPeer, bodies [][]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	var sts []*xmltree.Element
	for _, b := range bodies {
		id := client.NewID()
		p.remember(id)
		sts = append(sts, otrStanza(p.jid, id, bareQuery(b)))
	}
	if o.sendFn != nil {
		return o.sendFn(ctx, p.jid, sts)
	}
	if o.wire == nil {
		return client.ErrNotConnected
	}
	return o.wire.Send(ctx, p.jid, sts...)
}

// sendPresence sends directed presence to the peer once per conversation
// (RFC 6121 §4.6), so that its server tells it when we go offline even
// without a presence subscription, and it can end the session (XEP-0364
// §5.1). Callers hold o.mu.
func (o *Mechanism) sendPresence(ctx context.Context, p *otrPeer) {
	if p.presence || o.h == nil {
		return
	}
	p.presence = true
	if err := o.presenceTo(ctx, p.jid); err != nil {
		o.h.Logger().Warn("sending directed presence failed", "err", err)
	}
}

// Open implements Mechanism. Live OTR messages go to the conversation of
// the sender's full JID and instance; copies (carbons, archive) never touch
// any state: encrypted ones give a notice (once per fragmented message),
// session set-up inside them is silently ignored (XEP-0364 §3.2).
func (o *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	body := in.Stanza.ChildText(client.NSClient, "body")
	kind := in.Detection.OTR
	if kind == eme.OTRNone {
		kind, _ = eme.ClassifyOTR(body)
	}
	switch {
	case kind == eme.OTRNone:
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Notes: []eme.Message{eme.Msg(eme.MsgOTRTaggedNotOTR)}}
	case kind == eme.OTRWhitespaceTag && (in.Detection.Encrypted || in.Detection.Control):
		// Plaintext with an EME tag: whatever we returned, the pipeline
		// would show it as encrypted. Only untagged plaintext is shown.
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Notes: []eme.Message{eme.Msg(eme.MsgOTRTaggedPlaintext)}}
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
		return nil, &client.OpenError{Reason: eme.ReasonUnspecified, Err: err}
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
	var events []*client.SecurityEvent
	var unreadable, otherInstance, malformed, secure, unencrypted bool
	toSend := res.ToSend
	for _, e := range res.Events {
		switch e.Kind {
		case engine.EventUnencrypted:
			unencrypted = true
		case engine.EventUnreadable:
			unreadable = true
		case engine.EventOtherInstance:
			otherInstance = true
		case engine.EventMalformed:
			malformed = true
		case engine.EventGoneSecure, engine.EventRefreshed:
			secure = true
			events = append(events, o.goneSecure(ctx, p, conv, e.Kind == engine.EventRefreshed)...)
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
	if err := o.send(ctx, p, toSend); err != nil && o.h != nil {
		o.h.Logger().Warn("sending OTR reply failed", "err", err)
	}
	if secure {
		o.sendPresence(ctx, p)
		o.startHeartbeat()
	}
	fpr, verified, trustName := o.peerKey(ctx, p, conv)
	state := conv.State()
	auto := o.auto
	announced := p.announced
	if kind == eme.OTRWhitespaceTag {
		p.announced = true
	}
	o.mu.Unlock()

	switch {
	case unreadable:
		notes := []eme.Message{eme.Msg(eme.MsgOTRNoConversation, in.From.String())}
		if state == engine.Encrypted {
			notes[0] = eme.Msg(eme.MsgOTRStaleConversation, in.From.String())
		}
		switch {
		case toBare:
			notes = append(notes, eme.Msg(eme.MsgOTRSentToBare))
		case reAKE:
			notes = append(notes, eme.Msg(eme.MsgOTRRestarting))
		default:
			notes = append(notes, eme.Msg(eme.MsgOTRPeerTold))
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoSession, Notes: notes, Err: rerr}
	case malformed:
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: rerr}
	case otherInstance && kind.Encrypted():
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: []eme.Message{eme.Msg(eme.MsgOTROtherInstance)}}
	case rerr != nil && kind.Encrypted():
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Err: rerr}
	case rerr != nil:
		// A rejected key exchange message changes nothing; tell the user.
		events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindError,
			Message: eme.Msg(eme.MsgOTRInvalidKeyExchange, in.From.String())})
		return &client.Opened{Silent: true, Events: events}, nil
	}
	if kind == eme.OTRWhitespaceTag {
		// Plaintext offering OTR: the pipeline shows it as plaintext.
		if state == engine.Plaintext && !secure && auto == AutoStartNever && !announced {
			events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindAvailable,
				Message: eme.Msg(eme.MsgOTRAvailable, in.From.String()),
				Hint:    eme.Hint{Action: eme.ActionStartSession, Mechanism: eme.OTR, Peer: in.From.String()}})
		}
		op := &client.Opened{Body: string(res.Plaintext), Events: events}
		if unencrypted || state == engine.Encrypted {
			op.Security.Warnings = append(op.Security.Warnings, client.Warn(eme.MsgOTRSentInClear, in.From.String()))
		}
		return op, nil
	}
	if res.Plaintext == nil {
		return &client.Opened{Silent: true, Events: events}, nil
	}
	if !res.Encrypted {
		// Text that came through OTR unencrypted (a query for a version
		// we do not speak): show it as what it is.
		events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindUnsupported,
			Message: eme.Msg(eme.MsgOTRUnsupportedVersion, in.From.String())})
		return &client.Opened{Silent: true, Events: events}, nil
	}
	// A data message is authenticated by the session's MAC keys, which the
	// AKE bound to the contact's DSA key.
	sec := client.Security{Mechanism: eme.OTR, Name: eme.DisplayName(eme.OTR, ""), Verified: verified, Authenticated: true, Fingerprint: fpr, Trust: trustName}
	if trustName == trust.Untrusted.String() {
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOTRKeyUntrusted, fpr))
		sec.Verified = false
	}
	return &client.Opened{Body: Text(string(res.Plaintext)), Security: sec, Events: events}, nil
}

// openCopy handles a carbon or archived copy of an OTR message.
func openCopy(in *client.Incoming, body string, kind eme.OTRKind) (*client.Opened, error) {
	detail := []eme.Message{eme.Msg(eme.MsgOTRCopyCarbon)}
	if in.Origin.Archived {
		detail = []eme.Message{eme.Msg(eme.MsgOTRCopyArchive)}
	}
	switch kind {
	case eme.OTRFragment:
		if k, ok := otrFragmentIndex(body); ok && k > 1 {
			return &client.Opened{Silent: true}, nil // one notice per message
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: detail}
	case eme.OTRData, eme.OTREncoded:
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: detail}
	}
	// Query, error, key exchange: never start or change anything from a
	// copy (XEP-0364 §3.2: silently ignored).
	return &client.Opened{Silent: true}, nil
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
func (o *Mechanism) goneSecure(ctx context.Context, p *otrPeer, conv *engine.Conversation, refreshed bool) []*client.SecurityEvent {
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
	var events []*client.SecurityEvent
	verified := false
	if o.cfg.Store != nil {
		data, _ := key.MarshalBinary()
		seen, err := o.cfg.Store.RecordSeenKey(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()), data)
		if err == nil {
			verified = seen.Key.Trust == trust.Verified
			if seen.Change != nil {
				events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFingerprintChanged, Fingerprint: fp.String(),
					Message: eme.Msg(eme.MsgOTRNewKey, bare),
					Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR, Peer: p.jid.String()}})
			}
		} else if o.h != nil {
			o.h.Logger().Warn("recording OTR fingerprint failed", "err", err)
		}
	} else {
		verified = o.verified[bare+" "+fp.Hex()]
	}
	who := p.jid.String()
	switch {
	case verified:
		id := eme.MsgOTRStartedVerified
		if refreshed {
			id = eme.MsgOTRRefreshedVerified
		}
		events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindVerified, Fingerprint: fp.String(),
			Message: eme.Msg(id, who)})
	default:
		id := eme.MsgOTRStartedUnverified
		if refreshed {
			id = eme.MsgOTRRefreshedUnverified
		}
		events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindPrivate, Fingerprint: fp.String(),
			Message: eme.Msg(id, who),
			Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR, Peer: who}})
	}
	return events
}

// securityEvent turns an engine event into a security event, handling
// SMP results. Callers hold o.mu.
func (o *Mechanism) securityEvent(ctx context.Context, p *otrPeer, conv *engine.Conversation, e engine.Event) *client.SecurityEvent {
	who := p.jid.String()
	ev := &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR}
	answer := eme.Hint{Action: eme.ActionAnswer, Mechanism: eme.OTR, Peer: who}
	switch e.Kind {
	case engine.EventPeerEnded:
		ev.Kind = KindFinished
		ev.Message = eme.Msg(eme.MsgOTRPeerEnded, who)
		ev.Hint = eme.Hint{Action: eme.ActionEnd, Mechanism: eme.OTR, Peer: who}
	case engine.EventError:
		ev.Kind = KindError
		ev.Message = eme.Msg(eme.MsgOTRPeerError, who, eme.QuoteRemote(e.Text))
	case engine.EventSMPSecretRequested:
		ev.Kind = KindSMPRequest
		ev.Message = eme.Msg(eme.MsgOTRSMPRequest, who)
		ev.Hint = answer
	case engine.EventSMPQuestion:
		ev.Kind = KindSMPQuestion
		ev.Message = eme.Msg(eme.MsgOTRSMPQuestion, who, eme.QuoteRemote(e.Text))
		ev.Hint = answer
	case engine.EventSMPSucceeded:
		ev.Kind = KindSMPSucceeded
		fp := conv.TheirKey().Fingerprint()
		ev.Fingerprint = fp.String()
		ev.Message = eme.Msg(eme.MsgOTRSMPSucceeded, who)
		bare := p.jid.Bare().String()
		if o.cfg.Store != nil {
			if err := o.cfg.Store.SetTrust(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()), trust.Verified); err != nil {
				ev.Message = eme.Msg(eme.MsgOTRSMPRecordFailed, err.Error())
			}
		} else {
			o.verified[bare+" "+fp.Hex()] = true
		}
	case engine.EventSMPFailed:
		ev.Kind = KindSMPFailed
		ev.Message = eme.Msg(eme.MsgOTRSMPFailed, who)
	case engine.EventSMPCheated:
		ev.Kind = KindSMPFailed
		ev.Message = eme.Msg(eme.MsgOTRSMPCheated, who)
	case engine.EventSMPAborted:
		ev.Kind = KindSMPAborted
		ev.Message = eme.Msg(eme.MsgOTRSMPAborted, who)
	default:
		return nil
	}
	return ev
}

// peerKey returns the fingerprint (display form) of conv's peer key and
// its trust. Callers hold o.mu.
func (o *Mechanism) peerKey(ctx context.Context, p *otrPeer, conv *engine.Conversation) (fpr string, verified bool, trustName string) {
	key := conv.TheirKey()
	if key == nil {
		return "", false, ""
	}
	fp := key.Fingerprint()
	bare := p.jid.Bare().String()
	if o.cfg.Store == nil {
		if o.verified[bare+" "+fp.Hex()] {
			return fp.String(), true, trust.Verified.String()
		}
		return fp.String(), false, trust.Undecided.String()
	}
	t, err := o.cfg.Store.Trust(ctx, bare, trust.OTR, strings.ToUpper(fp.Hex()))
	if err != nil {
		return fp.String(), false, ""
	}
	return fp.String(), t == trust.Verified, t.String()
}

// Start asks peer (a full JID) for a private conversation by sending an OTR
// query; with a private conversation under way it refreshes its keys. A
// manual start is always allowed, whatever the policy (XEP-0364 §4). The
// result arrives as a SecurityEvent of kind "otr-private" or
// "otr-verified".
func (o *Mechanism) Start(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peer(peer)
	conv, err := o.currentConv(p)
	if err != nil {
		return err
	}
	if conv.State() == engine.Finished {
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
func (o *Mechanism) End(ctx context.Context, peer jid.JID) error {
	if peer.Resourcepart() == "" {
		return fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	defer o.lockWire()()
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[peer.String()]
	if p == nil {
		return fmt.Errorf("%w with %s", ErrNoSession, peer)
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
func (p *otrPeer) convs() []*engine.Conversation {
	seen := map[*engine.Conversation]bool{}
	var out []*engine.Conversation
	add := func(c *engine.Conversation) {
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
func (o *Mechanism) OutgoingPlaintext(to jid.JID, body string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if body == "" || o.policy&engine.SendWhitespaceTag == 0 || o.noTag[to.Bare().String()] {
		return body
	}
	return body + string(engine.WhitespaceTag(o.policy))
}

// IncomingPlaintext implements PlaintextObserver. A whitespace tag
// (a plaintext message offering OTR) is removed; in a live message it may
// also start a private conversation, as the policy and AutoStart say. An
// untagged plaintext answer stops our whitespace tags to that contact, and
// plaintext from a resource we have a private conversation with is
// flagged. Copies change nothing.
func (o *Mechanism) IncomingPlaintext(ctx context.Context, in *client.Incoming, body string) client.Plaintext {
	tagged := in.Detection.OTR == eme.OTRWhitespaceTag
	if in.Origin.Copy() {
		if tagged {
			body = stripWhitespaceTag(body)
		}
		return client.Plaintext{Body: body}
	}
	if tagged {
		opened, err := o.Open(ctx, in)
		if err != nil {
			return client.Plaintext{Body: stripWhitespaceTag(body)}
		}
		if o.h != nil {
			for _, e := range opened.Events {
				o.h.Emit(e)
			}
		}
		return client.Plaintext{Body: opened.Body, Warnings: opened.Security.Warnings}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.noTag[in.From.Bare().String()] = true
	if p := o.peers[in.From.String()]; p != nil && p.current != nil && p.current.State() == engine.Encrypted {
		return client.Plaintext{Body: body, Warnings: []client.Warning{client.Warn(eme.MsgOTRSentInClear, in.From.String())}}
	}
	return client.Plaintext{Body: body}
}

// stripWhitespaceTag removes OTR whitespace tags (the base tag and the
// version tags that follow it) from a plaintext body.
func stripWhitespaceTag(body string) string {
	out, _ := engine.StripWhitespaceTag([]byte(body))
	return string(out)
}

// Usable implements Availability: a message to "to" can be sealed now,
// because to is a full JID with an encrypted conversation.
func (o *Mechanism) Usable(_ context.Context, to jid.JID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[to.String()]
	return to.Resourcepart() != "" && p != nil && p.current != nil && p.current.State() == engine.Encrypted
}

// encrypted returns the peer's current conversation if it is encrypted.
func (o *Mechanism) encrypted(peer jid.JID) (*otrPeer, *engine.Conversation, error) {
	if peer.Resourcepart() == "" {
		return nil, nil, fmt.Errorf("%w: %s", ErrFullJID, peer)
	}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil || p.current.State() != engine.Encrypted {
		return nil, nil, fmt.Errorf("%w with %s", ErrNoSession, peer)
	}
	return p, p.current, nil
}

// StartSMP starts verifying the private conversation with peer by the
// Socialist Millionaires' Protocol: the peer must answer with the same
// secret. question, if not empty, is shown to the peer. The outcome
// arrives as a SecurityEvent: "otr-smp-succeeded" (the fingerprint is then
// recorded as verified), "otr-smp-failed" or "otr-smp-aborted".
func (o *Mechanism) StartSMP(ctx context.Context, peer jid.JID, question string, secret []byte) error {
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
func (o *Mechanism) AnswerSMP(ctx context.Context, peer jid.JID, secret []byte) error {
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
func (o *Mechanism) AbortSMP(ctx context.Context, peer jid.JID) error {
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
// a peer without one is in StatePlaintext.
func (o *Mechanism) Status(ctx context.Context, peer jid.JID) Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := Status{Peer: peer, OurInstance: o.cfg.InstanceTag, Known: o.isKnown(ctx, peer)}
	p := o.peers[peer.String()]
	if p == nil || p.current == nil {
		return st
	}
	return o.status(ctx, p, st)
}

func (o *Mechanism) status(ctx context.Context, p *otrPeer, st Status) Status {
	conv := p.current
	st.Instances = len(p.byTag)
	st.Version = conv.ProtocolVersion()
	st.TheirInstance = conv.TheirInstanceTag()
	st.SMP = conv.SMPInProgress()
	fpr, verified, trustName := o.peerKey(ctx, p, conv)
	st.Fingerprint, st.Trust = fpr, trustName
	if conv.TheirKey() != nil {
		ssid := conv.SSID()
		st.SSID = hex.EncodeToString(ssid[:])
	}
	switch conv.State() {
	case engine.Encrypted:
		st.State = StatePrivateUnverified
		if verified {
			st.State = StatePrivateVerified
		}
	case engine.Finished:
		st.State = StateFinished
	}
	return st
}

// Sessions returns the state of every conversation, ordered by JID.
func (o *Mechanism) Sessions(ctx context.Context) []Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Status
	for k, p := range o.peers {
		if p.current == nil {
			continue
		}
		out = append(out, o.status(ctx, p, Status{Peer: p.jid, OurInstance: o.cfg.InstanceTag, Known: o.known[k]}))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.String() < out[j].Peer.String() })
	return out
}

// endPeer forgets a peer's conversations without sending anything (the
// peer or we are gone) and reports whether one was not in plaintext.
// Callers hold o.mu.
func (o *Mechanism) endPeer(p *otrPeer) bool {
	active := false
	for _, c := range p.convs() {
		if c.State() != engine.Plaintext {
			active = true
		}
		_, _ = c.End()
	}
	delete(o.peers, p.jid.String())
	return active
}

// Presence implements PresenceObserver: when a resource goes offline its
// OTR sessions end (XEP-0364 §5.1).
func (o *Mechanism) Presence(_ context.Context, ev *client.PresenceEvent) []*client.SecurityEvent {
	if ev.Available {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*client.SecurityEvent
	for _, p := range o.peersOf(ev.From) {
		if o.endPeer(p) {
			events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
				Message: eme.Msg(eme.MsgOTRPeerOffline, p.jid.String())})
		}
	}
	return events
}

// peersOf returns the peers j stands for: itself, or every resource of a
// bare JID. Callers hold o.mu.
func (o *Mechanism) peersOf(j jid.JID) []*otrPeer {
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
func (o *Mechanism) MessageError(ev *client.ErrorEvent) []*client.SecurityEvent {
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
	return []*client.SecurityEvent{{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
		Message: eme.Msg(eme.MsgOTRPeerUnavailable, p.jid.String(), client.DefinedCondition(ev.Condition))}}
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
func (o *Mechanism) StreamEnded() []*client.SecurityEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	var events []*client.SecurityEvent
	ps := make([]*otrPeer, 0, len(o.peers))
	for _, p := range o.peers {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, k int) bool { return ps[i].jid.String() < ps[k].jid.String() })
	for _, p := range ps {
		if o.endPeer(p) {
			events = append(events, &client.SecurityEvent{Peer: p.jid, Mechanism: eme.OTR, Kind: KindFinished,
				Message: eme.Msg(eme.MsgOTRConnectionLost, p.jid.String())})
		}
	}
	o.stopHeartbeatLocked()
	return events
}

// Shutdown implements Shutdowner. The client calls it after closing the
// stream and the TCP connection (XEP-0364 §5.2): every conversation is
// forgotten, nothing is sent. The mechanism stays usable and starts over.
func (o *Mechanism) Shutdown() {
	o.mu.Lock()
	for _, p := range o.peers {
		o.endPeer(p)
	}
	o.stopHeartbeatLocked()
	o.mu.Unlock()
}

// startHeartbeat starts the heartbeat goroutine if it is not running.
// Callers hold o.mu.
func (o *Mechanism) startHeartbeat() {
	if o.hbStop != nil || (o.h == nil && o.sendFn == nil) {
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
func (o *Mechanism) stopHeartbeatLocked() {
	if o.hbStop != nil {
		close(o.hbStop)
		o.hbStop, o.hbDone = nil, nil
	}
}

// heartbeat sends the heartbeats that are due, so that peers can rotate
// keys after a silence.
func (o *Mechanism) heartbeat() {
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

// FingerprintURI returns the xmpp: URI that shares an account's OTR
// fingerprint out of band (XEP-0364 §6), e.g.
// "xmpp:alice@example.org?otr-fingerprint=AEA4D5...".
func FingerprintURI(account jid.JID, f engine.Fingerprint) string {
	return "xmpp:" + uriEscape(account.Bare().String()) + "?otr-fingerprint=" + strings.ToUpper(f.Hex())
}

// ParseFingerprintURI parses an xmpp: URI with an otr-fingerprint
// query component and returns the bare JID and the fingerprint.
func ParseFingerprintURI(uri string) (jid.JID, engine.Fingerprint, error) {
	rest, ok := strings.CutPrefix(uri, "xmpp:")
	if !ok {
		return jid.JID{}, engine.Fingerprint{}, errors.New("client: not an xmpp: URI")
	}
	rest = strings.TrimPrefix(rest, "//")
	path, query, _ := strings.Cut(rest, "?")
	path, _, _ = strings.Cut(path, "#")
	js, err := uriUnescape(path)
	if err != nil {
		return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	j, err := jid.Parse(js)
	if err != nil {
		return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
	}
	query, _, _ = strings.Cut(query, "#")
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == ';' || r == '&' }) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "otr-fingerprint" {
			continue
		}
		f, err := engine.ParseFingerprint(v)
		if err != nil {
			return jid.JID{}, engine.Fingerprint{}, fmt.Errorf("client: xmpp: URI: %w", err)
		}
		return j.Bare(), f, nil
	}
	return jid.JID{}, engine.Fingerprint{}, errors.New("client: the xmpp: URI has no otr-fingerprint")
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

// Kinds of the OTR mechanism's security events.
const (
	// KindPrivate: an AKE completed; the peer's fingerprint is not
	// verified (Hint: verify).
	KindPrivate client.SecurityKind = "otr-private"
	// KindVerified: an AKE completed with a verified fingerprint.
	KindVerified client.SecurityKind = "otr-verified"
	// KindFingerprintChanged: the contact uses a key not seen before.
	KindFingerprintChanged client.SecurityKind = "otr-fingerprint-changed"
	// KindFinished: the conversation ended (the peer ended it, went
	// offline or bounced, or our stream ended).
	KindFinished client.SecurityKind = "otr-finished"
	// KindSMPRequest and KindSMPQuestion: the peer started a verification
	// (Hint: answer with AnswerSMP).
	KindSMPRequest  client.SecurityKind = "otr-smp-request"
	KindSMPQuestion client.SecurityKind = "otr-smp-question"
	// KindSMPSucceeded, KindSMPFailed, KindSMPAborted: the verification's
	// outcome.
	KindSMPSucceeded client.SecurityKind = "otr-smp-succeeded"
	KindSMPFailed    client.SecurityKind = "otr-smp-failed"
	KindSMPAborted   client.SecurityKind = "otr-smp-aborted"
	// KindError: the peer's OTR error message, or an invalid key exchange
	// message from it.
	KindError client.SecurityKind = "otr-error"
	// KindAvailable: the contact's client offers OTR (a whitespace tag);
	// Hint: start a session.
	KindAvailable client.SecurityKind = "otr-available"
	// KindUnsupported: the contact asked for an OTR version Balcony does
	// not speak.
	KindUnsupported client.SecurityKind = "otr-unsupported"
)
