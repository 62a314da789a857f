package esession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// AcceptPolicy says how session requests from contacts are
// answered.
type AcceptPolicy int

const (
	// AskUser leaves every request waiting for ESession.Accept or
	// ESession.Decline. Nothing is sent until the user decides, so an
	// unanswered request reveals nothing (XEP-0155 §4.3).
	AskUser AcceptPolicy = iota
	// AcceptSubscribed accepts requests from contacts that have a presence
	// subscription to the user (roster subscription "from" or "both")
	// without asking, unless the request was stored for later delivery.
	// Requests from anyone else still wait for the user: answering would
	// tell them that the user is online (XEP-0155 §10.1).
	AcceptSubscribed
)

// Config configures the Encrypted Sessions mechanism. The zero
// value keeps no retained secrets and no public keys, asks the user about
// every request, offers MODP group 14, allows logging, offers to share
// presence, never re-keys and ticks every DefaultTickInterval.
type Config struct {
	// Secrets keeps the retained secrets of XEP-0217 §5.3.3 between
	// sessions; it should encrypt them at rest. Nil keeps none: every
	// session then needs its SAS compared to be verified, and later
	// sessions cannot detect a changed peer.
	Secrets engine.RetainedSecrets
	// SecretLifetime is how long a retained secret stays usable; zero
	// means esession.DefaultSecretLifetime, a negative value no expiry.
	SecretLifetime time.Duration
	// Store holds this account's signing key (XEP-0116 public-key
	// identity) and the contacts' public keys with the user's trust
	// decisions (XEP-0116 §10.4 key associations), in the trust store the
	// other mechanisms share. Nil: no public keys are used or accepted.
	Store Store
	// Key is this account's signing key; nil means the active
	// trust.ESession key of Store, if any (GenerateKey makes one).
	Key *engine.PrivateKey
	// Offline keeps the secrets of XEP-0187 offline session options
	// (PublishOffline), encrypted at rest. Nil: offline sessions are
	// neither published nor read.
	Offline OfflineStore
	// OfflineLifetime is how long the offline options published when the
	// client goes offline stay usable (Closing publishes them when it is
	// set, and Store holds a key); zero publishes none.
	OfflineLifetime time.Duration
	// Logging is the user's XEP-0136 preference for sessions:
	// engine.LoggingMay (the default: offered first, and mustnot accepted
	// when a contact asks for it) or engine.LoggingMustNot (offered alone,
	// and required). In a session agreed as mustnot nothing is stored:
	// every stanza carries no-store hints and the server's archiving
	// preferences are checked (and the contact added to "never") where
	// the server offers XEP-0313.
	Logging string
	// NoPresenceSharing stops offering and accepting temporary presence
	// sharing (XEP-0155 "presence" field); directed presence is sent to a
	// session's peer only when it was agreed.
	NoPresenceSharing bool
	// Stanzas are the stanza kinds besides messages offered and accepted
	// for encryption: engine.StanzaPresence and engine.StanzaIQ
	// (XEP-0200 §4); see SendPresence and IQ.
	Stanzas []string
	// RekeyFreq is the rekey_freq asked for (XEP-0200 §9): the fewest
	// stanzas between two key exchanges, after which a session re-keys by
	// itself; zero never re-keys by count. Rekey re-keys on demand.
	RekeyFreq uint32
	// RekeyGrace is how long older receiving keys are kept after a key
	// exchange (engine default when zero).
	RekeyGrace time.Duration
	// IdleTimeout is how long a session may stay silent before it re-keys
	// (or, when it cannot, ends); zero is the engine's default, negative
	// never.
	IdleTimeout time.Duration
	// TickInterval is how often the mechanism lets sessions act on time
	// (expiring old keys, re-keying idle sessions); zero means
	// DefaultTickInterval, negative no timer (call Tick).
	TickInterval time.Duration
	// AcceptPolicy says which requests are accepted without asking.
	AcceptPolicy AcceptPolicy
	// OnUnavailable says what happens to a session when the peer's
	// resource goes offline (XEP-0155 §9.4); the default keeps it, as the
	// XEP recommends, and tells the user.
	OnUnavailable engine.UnavailablePolicy
	// Groups are the MODP groups offered and accepted (14 to 18; default
	// {14}).
	Groups []int
	// Now is the clock; nil means the client's clock.
	Now func() time.Time
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
}

