package otr

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

func secureDuo(t *testing.T, pa, pb Policy) *duo {
	t.Helper()
	d := newDuo(t, Config{Policy: pa}, Config{Policy: pb})
	d.ake(d.a)
	return d
}

func TestMessagesWithKeyRotation(t *testing.T) {
	for _, pol := range []Policy{PolicyManual, AllowV2} {
		d := secureDuo(t, pol, pol)
		var aIDs, bIDs []uint32
		for i := 0; i < 8; i++ {
			m := parseDataMsg(t, d.sendPrivately(d.a, fmt.Sprintf("ping %d ✓ <b>&amp;</b>", i))[0])
			aIDs = append(aIDs, m.senderKeyID)
			m = parseDataMsg(t, d.sendPrivately(d.b, fmt.Sprintf("pong %d", i))[0])
			bIDs = append(bIDs, m.senderKeyID)
		}
		// Alternating messages acknowledge each other's newest key: each side
		// moves to a new key every round.
		for i := 1; i < len(aIDs); i++ {
			if aIDs[i] != aIDs[i-1]+1 || bIDs[i] != bIDs[i-1]+1 {
				t.Fatalf("key ids: alice %v bob %v", aIDs, bIDs)
			}
		}
		// A one-way run keeps the keys and counts up.
		var last uint64
		var id uint32
		for i := 0; i < 5; i++ {
			m := parseDataMsg(t, d.sendPrivately(d.a, "monologue")[0])
			ctr := binary.BigEndian.Uint64(m.ctr[:])
			if i > 0 && (ctr != last+1 || m.senderKeyID != id) {
				t.Fatalf("counter %d after %d, key %d after %d", ctr, last, m.senderKeyID, id)
			}
			last, id = ctr, m.senderKeyID
		}
		// Only the current keys are cached.
		if n := len(d.a.conv.sess.keys); n > 4 {
			t.Fatalf("%d key pairs cached", n)
		}
		d.noErrors()
	}
}

func TestEmptyAndLongMessages(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	long := strings.Repeat("0123456789", 5000)
	d.sendPrivately(d.a, long)
	// an empty message is a heartbeat: nothing shown
	msgs, err := d.a.conv.Send(nil)
	if err != nil {
		t.Fatal(err)
	}
	n := len(d.b.texts)
	d.deliver(d.a, msgs)
	if len(d.b.texts) != n || !d.b.has(EventHeartbeat) {
		t.Fatal("empty message shown or not a heartbeat")
	}
	if _, err := d.a.conv.Send([]byte("nul\x00inside")); err == nil {
		t.Fatal("NUL accepted")
	}
}

func TestInFlightAcrossRotation(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	d.sendPrivately(d.a, "x")
	d.sendPrivately(d.b, "y")
	// Alice sends two messages; Bob answers the first before reading the
	// second, which still uses Alice's previous key.
	m1, _ := d.a.conv.Send([]byte("first"))
	m2, _ := d.a.conv.Send([]byte("second"))
	receiveOne(t, d.b, m1[0])
	d.sendPrivately(d.b, "reply")
	r, err := receiveOne(t, d.b, m2[0])
	if err != nil || string(r.Plaintext) != "second" {
		t.Fatalf("in-flight message: %q %v", r.Plaintext, err)
	}
	d.sendPrivately(d.a, "z")
	d.noErrors()
}

func TestReplayAndReorderRejected(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	m := d.sendPrivately(d.a, "once")
	r, err := receiveOne(t, d.b, m[0])
	if !isInvalid(err) || r.Plaintext != nil || len(r.Events) != 1 || r.Events[0].Kind != EventUnreadable ||
		len(r.ToSend) != 1 || !bytes.HasPrefix(r.ToSend[0], []byte("?OTR Error:")) {
		t.Fatalf("replay: %q %v %+v %q", r.Plaintext, err, r.Events, r.ToSend)
	}
	m1, _ := d.a.conv.Send([]byte("one"))
	m2, _ := d.a.conv.Send([]byte("two"))
	if r, err := receiveOne(t, d.b, m2[0]); err != nil || string(r.Plaintext) != "two" {
		t.Fatal(err)
	}
	if _, err := receiveOne(t, d.b, m1[0]); !isInvalid(err) {
		t.Fatalf("older counter accepted: %v", err)
	}
	d.b.errs = nil
	d.sendPrivately(d.a, "still fine")
	d.sendPrivately(d.b, "and back")
}

