package otr

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

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
