package esession

import (
	"errors"
	"io"
	"math/big"
	"time"

	"github.com/balcony-im/balcony/internal/modp"
)

// This file is the XEP-0200 §9 key exchange within a session ("re-key"):
// a Diffie-Hellman exchange in the session's group whose new public value
// rides in a <key/> element, MACed under the old keys.
//
// Each party keeps one set of sending keys and a list of receiving "sets"
// {the peer's sending keys, our secret exponent}, oldest first. sets[0] is
// the set the peer's last stanza used. Initiating a key exchange adds a
// set (the keys the peer will use once it has our <key/>); a received
// <new>k</new> says the peer has seen k more of our keys, so sets[k]
// becomes sets[0] and the older ones are destroyed; the older ones also go
// after a grace period (Config.RekeyGrace), since the peer will not use
// them once it has answered. A received <key/> is combined with the
// exponent of sets[0] and replaces the peer's keys in every set, and our
// sending keys if we hold only one set (§9.3). Counters continue.

// DefaultRekeyGrace is how long the receiving keys of an older set are
// kept after a key exchange we initiated (XEP-0200 §9.2: "60 seconds
// should cover a network round-trip").
const DefaultRekeyGrace = 60 * time.Second

// DefaultIdleTimeout is how long an encrypted session may stay without a
// stanza before Tick re-keys it, or terminates it if it cannot re-key
// (XEP-0200 §12.4).
const DefaultIdleTimeout = time.Hour

// rekeyBlocks is the block count under one key after which a session
// re-keys by itself, well before the 2^32 limit of XEP-0200 §12.4.
const rekeyBlocks = 1 << 31

// ErrRekeyTooSoon reports a key exchange asked for before the agreed
// number of stanzas (rekey_freq) was exchanged since the last one.
var ErrRekeyTooSoon = errors.New("esession: fewer stanzas than rekey_freq since the last key exchange")

// recvSet is one set of receiving keys with our exponent.
type recvSet struct {
	kc, km  [32]byte // the peer's sending keys
	x       []byte   // our secret exponent for this set
	created time.Time
}

func (s *recvSet) wipe() {
	clear(s.kc[:])
	clear(s.km[:])
	clear(s.x)
}

// rekeying is a channel's key-exchange state.
type rekeying struct {
	enabled   bool // rekey_freq below 2^32-1 was agreed
	group     dhGroup
	keyLen    int
	freq      uint32
	rand      io.Reader
	now       func() time.Time
	grace     time.Duration
	peerPub   *big.Int  // the peer's latest public value
	sets      []recvSet // receiving sets, oldest first
	newKeys   int       // the peer's keys received since we last sent
	exchanged uint64    // stanzas sent and received since the last exchange
	wanted    bool      // Session.Rekey asked for one
}

// rekeyStep is a key exchange this side initiates.
type rekeyStep struct {
	x         []byte
	pub       *big.Int // e' = g^x', sent in <key/>
	init, acc keySet
}

// startRekeying gives the channel what key exchanges need: the agreed
// suite, this side's exponent of the negotiation and the peer's public
// value. The receiving keys in place form the first set.
func (ch *channel) startRekeying(c *config, st *suite, x []byte, peer *big.Int) {
	ch.rk = rekeying{
		enabled: !c.cv.gajim && st.rekeyFreq < MaxRekeyFreq,
		group:   st.group, keyLen: st.keyLen(c.cv), freq: st.rekeyFreq,
		rand: c.rand, now: c.now, grace: c.rekeyGrace, peerPub: peer,
		sets: []recvSet{{kc: ch.recv.kc, km: ch.recv.km, x: x, created: c.now()}},
	}
}

func (r *rekeying) wipe() {
	for i := range r.sets {
		r.sets[i].wipe()
	}
	r.sets = nil
}

// allowed reports whether this side may initiate a key exchange now.
func (r *rekeying) allowed() bool { return r.enabled && r.exchanged >= uint64(r.freq) }

// due reports whether the next stanza must carry a <key/>: as soon as the
// agreed number of stanzas allows one, when the user asked, or when the
// sending key has encrypted 2^31 blocks.
func (r *rekeying) due(used uint64) bool {
	return r.enabled && (r.wanted || r.exchanged >= uint64(r.freq) || used >= rekeyBlocks)
}

// rekeyKeys derives the new keys from K = d^x mod p, used unhashed (as an
// MPI) as the HMAC key (§9.2 steps 3-7).
func rekeyKeys(z *big.Int, keyLen int) (init, acc keySet) {
	k := mpi(z)
	defer clear(k)
	derive := func(crypt, mac string) keySet {
		ks := keySet{kcLen: keyLen}
		c := hmacSHA256(k, []byte(crypt))
		copy(ks.kc[:], c[32-keyLen:]) // the least significant bytes
		clear(c[:])
		ks.km = hmacSHA256(k, []byte(mac))
		return ks
	}
	return derive("Rekey Initiator Crypt", "Rekey Initiator MAC"), derive("Rekey Acceptor Crypt", "Rekey Acceptor MAC")
}

