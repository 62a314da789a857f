package otr

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// MsgState is the message state of a Conversation (Protocol-v3 "Message
// state").
type MsgState int

// Message states.
const (
	// Plaintext: messages are sent unencrypted (MSGSTATE_PLAINTEXT).
	Plaintext MsgState = iota
	// Encrypted: messages are sent in OTR data messages (MSGSTATE_ENCRYPTED).
	Encrypted
	// Finished: the peer ended the private conversation; nothing is sent
	// until End or a new AKE (MSGSTATE_FINISHED).
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
	return fmt.Sprintf("MsgState(%d)", int(s))
}

// maxQuestion bounds an SMP question so that it fits in a TLV record with
// the SMP values (about 1.2 kB).
const maxQuestion = 60000

// HeartbeatInterval is how long a Conversation stays silent after receiving
// a data message before it sends a heartbeat (libotr's value).
const HeartbeatInterval = 60 * time.Second

// queryText follows the query message for people whose client does not
// speak OTR.
const queryText = "\nAn Off-the-Record private conversation has been requested, but your client does not support OTR. See https://otr.cypherpunks.ca/ for more information."

// errorUnreadable is the error message sent for an unreadable data message.
const (
	errorUnreadable = "?OTR Error: You transmitted an unreadable encrypted message."
	errorShort      = "?OTR Error: unreadable message"
)

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
	// FragmentSize is the largest message, in bytes, the transport carries;
	// longer OTR-encoded messages are split into fragments, and query and
	// error messages are shortened to fit. Plaintext messages are never
	// fragmented (a peer without OTR could not reassemble them). 0 means
	// never fragment; otherwise it must be at least 37.
	FragmentSize int
	// Rand is the source of randomness; nil means crypto/rand.Reader.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Received is the outcome of Receive.
type Received struct {
	// Plaintext is the message to show the user, if any: nil for protocol
	// messages, heartbeats and incomplete fragments. It is untrusted text,
	// often HTML from libpurple-based peers.
	Plaintext []byte
	// Encrypted reports whether Plaintext arrived encrypted and
	// authenticated in an OTR data message. When false the user must be
	// told that the message was not private.
	Encrypted bool
	// ToSend are messages to transmit to the peer, in order.
	ToSend [][]byte
	// Events report what happened, in order.
	Events []Event
}

// Conversation is the OTR state for one (our account, peer account, peer
// instance). It does no I/O: callers pass incoming message bodies to
// Receive and outgoing ones to Send, and transmit what they return.
//
// A Conversation is not safe for concurrent use.
type Conversation struct {
	key      *PrivateKey
	policy   Policy
	fragSize int
	rand     io.Reader
	now      func() time.Time
	ourTag   uint32
	theirTag uint32 // 0 until known

	state MsgState
	auth  ake
	sess  *session // non-nil exactly when state == Encrypted
	smp   smp
	frag  reassembler

	scratch []byte // decoded incoming messages

	// the most recent session, kept for display after it ends
	version  int
	theirKey *PublicKey
	ssid     [8]byte

	seenPlaintext bool     // a plaintext message arrived since entering Plaintext
	held          [][]byte // typed under RequireEncryption, sent once encrypted
	oldMACs       []byte   // MAC keys of ended sessions, still to reveal
	lastSent      time.Time
	unanswered    bool // a data message arrived since we last sent one
}

