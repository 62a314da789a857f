package client

import (
	"context"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// A Mechanism is an end-to-end encryption mechanism plugged into the
// message pipeline with Client.Register. The pipeline owns everything that
// is the same for all mechanisms: the EME tag, the fallback body, the hints
// and carbons directives the mechanism asks for, stanza ids, receipts,
// policies, detection of incoming encryption and the notices for what
// cannot be read. A mechanism reaches the network and the user only
// through the Host it gets in Attach; it never sees the *Client.
//
// Optional abilities are discovered by type assertion: Attacher,
// Interceptor, PlaintextObserver, BatchOpener, Availability,
// PresenceObserver, StanzaOpener, StreamObserver, ErrorObserver,
// PreCloser and Shutdowner. A mechanism may live in any module: everything in these
// interfaces is public (package xmltree for XML).
type Mechanism interface {
	// Namespace is the mechanism's EME namespace (XEP-0380).
	Namespace() string
	// Needs tells the pipeline how to decorate this mechanism's messages.
	Needs() Needs
	// Seal protects an outgoing message. It returns the <message/> stanzas
	// to send (an OTR key exchange may need several, fragments too), each
	// carrying the mechanism's payload; 'to', 'type' and 'id' may be left
	// empty for the pipeline to fill. Seal must not change out.
	Seal(ctx context.Context, out *Outgoing) (Sealed, error)
	// Open reads an incoming message that detection attributed to this
	// mechanism. Copies (carbons, archive) have in.Origin.Copy() set and
	// must never change session state. An error should be an *OpenError.
	Open(ctx context.Context, in *Incoming) (*Opened, error)
}

// Needs are the decorations a mechanism's messages get.
type Needs struct {
	// FallbackBody adds a non-encrypted <body/> explaining the encryption
	// when the sealed stanza has none (XEP-0380 §5).
	FallbackBody bool
	// Hints are XEP-0334 hints by local name: "store", "no-store",
	// "no-copy", "no-permanent-store".
	Hints []string
	// Private adds the XEP-0280 <private/> directive so the server sends no
	// carbon copies.
	Private bool
	// Deferrable means a message may wait in the outbox while the client
	// is offline (Config.Outbox) and be sealed when it leaves: true for
	// mechanisms whose messages do not depend on a live session (OX, and
	// OMEMO, whose sessions live in the store).
	// Messages of the others (OTR, Encrypted Sessions) are refused while
	// offline (OfflineError), as their sessions may not survive.
	Deferrable bool
	// AnswerUnreadable: a live message of the mechanism that cannot be
	// read because the session that sealed it is gone (an OpenError with
	// eme.ReasonNoSession) is answered with a message error carrying its
	// id (not-acceptable), so that its sender's client reports that very
	// message failed. For mechanisms whose protocol defines no error
	// answer of its own (OTR); Encrypted Sessions answer as XEP-0200 says.
	AnswerUnreadable bool
	// Replayable: a sealed message may be sent again as it is: its
	// recipient reads the copy if the first never came, and drops it as
	// a duplicate otherwise (OX, which consumes no session state; OMEMO,
	// whose message keys live in the store). When the server lost the
	// client's session (a resumption refused, as after a server
	// restart), a message of the clear or of such a mechanism that the
	// server acknowledged just before and whose receipt has not come is
	// sent again with the same ids, which recipients recognise
	// (XEP-0359): a server can lose what it acknowledged but had not yet
	// handed to the recipient's session.
	Replayable bool
	// Name is the mechanism's human-readable name. For a mechanism outside
	// XEP-0380's table (one Balcony does not know) it goes into the EME
	// tag's 'name' attribute, as XEP-0380 §3.2 asks, and into the fallback
	// body; for mechanisms Balcony knows, Balcony's own name is used.
	Name string
}

// Sealed is what a mechanism's Seal returns.
type Sealed struct {
	// Stanzas are the <message/> stanzas to send, in order.
	Stanzas []*xmltree.Element
	// Held means the message itself is not in Stanzas: the mechanism holds
	// it until its session is established (OTR under a policy that
	// requires encryption sends a query instead) and sends it then.
	Held bool
}

// Sent describes a message that Send handed to the stream.
type Sent struct {
	// ID is the id of the message (of its first stanza).
	ID string
	// IDs are the ids of every stanza sent for it (fragments, a query).
	IDs []string
	// Held means the mechanism holds the message until its session is
	// established; it leaves then, without another call to Send.
	Held bool
	// Queued means the client was offline: the message waits in the
	// outbox (Config.Outbox) and is sealed and sent when the stream is
	// back (FateEvents follow it).
	Queued bool
}

// Outgoing is a message the user sends.
type Outgoing struct {
	To     jid.JID
	Type   string // default "chat"
	ID     string // default: a new random id
	Thread string
	Body   string
	// Payload are further children to protect with the body (chat states,
	// receipt requests, ...); a mechanism that cannot carry XML (OTR)
	// sends only the body.
	Payload []*xmltree.Element
	// Receipt asks for a XEP-0184 delivery receipt.
	Receipt bool
}

// Incoming is a message handed to a mechanism's Open.
type Incoming struct {
	Stanza    *xmltree.Element
	From, To  jid.JID
	Origin    Origin
	Detection eme.Detection
	Time      time.Time
}

// Opened is what a mechanism read from a message.
type Opened struct {
	Body    string
	Payload []*xmltree.Element // protected children other than the body
	// Security of the content; Mechanism is filled by the pipeline if empty.
	Security Security
	// Replies are protocol messages to send back (key exchange, SMP, ...);
	// the pipeline decorates them like sealed messages.
	Replies []*xmltree.Element
	// Silent means there is nothing to show the user (a protocol message).
	Silent bool
	// Events are security events to emit (session started, key changed...).
	Events []*SecurityEvent
}

// OpenError explains why a mechanism could not open a message; Reason
// selects the notice the user sees (eme.ReasonNoSession,
// eme.ReasonNoKey, eme.ReasonVerificationFailed, eme.ReasonMalformed, ...).
type OpenError struct {
	Reason eme.Reason
	// Notes explain the reason to the user (catalogue messages, shown in
	// the user's language after the notice).
	Notes []eme.Message
	// Detail is technical text shown untranslated (an engine's error).
	Detail string
	Err    error
}

func (e *OpenError) Error() string {
	s := "client: cannot open message: " + e.Reason.String()
	for _, n := range e.Notes {
		s += ": " + n.String()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *OpenError) Unwrap() error { return e.Err }

// PresenceObserver is implemented by mechanisms that react to presence
// (OTR ends a session when the peer's resource goes offline).
type PresenceObserver interface {
	Presence(ctx context.Context, ev *PresenceEvent) []*SecurityEvent
}

// StanzaOpener is implemented by mechanisms that protect presence and iq
// stanzas as well as messages (Encrypted Sessions, where negotiated:
// XEP-0200 §4). The client hands it every received presence, and every
// iq, that has a child element in the mechanism's namespace, in order
// with the sender's messages, instead of processing the stanza itself: an
// iq request so protected is not answered on the read loop.
type StanzaOpener interface {
	// OpenStanza reads such a stanza. For a presence it returns the
	// decrypted children that the presence is processed with (the
	// PresenceEvent then names the mechanism), or nil to drop it (the
	// events say why). An iq is the mechanism's to answer or consume:
	// Host.AnswerIQ gives the client's own answer to a decrypted request,
	// and the children returned are ignored. Events are emitted first.
	OpenStanza(ctx context.Context, in *Incoming) ([]*xmltree.Element, []*SecurityEvent)
}

// StreamObserver is implemented by mechanisms that react to our stream
// ending (XEP-0364 §5.2).
type StreamObserver interface {
	StreamEnded() []*SecurityEvent
}

// ErrorObserver is implemented by mechanisms that react to error stanzas
// for messages they sent.
type ErrorObserver interface {
	MessageError(ev *ErrorEvent) []*SecurityEvent
}

// Interceptor is implemented by mechanisms whose protocol messages are
// not encrypted payloads (XEP-0155 negotiation forms for Encrypted
// Sessions). Intercept is called for every message that detection found
// to be plaintext, before it is delivered; a mechanism that recognises the
// message returns handled = true and what to do with it. Copies (carbons,
// archive) are offered too, with in.Origin set.
type Interceptor interface {
	Intercept(ctx context.Context, in *Incoming) (opened *Opened, handled bool)
}

// Availability is implemented by mechanisms that can tell whether they can
// protect a message to a contact right now (OX: the contact announced a
// usable key; OTR and Encrypted Sessions: a session is established).
// Pipeline.Best uses it for the "prefer encryption" policy.
type Availability interface {
	Usable(ctx context.Context, to jid.JID) bool
}

// PreCloser is implemented by mechanisms that must say goodbye while the
// stream still works (XEP-0217 §6: terminate every Encrypted Session
// before going offline). Client.Close calls Closing first, with a bounded
// context, before the unavailable presence and the end of the stream.
type PreCloser interface {
	Closing(ctx context.Context) error
}

// PlaintextObserver is implemented by mechanisms that take part in
// plaintext messages: OTR advertises itself with a whitespace tag on
// outgoing plaintext, stops doing so once the contact answered in
// plaintext, strips the tag from incoming plaintext (and may start a
// private conversation because of it), and warns about plaintext that
// arrives during a private conversation.
//
// OutgoingPlaintext sees live outgoing messages only; IncomingPlaintext
// sees every plaintext message with a body, copies included (in.Origin
// says which): a mechanism never changes session state for a copy.
// Registered mechanisms are asked whether or not they are enabled.
type PlaintextObserver interface {
	OutgoingPlaintext(to jid.JID, body string) string
	IncomingPlaintext(ctx context.Context, in *Incoming, body string) Plaintext
}

// Plaintext is what a PlaintextObserver makes of an incoming plaintext
// message.
type Plaintext struct {
	// Body is the text to show (the body it was given, or that body with
	// the mechanism's markers removed).
	Body string
	// Warnings are shown with the message (see Warn).
	Warnings []Warning
}

// Attacher is implemented by mechanisms that need the client: Register
// calls Attach once, before the mechanism sees any message, with the Host
// through which it reaches the network, the user and the client's state.
// A mechanism that cannot work (no key, say) calls Host.SetEnabled(false)
// there. An error fails Register.
type Attacher interface {
	Attach(h Host) error
}

// BatchOpener is implemented by mechanisms that open many archived copies
// faster together than one by one (OX: on all cores, each sender's keys
// read and parsed once). Client.History starts one Batch per call and
// hands it the archived messages detected as this mechanism's, page by
// page.
type BatchOpener interface {
	NewBatch() Batch
}

// A Batch opens archived copies (in.Origin.Archived is set) of one
// mechanism's messages with up to workers goroutines; it keeps what it
// learns (sender keys) across calls. Results are in the order of ins.
type Batch interface {
	Open(ctx context.Context, ins []*Incoming, workers int) []BatchResult
}

// BatchResult is the outcome of opening one message of a batch: what Open
// would have returned.
type BatchResult struct {
	Opened *Opened
	Err    error
}

// Shutdowner is implemented by mechanisms that must end sessions when the
// client closes; it runs after the stream and TCP connection are closed.
type Shutdowner interface {
	Shutdown()
}