// initiate prepares a key exchange: a fresh x' (2^(2n-1) < x' < p-1),
// e' = g^x' and the keys from K = peerPub^x'.
func (r *rekeying) initiate() (*rekeyStep, error) {
	x, err := modp.RandomExponent(r.rand, exponentBytes(r.group))
	if err != nil {
		return nil, err
	}
	z, err := r.group.SharedSecret(r.peerPub, x)
	if err != nil {
		clear(x)
		return nil, ErrAuthentication // checked when received; cannot happen
	}
	st := &rekeyStep{x: x, pub: r.group.Public(x)}
	st.init, st.acc = rekeyKeys(z, r.keyLen)
	modp.Wipe(z)
	return st, nil
}

// sent switches to the new sending keys once the stanza carrying <key/>
// is sealed under the old ones, and adds the set the peer will use once
// it has our key.
func (r *rekeying) sent(st *rekeyStep, send *direction, cv conv) {
	send.rekey(&st.init.kc, st.init.kcLen, &st.init.km, cv)
	r.sets = append(r.sets, recvSet{kc: st.acc.kc, km: st.acc.km, x: st.x, created: r.now()})
	r.exchanged, r.wanted = 0, false
	st.init.wipe()
	st.acc.wipe()
}

// advance makes sets[k] current after a stanza with <new>k</new>
// verified under it, and destroys the older sets.
func (r *rekeying) advance(k int, recv *direction, cv conv) {
	for i := range k {
		r.sets[i].wipe()
	}
	r.sets = r.sets[k:]
	recv.rekey(&r.sets[0].kc, r.keyLen, &r.sets[0].km, cv)
}

// accept processes the peer's <key/> (§9.3): e' > 1 (and below p-1), K =
// e'^x with the exponent of sets[0], the peer's new keys in every set, and
// ours if we hold one set only.
func (r *rekeying) accept(keyB64 string, send, recv *direction, cv conv) error {
	b, err := strictBase64.DecodeString(keyB64)
	if err != nil || len(b) == 0 {
		return errAuth
	}
	e := new(big.Int).SetBytes(b)
	z, err := r.group.SharedSecret(e, r.sets[0].x)
	if err != nil {
		return errAuth
	}
	init, acc := rekeyKeys(z, r.keyLen)
	modp.Wipe(z)
	defer init.wipe()
	defer acc.wipe()
	for i := range r.sets {
		r.sets[i].kc, r.sets[i].km = init.kc, init.km
	}
	recv.rekey(&init.kc, init.kcLen, &init.km, cv)
	if len(r.sets) == 1 {
		send.rekey(&acc.kc, acc.kcLen, &acc.km, cv)
	}
	r.peerPub = e
	r.newKeys++
	r.exchanged = 0
	return nil
}

// expire destroys the sets older than the newest once the grace period
// after it has passed: the peer has had time to see our key.
func (r *rekeying) expire(now time.Time, recv *direction, cv conv) {
	drop := 0
	for i := 1; i < len(r.sets); i++ {
		if now.Sub(r.sets[i].created) >= r.grace {
			drop = i
		}
	}
	if drop > 0 {
		r.advance(drop, recv, cv)
	}
}

// Rekey starts a key exchange now (XEP-0200 §9): it returns an encrypted
// stanza with no content and a <key/>, after which this side sends under
// the new keys. It fails with ErrNotSupported if the session does not
// re-key (rekey_freq 2^32-1, as XEP-0217 fixes, or the gajim profile), and
// ErrRekeyTooSoon before the agreed number of stanzas since the last key
// exchange. Sessions also re-key by themselves (Config.RekeyFreq) and
// after inactivity (Tick).
func (s *Session) Rekey() (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.established(); err != nil {
		return Outbound{}, err
	}
	switch {
	case !s.ch.rk.enabled:
		return Outbound{}, ErrNotSupported
	case !s.ch.rk.allowed():
		return Outbound{}, ErrRekeyTooSoon
	}
	s.ch.rk.wanted = true
	o, err := s.sealed()
	if err != nil {
		return Outbound{}, err
	}
	s.lastActive = s.cfg.now()
	return o, nil
}

// Tick lets a session act on the time: it destroys old receiving keys
// after their grace period, and after Config.IdleTimeout without a stanza
// it re-keys (if the agreed rekey_freq allows) or else terminates the
// session (XEP-0200 §12.4). The client calls it now and then with the
// current time (Manager.Tick calls it for every session); the result holds
// what to send and the events.
func (s *Session) Tick(now time.Time) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res Result
	if s.step != stepActive || !s.wantE2E || s.ch == nil {
		return res
	}
	s.ch.rk.expire(now, &s.ch.recv, s.cfg.cv)
	if s.cfg.idle <= 0 || now.Sub(s.lastActive) < s.cfg.idle {
		return res
	}
	if s.ch.rk.allowed() {
		s.ch.rk.wanted = true
		if o, err := s.sealed(); err == nil {
			s.lastActive = now
			res.Out = append(res.Out, o)
			res.Events = append(res.Events, Rekeyed{Session: s, Reason: "inactivity"})
			return res
		}
	}
	s.terminateNow(&res, "inactive")
	return res
}

// Rekeyed reports a key exchange this client started by itself (after
// inactivity); those the user asks for (Session.Rekey) and those the
// agreed frequency brings are not reported.
type Rekeyed struct {
	Session *Session
	Reason  string
}

func (Rekeyed) event() {}
