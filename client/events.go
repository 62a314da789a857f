package client

import (
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// Event is delivered on Client.Events. It is one of *MessageEvent,
// *NoticeEvent, *ReceiptEvent, *PresenceEvent, *SubscriptionEvent,
// *RosterEvent, *PEPEvent, *ErrorEvent, *SecurityEvent, *ConnectionEvent
// or *FateEvent.
type Event interface{ event() }

// CarbonKind tells whether a message is a XEP-0280 carbon copy.
type CarbonKind int

const (
	NotCarbon      CarbonKind = iota
	CarbonReceived            // a copy of a message another of our resources received
	CarbonSent                // a copy of a message another of our resources sent
)

func (k CarbonKind) String() string {
	switch k {
	case CarbonReceived:
		return "carbon-received"
	case CarbonSent:
		return "carbon-sent"
	}
	return ""
}

// Origin describes where an incoming message came from: live, a carbon
// copy, or the server archive (XEP-0313). Copies never feed a mechanism's
// session state.
type Origin struct {
	Carbon   CarbonKind
	Archived bool // read back from MAM
	// Delayed means the time is a XEP-0203 delay stamp our own server
	// added: the message waited in offline storage, or comes from the
	// archive.
	Delayed  bool
	StanzaID string // XEP-0359 stanza-id assigned by our own server, if any
	// CatchUp: the message was fetched from the archive after a
	// reconnection that could not resume the stream, because it arrived
	// while the client was away and had not been delivered (Archived is
	// set too). It is news to the user, not history.
	CatchUp bool
	// ClaimedTime is a delay stamp the message carried that Balcony does
	// not believe (the sender, or anyone on the way, may have written it):
	// shown at most as a claim. The event's time is then when the message
	// arrived.
	ClaimedTime time.Time
}

// Copy reports whether the message is a carbon or archive copy rather than
// a live delivery to this resource.
func (o Origin) Copy() bool { return o.Carbon != NotCarbon || o.Archived }

// Security is the security state of a delivered message.
type Security struct {
	// Mechanism is the EME namespace of the mechanism that protected the
	// message, or "" for a plaintext message.
	Mechanism string
	// Name is our display name for the mechanism.
	Name string
	// Verified is true only when the sender's key or session is verified
	// (SMP, SAS or a trusted key) and every check passed: a message with
	// warnings is never verified.
	Verified bool
	// Authenticated is true when the mechanism authenticated the content as
	// coming from the sender: a valid signature by a key the sender
	// announces (OX), or the MAC of an authenticated session (OTR,
	// Encrypted Sessions), whether or not the user verified that key or
	// session. Only an authenticated message counts as protected by its
	// mechanism for the incoming policy.
	Authenticated bool
	// Fingerprint of the sender's key or session, when the mechanism has one.
	Fingerprint string
	// Trust is the trust state of that key ("verified", "blind",
	// "undecided", "untrusted") when known.
	Trust string
	// Warnings are problems that did not prevent reading the message
	// (for example an implausible timestamp or an unverified signature).
	Warnings []Warning
}

// A Warning is a problem with a message that did not prevent reading it.
type Warning struct {
	// Message is the warning as data (an ID for programs and its values).
	Message eme.Message
	// Text is Message in the client's language (Config.Language), filled
	// by the client.
	Text string
}

// Warn returns a warning of the catalogue message id with args, for
// mechanisms to put in Security.Warnings; the client fills its Text.
func Warn(id eme.MessageID, args ...string) Warning {
	return Warning{Message: eme.Msg(id, args...)}
}

// Encrypted reports whether a mechanism protected the message.
func (s Security) Encrypted() bool { return s.Mechanism != "" }

// State is a one-word summary: "plaintext", "verified", "unverified" or
// "warning".
func (s Security) State() string {
	switch {
	case s.Mechanism == "":
		return "plaintext"
	case len(s.Warnings) > 0:
		return "warning"
	case s.Verified:
		return "verified"
	}
	return "unverified"
}

// MessageEvent is a message whose content can be shown to the user.
type MessageEvent struct {
	From, To jid.JID
	ID       string
	Type     string
	Thread   string
	Body     string
	Time     time.Time
	Origin   Origin
	Security Security
	// Payload holds the other effective children of the message (after
	// decryption, protected children replace unprotected ones).
	Payload []*xmltree.Element
}

// NoticeEvent tells the user about a message that could not be shown as a
// normal message: encrypted and unreadable, malformed, or otherwise
// refused. It is never a MessageEvent, so it can be rendered distinctly.
type NoticeEvent struct {
	From, To jid.JID
	ID       string
	Time     time.Time
	Origin   Origin
	// Namespace is the mechanism's namespace, when known.
	Namespace string
	// Mechanism is our display name, or the sanitised, quoted remote name.
	Mechanism string
	// Reason is why the message could not be shown.
	Reason eme.Reason
	// Hint is what the user can do about it (enable the mechanism, start
	// a session), as data for the application to turn into its own
	// command; the zero Hint when there is nothing to do.
	Hint eme.Hint
	// Text is the localised notice (without the hint).
	Text string
}

// ReceiptEvent is a XEP-0184 delivery receipt.
type ReceiptEvent struct {
	From jid.JID
	ID   string // the id of the message that was received
}

// PresenceEvent is an available or unavailable presence.
type PresenceEvent struct {
	From      jid.JID
	Available bool
	Show      string
	Status    string
	Priority  int
	// Caps is the XEP-0115 entity capabilities node and ver, if present.
	CapsNode, CapsVer, CapsHash string
	// Mechanism is the EME namespace of the mechanism that protected the
	// presence (StanzaOpener), or "" for a presence in the clear.
	Mechanism string
}

// SubscriptionEvent is a subscription request or answer.
type SubscriptionEvent struct {
	From jid.JID
	Type string // subscribe, subscribed, unsubscribe, unsubscribed
}

// RosterEvent reports the roster after a fetch or a push.
type RosterEvent struct {
	Items []RosterItem
}

// PEPEvent is a XEP-0163 notification.
type PEPEvent struct {
	From      jid.JID
	Node      string
	Items     []PubSubItem
	Retracted []string
}

// ErrorEvent is an error stanza returned for a message we sent.
type ErrorEvent struct {
	From      jid.JID
	ID        string
	Thread    string // the <thread/> the error stanza echoed, if any
	Condition string
	Text      string
	// Stanza is the whole error stanza, for mechanisms that route errors
	// by more than the id.
	Stanza *xmltree.Element
}

// SecurityEvent reports a change in a mechanism's session or key state:
// a session started, ended or was verified, a key changed, an SMP or SAS
// step needs the user, and so on.
type SecurityEvent struct {
	Peer      jid.JID
	Mechanism string       // EME namespace
	Kind      SecurityKind // what happened; each mechanism package lists its kinds
	// Fingerprint or SAS value when relevant.
	Fingerprint string
	// Message says what happened, for the user, as data; Notes add to it
	// (why a session is not authenticated, what a request implies).
	Message eme.Message
	Notes   []eme.Message
	// Hint is what the user can do next (verify, answer, accept...).
	Hint eme.Hint
	// Text is Message and Notes in the client's language, filled by the
	// client.
	Text string
}

// SecurityKind is the kind of a SecurityEvent. Each mechanism package
// declares its own, prefixed with its name ("otr-private",
// "esession-established"), so kinds of different mechanisms never clash.
type SecurityKind string

// ConnectionState is the state reported by ConnectionEvent.
type ConnectionState int

const (
	Connected ConnectionState = iota + 1
	Disconnected
	Reconnecting
)

func (s ConnectionState) String() string {
	switch s {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Reconnecting:
		return "reconnecting"
	}
	return "unknown"
}

// ConnectionEvent reports the connection state.
type ConnectionEvent struct {
	State ConnectionState
	JID   jid.JID // bound JID when connected
	// Resumed: the new stream resumed the one that was cut (XEP-0198):
	// nothing was lost, sessions of mechanisms continue.
	Resumed bool
	Err     error // why the stream ended, when it did
	// Resumable: the stream that ended may still be resumed.
	Resumable bool
	Retry     time.Duration // when Reconnecting: the wait before the attempt
	Time      time.Time
}

func (*MessageEvent) event()      {}
func (*NoticeEvent) event()       {}
func (*ReceiptEvent) event()      {}
func (*PresenceEvent) event()     {}
func (*SubscriptionEvent) event() {}
func (*RosterEvent) event()       {}
func (*PEPEvent) event()          {}
func (*ErrorEvent) event()        {}
func (*SecurityEvent) event()     {}
func (*ConnectionEvent) event()   {}
