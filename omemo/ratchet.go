package omemo

import (
	"errors"
	"io"
)

// Bounds of the skipped-message-key store (XEP-0384 §4.3 MAX_SKIP, which
// recommends 1000 for both).
const (
	// DefaultMaxSkip is how many message keys one received message may
	// make us derive and store (a larger gap is rejected as a DoS attempt).
	DefaultMaxSkip = 1000
	// DefaultMaxSkippedKeys is how many skipped message keys a session
	// keeps in all; the oldest are dropped first (FIFO, XEP-0384 §4.3
	// "deletion policy for skipped message keys").
	DefaultMaxSkippedKeys = 1000
	// prevChains is how many earlier receiving ratchet keys a session
	// remembers, to recognise late copies of used messages as duplicates.
	prevChains = 5
	// maxArchived is how many earlier states of a session with one device
	// are kept besides the current one (see session.archive).
	maxArchived = 2
)

// skippedKey is a message key derived for a message not yet received.
type skippedKey struct {
	dh [32]byte
	n  uint32
	mk [32]byte
}

// session is the Double Ratchet state of one session (Double Ratchet
// §3.2) plus what OMEMO keeps around it.
type session struct {
	gen       Generation
	initiator bool     // we sent the key exchange (Alice)
	local     [32]byte // own identity in the generation's wire form
	remote    [32]byte // peer identity in the generation's wire form

	rk     [32]byte
	dhs    KeyPair
	dhr    [32]byte
	hasDHr bool
	cks    [32]byte
	hasCKs bool
	ckr    [32]byte
	hasCKr bool
	ns     uint32
	nr     uint32
	pn     uint32

	skipped []skippedKey
	prev    [][32]byte // earlier values of dhr, newest last
	// lost marks keys given up under the bounds: on chain lostDH (and
	// every older one), messages numbered below lostN may never have been
	// decrypted, so a message there is undecryptable, not a duplicate.
	lostDH  [32]byte
	lostN   uint32
	hasLost bool

	// pending is the key exchange to repeat on every message until the
	// peer answers (XEP-0384 §4.3; libsignal's unacknowledged pre-key).
	pending *keyExchange
	// origin identifies the key exchange a passive session was built from,
	// so that a second copy of it reuses the session (idempotence).
	origin *keyExchange
	// heartbeat is set once a heartbeat was requested for the current
	// receiving chain (XEP-0384 §7: counter 53 or higher).
	heartbeat bool

	// archive holds earlier states of the session with the same device,
	// newest first, at most maxArchived; only the current state has one.
	// A new key exchange from the peer archives the current state instead
	// of discarding it, and a message that only an archived state decrypts
	// makes that state current again. So when both devices start a session
	// at the same moment, each keeps its own and the peer's, and both
	// settle on whichever the other keeps using (libsignal does the same
	// with its previous session states).
	archive []*session
}

func (s *session) wipe() {
	clear(s.rk[:])
	s.dhs.Wipe()
	clear(s.cks[:])
	clear(s.ckr[:])
	for i := range s.skipped {
		clear(s.skipped[i].mk[:])
	}
	for _, a := range s.archive {
		a.wipe()
	}
}

// archiveInto makes s, the current state until now, the newest archived
// state of next, which becomes current; the oldest states beyond
// maxArchived are wiped.
func (s *session) archiveInto(next *session) {
	older := s.archive
	s.archive = nil
	next.archive = append([]*session{s}, older...)
	for _, a := range next.archive[min(len(next.archive), maxArchived):] {
		a.wipe()
	}
	next.archive = next.archive[:min(len(next.archive), maxArchived)]
}

// promote makes the archived state i current, archiving s (the current
// state) in its place as the newest, and returns the new current state.
func (s *session) promote(i int) *session {
	next := s.archive[i]
	rest := append(s.archive[:i:i], s.archive[i+1:]...)
	s.archive = nil
	next.archive = append([]*session{s}, rest...)
	return next
}

// ad writes the associated data for a message in the given direction
// into buf and returns it. OMEMO 2 uses AD = Encode(IK_A) || Encode(IK_B),
// initiator first, in both directions (XEP-0384 §4.2). libsignal, and so
// OMEMO 0.3, MACs sender identity || receiver identity, each as 0x05 || u.
func (s *session) ad(sending bool, buf *[66]byte) []byte {
	first, second := &s.local, &s.remote
	if s.gen == V2 {
		if !s.initiator {
			first, second = second, first
		}
		copy(buf[:32], first[:])
		copy(buf[32:64], second[:])
		return buf[:64]
	}
	if !sending {
		first, second = second, first
	}
	buf[0], buf[33] = djbType, djbType
	copy(buf[1:33], first[:])
	copy(buf[34:66], second[:])
	return buf[:66]
}

