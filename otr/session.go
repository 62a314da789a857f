package otr

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"io"
	"math/big"
	"slices"
)

// theirDH is one of the peer's DH public keys.
type theirDH struct {
	id  uint32
	pub *big.Int
}

// dataKeys are the keys for one pair (our key id, their key id)
// (Protocol-v3 "Computing AES keys, MAC keys, and the secure session id").
type dataKeys struct {
	ourID, theirID   uint32
	sendAES, recvAES [16]byte
	sendMAC, recvMAC [20]byte
	extra            [32]byte // h2(0xFF), the extra symmetric key
	sendBlock        cipher.Block
	recvBlock        cipher.Block
	sendHMAC         hash.Hash
	recvHMAC         hash.Hash
	sendCtr, recvCtr uint64 // top halves of the last counters used/seen
	recvUsed         bool   // recvMAC verified a message: reveal it when retired

	// scratch space, so that sealing and opening do not allocate
	iv  [16]byte
	tmp [32]byte
	sum [sha1.Size]byte
}

func (k *dataKeys) wipe() {
	*k = dataKeys{}
}

// newDataKeys derives the data keys from secbytes. "High end" is decided
// by comparing the two DH public values of the pair, not long-term keys.
func newDataKeys(ourID, theirID uint32, ourPub, theirPub *big.Int, secbytes []byte) *dataKeys {
	k := &dataKeys{ourID: ourID, theirID: theirID}
	sendbyte, recvbyte := byte(0x02), byte(0x01)
	if ourPub.Cmp(theirPub) > 0 {
		sendbyte, recvbyte = 0x01, 0x02
	}
	h := sha1.New()
	var sum [sha1.Size]byte
	h.Write([]byte{sendbyte})
	h.Write(secbytes)
	copy(k.sendAES[:], h.Sum(sum[:0]))
	h.Reset()
	h.Write([]byte{recvbyte})
	h.Write(secbytes)
	copy(k.recvAES[:], h.Sum(sum[:0]))
	clear(sum[:])
	// The MAC keys are the plain SHA-1 of the AES keys.
	k.sendMAC = sha1.Sum(k.sendAES[:])
	k.recvMAC = sha1.Sum(k.recvAES[:])
	k.extra = h2(0xff, secbytes)
	k.sendBlock, _ = aes.NewCipher(k.sendAES[:])
	k.recvBlock, _ = aes.NewCipher(k.recvAES[:])
	k.sendHMAC = hmac.New(sha1.New, k.sendMAC[:])
	k.recvHMAC = hmac.New(sha1.New, k.recvMAC[:])
	return k
}

// session is an established OTR session: the key management of
// Protocol-v3 "Key Management".
type session struct {
	version  uint16
	theirKey *PublicKey
	ssid     [8]byte

	ourPrev  *dhKeyPair // our_dh[our_keyid-1]
	ourCur   *dhKeyPair // our_dh[our_keyid]; generated when first needed
	ourKeyID uint32

	theirPrev  *theirDH // their_y[their_keyid-1], may be nil
	theirCur   *theirDH
	theirKeyID uint32

	keys    []*dataKeys // at most the four pairs of current keys
	oldMACs []byte      // receiving MAC keys of retired pairs, to reveal
	buf     []byte      // scratch space for outgoing messages
}

func newSession(res *akeResult) *session {
	s := &session{
		version:    res.version,
		theirKey:   res.theirKey,
		ssid:       res.ssid,
		ourPrev:    res.ours,
		ourKeyID:   res.ours.id + 1,
		theirCur:   &theirDH{id: res.theirKeyID, pub: res.theirDH},
		theirKeyID: res.theirKeyID,
	}
	// The AKE's shared secret is the first pair's: no need to compute it again.
	s.keys = append(s.keys, newDataKeys(res.ours.id, res.theirKeyID, res.ours.pub, res.theirDH, res.secbytes))
	clear(res.secbytes)
	return s
}

// wipe forgets every key, adding receiving MAC keys that were used to
// oldMACs, which the caller may carry into the next session.
func (s *session) wipe() {
	for _, k := range s.keys {
		s.retire(k)
	}
	s.keys = nil
	s.ourPrev.wipe()
	s.ourCur.wipe()
	s.ourPrev, s.ourCur = nil, nil
	clear(s.buf[:cap(s.buf)])
}

func (s *session) retire(k *dataKeys) {
	if k.recvUsed {
		s.oldMACs = append(s.oldMACs, k.recvMAC[:]...)
	}
	k.wipe()
}

// pair returns the data keys for our key id and their key id, computing
// the shared secret when the pair is new.
func (s *session) pair(ours *dhKeyPair, theirs *theirDH) (*dataKeys, error) {
	for _, k := range s.keys {
		if k.ourID == ours.id && k.theirID == theirs.id {
			return k, nil
		}
	}
	secbytes, err := sharedSecret(theirs.pub, ours.priv)
	if err != nil {
		return nil, err
	}
	k := newDataKeys(ours.id, theirs.id, ours.pub, theirs.pub, secbytes)
	clear(secbytes)
	s.keys = append(s.keys, k)
	return k, nil
}

// forget retires every pair that uses our key ourID (byOurs) or their
// key theirID.
func (s *session) forget(ourID, theirID uint32, byOurs bool) {
	kept := s.keys[:0]
	for _, k := range s.keys {
		if byOurs && k.ourID == ourID || !byOurs && k.theirID == theirID {
			s.retire(k)
			continue
		}
		kept = append(kept, k)
	}
	clear(s.keys[len(kept):])
	s.keys = kept
}