// NewConversation returns a Conversation in the plaintext state.
func NewConversation(cfg Config) (*Conversation, error) {
	if cfg.PrivateKey == nil {
		return nil, errors.New("otr: Config.PrivateKey is required")
	}
	if cfg.FragmentSize != 0 && cfg.FragmentSize <= fragOverheadV3 {
		return nil, fmt.Errorf("otr: Config.FragmentSize %d is below the minimum of %d", cfg.FragmentSize, fragOverheadV3+1)
	}
	c := &Conversation{
		key:      cfg.PrivateKey,
		policy:   cfg.Policy,
		fragSize: cfg.FragmentSize,
		rand:     cfg.Rand,
		now:      cfg.Now,
		ourTag:   cfg.InstanceTag,
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch {
	case c.ourTag == 0:
		var b [4]byte
		for c.ourTag < minInstance {
			if _, err := io.ReadFull(c.rand, b[:]); err != nil {
				return nil, fmt.Errorf("otr: generating instance tag: %w", err)
			}
			c.ourTag = binary.BigEndian.Uint32(b[:])
		}
	case c.ourTag < minInstance:
		return nil, fmt.Errorf("otr: instance tag %#x is below %#x", c.ourTag, minInstance)
	}
	return c, nil
}

// State returns the message state.
func (c *Conversation) State() MsgState { return c.state }

// TheirKey returns the peer's long-term key as authenticated by the current
// or most recent AKE, or nil if no AKE has completed. Compare its
// fingerprint with the one the user trusts.
func (c *Conversation) TheirKey() *PublicKey { return c.theirKey }

// SSID returns the secure session id of the current or most recent
// session (zero before the first AKE). Users may compare it by voice.
func (c *Conversation) SSID() [8]byte { return c.ssid }

// ProtocolVersion returns the protocol version (2 or 3) of the current or
// most recent session, 0 before the first AKE.
func (c *Conversation) ProtocolVersion() int { return c.version }

// InstanceTag returns our instance tag. Persist it per account.
func (c *Conversation) InstanceTag() uint32 { return c.ourTag }

// TheirInstanceTag returns the peer instance this Conversation talks to, 0
// while unknown or with a version 2 peer.
func (c *Conversation) TheirInstanceTag() uint32 { return c.theirTag }

// SMPInProgress reports whether an SMP exchange is under way or a request
// from the peer awaits AnswerSMP.
func (c *Conversation) SMPInProgress() bool { return c.smp.state != smpExpect1 || c.smp.pending }

// QueryMessage returns an OTR query message offering the versions the
// policy allows, followed by a short explanation for people without OTR
// (left out when it would not fit in FragmentSize).
func (c *Conversation) QueryMessage() []byte {
	q := queryString(c.policy)
	if c.fragSize == 0 || len(q)+len(queryText) <= c.fragSize {
		q += queryText
	}
	return []byte(q)
}

// errorMessage returns the OTR error message for an unreadable message,
// shortened if it would not fit in FragmentSize.
func (c *Conversation) errorMessage() []byte {
	if c.fragSize > 0 && len(errorUnreadable) > c.fragSize {
		return []byte(errorShort)
	}
	return []byte(errorUnreadable)
}

// StartAKE asks the peer to start an AKE by returning a query message, as
// libotr does; in the encrypted state this refreshes the session keys.
func (c *Conversation) StartAKE() ([][]byte, error) {
	if !c.policy.enabled() {
		return nil, ErrDisabled
	}
	return [][]byte{c.QueryMessage()}, nil
}

// PendingFragments returns the bytes of an incomplete fragmented message
// the conversation holds (Protocol-v3 "Receiving Fragments"). A caller
// that keeps many conversations uses it to bound their memory.
func (c *Conversation) PendingFragments() int { return len(c.frag.buf) }

// DiscardFragments forgets an incomplete fragmented message and releases
// its memory; the rest of that message will be discarded as it arrives.
func (c *Conversation) DiscardFragments() {
	c.frag.reset()
	c.frag.buf = nil
}

// SetPolicy changes the policy of the conversation, effective for the
// next message sent or received: a user who switches to "always" while a
// private conversation is being set up gets the held-message behaviour of
// RequireEncryption at once. The state and session are not changed.
func (c *Conversation) SetPolicy(p Policy) { c.policy = p }

// Policy returns the conversation's policy.
func (c *Conversation) Policy() Policy { return c.policy }

// Send turns a message typed by the user into the messages to transmit
// (Protocol-v3 "User types a message to be sent"):
//
//   - Plaintext state: the message itself, with the whitespace tag if the
//     policy says so and the peer has not yet replied in plaintext. With
//     RequireEncryption the message is held instead, a query message is
//     returned, and the held messages are sent as soon as the AKE completes.
//   - Encrypted state: one data message (or its fragments).
//   - Finished state: nothing, and ErrFinished.
//
// With PolicyNever the message is returned unchanged. A message containing
// a NUL byte is refused: NUL separates the text from TLV records.
func (c *Conversation) Send(plain []byte) ([][]byte, error) {
	if !c.policy.enabled() {
		return [][]byte{bytes.Clone(plain)}, nil
	}
	if bytes.IndexByte(plain, 0) >= 0 {
		return nil, errors.New("otr: message contains a NUL byte")
	}
	switch c.state {
	case Encrypted:
		msgs, _, err := c.sealMessage(plain, nil, 0)
		return msgs, err
	case Finished:
		return nil, ErrFinished
	}
	if c.policy.has(RequireEncryption) {
		c.held = append(c.held, bytes.Clone(plain))
		return [][]byte{c.QueryMessage()}, nil
	}
	out := bytes.Clone(plain)
	if c.policy.has(SendWhitespaceTag) && !c.seenPlaintext {
		out = append(out, whitespaceTag(c.policy)...)
	}
	return [][]byte{out}, nil
}

// End ends the private conversation (Protocol-v3 "User requests to end an
// OTR conversation"): when encrypted it returns a data message carrying the
// disconnect TLV; in every case the Conversation returns to plaintext.
func (c *Conversation) End() ([][]byte, error) {
	var msgs [][]byte
	if c.state == Encrypted {
		var err error
		msgs, _, err = c.sealMessage(nil, []tlv{{typ: tlvDisconnected}}, flagIgnoreUnreadable)
		if err != nil {
			return nil, err
		}
	}
	c.endSession()
	c.auth.reset()
	c.state = Plaintext
	c.seenPlaintext = false
	return msgs, nil
}

// endSession forgets the session keys and SMP state.
func (c *Conversation) endSession() {
	if c.sess != nil {
		c.sess.wipe()
		c.oldMACs = append(c.oldMACs, c.sess.oldMACs...)
		c.sess = nil
	}
	c.smp.reset()
}

// Heartbeat returns a heartbeat (an empty data message) when one is due:
// the conversation is encrypted, a data message arrived since we last sent
// one, and we have sent nothing for HeartbeatInterval. The heartbeat lets
// the peer rotate keys and forget old ones. Call it periodically, e.g. once
// every few seconds; it returns nothing when no heartbeat is due. Receive
// also adds a heartbeat to its replies when one is due.
func (c *Conversation) Heartbeat() ([][]byte, error) {
	if c.state != Encrypted || !c.heartbeatDue() || !c.unanswered {
		return nil, nil
	}
	msgs, _, err := c.sealMessage(nil, nil, flagIgnoreUnreadable)
	return msgs, err
}

func (c *Conversation) heartbeatDue() bool {
	return c.now().Sub(c.lastSent) >= HeartbeatInterval
}

// ExtraSymmetricKey returns the extra symmetric key of the current sending
// keys (Protocol-v3 "Extra symmetric key") and a data message with TLV 8
// that tells the peer to derive the same key for use (whose meaning the
// application defines) and useData. Protocol version 3 only.
func (c *Conversation) ExtraSymmetricKey(use uint32, useData []byte) (key [32]byte, toSend [][]byte, err error) {
	if c.state != Encrypted {
		return key, nil, ErrNotEncrypted
	}
	if c.sess.version < 3 {
		return key, nil, errors.New("otr: the extra symmetric key needs protocol version 3")
	}
	if len(useData) > 0xffff-4 {
		return key, nil, errors.New("otr: extra symmetric key use data too long")
	}
	v := binary.BigEndian.AppendUint32(nil, use)
	v = append(v, useData...)
	msgs, k, err := c.sealMessage(nil, []tlv{{typ: tlvExtraKey, value: v}}, flagIgnoreUnreadable)
	if err != nil {
		return key, nil, err
	}
	return k.extra, msgs, nil
}

// StartSMP starts the Socialist Millionaires' Protocol to check that the
// peer knows secret, asking question if it is not empty. An SMP exchange
// already under way is aborted first.
func (c *Conversation) StartSMP(question string, secret []byte) ([][]byte, error) {
	if c.state != Encrypted {
		return nil, ErrNotEncrypted
	}
	if strings.IndexByte(question, 0) >= 0 {
		return nil, errors.New("otr: SMP question contains a NUL byte")
	}
	if len(question) > maxQuestion {
		return nil, fmt.Errorf("otr: SMP question longer than %d bytes", maxQuestion)
	}
	var msgs [][]byte
	if c.SMPInProgress() {
		m, _, err := c.sealMessage(nil, []tlv{{typ: tlvSMPAbort}}, flagIgnoreUnreadable)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
	}
	x := smpSecret(c.key.Fingerprint(), c.sess.theirKey.Fingerprint(), c.sess.ssid, secret)
	v, err := c.smp.step1(c.rand, x)
	if err != nil {
		c.smp.reset()
		return nil, err
	}
	t := tlv{typ: tlvSMP1, value: v}
	if question != "" {
		t = tlv{typ: tlvSMP1Q, value: append(append([]byte(question), 0), v...)}
	}
	m, _, err := c.sealMessage(nil, []tlv{t}, flagIgnoreUnreadable)
	if err != nil {
		c.smp.reset()
		return nil, err
	}
	return append(msgs, m...), nil
}

// AnswerSMP answers the peer's SMP request (EventSMPSecretRequested or
// EventSMPQuestion) with the user's secret.
func (c *Conversation) AnswerSMP(secret []byte) ([][]byte, error) {
	if c.state != Encrypted {
		return nil, ErrNotEncrypted
	}
	if !c.smp.pending {
		return nil, ErrNoSMP
	}
	y := smpSecret(c.sess.theirKey.Fingerprint(), c.key.Fingerprint(), c.sess.ssid, secret)
	v, err := c.smp.step2(c.rand, y)
	if err != nil {
		c.smp.reset()
		return nil, err
	}
	msgs, _, err := c.sealMessage(nil, []tlv{{typ: tlvSMP2, value: v}}, flagIgnoreUnreadable)
	if err != nil {
		c.smp.reset()
	}
	return msgs, err
}

// AbortSMP aborts SMP and tells the peer.
func (c *Conversation) AbortSMP() ([][]byte, error) {
	if c.state != Encrypted {
		return nil, ErrNotEncrypted
	}
	c.smp.reset()
	msgs, _, err := c.sealMessage(nil, []tlv{{typ: tlvSMPAbort}}, flagIgnoreUnreadable)
	return msgs, err
}

// sealMessage encrypts text and TLVs in a data message and returns it
// encoded and fragmented, with the keys used.
func (c *Conversation) sealMessage(text []byte, tlvs []tlv, flags byte) ([][]byte, *dataKeys, error) {
	if len(c.oldMACs) > 0 {
		c.sess.oldMACs = append(c.sess.oldMACs, c.oldMACs...)
		c.oldMACs = nil
	}
	bin, k, err := c.sess.seal(c.rand, header{sender: c.ourTag, receiver: c.theirTag}, flags, text, tlvs)
	if err != nil {
		return nil, nil, err
	}
	c.lastSent = c.now()
	c.unanswered = false
	msgs, err := c.wrap(bin)
	return msgs, k, err
}

// wrap encodes a binary message and fragments it if needed.
func (c *Conversation) wrap(bin []byte) ([][]byte, error) {
	enc := encode(bin)
	if c.fragSize == 0 || len(enc) <= c.fragSize {
		return [][]byte{enc}, nil
	}
	version := int(binary.BigEndian.Uint16(bin))
	var sender, receiver uint32
	if version == 3 {
		sender, receiver = binary.BigEndian.Uint32(bin[3:]), binary.BigEndian.Uint32(bin[7:])
	}
	return fragmentMessage(enc, c.fragSize, version, sender, receiver)
}

// emit adds a binary protocol message to out.
func (c *Conversation) emit(out *Received, bin []byte) error {
	if bin == nil {
		return nil
	}
	msgs, err := c.wrap(bin)
	out.ToSend = append(out.ToSend, msgs...)
	return err
}

func (out *Received) event(e Event) { out.Events = append(out.Events, e) }