// initActive is RatchetInitAlice (Double Ratchet §3.3): the first sending
// chain comes from a DH with the peer's signed pre-key.
func (s *session) initActive(rand io.Reader, sk *[32]byte, spk *[32]byte) error {
	kp, err := GenerateKeyPair(rand)
	if err != nil {
		return err
	}
	d, err := dh(&kp.Private, spk)
	if err != nil {
		return err
	}
	s.dhs, s.dhr, s.hasDHr = kp, *spk, true
	s.rk, s.cks = rootKDF(s.rootInfo(), sk, &d)
	s.hasCKs = true
	clear(d[:])
	return nil
}

// initPassive is RatchetInitBob: the signed pre-key is the first ratchet
// key; the first received message performs the DH ratchet step.
func (s *session) initPassive(sk *[32]byte, spk *KeyPair) {
	s.rk = *sk
	s.dhs = *spk
}

func (s *session) rootInfo() string {
	if s.gen == V2 {
		return rootInfo2
	}
	return rootInfo03
}

// encrypt is RatchetEncrypt: it returns the wire form of the ratchet
// message (a SignalMessage or an OMEMOAuthenticatedMessage).
func (s *session) encrypt(plaintext []byte) []byte {
	next, mk := chainKDF(&s.cks)
	s.cks = next
	h := ratchetHeader{dhPub: s.dhs.Public, pn: s.pn, n: s.ns}
	s.ns++
	out := s.seal(&mk, &h, plaintext)
	clear(mk[:])
	return out
}

func (s *session) seal(mk *[32]byte, h *ratchetHeader, plaintext []byte) []byte {
	var adBuf [66]byte
	ad := s.ad(true, &adBuf)
	if s.gen == V2 {
		k := deriveCBCKeys(mk[:], messageKeyInfo2)
		defer k.wipe()
		msg := encodeMessage2(h, cbcEncrypt(&k.enc, &k.iv, plaintext), true)
		return encodeAuthenticated2(macOf(&k.mac, macLen2, ad, msg), msg)
	}
	k := deriveCBCKeys(mk[:], messageKeyInfo03)
	defer k.wipe()
	body := encodeMessage03(h, cbcEncrypt(&k.enc, &k.iv, plaintext))
	return append(body, macOf(&k.mac, macLen03, ad, body)...)
}

// decrypt is RatchetDecrypt. It changes s even when it fails: callers work
// on a freshly loaded copy and store it only on success.
func (s *session) decrypt(rand io.Reader, wire []byte, maxSkip, maxKeys int) ([]byte, error) {
	var h ratchetHeader
	var macd, mac, ct []byte
	var ok bool
	if s.gen == V2 {
		var msg []byte
		mac, msg, ok = parseAuthenticated2(wire)
		if ok {
			h, ct, ok = parseMessage2(msg)
			macd = msg
		}
	} else {
		macd, mac, h, ct, ok = parseMessage03(wire)
	}
	if !ok {
		return nil, ErrInvalidMessage
	}
	mk, err := s.messageKey(rand, &h, maxSkip, maxKeys)
	if err != nil {
		return nil, err
	}
	defer clear(mk[:])
	info, macLen := messageKeyInfo03, macLen03
	if s.gen == V2 {
		info, macLen = messageKeyInfo2, macLen2
	}
	k := deriveCBCKeys(mk[:], info)
	defer k.wipe()
	var adBuf [66]byte
	if !macEqual(macOf(&k.mac, macLen, s.ad(false, &adBuf), macd), mac) {
		return nil, ErrInvalidMessage
	}
	plaintext, err := cbcDecrypt(&k.enc, &k.iv, ct)
	if err != nil {
		return nil, ErrInvalidMessage
	}
	if s.pending != nil {
		// The peer answered: the key exchange is complete.
		s.pending = nil
	}
	return plaintext, nil
}

// messageKey finds or derives the message key for h, stepping the DH
// ratchet when h carries a new ratchet key (Double Ratchet §3.5).
func (s *session) messageKey(rand io.Reader, h *ratchetHeader, maxSkip, maxKeys int) ([32]byte, error) {
	for i := range s.skipped {
		if s.skipped[i].n == h.n && s.skipped[i].dh == h.dhPub {
			mk := s.skipped[i].mk
			clear(s.skipped[i].mk[:])
			s.skipped = append(s.skipped[:i], s.skipped[i+1:]...)
			return mk, nil
		}
	}
	if s.hasDHr && h.dhPub == s.dhr {
		if !s.hasCKr {
			return [32]byte{}, ErrInvalidMessage
		}
		if h.n < s.nr {
			if s.hasLost && s.lostDH == h.dhPub && h.n < s.lostN {
				return [32]byte{}, ErrInvalidMessage
			}
			return [32]byte{}, ErrDuplicate
		}
	} else {
		for i, p := range s.prev {
			if p == h.dhPub {
				if s.lostAtOrAfter(i) {
					return [32]byte{}, ErrInvalidMessage
				}
				return [32]byte{}, ErrDuplicate
			}
		}
		// A new ratchet key: store the rest of the current receiving
		// chain up to pn, unless the gap is beyond the bound (then those
		// messages are given up on, so that heavy loss cannot block the
		// session, as python-doubleratchet does).
		if s.hasCKr && h.pn > s.nr {
			if int(h.pn-s.nr) <= maxSkip {
				s.skip(h.pn, maxKeys)
			} else {
				s.lostDH, s.lostN, s.hasLost = s.dhr, h.pn, true
			}
		}
		if err := s.dhRatchet(rand, &h.dhPub); err != nil {
			return [32]byte{}, err
		}
	}
	if h.n > s.nr && int(h.n-s.nr) > maxSkip {
		return [32]byte{}, ErrInvalidMessage
	}
	s.skip(h.n, maxKeys)
	next, mk := chainKDF(&s.ckr)
	s.ckr = next
	s.nr++
	return mk, nil
}

