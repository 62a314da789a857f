package otr

import (
	"io"
	"time"
)

// MsgState is the message state of a Conversation.
type MsgState int

// Message states (Protocol-v3 "The protocol state machine").
const (
	Plaintext MsgState = iota
	Encrypted
	Finished
)

func (s MsgState) String() string {
	switch s {
	case Plaintext:
		return "plaintext"
	case Encrypted:
		return "encrypted"
	case Finished:
		return "finished"
	}
	return "unknown"
}

// Config configures a Conversation.
type Config struct {
	// PrivateKey is our long-term DSA key. Required.
	PrivateKey *PrivateKey
	// InstanceTag is our instance tag (>= 0x100). 0 generates a fresh one;
	// the caller should persist Conversation.InstanceTag() per account and
	// pass it to every later Conversation of that account.
	InstanceTag uint32
	// Policy is the OTR policy. The zero value is PolicyNever.
	Policy Policy
	// FragmentSize is the largest message the transport carries; longer
	// OTR-encoded messages are fragmented. 0 means never fragment.
	FragmentSize int
	// Rand is the source of randomness; nil means crypto/rand.Reader.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Received is the outcome of Receive.
type Received struct {
	// Plaintext is the message to show the user, if any (nil for protocol
	// messages, heartbeats and incomplete fragments).
	Plaintext []byte
	// Encrypted reports whether Plaintext arrived encrypted and
	// authenticated in an OTR data message.
	Encrypted bool
	// ToSend are messages to transmit to the peer, in order.
	ToSend [][]byte
	// Events report what happened.
	Events []Event
}

// Conversation is the OTR state for one (our account, peer account, peer
// instance). A Conversation is not safe for concurrent use.
type Conversation struct {
	cfg Config
}

// NewConversation returns a Conversation in plaintext state.
func NewConversation(cfg Config) (*Conversation, error) { return nil, errNotImplemented }

// Send turns a message typed by the user into the messages to transmit.
func (c *Conversation) Send(plain []byte) ([][]byte, error) { return nil, errNotImplemented }

// Receive processes one incoming message body.
func (c *Conversation) Receive(msg []byte) (*Received, error) {
	return &Received{}, errNotImplemented
}

// QueryMessage returns an OTR query message offering the versions the
// policy allows.
func (c *Conversation) QueryMessage() []byte { return nil }

// StartAKE returns the messages that start an AKE (a query message).
func (c *Conversation) StartAKE() ([][]byte, error) { return nil, errNotImplemented }

// End ends the private conversation.
func (c *Conversation) End() ([][]byte, error) { return nil, errNotImplemented }

// StartSMP starts the Socialist Millionaires' Protocol.
func (c *Conversation) StartSMP(question string, secret []byte) ([][]byte, error) {
	return nil, errNotImplemented
}

// AnswerSMP answers the peer's SMP request.
func (c *Conversation) AnswerSMP(secret []byte) ([][]byte, error) { return nil, errNotImplemented }

// AbortSMP aborts SMP.
func (c *Conversation) AbortSMP() ([][]byte, error) { return nil, errNotImplemented }

// ExtraSymmetricKey returns the extra symmetric key and the message that
// tells the peer to use it.
func (c *Conversation) ExtraSymmetricKey(use uint32, useData []byte) (key [32]byte, toSend [][]byte, err error) {
	return key, nil, errNotImplemented
}

// Heartbeat returns a heartbeat message when due.
func (c *Conversation) Heartbeat() ([][]byte, error) { return nil, errNotImplemented }

// State returns the message state.
func (c *Conversation) State() MsgState { return Plaintext }

// TheirKey returns the peer's long-term key once authenticated.
func (c *Conversation) TheirKey() *PublicKey { return nil }

// SSID returns the secure session id of the current session.
func (c *Conversation) SSID() [8]byte { return [8]byte{} }

// ProtocolVersion returns the protocol version of the session (2 or 3), 0
// when none.
func (c *Conversation) ProtocolVersion() int { return 0 }

// InstanceTag returns our instance tag.
func (c *Conversation) InstanceTag() uint32 { return c.cfg.InstanceTag }

// TheirInstanceTag returns the peer's instance tag, 0 when unknown.
func (c *Conversation) TheirInstanceTag() uint32 { return 0 }