// forgeData builds a data message from s with its current sending keys and
// a valid MAC, after letting mod change the fields.
func forgeData(t testing.TB, s *side, text string, mod func(h *header, m *dataMsg)) []byte {
	t.Helper()
	sess := s.conv.sess
	k, err := sess.sendKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.sendCtr++
	m := &dataMsg{senderKeyID: sess.ourPrev.id, receiverKeyID: sess.theirCur.id, nextDH: sess.ourCur.pub.Bytes()}
	binary.BigEndian.PutUint64(m.ctr[:], k.sendCtr)
	h := header{version: sess.version, typ: msgData, sender: s.conv.ourTag, receiver: s.conv.theirTag}
	if mod != nil {
		mod(&h, m)
	}
	var iv [16]byte
	copy(iv[:], m.ctr[:])
	m.enc = make([]byte, len(text))
	aesCTR(k.sendAES[:], &iv, m.enc, []byte(text))
	b := appendDataPrefix(appendHeader(nil, h), m)
	mac := hmac.New(sha1.New, k.sendMAC[:])
	mac.Write(b)
	m.mac = mac.Sum(nil)
	return encode(m.marshal(h))
}

func TestDataNegative(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	d.sendPrivately(d.a, "warm up")
	d.sendPrivately(d.b, "warm up")
	b := d.b
	check := func(name string, msg []byte) {
		t.Helper()
		before := b.conv.sess.theirKeyID
		beforeOurs := b.conv.sess.ourKeyID
		r, err := receiveOne(t, b, msg)
		if !isInvalid(err) || r.Plaintext != nil || b.conv.State() != Encrypted {
			t.Fatalf("%s: %q %v", name, r.Plaintext, err)
		}
		if errors.Unwrap(err) != nil || err.Error() != ErrInvalidMessage.Error() {
			t.Fatalf("%s: error is not the opaque one: %v", name, err)
		}
		if b.conv.sess.theirKeyID != before || b.conv.sess.ourKeyID != beforeOurs {
			t.Fatalf("%s: key state changed", name)
		}
	}
	// sanity: the forger makes messages that are accepted
	if r, err := receiveOne(t, b, forgeData(t, d.a, "forged but valid", nil)); err != nil || string(r.Plaintext) != "forged but valid" {
		t.Fatalf("forger broken: %q %v", r.Plaintext, err)
	}
	for name, f := range map[string]func(bin []byte, macAt int) []byte{
		"bad MAC":             func(bin []byte, macAt int) []byte { bin[macAt+3] ^= 1; return bin },
		"tampered ciphertext": func(bin []byte, macAt int) []byte { bin[macAt-1] ^= 1; return bin },
		"tampered flags":      func(bin []byte, macAt int) []byte { bin[11] ^= 2; return bin },
		"tampered next key":   func(bin []byte, macAt int) []byte { bin[25] ^= 1; return bin },
		"tampered counter":    func(bin []byte, macAt int) []byte { bin[macAt-len("genuine")-5] ^= 1; return bin },
		"truncated":           func(bin []byte, macAt int) []byte { return bin[:len(bin)-3] },
	} {
		good, _ := d.a.conv.Send([]byte("genuine"))
		macAt := len(parseDataMsg(t, good[0]).authenticated)
		check(name, rewrite(t, good[0], func(bin []byte) []byte { return f(bin, macAt) }))
		// the genuine message is still accepted, once
		if r, err := receiveOne(t, b, good[0]); err != nil || string(r.Plaintext) != "genuine" {
			t.Fatalf("genuine message after %s: %v", name, err)
		}
	}
	check("counter zero", forgeData(t, d.a, "x", func(h *header, m *dataMsg) { m.ctr = [8]byte{} }))
	d.sendPrivately(d.a, "after counter zero")
	check("unknown sender key", forgeData(t, d.a, "x", func(h *header, m *dataMsg) { m.senderKeyID += 5 }))
	check("unknown recipient key", forgeData(t, d.a, "x", func(h *header, m *dataMsg) { m.receiverKeyID += 5 }))
	check("recipient key 0", forgeData(t, d.a, "x", func(h *header, m *dataMsg) { m.receiverKeyID = 0 }))
	for _, v := range []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(groupP, big.NewInt(1)), groupP} {
		// next_dh is used (and checked) when the sender key id is Bob's newest
		d.sendPrivately(d.b, "rotate")
		check(fmt.Sprintf("next key %x", v), forgeData(t, d.a, "x", func(h *header, m *dataMsg) {
			if m.senderKeyID != b.conv.sess.theirKeyID {
				t.Fatal("test setup: next_dh would not be used")
			}
			m.nextDH = v.Bytes()
		}))
		d.sendPrivately(d.a, "after a bad next key")
	}
	// a version 2 data message in a version 3 session
	check("wrong version", forgeData(t, d.a, "x", func(h *header, m *dataMsg) { h.version = 2 }))
	// non-minimal MPI for next_dh
	nm := rewrite(t, forgeData(t, d.a, "x", nil), func(bin []byte) []byte {
		n := binary.BigEndian.Uint32(bin[20:])
		out := append(bin[:20:20], 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(out[20:], n+1)
		return append(out, bin[24:]...)
	})
	check("non-minimal MPI", nm)
	d.b.clear()
	d.sendPrivately(d.b, "bob still talks")
	d.sendPrivately(d.a, "alice too")
	d.noErrors()
}

