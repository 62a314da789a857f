package esession

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
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

// SecurityEvent kinds of the Encrypted Sessions mechanism.
const (
	KindRequest          client.SecurityKind = "esession-request"           // a contact asks for a session: Accept or Decline
	KindEstablished      client.SecurityKind = "esession-established"       // negotiated; Fingerprint holds the SAS
	KindVerified         client.SecurityKind = "esession-verified"          // the session is authenticated (SAS confirmed, or a verified chain continues)
	KindContinuityBroken client.SecurityKind = "esession-continuity-broken" // retained secrets existed but none matched
	KindDeclined         client.SecurityKind = "esession-declined"          // the contact declined
	KindFailed           client.SecurityKind = "esession-failed"            // the contact or its server answered with an error
	KindTerminated       client.SecurityKind = "esession-terminated"        // the session is over, for whatever reason
	KindPeerOffline      client.SecurityKind = "esession-peer-offline"      // the peer's resource went offline; the session is kept
	KindIgnored          client.SecurityKind = "esession-ignored"           // a session stanza was refused without changing any session
	KindCopy             client.SecurityKind = "esession-copy"              // a copy of a session stanza made for another device
	KindSecretNotStored  client.SecurityKind = "esession-secret-not-stored" // the new retained secret could not be stored
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

// Seal encrypts out for the contact's current established session (or the
// session of out.Thread) and returns the stanza, addressed to the resource
// the session is bound to.
func (e *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	s, err := e.sessionFor(out.To, out.Thread)
	if err != nil {
		return client.Sealed{}, err
	}
	var content []*xmltree.Element
	if out.Body != "" {
		content = append(content, xmltree.New(client.NSClient, "body").AppendText(out.Body))
	}
	content = append(content, out.Payload...)
	o, err := s.Seal(content...)
	if err != nil {
		if errors.Is(err, engine.ErrKeyExhausted) {
			e.terminateLocked(ctx, s) // the pipeline holds its send lock
		}
		return client.Sealed{}, fmt.Errorf("client: Encrypted Session with %s: %w", s.Peer(), err)
	}
	st, err := e.stanza(o)
	if err != nil {
		return client.Sealed{}, err
	}
	id := out.ID
	if id == "" {
		id = client.NewID()
	}
	st.SetAttr("id", id)
	e.remember(id, s)
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// Usable reports whether an established Encrypted Session with the contact
// (with its resource, if to has one) can protect a message now.
func (e *Mechanism) Usable(ctx context.Context, to jid.JID) bool {
	_, err := e.sessionFor(to, "")
	return err == nil
}

// sessionFor finds the established session to send to: the one on thread,
// or the newest with the contact (with its resource, if to has one).
func (e *Mechanism) sessionFor(to jid.JID, thread string) (*engine.Session, error) {
	if thread != "" {
		s := e.m.Session(to.Bare().String(), thread)
		if s == nil || s.State() != engine.StateActive || !s.Encrypted() || e.isEnding(s) {
			return nil, fmt.Errorf("%w with %s on thread %s", ErrNoSession, to, thread)
		}
		if to.Resourcepart() != "" && s.Peer() != to.String() {
			return nil, fmt.Errorf("client: the Encrypted Session on thread %s is with %s, not %s", thread, s.Peer(), to)
		}
		return s, nil
	}
	var pending, ended *engine.Session
	for _, s := range e.newestFirst(to) {
		if !s.Encrypted() {
			continue
		}
		switch {
		case e.isEnding(s):
			if ended == nil {
				ended = s
			}
		case s.State() == engine.StateActive:
			return s, nil
		case s.State() == engine.StatePending:
			if pending == nil {
				pending = s
			}
		case ended == nil:
			ended = s
		}
	}
	switch {
	case pending != nil:
		return nil, fmt.Errorf("%w with %s yet: the session is still being negotiated", ErrNoSession, to)
	case ended != nil:
		reason, _ := ended.EndReason()
		if reason == "" {
			reason = "you ended it"
		}
		return nil, fmt.Errorf("%w with %s: the last one has ended (%s)", ErrNoSession, to, reason)
	}
	return nil, fmt.Errorf("%w with %s", ErrNoSession, to)
}

// newestFirst returns the sessions with the contact (and its resource, if
// the JID has one), newest first.
func (e *Mechanism) newestFirst(peer jid.JID) []*engine.Session {
	all := e.m.Sessions()
	bare := peer.Bare().String()
	full := ""
	if peer.Resourcepart() != "" {
		full = peer.String()
	}
	var out []*engine.Session
	for i := len(all) - 1; i >= 0; i-- {
		s := all[i]
		if s.PeerBare() != bare || full != "" && s.Peer() != full {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Open decrypts a received XEP-0200 <c/>.
func (e *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	if in.Origin.Copy() {
		return nil, &client.OpenError{Reason: eme.ReasonNoSession, Notes: []eme.Message{copyNote(in.Origin)}}
	}
	res, err := e.receive(ctx, in)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	op := e.convert(in, res)
	for _, ev := range res.Events {
		switch ev := ev.(type) {
		case engine.Terminated:
			if ev.Err != nil && !op.hasMessage {
				// The events say what happened to the session; the
				// message itself becomes the notice.
				e.emitAll(in.From, op.Events)
				return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed,
					Notes: []eme.Message{eme.Msg(eme.MsgESEnded, ev.Session.Peer())}}
			}
		case engine.Rejected:
			if !op.hasMessage {
				// The notice says it; no KindIgnored event besides.
				var rest []*client.SecurityEvent
				for _, x := range op.Events {
					if x.Kind != KindIgnored {
						rest = append(rest, x)
					}
				}
				e.emitAll(in.From, rest)
				return nil, &client.OpenError{Reason: eme.ReasonNoSession, Detail: ev.Reason}
			}
		}
	}
	if !op.hasMessage {
		op.Silent = true
	}
	return &op.Opened, nil
}

// Intercept reads XEP-0155 negotiation stanzas and plaintext sent on the
// thread of an encrypted session.
func (e *Mechanism) Intercept(ctx context.Context, in *client.Incoming) (*client.Opened, bool) {
	st := in.Stanza
	switch st.AttrValue("type") {
	case "groupchat", "headline", "error":
		return nil, false
	}
	neg := st.Child(engine.NSFeatureNeg, "feature") != nil || st.Child(engine.NSInit, "init") != nil
	if !neg {
		thread := st.ChildText(client.NSClient, "thread")
		if thread == "" || in.Origin.Copy() || e.m.Session(in.From.String(), thread) == nil {
			return nil, false
		}
	}
	if in.Origin.Copy() {
		if in.Origin.Archived {
			return &client.Opened{Silent: true}, true
		}
		return &client.Opened{Silent: true, Events: []*client.SecurityEvent{{
			Peer: in.From, Mechanism: e.Namespace(), Kind: KindCopy,
			Message: eme.Msg(eme.MsgESCopyIgnored),
		}}}, true
	}
	res, err := e.receive(ctx, in)
	if err != nil {
		return &client.Opened{Silent: true, Events: []*client.SecurityEvent{{
			Peer: in.From, Mechanism: e.Namespace(), Kind: KindIgnored,
			Message: eme.Msg(eme.MsgESMalformed, in.From.String(), err.Error()),
		}}}, true
	}
	if res.Unhandled {
		return nil, false
	}
	op := e.convert(in, res)
	if op.unencrypted != nil {
		op.Body, _, op.Payload = client.SplitContent(st.Elements())
		op.Security = client.Security{Warnings: []client.Warning{client.Warn(eme.MsgESClearOnThread, op.unencrypted.Session.Peer())}}
		return &op.Opened, true
	}
	if !op.hasMessage {
		if body, ok, _ := client.SplitContent(st.Elements()); ok && body != "" {
			// Never lose a body, even one riding on a negotiation stanza.
			op.Body, op.Payload = body, nil
			op.Security = client.Security{Warnings: []client.Warning{client.Warn(eme.MsgESClearWithNegotiation)}}
		} else {
			op.Silent = true
		}
	}
	return &op.Opened, true
}

// receive hands a live stanza to the engine and sends what it answers.
func (e *Mechanism) receive(ctx context.Context, in *client.Incoming) (engine.Result, error) {
	inb, err := engine.ParseMessage(in.Stanza)
	if err != nil {
		return engine.Result{}, err
	}
	inb.From = in.From.String()
	inb.Subscribed = e.h.Subscribed(in.From)
	inb.Delayed = inb.Delayed || in.Origin.Delayed
	unlock := e.lockSend()
	res, _ := e.m.Receive(inb) // errors come with events
	e.send(ctx, res.Out)
	unlock()
	e.track(res.Events)
	for _, ev := range res.Events {
		if est, ok := ev.(engine.Established); ok {
			e.directedPresence(ctx, est.Session.Peer())
		}
	}
	e.notify()
	return res, nil
}

// directedPresence sends available presence to the resource a session is
// bound to, unless the client sends no presence at all. The server then
// tells that resource when we go offline (RFC 6121 §4.6.3), even without
// a presence subscription, so that its session ends even if our terminate
// never left. The contact learns nothing new: it is in a session with us.
func (e *Mechanism) directedPresence(ctx context.Context, peer string) {
	if e.h == nil || !strings.Contains(peer, "/") {
		return
	}
	to, err := jid.Parse(peer)
	if err != nil {
		return
	}
	if e.wire != nil {
		err = e.wire.Send(ctx, to, xmltree.New(client.NSClient, "presence", "to", to.String()))
	} else {
		err = e.h.SendPresence(ctx, to)
	}
	if err != nil {
		e.log().Warn("sending directed presence failed", "to", peer, "err", err)
	}
}

// converted is an Opened being built from engine events.
type converted struct {
	client.Opened
	hasMessage  bool
	unencrypted *engine.Unencrypted
}

// convert turns engine events into the message and security events.
func (e *Mechanism) convert(in *client.Incoming, res engine.Result) converted {
	var op converted
	for _, ev := range res.Events {
		if m, ok := ev.(engine.Message); ok && !op.hasMessage {
			op.hasMessage = true
			op.Body, op.Payload = messageContent(m.Content)
			op.Security = e.security(m.Session)
			for _, n := range m.Stripped {
				if n == "request" && in.Stanza.Child(client.NSReceipts, "request") != nil {
					continue // the pipeline's receipt request rides outside <c/>
				}
				op.Security.Warnings = append(op.Security.Warnings, client.Warn(eme.MsgESStripped, n))
			}
			continue
		}
		if u, ok := ev.(engine.Unencrypted); ok {
			op.unencrypted = &u
			continue
		}
		op.Events = append(op.Events, e.securityEvents(ev)...)
	}
	return op
}

// security is the Security of a message received in s.
func (e *Mechanism) security(s *engine.Session) client.Security {
	// Stanzas of an established session are authenticated by its MAC keys.
	return client.Security{Mechanism: e.Namespace(), Name: eme.DisplayName(e.Namespace(), ""),
		Verified: s.Verified(), Authenticated: true, Fingerprint: s.SAS()}
}

// messageContent splits decrypted stanza content into the body and the
// other children.
func messageContent(content []*xmltree.Element) (string, []*xmltree.Element) {
	body, _, payload := client.SplitContent(content)
	return body, payload
}

// securityEvents turns one engine event into the user's security events.
func (e *Mechanism) securityEvents(ev engine.Event) []*client.SecurityEvent {
	ns := e.Namespace()
	mk := func(s *engine.Session, kind client.SecurityKind, msg eme.Message, notes ...eme.Message) *client.SecurityEvent {
		p, _ := jid.Parse(s.Peer())
		return &client.SecurityEvent{Peer: p, Mechanism: ns, Kind: kind, Message: msg, Notes: notes}
	}
	switch ev := ev.(type) {
	case engine.PeerWentOffline:
		if ev.Terminated {
			return nil // the Terminated event that follows tells
		}
		return []*client.SecurityEvent{mk(ev.Session, KindPeerOffline, eme.Msg(eme.MsgESPeerOffline, ev.Session.Peer()))}
	case engine.RequestReceived:
		s := ev.Session
		id := eme.MsgESRequest
		if !ev.Offer.Encrypted {
			id = eme.MsgESRequestClear
		}
		var notes []eme.Message
		if !ev.Subscribed {
			notes = append(notes, eme.Msg(eme.MsgESRequestUnsubscribed))
		}
		if ev.Delayed {
			notes = append(notes, eme.Msg(eme.MsgESRequestDelayed))
		}
		if ev.Offer.Problem != nil {
			notes = append(notes, eme.Msg(eme.MsgESRequestProblem, ev.Offer.Problem.Error()))
		}
		req := mk(s, KindRequest, eme.Msg(id, s.Peer()), notes...)
		req.Hint = eme.Hint{Action: eme.ActionAccept, Mechanism: ns, Peer: s.Peer()}
		return []*client.SecurityEvent{req}
	case engine.Established:
		s := ev.Session
		if !ev.Encrypted {
			return []*client.SecurityEvent{mk(s, KindEstablished, eme.Msg(eme.MsgESEstablishedClear, s.Peer()))}
		}
		var out []*client.SecurityEvent
		var note eme.Message
		switch {
		case ev.Verified:
			note = eme.Msg(eme.MsgESChainVerified)
		case ev.SecretMatched:
			note = eme.Msg(eme.MsgESChainUnconfirmed)
		default:
			note = eme.Msg(eme.MsgESUnauthenticated)
		}
		est := mk(s, KindEstablished, eme.Msg(eme.MsgESEstablished, s.Peer()), note, eme.Msg(eme.MsgESInOrder))
		est.Fingerprint = ev.SAS
		if !ev.Verified {
			est.Hint = eme.Hint{Action: eme.ActionVerify, Mechanism: ns, Peer: s.Peer()}
		}
		out = append(out, est)
		if ev.ContinuityBroken {
			out = append(out, mk(s, KindContinuityBroken, eme.Msg(eme.MsgESContinuityBroken, s.PeerBare())))
		}
		if ev.Verified {
			v := mk(s, KindVerified, eme.Msg(eme.MsgESVerifiedByChain, s.Peer()))
			v.Fingerprint = ev.SAS
			out = append(out, v)
		}
		if ev.SecretsErr != nil {
			out = append(out, mk(s, KindSecretNotStored, eme.Msg(eme.MsgESSecretNotStored, ev.SecretsErr.Error())))
		}
		return out
	case engine.Declined:
		var notes []eme.Message
		if ev.Reason != "" {
			notes = append(notes, eme.Msg(eme.MsgESReasonGiven, eme.QuoteRemote(ev.Reason)))
		}
		return []*client.SecurityEvent{mk(ev.Session, KindDeclined, eme.Msg(eme.MsgESDeclined, ev.Session.Peer()), notes...)}
	case engine.PeerError:
		msg, notes := peerErrorMessage(ev.Session.Peer(), ev.Err)
		return []*client.SecurityEvent{mk(ev.Session, KindFailed, msg, notes...)}
	case engine.Terminated:
		return []*client.SecurityEvent{mk(ev.Session, KindTerminated, terminatedMessage(ev))}
	case engine.Rejected:
		p, _ := jid.Parse(ev.From)
		return []*client.SecurityEvent{{Peer: p, Mechanism: ns, Kind: KindIgnored,
			Message: eme.Msg(eme.MsgESRejected, ev.From, ev.Reason)}}
	case engine.Moved:
		return []*client.SecurityEvent{mk(ev.Session, KindEstablished, eme.Msg(eme.MsgESMoved, ev.To))}
	case engine.Renegotiated:
		if !ev.Accepted {
			return []*client.SecurityEvent{mk(ev.Session, KindIgnored, eme.Msg(eme.MsgESRenegotiationRefused, ev.Session.Peer()))}
		}
	}
	return nil
}

// peerErrorMessage says why a session failed on the contact's error.
func peerErrorMessage(peer string, ne *engine.NegotiationError) (eme.Message, []eme.Message) {
	switch ne.Condition {
	case engine.CondServiceUnavailable:
		return eme.Msg(eme.MsgESFailedUnavailable, peer), nil
	case engine.CondNotAcceptable, engine.CondFeatureNotImplemented:
		var notes []eme.Message
		if len(ne.Fields) > 0 {
			quoted := make([]string, 0, len(ne.Fields))
			for _, f := range ne.Fields {
				quoted = append(quoted, eme.QuoteRemote(f))
			}
			notes = append(notes, eme.Msg(eme.MsgESFailedFields, strings.Join(quoted, ", ")))
		}
		return eme.Msg(eme.MsgESFailedRefused, peer, ne.Condition), notes
	}
	var notes []eme.Message
	if ne.Text != "" {
		notes = append(notes, eme.Msg(eme.MsgESErrorText, eme.QuoteRemote(ne.Text)))
	}
	return eme.Msg(eme.MsgESFailed, peer, client.DefinedCondition(ne.Condition)), notes
}

// terminatedMessage says why a session ended.
func terminatedMessage(ev engine.Terminated) eme.Message {
	p := ev.Session.Peer()
	switch {
	case errors.Is(ev.Err, engine.ErrAuthentication):
		return eme.Msg(eme.MsgESTerminatedAuth, p, ev.Reason)
	case ev.Err != nil:
		return eme.Msg(eme.MsgESTerminatedError, p, ev.Reason, ev.Err.Error())
	case ev.ByPeer:
		return eme.Msg(eme.MsgESTerminatedByPeer, p, ev.Reason)
	}
	return eme.Msg(eme.MsgESTerminated, p, ev.Reason)
}

// track records requests waiting for the user and how sessions were
// established.
func (e *Mechanism) track(events []engine.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range events {
		switch ev := ev.(type) {
		case engine.RequestReceived:
			e.extraLocked(ev.Session).asking = true
		case engine.Established:
			x := e.extraLocked(ev.Session)
			x.asking, x.secretMatched, x.continuityBroken = false, ev.SecretMatched, ev.ContinuityBroken
		}
	}
}

// extraLocked returns the extra state of s, creating it (and forgetting
// that of sessions the engine no longer keeps). e.mu is held.
func (e *Mechanism) extraLocked(s *engine.Session) *sessionExtra {
	x := e.extra[s]
	if x == nil {
		if len(e.extra) >= 256 {
			for k := range e.extra {
				if e.m.Session(k.PeerBare(), k.Thread()) != k {
					delete(e.extra, k)
				}
			}
		}
		x = &sessionExtra{}
		e.extra[s] = x
	}
	return x
}

func (e *Mechanism) isEnding(s *engine.Session) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.extra[s]
	return x != nil && x.ending
}

// stanza returns an engine stanza for sending.
func (e *Mechanism) stanza(o engine.Outbound) (*xmltree.Element, error) {
	return o.Stanza(), nil
}

// lockSend takes the pipeline's send lock: stanzas that use a session's
// counters (encrypted terminates and acknowledgements) must be produced and
// written without a sealed user message in between, or they arrive out of
// order and end the session (XEP-0200 §7).
func (e *Mechanism) lockSend() func() {
	if e.h == nil {
		return func() {}
	}
	w := e.h.Hold()
	e.wire = w
	return func() {
		e.wire = nil
		w.Release()
	}
}

// send sends engine stanzas in order, each with a new id remembered for
// routing errors. The caller holds the pipeline's send lock (lockSend)
// from the moment the engine produced them.
func (e *Mechanism) send(ctx context.Context, out []engine.Outbound) error {
	if len(out) == 0 {
		return nil
	}
	var first error
	for _, o := range out {
		st, err := e.stanza(o)
		if err == nil {
			id := client.NewID()
			st.SetAttr("id", id)
			e.rememberRef(id, sessionRef{engine.Bare(o.To), o.Thread})
			for _, h := range esessionHints {
				if st.Child(client.NSHints, h) == nil {
					st.Append(xmltree.New(client.NSHints, h))
				}
			}
			if st.Child(client.NSSID, "origin-id") == nil {
				st.Append(xmltree.New(client.NSSID, "origin-id", "id", id))
			}
			if e.wire == nil {
				err = client.ErrNotConnected
			} else if to, perr := jid.Parse(o.To); perr != nil {
				err = perr
			} else {
				err = e.wire.Send(ctx, to, st)
			}
		}
		if err != nil {
			e.log().Warn("sending an Encrypted Session stanza failed", "to", o.To, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

func (e *Mechanism) remember(id string, s *engine.Session) {
	e.rememberRef(id, sessionRef{s.PeerBare(), s.Thread()})
}

func (e *Mechanism) rememberRef(id string, r sessionRef) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sent[id]; !ok {
		e.sentIDs = append(e.sentIDs, id)
	}
	e.sent[id] = r
	if len(e.sentIDs) > maxSentIDs {
		delete(e.sent, e.sentIDs[0])
		e.sentIDs = e.sentIDs[1:]
	}
}

// notify wakes every WaitFor.
func (e *Mechanism) notify() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// emitAll emits events directly, filling in the mechanism and peer.
func (e *Mechanism) emitAll(peer jid.JID, evs []*client.SecurityEvent) {
	for _, ev := range evs {
		if ev.Mechanism == "" {
			ev.Mechanism = e.Namespace()
		}
		if ev.Peer.Domainpart() == "" {
			ev.Peer = peer
		}
		e.h.Emit(ev)
	}
}

func copyNote(o client.Origin) eme.Message {
	if o.Archived {
		return eme.Msg(eme.MsgESCopyArchived)
	}
	return eme.Msg(eme.MsgESCopyCarbon)
}

// MessageError routes an error stanza to the session it concerns: by the
// id of the stanza it answers, or else the one live session bound to the
// sender's resource (the error stanzas of XEP-0155 and XEP-0200 need not
// carry the original id).
func (e *Mechanism) MessageError(ev *client.ErrorEvent) []*client.SecurityEvent {
	e.mu.Lock()
	ref, ok := e.sent[ev.ID]
	e.mu.Unlock()
	if ok {
		// Only the peer (or its server) can fail a message sent to it.
		peer, err := jid.Parse(ref.peer)
		if err != nil || !ev.From.Bare().Equal(peer.Bare()) && ev.From.String() != peer.Domainpart() {
			return nil
		}
	}
	if !ok {
		var live []*engine.Session
		for _, s := range e.m.Sessions() {
			if s.Peer() == ev.From.String() && s.State() != engine.StateEnded {
				live = append(live, s)
			}
		}
		if len(live) != 1 {
			return nil
		}
		ref = sessionRef{live[0].PeerBare(), live[0].Thread()}
	}
	s := e.m.Session(ref.peer, ref.thread)
	if s == nil || s.State() == engine.StateEnded {
		return nil
	}
	cond := ev.Condition
	if cond == "" {
		cond = "undefined-condition"
	}
	errEl := xmltree.New(client.NSClient, "error", "type", "cancel").Append(xmltree.New(client.NSStanzas, cond))
	if ev.Text != "" {
		errEl.Append(xmltree.New(client.NSStanzas, "text").AppendText(ev.Text))
	}
	unlock := e.lockSend()
	res, _ := e.m.Receive(&engine.Inbound{From: ev.From.String(), Type: "error", Thread: ref.thread, Error: errEl})
	e.send(context.Background(), res.Out)
	unlock()
	e.track(res.Events)
	e.notify()
	var out []*client.SecurityEvent
	for _, x := range res.Events {
		if _, ok := x.(engine.Rejected); ok {
			continue // an error from another resource: not for the session
		}
		out = append(out, e.securityEvents(x)...)
	}
	return out
}

// Presence ends the sessions bound to a resource that went offline: its
// keys are gone with it, and stanzas sent to it would be redirected to
// other resources or stored.
func (e *Mechanism) Presence(ctx context.Context, ev *client.PresenceEvent) []*client.SecurityEvent {
	if ev.Available || ev.From.Resourcepart() == "" {
		return nil
	}
	// XEP-0155 §9.4: the session is kept (the peer may come back) or
	// terminated explicitly, as configured; never closed silently.
	unlock := e.lockSend()
	res := e.m.PeerUnavailable(ev.From.String())
	err := e.send(ctx, res.Out)
	unlock()
	if err != nil {
		e.log().Info("terminating an Encrypted Session after unavailable presence failed", "peer", ev.From.String(), "err", err)
	}
	out := e.eventsOf(res.Events)
	if out != nil {
		e.notify()
	}
	return out
}

// StreamEnded ends every session: the server dropped our resource, and
// with it the binding every session depends on.
func (e *Mechanism) StreamEnded() []*client.SecurityEvent {
	var out []*client.SecurityEvent
	for _, s := range e.m.Sessions() {
		if s.State() == engine.StateEnded {
			continue
		}
		s.Close()
		p, _ := jid.Parse(s.Peer())
		out = append(out, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindTerminated,
			Message: eme.Msg(eme.MsgESConnectionLost, s.Peer())})
	}
	if out != nil {
		e.notify()
	}
	return out
}

// Shutdown wipes every session. It runs after the stream is closed, when
// nothing can be sent any more; Closing has sent the terminates before.
func (e *Mechanism) Shutdown() {
	for _, s := range e.m.Sessions() {
		s.Close()
	}
	e.notify()
}

// Closing implements PreCloser: Client.Close terminates every session
// while the stream still works.
func (e *Mechanism) Closing(ctx context.Context) error { return e.TerminateAll(ctx) }

// TerminateAll terminates every live session, as XEP-0217 §6 requires
// before going offline, sending the encrypted terminate forms, and wipes
// every session. Client.Close calls it (through Closing).
func (e *Mechanism) TerminateAll(ctx context.Context) error {
	unlock := e.lockSend()
	err := e.send(ctx, e.m.TerminateAll())
	unlock()
	e.notify()
	return err
}

// Start asks peer for an Encrypted Session on a new ThreadID (XEP-0201)
// and returns at once; an KindEstablished event (or KindDeclined,
// KindFailed) follows. peer should be a full JID: for a bare JID the
// one resource online that supports Encrypted Sessions is chosen, or the
// request goes to the bare JID when no resource is known.
func (e *Mechanism) Start(ctx context.Context, peer jid.JID) (Info, error) {
	to := peer
	if peer.Resourcepart() == "" {
		var err error
		if to, err = e.chooseResource(ctx, peer); err != nil {
			return Info{}, err
		}
	}
	for _, s := range e.newestFirst(to) {
		if !s.Encrypted() || e.isEnding(s) {
			continue
		}
		switch {
		case s.State() == engine.StateActive:
			return e.info(s), fmt.Errorf("%w (%s, thread %s)", ErrExists, s.Peer(), s.Thread())
		case s.State() == engine.StatePending && s.Role() == engine.Initiator:
			// An unanswered earlier request: replace it.
			e.m.Forget(s.PeerBare(), s.Thread())
		}
	}
	s, o, err := e.m.Start(to.String(), nil)
	if err != nil {
		return Info{}, fmt.Errorf("client: %w", err)
	}
	unlock := e.lockSend()
	err = e.send(ctx, []engine.Outbound{o})
	unlock()
	if err != nil {
		e.m.Forget(s.PeerBare(), s.Thread())
		return Info{}, err
	}
	e.notify()
	return e.info(s), nil
}

// chooseResource picks the resource of a bare JID to negotiate with.
func (e *Mechanism) chooseResource(ctx context.Context, peer jid.JID) (jid.JID, error) {
	res := e.h.Resources(peer)
	sort.Slice(res, func(i, j int) bool { return res[i].String() < res[j].String() })
	switch len(res) {
	case 0:
		return peer, nil
	case 1:
		return res[0], nil
	}
	var able []jid.JID
	for _, r := range res {
		info, err := e.h.QueryInfo(ctx, r, "")
		if err == nil && info.Has(engine.FeatureESession) {
			able = append(able, r)
		}
	}
	if len(able) == 1 {
		return able[0], nil
	}
	if len(able) > 1 {
		res = able
	}
	names := make([]string, len(res))
	for i, r := range res {
		names[i] = r.String()
	}
	return jid.JID{}, fmt.Errorf("%w: %s", ErrAmbiguousResource, strings.Join(names, ", "))
}

// awaiting returns the newest request from peer that waits for the user.
func (e *Mechanism) awaiting(peer jid.JID) (*engine.Session, error) {
	for _, s := range e.newestFirst(peer) {
		e.mu.Lock()
		x := e.extra[s]
		asking := x != nil && x.asking
		e.mu.Unlock()
		if asking && s.State() == engine.StatePending {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w request from %s waits for an answer", ErrNoSession, peer)
}

// Accept accepts the newest request from peer that waits for the user.
// For an Encrypted Session the negotiation continues; an
// KindEstablished event follows.
func (e *Mechanism) Accept(ctx context.Context, peer jid.JID) (Info, error) {
	s, err := e.awaiting(peer)
	if err != nil {
		return Info{}, err
	}
	unlock := e.lockSend()
	res, aerr := s.Accept()
	serr := e.send(ctx, res.Out)
	unlock()
	e.mu.Lock()
	e.extraLocked(s).asking = false
	e.mu.Unlock()
	e.emitAll(jid.JID{}, e.eventsOf(res.Events))
	e.notify()
	if aerr != nil {
		return e.info(s), fmt.Errorf("client: accepting the Encrypted Session with %s: %w", s.Peer(), aerr)
	}
	return e.info(s), serr
}

// Decline declines the newest request from peer that waits for the user,
// with an optional reason.
func (e *Mechanism) Decline(ctx context.Context, peer jid.JID, reason string) (Info, error) {
	s, err := e.awaiting(peer)
	if err != nil {
		return Info{}, err
	}
	o, err := s.Decline(reason)
	e.mu.Lock()
	e.extraLocked(s).asking = false
	e.mu.Unlock()
	if err != nil {
		return e.info(s), fmt.Errorf("client: %w", err)
	}
	unlock := e.lockSend()
	err = e.send(ctx, []engine.Outbound{o})
	unlock()
	e.notify()
	return e.info(s), err
}

func (e *Mechanism) eventsOf(evs []engine.Event) []*client.SecurityEvent {
	var out []*client.SecurityEvent
	for _, ev := range evs {
		out = append(out, e.securityEvents(ev)...)
	}
	return out
}

// current returns the newest established encrypted session with peer.
func (e *Mechanism) current(peer jid.JID) (*engine.Session, error) {
	for _, s := range e.newestFirst(peer) {
		if s.Encrypted() && s.State() == engine.StateActive {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w with %s", ErrNoSession, peer)
}

// SAS returns the newest established session with peer, whose SAS the
// user compares with the contact.
func (e *Mechanism) SAS(peer jid.JID) (Info, error) {
	s, err := e.current(peer)
	if err != nil {
		return Info{}, err
	}
	return e.info(s), nil
}

// ConfirmSAS records that the user compared the short authentication
// string sas with the contact over a channel they trust and found it
// equal. Only the established session with peer whose SAS is sas (and,
// when thread is not empty, whose thread is thread) is confirmed: a
// session that started after the user read the SAS has another one and
// stays unverified. The session is verified, and so is its retained
// secret: later sessions that continue the chain are verified without a
// comparison. With no such session the error wraps ErrSASMismatch (or
// ErrNoSession when there is no established session at all).
func (e *Mechanism) ConfirmSAS(peer jid.JID, sas, thread string) (Info, error) {
	if _, err := e.current(peer); err != nil {
		return Info{}, err
	}
	want := normalizeSAS(sas)
	var s *engine.Session
	for _, c := range e.newestFirst(peer) {
		if !c.Encrypted() || c.State() != engine.StateActive || thread != "" && c.Thread() != thread {
			continue
		}
		if got := normalizeSAS(c.SAS()); got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
			s = c
			break
		}
	}
	if s == nil {
		return Info{}, fmt.Errorf("%w: no established Encrypted Session with %s has the SAS %q", ErrSASMismatch, peer, sas)
	}
	if err := s.ConfirmSAS(); err != nil {
		return e.info(s), fmt.Errorf("client: %w", err)
	}
	p, _ := jid.Parse(s.Peer())
	e.h.Emit(&client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindVerified, Fingerprint: s.SAS(),
		Message: eme.Msg(eme.MsgESConfirmed, s.Peer())})
	e.notify()
	return e.info(s), nil
}

// normalizeSAS folds what a user may type differently (case, spaces,
// dashes) so that a SAS read aloud and typed back compares equal.
func normalizeSAS(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// End terminates the newest live session with peer: an established
// encrypted session sends the encrypted terminate form and ends when the
// contact acknowledges it (an KindTerminated event); a request or
// negotiation is abandoned at once.
func (e *Mechanism) End(ctx context.Context, peer jid.JID) (Info, error) {
	for _, s := range e.newestFirst(peer) {
		if s.State() == engine.StateEnded || e.isEnding(s) {
			continue
		}
		err := e.terminate(ctx, s)
		return e.info(s), err
	}
	return Info{}, fmt.Errorf("%w with %s", ErrNoSession, peer)
}

func (e *Mechanism) terminate(ctx context.Context, s *engine.Session) error {
	unlock := e.lockSend()
	defer unlock()
	return e.terminateLocked(ctx, s)
}

// terminateLocked is terminate for a caller that holds the send lock.
func (e *Mechanism) terminateLocked(ctx context.Context, s *engine.Session) error {
	res, err := s.Terminate()
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if s.State() != engine.StateEnded {
		e.mu.Lock()
		e.extraLocked(s).ending = true
		e.mu.Unlock()
	}
	serr := e.send(ctx, res.Out)
	e.emitAll(jid.JID{}, e.eventsOf(res.Events))
	e.notify()
	return serr
}

// Status describes every session the mechanism keeps, oldest first.
func (e *Mechanism) Status() []Info {
	all := e.m.Sessions()
	out := make([]Info, len(all))
	for i, s := range all {
		out[i] = e.info(s)
	}
	return out
}

// WaitFor waits until cond holds for the session with peer on thread (or,
// with an empty thread, for the newest session with peer) and returns its
// state, or ctx's error with the last state seen.
func (e *Mechanism) WaitFor(ctx context.Context, peer jid.JID, thread string, cond func(Info) bool) (Info, error) {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		var s *engine.Session
		if thread != "" {
			s = e.m.Session(peer.Bare().String(), thread)
		} else if list := e.newestFirst(peer); len(list) > 0 {
			s = list[0]
		}
		var info Info
		if s != nil {
			info = e.info(s)
			if cond(info) {
				return info, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return info, ctx.Err()
		}
	}
}

func (e *Mechanism) info(s *engine.Session) Info {
	i := Info{Peer: s.Peer(), Thread: s.Thread(), Initiator: s.Role() == engine.Initiator,
		Encrypted: s.Encrypted(), SAS: s.SAS(), Verified: s.Verified()}
	e.mu.Lock()
	x := e.extra[s]
	var xs sessionExtra
	if x != nil {
		xs = *x
	}
	e.mu.Unlock()
	i.SecretMatched, i.ContinuityBroken = xs.secretMatched, xs.continuityBroken
	switch s.State() {
	case engine.StatePending:
		switch {
		case i.Initiator && i.SAS == "":
			i.State = "requested"
		case xs.asking:
			i.State = "asking"
		default:
			i.State = "negotiating"
		}
	case engine.StateActive:
		i.State = "active"
		if xs.ending {
			i.State = "ending"
		}
	default:
		i.State = "ended"
		i.EndReason, _ = s.EndReason()
	}
	return i
}