// sendKeys returns the pair a new data message uses: our_dh[our_keyid-1]
// with their_y[their_keyid], generating our next key if needed.
func (s *session) sendKeys(r io.Reader) (*dataKeys, error) {
	if s.ourCur == nil {
		k, err := newDHKeyPair(r, s.ourKeyID)
		if err != nil {
			return nil, err
		}
		s.ourCur = k
	}
	return s.pair(s.ourPrev, s.theirCur)
}

// seal builds a data message carrying text and TLV records (Protocol-v3
// "When you send a Data Message") in the session's scratch buffer, valid
// until the next call. It returns the binary message and the keys used.
func (s *session) seal(r io.Reader, h header, flags byte, text []byte, tlvs []tlv) ([]byte, *dataKeys, error) {
	k, err := s.sendKeys(r)
	if err != nil {
		return nil, nil, err
	}
	k.sendCtr++
	h.version, h.typ = s.version, msgData
	ptLen := len(text)
	if len(tlvs) > 0 {
		ptLen++
		for _, t := range tlvs {
			ptLen += 4 + len(t.value)
		}
	}
	b := slices.Grow(s.buf[:0], h.len()+1+8+len(s.ourCur.pubMPI)+8+4+ptLen+macLen+4+len(s.oldMACs))
	b = appendHeader(b, h)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, s.ourPrev.id)
	b = binary.BigEndian.AppendUint32(b, s.theirCur.id)
	b = append(b, s.ourCur.pubMPI...)
	iv := &k.iv
	*iv = [16]byte{}
	binary.BigEndian.PutUint64(iv[:8], k.sendCtr)
	b = append(b, iv[:8]...)
	b = binary.BigEndian.AppendUint32(b, uint32(ptLen))
	start := len(b)
	b = append(b, text...)
	if len(tlvs) > 0 {
		b = append(b, 0)
		for _, t := range tlvs {
			b = appendTLV(b, t)
		}
	}
	xorCTR(k.sendBlock, iv, b[start:], b[start:], &k.tmp)
	k.sendHMAC.Reset()
	k.sendHMAC.Write(b)
	b = k.sendHMAC.Sum(b)
	b = appendData(b, s.oldMACs)
	// Revealed keys are sent once.
	s.oldMACs = s.oldMACs[:0]
	s.buf = b
	return b, k, nil
}

// open authenticates and decrypts a data message (Protocol-v3 "When you
// receive a Data Message"). Every failure is ErrInvalidMessage, and
// nothing changes unless the message is accepted. It returns the
// plaintext and the keys that authenticated it.
func (s *session) open(h header, bin []byte) ([]byte, *dataKeys, error) {
	var m dataMsg
	if h.version != s.version || !m.unmarshal(bin, h.len()) {
		return nil, nil, ErrInvalidMessage
	}
	var ours *dhKeyPair
	switch {
	case m.receiverKeyID == s.ourKeyID && s.ourCur != nil:
		ours = s.ourCur
	case m.receiverKeyID == s.ourKeyID-1 && s.ourPrev != nil:
		ours = s.ourPrev
	default:
		return nil, nil, ErrInvalidMessage
	}
	var theirs *theirDH
	switch {
	case m.senderKeyID == s.theirKeyID && s.theirCur != nil:
		theirs = s.theirCur
	case m.senderKeyID == s.theirKeyID-1 && s.theirPrev != nil:
		theirs = s.theirPrev
	default:
		return nil, nil, ErrInvalidMessage
	}
	k, err := s.pair(ours, theirs)
	if err != nil {
		return nil, nil, ErrInvalidMessage
	}
	// The MAC first, then everything else.
	k.recvHMAC.Reset()
	k.recvHMAC.Write(m.authenticated)
	if subtle.ConstantTimeCompare(k.recvHMAC.Sum(k.sum[:0]), m.mac) != 1 {
		return nil, nil, ErrInvalidMessage
	}
	ctr := binary.BigEndian.Uint64(m.ctr[:])
	if ctr <= k.recvCtr { // also rejects a zero counter
		return nil, nil, ErrInvalidMessage
	}
	var next *big.Int
	if theirs == s.theirCur {
		next = new(big.Int).SetBytes(m.nextDH)
		if !checkPublic(next) {
			return nil, nil, ErrInvalidMessage
		}
	}
	out := make([]byte, len(m.enc))
	iv := &k.iv
	*iv = [16]byte{}
	copy(iv[:8], m.ctr[:])
	xorCTR(k.recvBlock, iv, out, m.enc, &k.tmp)

	// Accepted: update counters and rotate keys.
	k.recvCtr = ctr
	k.recvUsed = true
	if ours == s.ourCur {
		// He has seen our newest key: forget the previous one.
		s.forget(s.ourPrev.id, 0, true)
		s.ourPrev.wipe()
		s.ourPrev, s.ourCur = s.ourCur, nil
		s.ourKeyID++
	}
	if next != nil {
		if s.theirPrev != nil {
			s.forget(0, s.theirPrev.id, false)
		}
		s.theirPrev = s.theirCur
		s.theirKeyID++
		s.theirCur = &theirDH{id: s.theirKeyID, pub: next}
	}
	return out, k, nil
}