func TestInstanceTags(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	b := d.b
	ok, _ := d.a.conv.Send([]byte("ok"))
	for name, f := range map[string]func([]byte) []byte{
		"other receiver": func(bin []byte) []byte { binary.BigEndian.PutUint32(bin[7:], b.conv.ourTag+1); return bin },
		"other sender":   func(bin []byte) []byte { binary.BigEndian.PutUint32(bin[3:], d.a.conv.ourTag+1); return bin },
		"receiver 0":     func(bin []byte) []byte { binary.BigEndian.PutUint32(bin[7:], 0); return bin },
	} {
		r, err := receiveOne(t, b, rewrite(t, ok[0], f))
		if err != nil || len(r.Events) != 1 || r.Events[0].Kind != EventOtherInstance || len(r.ToSend) != 0 {
			t.Fatalf("%s: %v %+v", name, err, r.Events)
		}
	}
	for name, f := range map[string]func([]byte) []byte{
		"sender below 0x100":   func(bin []byte) []byte { binary.BigEndian.PutUint32(bin[3:], 0xff); return bin },
		"receiver below 0x100": func(bin []byte) []byte { binary.BigEndian.PutUint32(bin[7:], 0x42); return bin },
	} {
		r, err := receiveOne(t, b, rewrite(t, ok[0], f))
		if !isInvalid(err) || len(r.Events) != 1 || r.Events[0].Kind != EventMalformed {
			t.Fatalf("%s: %v %+v", name, err, r.Events)
		}
	}
	// InstanceTags reads them without touching state
	s, rcv, found := InstanceTags(ok[0])
	if !found || s != d.a.conv.ourTag || rcv != b.conv.ourTag {
		t.Fatalf("InstanceTags = %x %x %v", s, rcv, found)
	}
	if _, _, found := InstanceTags([]byte("?OTRv23?")); found {
		t.Fatal("tags in a query")
	}
	if r, err := receiveOne(t, b, ok[0]); err != nil || string(r.Plaintext) != "ok" {
		t.Fatal("genuine message rejected after the others")
	}
	if _, err := NewConversation(Config{PrivateKey: aliceKey(t), InstanceTag: 0x99}); err == nil {
		t.Fatal("instance tag below 0x100 accepted")
	}
	c, err := NewConversation(Config{PrivateKey: aliceKey(t)})
	if err != nil || c.InstanceTag() < 0x100 {
		t.Fatalf("generated tag %x %v", c.InstanceTag(), err)
	}
	c2, _ := NewConversation(Config{PrivateKey: aliceKey(t), InstanceTag: c.InstanceTag()})
	if c2.InstanceTag() != c.InstanceTag() {
		t.Fatal("persisted tag not used")
	}
}

