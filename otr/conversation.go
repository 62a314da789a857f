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

// Receive processes one incoming message body and returns what to show,
// what to send and what happened. It always returns a non-nil *Received,
// even with an error: its ToSend and Events must still be acted on (for
// instance, an OTR error message for an unreadable data message).
//
// The error is ErrInvalidMessage for every OTR message that is rejected:
// malformed, or failing authentication, decryption or a range check. Such
// a message changes no state. Messages for other instances are reported
// with EventOtherInstance and no error. Other errors come only from the
// random source. With PolicyNever every message is returned as unencrypted
// plaintext.
func (c *Conversation) Receive(msg []byte) (*Received, error) {
	out := new(Received)
	if !c.policy.enabled() {
		if len(msg) > 0 {
			out.Plaintext = bytes.Clone(msg)
		}
		return out, nil
	}
	err := c.receive(out, msg, false)
	return out, err
}

func (c *Conversation) malformed(out *Received) error {
	out.event(Event{Kind: EventMalformed})
	return ErrInvalidMessage
}

// idle reports whether no session or AKE is tied to the peer instance, so
// that a new instance of the peer may take over.
func (c *Conversation) idle() bool { return c.state != Encrypted && c.auth.state == authNone }

// otherInstance reports (and the caller then ignores) a version 3 message
// that is not for this Conversation.
func (c *Conversation) otherInstance(out *Received, sender, receiver uint32) {
	out.event(Event{Kind: EventOtherInstance, SenderInstance: sender, ReceiverInstance: receiver})
}

func (c *Conversation) receive(out *Received, msg []byte, reassembled bool) error {
	k := classify(msg)
	if k != kindFragment {
		c.frag.reset()
	}
	switch k {
	case kindFragment:
		if reassembled {
			return c.malformed(out) // a fragment is never fragmented again
		}
		return c.receiveFragment(out, msg)
	case kindEncoded:
		return c.receiveEncoded(out, msg)
	case kindError:
		out.event(Event{Kind: EventError, Text: parseError(msg)})
		if c.policy.has(ErrorStartAKE) {
			out.ToSend = append(out.ToSend, c.QueryMessage())
		}
		return nil
	case kindQuery:
		v2, v3, _ := parseQuery(msg)
		started, err := c.startAKE(out, v2, v3)
		if !started {
			// No version in common (e.g. a version 1 query): show it.
			out.Plaintext = bytes.Clone(msg)
		}
		return err
	}
	text := msg
	var v2, v3, tagged bool
	if k == kindTagged {
		text, v2, v3, tagged = findWhitespaceTag(msg)
	}
	if len(text) > 0 {
		out.Plaintext = bytes.Clone(text)
		c.seenPlaintext = true
		if c.state != Plaintext || c.policy.has(RequireEncryption) {
			out.event(Event{Kind: EventUnencrypted})
		}
	}
	if tagged && c.policy.has(WhitespaceStartAKE) && c.idle() {
		_, err := c.startAKE(out, v2, v3)
		return err
	}
	return nil
}

// startAKE sends a DH-Commit for the best version both sides allow
// (Protocol-v3 "Receiving a Query Message").
func (c *Conversation) startAKE(out *Received, v2, v3 bool) (bool, error) {
	var version uint16
	switch {
	case v3 && c.policy.has(AllowV3):
		version = 3
	case v2 && c.policy.has(AllowV2):
		version = 2
	default:
		return false, nil
	}
	receiver := c.theirTag
	if version == 2 {
		receiver = 0
	}
	bin, err := c.auth.startCommit(c.rand, version, header{sender: c.ourTag, receiver: receiver})
	if err != nil {
		return true, fmt.Errorf("otr: starting the AKE: %w", err)
	}
	return true, c.emit(out, bin)
}

func (c *Conversation) receiveFragment(out *Received, msg []byte) error {
	f, ok := parseFragment(msg)
	if !ok {
		return c.malformed(out)
	}
	switch f.version {
	case 3:
		if !c.policy.has(AllowV3) {
			return nil
		}
		if f.sender < minInstance || f.receiver != 0 && f.receiver < minInstance {
			return c.malformed(out)
		}
		// Filter by instance tag before reassembly (Protocol-v3 "Receiving
		// Fragments").
		if f.receiver != 0 && f.receiver != c.ourTag || f.sender == c.ourTag ||
			c.theirTag != 0 && f.sender != c.theirTag && !c.idle() {
			c.otherInstance(out, f.sender, f.receiver)
			return nil
		}
	case 2:
		if !c.policy.has(AllowV2) {
			return nil
		}
	}
	whole, done := c.frag.add(f)
	if !done {
		return nil
	}
	return c.receive(out, whole, true)
}

