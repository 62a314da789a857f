package otr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
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
	shut     bool // Shutdown ran: no heartbeat starts again
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
	return client.Needs{Hints: []string{"no-copy", "no-permanent-store"}, Private: true, AnswerUnreadable: true}
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

// Usable implements Availability: a message to "to" can be sealed now,
// because to is a full JID with an encrypted conversation.
func (o *Mechanism) Usable(_ context.Context, to jid.JID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.peers[to.String()]
	return to.Resourcepart() != "" && p != nil && p.current != nil && p.current.State() == engine.Encrypted
}