// TestMultipleInstances shows the routing the package documentation
// describes: one Conversation per peer instance, picked by InstanceTags.
func TestMultipleInstances(t *testing.T) {
	alice := newSide(t, "alice", aliceKey(t), Config{Policy: PolicyManual})
	bob1 := newSide(t, "bob1", bobKey(t), Config{Policy: PolicyManual})
	bob2 := newSide(t, "bob2", bobKey(t), Config{Policy: PolicyManual, InstanceTag: bob1.conv.ourTag + 1})
	// Alice's client: a Conversation per Bob instance, plus a fresh one for
	// messages from instances not seen yet.
	convs := map[uint32]*Conversation{}
	route := func(msg []byte) *Conversation {
		if s, _, ok := InstanceTags(msg); ok {
			if c := convs[s]; c != nil {
				return c
			}
			c, err := NewConversation(Config{PrivateKey: aliceKey(t), Policy: PolicyManual, InstanceTag: alice.conv.ourTag, Now: alice.clock.now})
			if err != nil {
				t.Fatal(err)
			}
			convs[s] = c
			return c
		}
		return alice.conv
	}
	// Alice's query reaches both of Bob's instances (the server copies it).
	q, _ := alice.conv.StartAKE()
	type hop struct {
		toAlice bool
		bob     *side
		msg     []byte
	}
	var queue []hop
	for _, b := range []*side{bob1, bob2} {
		r, _ := receiveOne(t, b, q[0])
		for _, m := range r.ToSend {
			queue = append(queue, hop{true, b, m})
		}
	}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h.toAlice {
			r, err := route(h.msg).Receive(h.msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Events {
				if e.Kind == EventOtherInstance {
					t.Fatal("routing failed")
				}
			}
			for _, m := range r.ToSend {
				queue = append(queue, hop{false, h.bob, m})
			}
			continue
		}
		// the server delivers Alice's replies to both instances; each ignores
		// what is addressed to the other
		for _, b := range []*side{bob1, bob2} {
			r, err := receiveOne(t, b, h.msg)
			if err != nil {
				t.Fatal(err)
			}
			if b != h.bob {
				if len(r.ToSend) != 0 || len(r.Events) != 1 || r.Events[0].Kind != EventOtherInstance {
					t.Fatalf("%s handled a message for the other instance: %+v", b.name, r.Events)
				}
				continue
			}
			for _, m := range r.ToSend {
				queue = append(queue, hop{true, b, m})
			}
		}
	}
	for _, b := range []*side{bob1, bob2} {
		c := convs[b.conv.ourTag]
		if c == nil || c.State() != Encrypted || b.conv.State() != Encrypted || c.SSID() != b.conv.SSID() {
			t.Fatalf("%s: no private conversation", b.name)
		}
	}
	if convs[bob1.conv.ourTag].SSID() == convs[bob2.conv.ourTag].SSID() {
		t.Fatal("the two instances share a session")
	}
}

func TestMACKeyReveal(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	type sent struct {
		from *side
		m    *dataMsg
	}
	var log []sent
	say := func(s *side, text string) {
		for _, msg := range d.sendPrivately(s, text) {
			log = append(log, sent{s, parseDataMsg(t, msg)})
		}
	}
	for i := 0; i < 6; i++ {
		say(d.a, "a")
		say(d.a, "a again")
		say(d.b, "b")
	}
	revealed := 0
	for i, s := range log {
		for off := 0; off+20 <= len(s.m.oldMACs); off += 20 {
			key := s.m.oldMACs[off : off+20]
			revealed++
			// a revealed key is a receiving key: it authenticated an earlier
			// message from the other side...
			used := false
			for _, e := range log[:i] {
				if e.from != s.from && macOK(key, e.m) {
					used = true
				}
			}
			if !used {
				t.Fatalf("message %d reveals a key that authenticated nothing", i)
			}
			// ...and no later message uses it
			for _, e := range log[i:] {
				if e.from != s.from && macOK(key, e.m) {
					t.Fatalf("message %d reveals a MAC key still in use", i)
				}
			}
		}
		if len(s.m.oldMACs)%20 != 0 {
			t.Fatal("revealed keys not a multiple of 20 bytes")
		}
	}
	if revealed < 8 {
		t.Fatalf("only %d MAC keys revealed over %d messages", revealed, len(log))
	}
}

