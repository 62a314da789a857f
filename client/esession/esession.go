package esession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/esession"
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
// value keeps no retained secrets, asks the user about every request and
// offers MODP group 14.
type Config struct {
	// Secrets keeps the retained secrets of XEP-0217 §5.3.3 between
	// sessions; it should encrypt them at rest. Nil keeps none: every
	// session then needs its SAS compared to be verified, and later
	// sessions cannot detect a changed peer.
	Secrets engine.RetainedSecrets
	// SecretLifetime is how long a retained secret stays usable; zero
	// means esession.DefaultSecretLifetime, a negative value no expiry.
	SecretLifetime time.Duration
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
	// acknowledgement) or "ended".
	State     string
	Initiator bool
	Encrypted bool
	// SAS is the short authentication string, once known.
	SAS string
	// Verified is true when the user confirmed the SAS in this session or
	// the session continues a chain of sessions whose SAS was confirmed.
	Verified bool
	// SecretMatched reports that a secret retained from an earlier
	// session was shared; ContinuityBroken that secrets existed but none
	// matched.
	SecretMatched, ContinuityBroken bool
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
	m    *engine.Manager
	now  func() time.Time

	mu      sync.Mutex
	extra   map[*engine.Session]*sessionExtra
	sent    map[string]sessionRef // stanza id -> session, for error stanzas
	sentIDs []string              // FIFO of the keys of sent
	changed chan struct{}         // closed and replaced on every change
}

type sessionRef struct{ peer, thread string }

// sessionExtra is what ESession remembers about a session besides the
// engine's state.
type sessionExtra struct {
	asking           bool // a request waits for the user
	ending           bool // we sent terminate
	secretMatched    bool
	continuityBroken bool
}

// maxSentIDs bounds the stanza ids remembered to route error stanzas.
const maxSentIDs = 4096

var (
	_ client.Mechanism        = (*Mechanism)(nil)
	_ client.Attacher         = (*Mechanism)(nil)
	_ client.Interceptor      = (*Mechanism)(nil)
	_ client.PresenceObserver = (*Mechanism)(nil)
	_ client.StreamObserver   = (*Mechanism)(nil)
	_ client.ErrorObserver    = (*Mechanism)(nil)
	_ client.Shutdowner       = (*Mechanism)(nil)
	_ client.Availability     = (*Mechanism)(nil)
)

// New returns the Encrypted Sessions mechanism; plug it into a client
// with Client.Register, before Connect so that the first presence carries
// its features (engine.FeatureESession and engine.FormTypeSSN).
func New(cfg Config) (*Mechanism, error) {
	e := &Mechanism{extra: map[*engine.Session]*sessionExtra{},
		sent: map[string]sessionRef{}, changed: make(chan struct{}), now: cfg.Now}
	m, err := engine.NewManager(&engine.Config{
		Rand:           cfg.Rand,
		Now:            e.clock,
		Secrets:        cfg.Secrets,
		SecretLifetime: cfg.SecretLifetime,
		Groups:         cfg.Groups,
		AutoAccept:     cfg.AcceptPolicy == AcceptSubscribed,
		OnUnavailable:  cfg.OnUnavailable,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	e.m = m
	return e, nil
}

// Attach implements client.Attacher.
func (e *Mechanism) Attach(h client.Host) error {
	e.mu.Lock()
	e.h = h
	e.mu.Unlock()
	h.AddFeature(engine.FeatureESession, engine.FormTypeSSN)
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
// unauthenticated and discarded by the receiver), for no carbon copies or
// archiving (copies can never be decrypted) and for no storage for later
// delivery (a stored stanza would arrive after its session is gone).
func (e *Mechanism) Needs() client.Needs {
	return client.Needs{Hints: esessionHints, Private: true}
}

// esessionHints are the XEP-0334 hints of every session stanza.
var esessionHints = []string{"no-copy", "no-permanent-store", "no-store"}

// Usable reports whether an established Encrypted Session with the contact
// (with its resource, if to has one) can protect a message now.
func (e *Mechanism) Usable(ctx context.Context, to jid.JID) bool {
	_, err := e.sessionFor(to, "")
	return err == nil
}