func (c *Conversation) receiveEncoded(out *Received, msg []byte) error {
	bin, ok := decode(msg, c.scratch)
	if !ok {
		return c.malformed(out)
	}
	c.scratch = bin // reused: nothing below keeps a reference to bin
	h, body, ok := parseMessage(bin)
	if !ok {
		return c.malformed(out)
	}
	if h.version == 3 && !c.policy.has(AllowV3) || h.version == 2 && !c.policy.has(AllowV2) {
		return nil // ignored, as Protocol-v3 requires for disallowed versions
	}
	if h.version == 3 {
		if h.sender < minInstance || h.receiver != 0 && h.receiver < minInstance {
			return c.malformed(out)
		}
		// Only a DH-Commit may leave the receiver unspecified; our own
		// instance as the sender means the message was reflected.
		if h.receiver == 0 && h.typ != msgDHCommit || h.receiver != 0 && h.receiver != c.ourTag || h.sender == c.ourTag {
			c.otherInstance(out, h.sender, h.receiver)
			return nil
		}
		if c.theirTag != 0 && h.sender != c.theirTag && !(c.idle() && h.typ == msgDHCommit) {
			c.otherInstance(out, h.sender, h.receiver)
			return nil
		}
	}
	reply := header{version: h.version, sender: c.ourTag, receiver: h.sender}
	switch h.typ {
	case msgDHCommit:
		var m dhCommit
		if !m.unmarshal(body) {
			return c.malformed(out)
		}
		bin, err := c.auth.handleCommit(c.rand, h.version, reply, &m)
		if err != nil {
			return err
		}
		if h.version == 3 {
			c.theirTag = h.sender
		}
		return c.emit(out, bin)
	case msgDHKey:
		var m dhKey
		if !m.unmarshal(body) {
			return c.malformed(out)
		}
		bin, err := c.auth.handleDHKey(c.rand, reply, &m, c.key)
		if err != nil {
			return err
		}
		if bin != nil && h.version == 3 {
			c.theirTag = h.sender
		}
		return c.emit(out, bin)
	case msgRevealSig:
		var m revealSig
		if !m.unmarshal(body) {
			return c.malformed(out)
		}
		bin, res, err := c.auth.handleRevealSig(c.rand, reply, &m, c.key)
		if err != nil || res == nil {
			return err
		}
		if err := c.emit(out, bin); err != nil {
			return err
		}
		return c.goEncrypted(out, res, h.sender)
	case msgSig:
		var m sigMsg
		if !m.unmarshal(body) {
			return c.malformed(out)
		}
		res, err := c.auth.handleSig(h, &m)
		if err != nil || res == nil {
			return err
		}
		return c.goEncrypted(out, res, h.sender)
	case msgData:
		return c.receiveData(out, h, bin)
	}
	return c.malformed(out)
}

// goEncrypted installs the session an AKE produced and sends any held
// messages.
func (c *Conversation) goEncrypted(out *Received, res *akeResult, theirTag uint32) error {
	kind := EventGoneSecure
	if c.state == Encrypted {
		kind = EventRefreshed
	}
	c.endSession()
	c.sess = newSession(res)
	c.state = Encrypted
	c.version = int(res.version)
	c.theirKey = res.theirKey
	c.ssid = res.ssid
	c.theirTag = 0 // version 2 has no instance tags
	if res.version == 3 {
		c.theirTag = theirTag
	}
	c.lastSent = c.now() // no heartbeat right away
	out.event(Event{Kind: kind})
	held := c.held
	c.held = nil
	for i, m := range held {
		msgs, _, err := c.sealMessage(m, nil, 0)
		if err != nil {
			c.held = held[i:]
			return err
		}
		clear(m)
		out.ToSend = append(out.ToSend, msgs...)
	}
	return nil
}