func macOK(key []byte, m *dataMsg) bool {
	h := hmac.New(sha1.New, key)
	h.Write(m.authenticated)
	return hmac.Equal(h.Sum(nil), m.mac)
}

func TestIgnoreUnreadable(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	hb := forgeData(t, d.a, "", func(h *header, m *dataMsg) { m.flags = flagIgnoreUnreadable })
	plain := forgeData(t, d.a, "hello", nil)
	// a third party without the session keys
	c := newSide(t, "carol", bobKey(t), Config{Policy: PolicyManual, InstanceTag: d.b.conv.ourTag})
	r, err := receiveOne(t, c, hb)
	if err != nil || len(r.Events) != 0 || len(r.ToSend) != 0 {
		t.Fatalf("IGNORE_UNREADABLE: %v %+v %q", err, r.Events, r.ToSend)
	}
	r, err = receiveOne(t, c, plain)
	if !isInvalid(err) || len(r.Events) != 1 || r.Events[0].Kind != EventUnreadable || len(r.ToSend) != 1 ||
		!bytes.HasPrefix(r.ToSend[0], []byte("?OTR Error:")) {
		t.Fatalf("unreadable: %v %+v %q", err, r.Events, r.ToSend)
	}
	// with the flag and a bad MAC in an encrypted session: ignored too
	bad := rewrite(t, hb, func(bin []byte) []byte { bin[len(bin)-5] ^= 1; return bin })
	r, err = receiveOne(t, d.b, bad)
	if err != nil || len(r.Events) != 0 || len(r.ToSend) != 0 {
		t.Fatalf("IGNORE_UNREADABLE bad MAC: %v %+v", err, r.Events)
	}
	// heartbeats, SMP and disconnect messages carry the flag
	hbs, _ := d.a.conv.End()
	if m := parseDataMsg(t, hbs[0]); m.flags != flagIgnoreUnreadable {
		t.Fatal("disconnect message without IGNORE_UNREADABLE")
	}
}

func TestHeartbeat(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	d.sendPrivately(d.a, "hi")
	// nothing due right after
	if m, err := d.b.conv.Heartbeat(); err != nil || m != nil {
		t.Fatalf("early heartbeat: %q %v", m, err)
	}
	d.b.clock.advance(HeartbeatInterval - time.Second)
	if m, _ := d.b.conv.Heartbeat(); m != nil {
		t.Fatal("heartbeat before the interval")
	}
	d.b.clock.advance(time.Second)
	m, err := d.b.conv.Heartbeat()
	if err != nil || len(m) != 1 {
		t.Fatalf("no heartbeat after %v: %v", HeartbeatInterval, err)
	}
	if dm := parseDataMsg(t, m[0]); dm.flags != flagIgnoreUnreadable {
		t.Fatal("heartbeat without IGNORE_UNREADABLE")
	}
	oldKey := d.a.conv.sess.ourKeyID
	n := len(d.a.texts)
	d.deliver(d.b, m)
	if len(d.a.texts) != n || !d.a.has(EventHeartbeat) {
		t.Fatal("heartbeat shown or not reported")
	}
	if d.a.conv.sess.ourKeyID != oldKey+1 {
		t.Fatal("heartbeat did not let alice rotate keys")
	}
	// nothing new received: no further heartbeat
	d.b.clock.advance(10 * HeartbeatInterval)
	if m, _ := d.b.conv.Heartbeat(); m != nil {
		t.Fatal("heartbeat without anything to acknowledge")
	}
	// Receive answers with a heartbeat when we have been silent too long
	d.a.clock.advance(2 * HeartbeatInterval)
	msgs, _ := d.b.conv.Send([]byte("after a while"))
	r, err := receiveOne(t, d.a, msgs[0])
	if err != nil || string(r.Plaintext) != "after a while" || len(r.ToSend) != 1 {
		t.Fatalf("no heartbeat with the reply: %v %d", err, len(r.ToSend))
	}
	if !bytes.Equal(mustDecrypt(t, d.b, r.ToSend[0]), nil) {
		t.Fatal("heartbeat not empty")
	}
	// not in plaintext
	if _, err := d.a.conv.End(); err != nil {
		t.Fatal(err)
	}
	if m, err := d.a.conv.Heartbeat(); m != nil || err != nil {
		t.Fatal("heartbeat in plaintext")
	}
}

