package esession

import "github.com/balcony-im/balcony/xmltree"

// Result is what handling a received stanza, or a user action, produced:
// stanzas to send, in order, and events for the user interface.
type Result struct {
	Out    []Outbound
	Events []Event
	// Unhandled reports that the stanza carried nothing for the engine
	// (a plain chat message outside any negotiated session): the client
	// processes it as an ordinary message, using Threads for XEP-0201.
	Unhandled bool
}

// Event is one of the event types below.
type Event interface{ event() }

// RequestReceived reports a session request that waits for the user:
// call Accept or Decline on the session (or do nothing: not answering
// leaks no presence, XEP-0155 §4.3).
type RequestReceived struct {
	Session *Session
	Offer   Offer
	// Subscribed is false when the requester has no presence
	// subscription: answering at all reveals that the user is online.
	Subscribed bool
	// Delayed is true when the request was stored for later delivery:
	// the requester may be gone, and answering reveals that the user was
	// offline. XEP-0155 §4.2 suggests starting a new session instead.
	Delayed bool
}

// Offer summarises a received request and what accepting it would do.
type Offer struct {
	Encrypted bool     // Accept would negotiate an encrypted session
	Security  []string // the requester's security options, in its order
	Logging   []string // its logging options ("may", "mustnot")
	Groups    []int    // the MODP groups it offered
	// ThreeMessage is set for the SIGMA-I variant (XEP-0116 §4.2), in
	// which this client identifies first, by its public key.
	ThreeMessage bool
	// Problem, when set, is the error Accept will send instead of
	// accepting: options this client cannot accept.
	Problem *NegotiationError
}

// Established reports a session that completed negotiation.
type Established struct {
	Session   *Session
	Encrypted bool
	// SAS is the short authentication string of an encrypted session.
	// Compare it with the peer out of band and call ConfirmSAS.
	SAS string
	// Verified is true when the retained secret that matched continues a
	// chain of sessions whose SAS the user confirmed, or the peer signed
	// with a key the user verified for it. Otherwise the SAS must be
	// compared for the session to be authenticated.
	Verified bool
	// SecretMatched reports that a retained secret from an earlier session
	// was shared with the peer.
	SecretMatched bool
	// ContinuityBroken reports that secrets were retained for this peer
	// but none matched: a new client of the peer, a reinstall, or a man
	// in the middle. The SAS must be compared.
	ContinuityBroken bool
	// SecretsErr is set when the new retained secret could not be stored.
	SecretsErr error
	// PeerKey is the public key the peer identified with, or nil. A
	// KeyAlert event before this one says whether it is new or changed.
	PeerKey *PublicKey
	// Offline marks an XEP-0187 offline session the peer started while
	// this client was offline: this client can only read it.
	Offline bool
	// OtherSecret reports that a password shared with the peer
	// (Config.OtherSecrets) went into the session key: the peer knows it.
	OtherSecret bool
}

// Declined reports that the peer declined the request.
type Declined struct {
	Session *Session
	Reason  string
}

// PeerError reports an error the peer (or its server) returned for the
// session; the session has ended.
type PeerError struct {
	Session *Session
	Err     *NegotiationError
}

// Message is decrypted content of an encrypted session. Content is the
// decrypted stanza children, parsed (in jabber:client unless they declare
// another namespace), with any session control form removed; it replaces
// the received stanza's content entirely. Stripped names the unencrypted
// siblings of <c/> that were discarded.
type Message struct {
	Session  *Session
	Content  []*xmltree.Element
	Stripped []string
	// Kind, Type and ID are those of the received stanza: a presence or
	// iq stanza (Kind StanzaPresence or StanzaIQ) is rebuilt from them
	// with Content as its children.
	Kind, Type, ID string
}

// Terminated reports that a session ended: by the user, by the peer, or
// because of an error (Err is ErrAuthentication for every cryptographic
// failure). Its keys have been wiped.
type Terminated struct {
	Session *Session
	ByPeer  bool
	Reason  string
	Err     error
}

// Unencrypted reports a plain message received on the thread of an
// encrypted session. It is not part of the session: show it with a clear
// warning, never as protected.
type Unencrypted struct {
	Session *Session
	From    string
}

// Rejected reports a stanza the engine refused without changing any
// session: it came from another resource than the session's, for a session
// that ended or does not exist, or was an unsolicited answer.
type Rejected struct {
	From, Thread string
	Reason       string
}

// Moved reports that the session continues with another resource (XEP-0155
// §5): To is the new full JID of the peer, or of this client when the move
// was ours and the session ended here. (This client's bare JID is taken
// from the 'to' of the stanzas the peer sent, Inbound.To; without it To
// holds the resource only.)
type Moved struct {
	Session *Session
	To      string
	// Handover is set when the move was ours in an encrypted session:
	// call Session.Handover and give the result to the new resource.
	Handover bool
}

// Renegotiated reports the outcome of a renegotiation (XEP-0155 §6).
type Renegotiated struct {
	Session  *Session
	Accepted bool
	Params   Params
}

// PeerWentOffline reports that the peer's resource a session is bound to
// sent unavailable presence (Manager.PeerUnavailable). With the default
// policy the session is kept (Terminated false): stanzas sent meanwhile
// may be lost, which ends the session when the peer reads the next one.
// With TerminateOnUnavailable the session was terminated explicitly and a
// Terminated event follows.
type PeerWentOffline struct {
	Session    *Session
	Terminated bool
}

func (RequestReceived) event() {}
func (PeerWentOffline) event() {}
func (Established) event()     {}
func (Declined) event()        {}
func (PeerError) event()       {}
func (Message) event()         {}
func (Terminated) event()      {}
func (Unencrypted) event()     {}
func (Rejected) event()        {}
func (Moved) event()           {}
func (Renegotiated) event()    {}
