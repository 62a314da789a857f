package otr

import "fmt"

// EventKind says what happened in an Event.
type EventKind int

// Event kinds.
const (
	// EventGoneSecure: an AKE completed and the conversation is now
	// encrypted. Check TheirKey's fingerprint.
	EventGoneSecure EventKind = iota + 1
	// EventRefreshed: an AKE completed while already encrypted; the session
	// keys were replaced. Check TheirKey's fingerprint again: it may differ.
	EventRefreshed
	// EventPeerEnded: the peer ended the private conversation (TLV 1). The
	// conversation is in the Finished state and refuses to send until End
	// or a new AKE.
	EventPeerEnded
	// EventUnreadable: an encrypted message could not be read (Receive
	// also returns ErrInvalidMessage, and an OTR error message is queued for
	// the peer).
	EventUnreadable
	// EventError: the peer sent an OTR error message; Text holds its text.
	EventError
	// EventUnencrypted: a plaintext message arrived while encrypted or
	// finished, or while the policy requires encryption.
	EventUnencrypted
	// EventSMPSecretRequested: the peer started SMP without a question;
	// ask the user for the shared secret and call AnswerSMP.
	EventSMPSecretRequested
	// EventSMPQuestion: the peer started SMP with a question (Text); ask
	// the user for the answer and call AnswerSMP.
	EventSMPQuestion
	// EventSMPSucceeded: SMP completed and both secrets matched: the peer
	// knows the secret and no one is in the middle.
	EventSMPSucceeded
	// EventSMPFailed: SMP completed and the secrets differ.
	EventSMPFailed
	// EventSMPCheated: the peer sent an SMP message that fails its
	// zero-knowledge proofs or range checks, or arrived out of order; SMP
	// was aborted.
	EventSMPCheated
	// EventSMPAborted: the peer aborted SMP (TLV 6).
	EventSMPAborted
	// EventExtraKey: the peer announced use of the extra symmetric key
	// (TLV 8); Use, UseData and Key are set.
	EventExtraKey
	// EventHeartbeat: an encrypted message with no human-readable text
	// arrived.
	EventHeartbeat
	// EventOtherInstance: a message addressed to another instance of our
	// account, or sent by another instance of the peer, was ignored.
	// SenderInstance and ReceiverInstance are set; see "Instance tags" in
	// the package documentation for routing.
	EventOtherInstance
	// EventMalformed: an OTR message could not be parsed and was ignored.
	EventMalformed
)

var eventNames = [...]string{
	EventGoneSecure:         "gone secure",
	EventRefreshed:          "refreshed",
	EventPeerEnded:          "peer ended",
	EventUnreadable:         "unreadable message",
	EventError:              "error message",
	EventUnencrypted:        "unencrypted message",
	EventSMPSecretRequested: "SMP secret requested",
	EventSMPQuestion:        "SMP question",
	EventSMPSucceeded:       "SMP succeeded",
	EventSMPFailed:          "SMP failed",
	EventSMPCheated:         "SMP cheated",
	EventSMPAborted:         "SMP aborted",
	EventExtraKey:           "extra symmetric key",
	EventHeartbeat:          "heartbeat",
	EventOtherInstance:      "other instance",
	EventMalformed:          "malformed message",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports something the user or the application should know about.
type Event struct {
	Kind EventKind
	// Text is the peer's error text (EventError) or SMP question
	// (EventSMPQuestion). It is untrusted input from the network.
	Text string
	// SenderInstance and ReceiverInstance are the instance tags of an
	// ignored message (EventOtherInstance).
	SenderInstance, ReceiverInstance uint32
	// Use, UseData and Key describe the extra symmetric key (EventExtraKey).
	// Key is secret: clear it when done.
	Use     uint32
	UseData []byte
	Key     [32]byte
}