func mustDecrypt(t testing.TB, s *side, msg []byte) []byte {
	t.Helper()
	r, err := receiveOne(t, s, msg)
	if err != nil {
		t.Fatal(err)
	}
	return r.Plaintext
}

func TestDisconnect(t *testing.T) {
	d := secureDuo(t, PolicyOpportunistic, PolicyOpportunistic)
	d.sendPrivately(d.a, "bye")
	end, err := d.a.conv.End()
	if err != nil || len(end) != 1 || d.a.conv.State() != Plaintext {
		t.Fatalf("End: %v %v", err, d.a.conv.State())
	}
	if _, tlvs := splitPlaintext(d.b.decryptPeek(t, end[0])); len(tlvs) != 1 || tlvs[0].typ != tlvDisconnected {
		t.Fatalf("disconnect TLVs %+v", tlvs)
	}
	d.deliver(d.a, end)
	if d.b.conv.State() != Finished || !d.b.has(EventPeerEnded) || len(d.b.texts) != 1 {
		t.Fatalf("bob: %v %v", d.b.conv.State(), d.b.events)
	}
	// FINISHED refuses to send
	m, err := d.b.conv.Send([]byte("are you there?"))
	if !errors.Is(err, ErrFinished) || m != nil {
		t.Fatalf("Send in Finished: %q %v", m, err)
	}
	// the keys are gone: a late data message is unreadable
	if d.b.conv.sess != nil {
		t.Fatal("keys kept in Finished")
	}
	// Alice is in plaintext: her messages go out as plaintext, tagged again
	m, _ = d.a.conv.Send([]byte("plain again"))
	if !bytes.HasPrefix(m[0], []byte("plain again")) || !bytes.Contains(m[0], wsBase) {
		t.Fatalf("after End: %q", m[0])
	}
	// Bob ends too, and talks in plaintext
	if m, err := d.b.conv.End(); err != nil || m != nil || d.b.conv.State() != Plaintext {
		t.Fatal("End in Finished")
	}
	if m, err := d.b.conv.End(); err != nil || m != nil {
		t.Fatal("End in Plaintext")
	}
	// and a new AKE works
	d.a.errs, d.b.errs = nil, nil
	d.ake(d.b)
	d.sendPrivately(d.a, "again")
}

// decryptPeek decrypts a data message addressed to s without changing s:
// it works on a copy of the session keys.
func (s *side) decryptPeek(t testing.TB, msg []byte) []byte {
	t.Helper()
	m := parseDataMsg(t, msg)
	for _, k := range s.conv.sess.keys {
		if macOK(k.recvMAC[:], m) {
			out := make([]byte, len(m.enc))
			var iv [16]byte
			copy(iv[:], m.ctr[:])
			aesCTR(k.recvAES[:], &iv, out, m.enc)
			return out
		}
	}
	sess := s.conv.sess
	var ours *dhKeyPair
	if m.receiverKeyID == sess.ourKeyID {
		ours = sess.ourCur
	} else {
		ours = sess.ourPrev
	}
	theirs := sess.theirCur
	if m.senderKeyID != theirs.id {
		theirs = sess.theirPrev
	}
	sec, err := sharedSecret(theirs.pub, ours.priv)
	if err != nil {
		t.Fatal(err)
	}
	k := newDataKeys(ours.id, theirs.id, ours.pub, theirs.pub, sec)
	out := make([]byte, len(m.enc))
	var iv [16]byte
	copy(iv[:], m.ctr[:])
	aesCTR(k.recvAES[:], &iv, out, m.enc)
	return out
}