// receiveData implements "Receiving a Data Message".
func (c *Conversation) receiveData(out *Received, h header, bin []byte) error {
	var flags byte
	if len(bin) > h.len() {
		flags = bin[h.len()]
	}
	var plain []byte
	var keys *dataKeys
	err := ErrInvalidMessage
	if c.state == Encrypted {
		plain, keys, err = c.sess.open(h, bin)
	}
	if err != nil {
		if flags&flagIgnoreUnreadable != 0 {
			return nil
		}
		out.event(Event{Kind: EventUnreadable})
		out.ToSend = append(out.ToSend, c.errorMessage())
		return ErrInvalidMessage
	}
	c.unanswered = true
	text, tlvs := splitPlaintext(plain)
	if len(text) > 0 {
		out.Plaintext = text
		out.Encrypted = true
	}
	heartbeat := len(text) == 0
	disconnect := false
	for _, t := range tlvs {
		switch t.typ {
		case tlvPadding:
			continue
		case tlvDisconnected:
			disconnect = true
		case tlvSMP1, tlvSMP1Q, tlvSMP2, tlvSMP3, tlvSMP4, tlvSMPAbort:
			if !disconnect {
				c.receiveSMP(out, t)
			}
		case tlvExtraKey:
			if len(t.value) >= 4 && c.sess.version >= 3 {
				out.event(Event{Kind: EventExtraKey, Use: binary.BigEndian.Uint32(t.value),
					UseData: bytes.Clone(t.value[4:]), Key: keys.extra})
			}
		}
		heartbeat = false
	}
	if heartbeat {
		out.event(Event{Kind: EventHeartbeat})
	}
	if disconnect {
		c.endSession()
		c.auth.reset()
		c.state = Finished
		out.event(Event{Kind: EventPeerEnded})
		return nil
	}
	if c.heartbeatDue() {
		msgs, _, err := c.sealMessage(nil, nil, flagIgnoreUnreadable)
		if err != nil {
			return err
		}
		out.ToSend = append(out.ToSend, msgs...)
	}
	return nil
}

// receiveSMP handles one SMP TLV (Protocol-v3 "The SMP state machine").
// A message out of order or failing verification aborts SMP.
func (c *Conversation) receiveSMP(out *Received, t tlv) {
	abort := func(reason string) {
		c.smp.reset()
		out.event(Event{Kind: EventSMPCheated, Text: reason})
		msgs, _, err := c.sealMessage(nil, []tlv{{typ: tlvSMPAbort}}, flagIgnoreUnreadable)
		if err == nil {
			out.ToSend = append(out.ToSend, msgs...)
		}
	}
	const outOfOrder, failed = "SMP message out of order", "SMP message failed verification"
	reply := func(typ uint16, v []byte) {
		msgs, _, err := c.sealMessage(nil, []tlv{{typ: typ, value: v}}, flagIgnoreUnreadable)
		if err != nil {
			c.smp.reset()
			return
		}
		out.ToSend = append(out.ToSend, msgs...)
	}
	switch t.typ {
	case tlvSMPAbort:
		c.smp.reset()
		out.event(Event{Kind: EventSMPAborted})
	case tlvSMP1, tlvSMP1Q:
		if c.smp.state != smpExpect1 {
			abort(outOfOrder)
			return
		}
		v, question := t.value, ""
		if t.typ == tlvSMP1Q {
			i := bytes.IndexByte(v, 0)
			if i < 0 {
				abort(failed)
				return
			}
			question, v = string(v[:i]), v[i+1:]
		}
		if err := c.smp.receive1(v, question); err != nil {
			abort(failed)
			return
		}
		if t.typ == tlvSMP1Q {
			out.event(Event{Kind: EventSMPQuestion, Text: question})
		} else {
			out.event(Event{Kind: EventSMPSecretRequested})
		}
	case tlvSMP2:
		if c.smp.state != smpExpect2 {
			abort(outOfOrder)
			return
		}
		v, err := c.smp.step3(c.rand, t.value)
		if err != nil {
			abort(failed)
			return
		}
		reply(tlvSMP3, v)
	case tlvSMP3:
		if c.smp.state != smpExpect3 {
			abort(outOfOrder)
			return
		}
		v, match, err := c.smp.step4(c.rand, t.value)
		if err != nil {
			abort(failed)
			return
		}
		reply(tlvSMP4, v)
		c.smpResult(out, match)
	case tlvSMP4:
		if c.smp.state != smpExpect4 {
			abort(outOfOrder)
			return
		}
		match, err := c.smp.receive4(t.value)
		if err != nil {
			abort(failed)
			return
		}
		c.smpResult(out, match)
	}
}

func (c *Conversation) smpResult(out *Received, match bool) {
	if match {
		out.event(Event{Kind: EventSMPSucceeded})
	} else {
		out.event(Event{Kind: EventSMPFailed})
	}
}