// DefaultTickInterval is how often sessions act on time by default.
const DefaultTickInterval = 10 * time.Second

// Errors of the Encrypted Sessions mechanism that callers branch on.
var (
	// ErrNoSession reports that there is no Encrypted Session with the
	// contact in the state the operation needs.
	ErrNoSession = errors.New("client: no Encrypted Session")
	// ErrSASMismatch reports that no established session has the short
	// authentication string the user confirmed: it was mistyped, or the
	// session it belonged to was replaced by a newer one.
	ErrSASMismatch = errors.New("client: SAS does not match")
	// ErrExists reports a Start while an established session with
	// the contact is active.
	ErrExists = errors.New("client: an Encrypted Session with this contact is already active")
	// ErrAmbiguousResource reports a Start to a bare JID with several
	// resources online that support Encrypted Sessions: a session binds
	// to one resource, so the caller must choose.
	ErrAmbiguousResource = errors.New("client: the contact has several resources online; choose one")
)

// Info describes one session for status displays.
type Info struct {
	// Peer is the contact's full JID once the session is bound to the
	// resource that answered, else the address the request went to.
	Peer   string
	Thread string
	// State is "requested" (our request, no answer yet), "asking" (the
	// contact's request waits for Accept or Decline), "negotiating",
	// "active", "ending" (our terminate sent, waiting for the
	// acknowledgement), "moved" (the contact accepted that another of our
	// resources continues it: Handover exports it) or "ended".
	State     string
	Initiator bool
	Encrypted bool
	// SAS is the short authentication string, once known ("" in the
	// 3-message SIGMA-I exchange, which has none).
	SAS string
	// Verified is true when the user confirmed the SAS in this session,
	// the session continues a chain of sessions whose SAS was confirmed,
	// or the contact signed with a public key the user verified.
	Verified bool
	// SecretMatched reports that a secret retained from an earlier
	// session was shared; ContinuityBroken that secrets existed but none
	// matched.
	SecretMatched, ContinuityBroken bool
	// PeerKey is the fingerprint (base64 SHA-256 of the normalised
	// <KeyValue/>) of the public key the contact identified with, if any.
	PeerKey string
	// ThreeMessage marks the SIGMA-I exchange (XEP-0116 §4.2); Password
	// that a password shared with the contact went into the key (XEP-0116
	// "other secret"); Offline an XEP-0187 offline session.
	ThreeMessage, Password, Offline bool
	// Logging is the agreed XEP-0155 "logging" value: "may", or
	// "mustnot" when nothing of the session may be stored.
	Logging string
	// SharePresence reports that directed presence was agreed (XEP-0155
	// "presence"); Stanzas are the stanza kinds encrypted.
	SharePresence bool
	Stanzas       []string
	// RekeyFreq is the agreed rekey_freq (4294967295: never by count).
	RekeyFreq uint32
	// EndReason says why the session ended.
	EndReason string
}