func TestRequireEncryption(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyAlways}, Config{Policy: PolicyManual})
	var queries [][]byte
	for _, s := range []string{"secret one", "secret two"} {
		m, err := d.a.conv.Send([]byte(s))
		if err != nil || len(m) != 1 || !bytes.HasPrefix(m[0], []byte("?OTRv23?")) || bytes.Contains(m[0], []byte("secret")) {
			t.Fatalf("Send under RequireEncryption: %q %v", m, err)
		}
		queries = append(queries, m...)
	}
	d.deliver(d.a, queries[:1])
	d.checkSecure()
	if len(d.b.texts) != 2 || d.b.texts[0] != "secret one" || d.b.texts[1] != "secret two" || !d.b.enc[0] || !d.b.enc[1] {
		t.Fatalf("held messages: %q %v", d.b.texts, d.b.enc)
	}
	for _, m := range d.a.sent {
		if bytes.Contains(m, []byte("secret")) {
			t.Fatal("plaintext leaked")
		}
	}
	// a plaintext message to alice is flagged
	r, _ := receiveOne(t, d.a, []byte("psst"))
	if string(r.Plaintext) != "psst" || r.Encrypted || len(r.Events) != 1 || r.Events[0].Kind != EventUnencrypted {
		t.Fatalf("plaintext under RequireEncryption: %+v", r)
	}
	d.noErrors()
}

func TestExtraSymmetricKey(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	for i, s := range []*side{d.a, d.b, d.a} {
		key, msgs, err := s.conv.ExtraSymmetricKey(uint32(i+1), []byte("file.txt"))
		if err != nil {
			t.Fatal(err)
		}
		to := d.other(s)
		n := len(to.events)
		d.deliver(s, msgs)
		var e *Event
		for j := n; j < len(to.events); j++ {
			if to.events[j].Kind == EventExtraKey {
				e = &to.events[j]
			}
		}
		if e == nil || e.Key != key || e.Use != uint32(i+1) || string(e.UseData) != "file.txt" || key == [32]byte{} {
			t.Fatalf("extra key event %+v, key %x", e, key)
		}
	}
	// the key is h2(0xFF) of the sending keys' shared secret
	k, err := d.a.conv.sess.sendKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec, _ := sharedSecret(d.a.conv.sess.theirCur.pub, d.a.conv.sess.ourPrev.priv)
	if h2(0xff, sec) != k.extra {
		t.Fatal("extra key is not h2(0xFF)")
	}
	d2 := secureDuo(t, AllowV2, AllowV2)
	if _, _, err := d2.a.conv.ExtraSymmetricKey(1, nil); err == nil {
		t.Fatal("extra key in a v2 session")
	}
	if _, _, err := newSide(t, "x", aliceKey(t), Config{Policy: PolicyManual}).conv.ExtraSymmetricKey(1, nil); !errors.Is(err, ErrNotEncrypted) {
		t.Fatal("extra key without a session")
	}
}

func TestUnencryptedWhileEncrypted(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	r, err := receiveOne(t, d.b, []byte("injected plaintext"))
	if err != nil || string(r.Plaintext) != "injected plaintext" || r.Encrypted || len(r.Events) != 1 || r.Events[0].Kind != EventUnencrypted {
		t.Fatalf("%+v %v", r, err)
	}
	// whitespace-tagged plaintext does not restart the AKE while encrypted
	tagged := append([]byte("x"), whitespaceTag(PolicyManual)...)
	d2 := secureDuo(t, PolicyOpportunistic, PolicyOpportunistic)
	r, _ = receiveOne(t, d2.b, tagged)
	if len(r.ToSend) != 0 || string(r.Plaintext) != "x" {
		t.Fatalf("tag while encrypted: %q %q", r.ToSend, r.Plaintext)
	}
}

// A policy changed on a live conversation applies at once: switched to
// "always" while the AKE is under way, a message is held, never sent in
// the clear.
func TestSetPolicyOnLiveConversation(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyOpportunistic &^ SendWhitespaceTag}, Config{Policy: PolicyManual})
	query := d.a.conv.QueryMessage()
	d.a.conv.SetPolicy(PolicyAlways)
	if d.a.conv.Policy() != PolicyAlways {
		t.Fatalf("policy %v", d.a.conv.Policy())
	}
	m, err := d.a.conv.Send([]byte("held secret"))
	if err != nil || len(m) != 1 || !bytes.HasPrefix(m[0], []byte("?OTRv")) || bytes.Contains(m[0], []byte("secret")) {
		t.Fatalf("Send after switching to always: %q %v", m, err)
	}
	d.deliver(d.a, [][]byte{query})
	d.checkSecure()
	if len(d.b.texts) != 1 || d.b.texts[0] != "held secret" || !d.b.enc[0] {
		t.Fatalf("held message: %q %v", d.b.texts, d.b.enc)
	}
	d.noErrors()
}
