// Package otr implements Off-the-Record Messaging protocol version 3 (the
// OTR development team's specification as shipped with libotr 4.1.1, final
// and widely deployed), compatible with version 2, for use over XMPP as
// XEP-0364 (Deferred) describes. It interoperates with libotr 4.1.1 and, for
// version 2, with golang.org/x/crypto/otr.
//
// There is no XMPP and no network code here. A Conversation is a state
// machine: the caller passes it every incoming message body and every
// message the user types, and transmits whatever it returns.
//
//	c, _ := otr.NewConversation(otr.Config{PrivateKey: key, InstanceTag: tag, Policy: otr.PolicyOpportunistic})
//	out, err := c.Send([]byte("hi"))   // transmit out
//	r, err := c.Receive(body)          // show r.Plaintext (warn if !r.Encrypted),
//	                                   // transmit r.ToSend, handle r.Events
//
// # Policies
//
// Policy flags have libotr's values and meaning: AllowV2 and AllowV3 select
// protocol versions (neither: OTR is off and messages pass through);
// RequireEncryption holds messages typed in plaintext, sends a query
// instead and sends them once the AKE completes; SendWhitespaceTag appends
// the whitespace tag to plaintext messages until the peer replies in
// plaintext; WhitespaceStartAKE starts the AKE when a tag arrives;
// ErrorStartAKE answers an OTR error message with a query. The presets
// PolicyManual, PolicyOpportunistic and PolicyAlways are libotr's.
//
// An AKE starts when either side sends a query message (StartAKE returns
// one; so does Send under RequireEncryption), when a whitespace tag arrives
// with WhitespaceStartAKE, or on an error message with ErrorStartAKE.
// StartAKE while encrypted refreshes the session keys (EventRefreshed).
//
// # Receiving
//
// Receive returns the text to show (Plaintext, nil for protocol messages
// and heartbeats), whether it was encrypted, messages to send back (AKE
// replies, SMP steps, heartbeats, error messages) and Events. Text received
// unencrypted while encrypted, finished or under RequireEncryption is
// reported with EventUnencrypted: show it with a warning. Peer text is
// untrusted; libpurple-based peers send HTML.
//
// Every OTR message that is rejected (malformed, bad MAC or signature,
// replayed counter, unknown key, out-of-range value) yields the single
// opaque error ErrInvalidMessage and changes no state. An unreadable data
// message also yields EventUnreadable and an OTR error message in ToSend,
// unless it carries the IGNORE_UNREADABLE flag, in which case it is
// silently dropped, as the protocol requires. Receive always returns a
// non-nil *Received, even with an error.
//
// # Events
//
// EventGoneSecure and EventRefreshed follow a completed AKE: compare
// TheirKey().Fingerprint() with the fingerprint the user trusts (or run
// SMP). EventPeerEnded means the peer ended the conversation: the state is
// Finished and Send refuses (ErrFinished) until End or a new AKE, so that
// nothing typed for a private conversation leaks in plaintext. The SMP
// events are described below; EventExtraKey carries a peer's extra
// symmetric key announcement; EventHeartbeat an empty encrypted message;
// EventOtherInstance a message for another instance (below);
// EventMalformed an unparsable OTR message; EventError the peer's OTR error
// text.
//
// # Instance tags and several peer instances
//
// Protocol version 3 messages carry the sender's and receiver's instance
// tags. Each account has one instance tag (>= 0x100), generated once
// (Config.InstanceTag 0 generates one; read it back with InstanceTag) and
// persisted, so that the peer can tell our clients apart. A Conversation
// talks to one instance of the peer: it binds to the first instance whose
// AKE message it accepts, accepts a DH-Commit with receiver tag 0, and
// ignores, with EventOtherInstance, every message addressed to another of
// our instances or sent by another of the peer's (a new peer instance may
// take over only while no session or AKE is under way, e.g. after the peer
// restarted).
//
// XMPP servers may copy a message to every resource of an account, so a
// peer can run several instances at once. A caller that wants to talk to
// each keeps one Conversation per peer instance, all with our same
// instance tag, and routes each incoming message by its sender tag, which
// InstanceTags reads from messages and fragments without changing any
// state:
//
//	sender, _, ok := otr.InstanceTags(body)
//	conv := byInstance[sender]      // the Conversation for that peer instance
//	if !ok { conv = current }       // plaintext, query, error, version 2
//	if conv == nil { conv = newConversationFor(sender) }
//
// Plaintext, query, error and version 2 messages carry no tags and go to
// the conversation the user is looking at. Per XEP-0364, address OTR
// messages to the peer's full JID.
//
// # Fragments
//
// With Config.FragmentSize set, encoded messages longer than that are sent
// as fragments, version 3 "?OTR|s|r,k,n,piece," or version 2
// "?OTR,k,n,piece,", in libotr's layout; query and error messages are
// shortened to fit; plaintext messages are never fragmented. Incoming
// fragments of either version are reassembled following the protocol's
// rules (k=1 restarts, k=K+1 appends, anything else or an unfragmented
// message drops what was collected), after the instance-tag check.
//
// # SMP
//
// StartSMP starts the Socialist Millionaires' Protocol, with or without a
// question; the peer sees EventSMPQuestion (with the question in
// Event.Text) or EventSMPSecretRequested and answers with AnswerSMP. Both
// sides end with EventSMPSucceeded or EventSMPFailed. AbortSMP aborts;
// the peer sees EventSMPAborted. A message that fails its zero-knowledge
// proofs or range checks, or arrives out of order, aborts the exchange
// with EventSMPCheated. Only success shows that the peer knows the secret
// and that no one is in the middle of this session.
//
// # Extra symmetric key and heartbeats
//
// ExtraSymmetricKey returns a 256-bit key derived from the current sending
// keys and a message (TLV 8) telling the peer to derive it too
// (EventExtraKey, with the application-defined use and data). The key
// belongs to the DH key pair of the message that carries the TLV, so two
// announcements generally yield different keys: use the one that came with
// each announcement. Heartbeat sends an empty data message
// after HeartbeatInterval of silence following a received message, so that
// the peer can rotate keys; call it periodically. Receive does the same
// when a message arrives after a long silence.
//
// # Long-term keys
//
// Identities are DSA keys (1024-bit p, 160-bit q) as the protocol requires.
// GenerateKey makes one; ParseLibotrPrivateKeys and
// MarshalLibotrPrivateKeys read and write libotr's otr.private_key files so
// users can keep their identity; MarshalBinary gives a compact form.
// Fingerprint.String is libotr's display form, Fingerprint.Hex the form of
// XEP-0364's xmpp: URIs.
//
// # What is protected, and what is not
//
// Messages in the Encrypted state are confidential and authenticated to the
// holder of the key with TheirKey's fingerprint, with forward secrecy: the
// Diffie-Hellman keys are rotated as the conversation goes and forgotten.
// Used MAC keys are published after rotation, so transcripts are
// deniable: anyone can forge them afterwards (and AES-CTR is malleable by
// design). Secret exponents and signing nonces are used in constant time
// (internal/modp, filippo.io/bigmod), MACs are compared in constant time,
// every received group element and exponent is range-checked (SMP elements
// also for subgroup membership), and keys are cleared after use as far as
// Go allows: the garbage collector may have copied them, and math/big
// values handled along the way cannot all be wiped.
//
// Not protected: the fact of the conversation, its timing and the length of
// messages; plaintext messages, query messages and whitespace tags; the
// identity of the peer until its fingerprint is verified (or SMP
// succeeds). OTR's primitives are dated: DSA-1024, SHA-1 and a 1536-bit
// group give roughly 80 to 90 bits of security. Messages sent while the
// peer is offline or read on another device are not readable: OTR needs
// both parties online. The client layer must not feed carbon copies or
// archived (MAM) messages to a Conversation, should send OTR messages with
// the XEP-0334 no-copy and no-permanent-store hints and a XEP-0280
// private element, and should acknowledge receipt only after Receive
// succeeded.
//
// A Conversation is not safe for concurrent use; keys are.
package otr