// ESession is the Encrypted Sessions mechanism (XEP-0218 family) for the
// message pipeline; the package documentation's section "Encrypted
// Sessions" describes how it works.
//
// A session is negotiated per conversation: every stanza of a session
// carries the XEP-0201 ThreadID Start chose, and a stanza with an unknown
// ThreadID, or none, never belongs to a session.
//
// Client.Close terminates every session while the stream still works, so
// that contacts learn that the sessions ended (XEP-0217 §6): it runs the
// mechanism's Closing hook before the unavailable presence.
//
// Sends may be concurrent: the pipeline seals and writes each message, and
// every protocol message of a session, under one lock, so they reach the
// server in the order their counters were used.
//
// ESession is safe for concurrent use.
type Mechanism struct {
	h    client.Host // set by Attach
	wire client.Wire // the send lock, while held (lockSend)
	mgr  atomic.Pointer[engine.Manager]
	now  func() time.Time
	cfg  Config

	passwords *passwords      // XEP-0116 other shared secrets, until used
	threads   *engine.Threads // XEP-0201 threads of plain chats
	stop      chan struct{}   // closed by Shutdown: ends the timer

	mu       sync.Mutex
	key      *engine.PrivateKey // this account's signing key, or nil
	extra    map[*engine.Session]*sessionExtra
	sent     map[string]sessionRef // stanza id -> session, for error stanzas
	sentIDs  []string              // FIFO of the keys of sent
	changed  chan struct{}         // closed and replaced on every change
	iqs      map[string]chan iqAnswer
	archived map[string]bool // peers added to the archive's "never" list
	stopped  bool
}

type sessionRef struct{ peer, thread string }

// sessionExtra is what ESession remembers about a session besides the
// engine's state.
type sessionExtra struct {
	asking           bool // a request waits for the user
	ending           bool // we sent terminate
	moved            bool // the contact accepted our Continue: Handover
	secretMatched    bool
	continuityBroken bool
	password         bool
}

// maxSentIDs bounds the stanza ids remembered to route error stanzas.
const maxSentIDs = 4096

var (
	_ client.Mechanism         = (*Mechanism)(nil)
	_ client.Attacher          = (*Mechanism)(nil)
	_ client.Interceptor       = (*Mechanism)(nil)
	_ client.PresenceObserver  = (*Mechanism)(nil)
	_ client.StreamObserver    = (*Mechanism)(nil)
	_ client.ErrorObserver     = (*Mechanism)(nil)
	_ client.Shutdowner        = (*Mechanism)(nil)
	_ client.Availability      = (*Mechanism)(nil)
	_ client.PlaintextObserver = (*Mechanism)(nil)
	_ client.StanzaOpener      = (*Mechanism)(nil)
)

// New returns the Encrypted Sessions mechanism; plug it into a client
// with Client.Register, before Connect so that the first presence carries
// its features (engine.FeatureESession and engine.FormTypeSSN). With a
// Store, the account's active signing key is read from it.
func New(cfg Config) (*Mechanism, error) {
	switch cfg.Logging {
	case "", engine.LoggingMay, engine.LoggingMustNot:
	default:
		return nil, fmt.Errorf("client: unknown logging preference %q (want may or mustnot)", cfg.Logging)
	}
	e := &Mechanism{extra: map[*engine.Session]*sessionExtra{}, sent: map[string]sessionRef{},
		changed: make(chan struct{}), now: cfg.Now, cfg: cfg, passwords: &passwords{},
		threads: engine.NewThreads(cfg.Rand, 4096), stop: make(chan struct{}),
		iqs: map[string]chan iqAnswer{}, archived: map[string]bool{}}
	key := cfg.Key
	if key == nil && cfg.Store != nil {
		var err error
		if key, err = e.loadKey(context.Background()); err != nil {
			return nil, err
		}
	}
	m, err := e.newManager(key)
	if err != nil {
		return nil, err
	}
	e.key = key
	e.mgr.Store(m)
	return e, nil
}