// skip derives and stores the receiving chain's keys up to (not
// including) until, dropping the oldest beyond maxKeys.
func (s *session) skip(until uint32, maxKeys int) {
	for s.nr < until {
		next, mk := chainKDF(&s.ckr)
		s.skipped = append(s.skipped, skippedKey{dh: s.dhr, n: s.nr, mk: mk})
		s.ckr = next
		s.nr++
	}
	if extra := len(s.skipped) - maxKeys; extra > 0 {
		for i := range extra {
			clear(s.skipped[i].mk[:])
		}
		last := s.skipped[extra-1]
		s.lostDH, s.lostN, s.hasLost = last.dh, last.n+1, true
		s.skipped = append(s.skipped[:0], s.skipped[extra:]...)
	}
}

// lostAtOrAfter reports whether keys were lost on the earlier receiving
// chain prev[i] or a later one (FIFO eviction loses older chains first).
func (s *session) lostAtOrAfter(i int) bool {
	if !s.hasLost {
		return false
	}
	if s.lostDH == s.dhr {
		return true
	}
	for _, p := range s.prev[i:] {
		if p == s.lostDH {
			return true
		}
	}
	return false
}

// dhRatchet is DHRatchet of Double Ratchet §3.5.
func (s *session) dhRatchet(rand io.Reader, remote *[32]byte) error {
	if s.hasDHr {
		s.prev = append(s.prev, s.dhr)
		if len(s.prev) > prevChains {
			s.prev = s.prev[len(s.prev)-prevChains:]
		}
	}
	s.pn, s.ns, s.nr = s.ns, 0, 0
	s.dhr, s.hasDHr = *remote, true
	d, err := dh(&s.dhs.Private, remote)
	if err != nil {
		return ErrInvalidMessage
	}
	s.rk, s.ckr = rootKDF(s.rootInfo(), &s.rk, &d)
	s.hasCKr = true
	kp, err := GenerateKeyPair(rand)
	if err != nil {
		return err
	}
	s.dhs.Wipe()
	s.dhs = kp
	if d, err = dh(&s.dhs.Private, remote); err != nil {
		return ErrInvalidMessage
	}
	s.rk, s.cks = rootKDF(s.rootInfo(), &s.rk, &d)
	s.hasCKs = true
	s.heartbeat = false
	clear(d[:])
	return nil
}

// builtFrom reports which state of s was built from the key exchange kx:
// 0 the current one, i+1 archived state i, -1 none (also when s is nil).
func (s *session) builtFrom(kx *keyExchange) int {
	if s == nil {
		return -1
	}
	if s.origin != nil && sameExchange(s.origin, kx) {
		return 0
	}
	for i, a := range s.archive {
		if a.origin != nil && sameExchange(a.origin, kx) {
			return i + 1
		}
	}
	return -1
}

// decryptAny decrypts a message that is not a key exchange with the
// current state of s or, failing that, an archived one, newest first. It
// returns the session with the state that decrypted the message made
// current. Each attempt works on a copy, so on failure s is returned
// unchanged, with ErrDuplicate if some state recognised the message as
// already decrypted and otherwise the current state's error.
func (s *session) decryptAny(rand io.Reader, wire []byte, maxSkip, maxKeys int) (*session, []byte, error) {
	var firstErr error
	for i := -1; i < len(s.archive); i++ {
		old := s
		if i >= 0 {
			old = s.archive[i]
		}
		try := old.cloneState()
		plaintext, err := try.decrypt(rand, wire, maxSkip, maxKeys)
		if err != nil {
			try.wipe()
			if firstErr == nil || (errors.Is(err, ErrDuplicate) && !errors.Is(firstErr, ErrDuplicate)) {
				firstErr = err
			}
			continue
		}
		if i < 0 {
			try.archive, s.archive = s.archive, nil
			s.wipe()
			return try, plaintext, nil
		}
		s.archive[i] = try
		old.wipe()
		return s.promote(i), plaintext, nil
	}
	return s, nil, firstErr
}