// newManager returns an engine for the configuration with key.
func (e *Mechanism) newManager(key *engine.PrivateKey) (*engine.Manager, error) {
	cfg := e.cfg
	ec := &engine.Config{
		Rand:           cfg.Rand,
		Now:            e.clock,
		Secrets:        cfg.Secrets,
		SecretLifetime: cfg.SecretLifetime,
		Groups:         cfg.Groups,
		AutoAccept:     cfg.AcceptPolicy == AcceptSubscribed,
		OnUnavailable:  cfg.OnUnavailable,
		OTR:            otrMode(cfg.Logging),
		SharePresence:  !cfg.NoPresenceSharing,
		Stanzas:        cfg.Stanzas,
		RekeyFreq:      cfg.RekeyFreq,
		RekeyGrace:     cfg.RekeyGrace,
		IdleTimeout:    cfg.IdleTimeout,
		OtherSecrets:   e.passwords,
		Key:            key,
	}
	if cfg.Store != nil {
		ec.Keys = keyAssociations{st: cfg.Store}
	}
	if cfg.Offline != nil && key != nil {
		ec.Offline = offlineAdapter{st: cfg.Offline}
	}
	m, err := engine.NewManager(ec)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return m, nil
}

// m returns the engine.
func (e *Mechanism) m() *engine.Manager { return e.mgr.Load() }

// Attach implements client.Attacher: it advertises the features and
// starts the timer that lets sessions act on time (re-keying, expiry of
// old keys).
func (e *Mechanism) Attach(h client.Host) error {
	e.mu.Lock()
	e.h = h
	e.mu.Unlock()
	h.AddFeature(engine.FeatureESession, engine.FormTypeSSN)
	if e.cfg.Store != nil {
		h.HandlePEP(engine.NSPubKey, e.pepKey)
	}
	if iv := e.tickInterval(); iv > 0 {
		go e.ticker(iv)
	}
	return nil
}

// clock is Config.Now, or the host's clock.
func (e *Mechanism) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	if e.h != nil {
		return e.h.Now()
	}
	return time.Now()
}

// log is the host's logger (a discarding one before Attach).
func (e *Mechanism) log() *slog.Logger {
	if e.h != nil {
		return e.h.Logger()
	}
	return slog.New(slog.DiscardHandler)
}

// Namespace returns engine.NSStanzaEncryption.
func (e *Mechanism) Namespace() string { return engine.NSStanzaEncryption }

// Needs asks for no fallback body (anything outside <c/> is
// unauthenticated and discarded by the receiver) and for no carbon copies
// (copies can never be decrypted). The no-permanent-store and no-store
// hints (no archive, no storage for later delivery: a stored stanza would
// arrive after its session is gone) are added to the stanzas of every
// session but XEP-0187 offline sessions, whose stanzas must wait for the
// contact in offline storage, which some servers (ejabberd) refuse to
// stanzas with either hint.
func (e *Mechanism) Needs() client.Needs {
	return client.Needs{Hints: []string{hintNoCopy}, Private: true}
}

// XEP-0334 hints of session stanzas.
const (
	hintNoCopy           = "no-copy"
	hintNoPermanentStore = "no-permanent-store"
	hintNoStore          = "no-store"
)

// sessionHints sets the storage hints of a message of a session: none for
// an offline session (the engine's no-permanent-store is taken out), else
// no-permanent-store and no-store.
func sessionHints(st *xmltree.Element, offline bool) {
	if st.Name.Local != "message" {
		return
	}
	if st.Child(client.NSHints, hintNoCopy) == nil {
		st.Append(xmltree.New(client.NSHints, hintNoCopy))
	}
	if offline {
		st.RemoveChildren(func(c *xmltree.Element) bool {
			return c.Name.Space == client.NSHints && (c.Name.Local == hintNoPermanentStore || c.Name.Local == hintNoStore)
		})
		return
	}
	for _, h := range []string{hintNoPermanentStore, hintNoStore} {
		if st.Child(client.NSHints, h) == nil {
			st.Append(xmltree.New(client.NSHints, h))
		}
	}
}

// Usable reports whether an established Encrypted Session with the contact
// (with its resource, if to has one) can protect a message now.
func (e *Mechanism) Usable(ctx context.Context, to jid.JID) bool {
	_, err := e.sessionFor(to, "")
	return err == nil
}
