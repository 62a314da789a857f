package esession

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is XEP-0187 (Offline Encrypted Sessions, Deferred). "Alice",
// before going offline, publishes signed session options with her
// Diffie-Hellman values (PublishOffline); "Bob" verifies them with a key
// he holds for her and sends the responder's half of a 3-message exchange
// with his first encrypted content (StartOffline); back online, Alice
// finds her secrets by the nonce, refuses replays and expired options,
// checks Bob's identity and reads (Manager.Receive). Alice never sends in
// such a session (§3.5), and does not acknowledge its termination.
//
// The XEP refers to a "Signature Generation" section that XEP-0116 no
// longer has. Here each value of the "signs" field is the base64
// signature, with the publisher's key and the algorithm of its sign_algs
// option, of the XEP-0116 §8.2 normalised content of the options form
// without the "signs" field.

// NSOffline is the PEP node of offline options for presence subscribers
// (XEP-0187 §3.1); options for everyone go to FeatureESession.
const NSOffline = "http://www.xmpp.org/extensions/xep-0187.html#ns"

// Errors of offline sessions.
var (
	// ErrOfflineExpired reports offline options past their expiry time.
	ErrOfflineExpired = errors.New("esession: the offline options have expired")
	// ErrOfflineSignature reports offline options that no key held for
	// the publisher signed.
	ErrOfflineSignature = errors.New("esession: the offline options are not signed by a key held for their publisher")
)

// OfflineStore keeps the secrets of published offline options until the
// publisher comes back (XEP-0187 §3.1, §3.4), and the key exchanges
// received for them, to refuse replays (§5). The engine hands it opaque
// bytes holding Diffie-Hellman secret exponents: implementations MUST
// encrypt them at rest and destroy them on DeleteOffline. They must be
// safe for concurrent use.
type OfflineStore interface {
	// SaveOffline stores the secrets of the options with the nonce N_A.
	SaveOffline(nonce, secrets []byte, expires time.Time) error
	// LoadOffline returns them, or nil if there are none.
	LoadOffline(nonce []byte) ([]byte, error)
	// MarkUsed records that a key exchange with the given identifier was
	// received for the options with nonce, and reports whether it had
	// been recorded before (a replay).
	MarkUsed(nonce, exchange []byte) (replayed bool, err error)
	// DeleteOffline destroys the secrets of the options with nonce and
	// what MarkUsed recorded for them.
	DeleteOffline(nonce []byte) error
}

// MemoryOffline is an OfflineStore in memory, for tests. The zero value is
// ready to use.
type MemoryOffline struct {
	mu   sync.Mutex
	m    map[string][]byte
	used map[string]bool
}

var _ OfflineStore = (*MemoryOffline)(nil)

// SaveOffline stores a copy of secrets.
func (o *MemoryOffline) SaveOffline(nonce, secrets []byte, _ time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m, o.used = map[string][]byte{}, map[string]bool{}
	}
	o.m[string(nonce)] = slices.Clone(secrets)
	return nil
}

// LoadOffline returns a copy of the secrets, or nil.
func (o *MemoryOffline) LoadOffline(nonce []byte) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.m[string(nonce)]), nil
}

// MarkUsed records the exchange.
func (o *MemoryOffline) MarkUsed(nonce, exchange []byte) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.used == nil {
		o.m, o.used = map[string][]byte{}, map[string]bool{}
	}
	k := string(nonce) + "\x00" + string(exchange)
	seen := o.used[k]
	o.used[k] = true
	return seen, nil
}

// DeleteOffline wipes the secrets of nonce.
func (o *MemoryOffline) DeleteOffline(nonce []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.m[string(nonce)])
	delete(o.m, string(nonce))
	return nil
}

// OfflineOptions say what PublishOffline publishes.
type OfflineOptions struct {
	// Expires is when the options stop being usable (XEP-0187 §5: not
	// long after the publisher expects to be back online).
	Expires time.Time
	// MatchResource, if set, is the one resource that can read offline
	// sessions; senders address it with an AMP match-resource rule.
	MatchResource string
}

// offlineSecrets is what the publisher keeps: the nonce, the exponent per
// group, the expiry time and what was offered.
type offlineSecrets struct {
	nonce   []byte
	xs      map[int][]byte
	expires time.Time
	offer   offer
}

func (o *offlineSecrets) wipe() {
	for _, x := range o.xs {
		clear(x)
	}
	clear(o.nonce)
}

func (o *offlineSecrets) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(1)
	b.AddUint64(uint64(o.expires.Unix()))
	strs := func(list []string) {
		b.AddUint8(uint8(len(list)))
		for _, v := range list {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
		}
	}
	strs(o.offer.ciphers)
	strs(o.offer.stanzas)
	strs(o.offer.signAlgs)
	b.AddUint32(o.offer.rekey)
	ids := make([]int, 0, len(o.xs))
	for id := range o.xs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b.AddUint8(uint8(len(ids)))
	for _, id := range ids {
		b.AddUint8(uint8(id))
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(o.xs[id]) })
	}
	return b.Bytes()
}

func unmarshalOffline(nonce, data []byte) (*offlineSecrets, bool) {
	in := cryptobyte.String(data)
	o := &offlineSecrets{nonce: slices.Clone(nonce), xs: map[int][]byte{}, offer: offer{sigmaI: true, offline: true}}
	var ver, n uint8
	var exp uint64
	if !in.ReadUint8(&ver) || ver != 1 || !in.ReadUint64(&exp) {
		return nil, false
	}
	o.expires = time.Unix(int64(exp), 0)
	strs := func() ([]string, bool) {
		var n uint8
		if !in.ReadUint8(&n) {
			return nil, false
		}
		var out []string
		for range n {
			var v cryptobyte.String
			if !in.ReadUint8LengthPrefixed(&v) {
				return nil, false
			}
			out = append(out, string(v))
		}
		return out, true
	}
	var ok1, ok2, ok3 bool
	o.offer.ciphers, ok1 = strs()
	o.offer.stanzas, ok2 = strs()
	o.offer.signAlgs, ok3 = strs()
	if !ok1 || !ok2 || !ok3 || !in.ReadUint32(&o.offer.rekey) || !in.ReadUint8(&n) {
		return nil, false
	}
	for range n {
		var id uint8
		var x cryptobyte.String
		if !in.ReadUint8(&id) || !in.ReadUint16LengthPrefixed(&x) || len(x) == 0 {
			o.wipe()
			return nil, false
		}
		o.xs[int(id)] = slices.Clone(x)
	}
	if !in.Empty() {
		o.wipe()
		return nil, false
	}
	return o, true
}

// PublishOffline returns signed offline session options to publish in the
// user's PEP node (NSOffline for presence subscribers, FeatureESession for
// everyone) just before going offline, and stores their secrets in
// Config.Offline (XEP-0187 §3.1). It needs Config.Key and Config.Offline.
// The returned nonce identifies them; delete them from the store
// (OfflineStore.DeleteOffline) once new options replace them.
func (m *Manager) PublishOffline(opts OfflineOptions) (*xmltree.Element, []byte, error) {
	c := m.cfg
	switch {
	case c.key == nil || c.offline == nil:
		return nil, nil, errors.New("esession: offline sessions need Config.Key and Config.Offline")
	case !opts.Expires.After(c.now()):
		return nil, nil, ErrOfflineExpired
	}
	s := &Session{cfg: c}
	o := s.makeOffer(false)
	o.sigmaI, o.offline = true, true
	o.signAlgs = []string{c.key.Public().algorithm()}
	// §3.1: never iq; only messages when bound to one resource.
	o.stanzas = slices.DeleteFunc(slices.Clone(o.stanzas), func(k string) bool {
		return k == StanzaIQ || opts.MatchResource != "" && k != StanzaMessage
	})
	sec := &offlineSecrets{xs: map[int][]byte{}, expires: opts.Expires.Truncate(time.Second), offer: o}
	defer sec.wipe()
	var err error
	if sec.nonce, err = c.read(nonceLen); err != nil {
		return nil, nil, err
	}
	var groups, values []string
	for _, g := range c.groups {
		x, err := modp.RandomExponent(c.rand, exponentBytes(g))
		if err != nil {
			return nil, nil, err
		}
		sec.xs[g.ID()] = x
		groups = append(groups, strconv.Itoa(g.ID()))
		values = append(values, b64.EncodeToString(mpi(g.Public(x))))
	}
	fields := []*form.Field{
		{Var: "logging", Type: form.ListSingle, Options: options(c.otr.offered()...)},
		{Var: "disclosure", Type: form.ListSingle, Options: options("never")},
		{Var: "security", Type: form.ListSingle, Options: options("e2e")},
		{Var: "modp", Type: form.ListSingle, Options: options(groups...)},
		choice("crypt_algs", o.ciphers),
		hidden("hash_algs", hashSHA256),
		choice("sign_algs", o.signAlgs),
		hidden("compress", compressNone),
		{Var: "stanzas", Type: form.ListMulti, Options: options(o.stanzas...)},
		{Var: "ver", Type: form.ListSingle, Options: options(protocolVersion)},
		hidden("rekey_freq", strconv.FormatUint(uint64(o.rekey), 10)),
		hidden("expires", sec.expires.UTC().Format(dateTime)),
		hidden("my_nonce", b64.EncodeToString(sec.nonce)),
		{Var: "dhkeys", Type: form.Hidden, Values: values},
	}
	if opts.MatchResource != "" {
		fields = append(fields, field("match_resource", opts.MatchResource))
	}
	unsigned := ssnForm(form.TypeForm, fields...)
	sig, err := c.key.sign(c.rand, o.signAlgs[0], unsigned.Canonical())
	if err != nil {
		return nil, nil, err
	}
	data, err := sec.marshal()
	if err != nil {
		return nil, nil, err
	}
	defer clear(data)
	if err := c.offline.SaveOffline(sec.nonce, data, sec.expires); err != nil {
		return nil, nil, fmt.Errorf("esession: storing the offline secrets: %w", err)
	}
	signed := ssnForm(form.TypeForm, append(fields, &form.Field{Var: "signs", Type: form.Hidden, Values: []string{b64.EncodeToString(sig)}})...)
	return signed.Element(), slices.Clone(sec.nonce), nil
}

// verifyOptions checks the signature and expiry of a peer's offline
// options (XEP-0187 §3.2) and returns the key that signed them.
func (s *Session) verifyOptions(f *form.Form) (*PublicKey, bool, error) {
	exp, err := parseDateTime(f.Value("expires"))
	if err != nil {
		return nil, false, &NegotiationError{Condition: CondNotAcceptable, Fields: []string{"expires"}}
	}
	if !exp.After(s.cfg.now()) {
		return nil, false, ErrOfflineExpired
	}
	content := f.Normalize(false, "signs")
	for _, kk := range s.knownKeys() {
		for _, v := range f.Field("signs").Values {
			sig, err := b64.DecodeString(v)
			if err == nil && kk.Key.verify(kk.Key.algorithm(), content, sig) {
				return kk.Key, kk.Verified, nil
			}
		}
	}
	return nil, false, ErrOfflineSignature
}

// StartOffline starts an offline session with peer (a bare JID) from the
// options it published (the <x/> form of its PEP item), as XEP-0187 §3.3
// describes: it checks the signature with a key Config.Keys holds for the
// peer and the expiry, then returns the <init/> stanza, which carries
// content encrypted already, if any is given. Bob must not start one with
// a peer he has a session with, and must terminate it (Session.Terminate)
// if the peer comes online.
func (m *Manager) StartOffline(peer string, options *xmltree.Element, content ...*xmltree.Element) (*Session, Outbound, error) {
	if m.cfg.key == nil || m.cfg.keys == nil {
		return nil, Outbound{}, errors.New("esession: offline sessions need Config.Key and Config.Keys")
	}
	f, err := form.FromTree(options)
	if err != nil || f.FormType() != FormTypeSSN || f.Field("signs") == nil || f.Field("accept") != nil {
		return nil, Outbound{}, fmt.Errorf("esession: not offline session options: %w", err)
	}
	thread, err := NewThreadID(m.cfg.rand)
	if err != nil {
		return nil, Outbound{}, err
	}
	s := &Session{cfg: m.cfg, role: Responder, thread: thread, peerBare: Bare(peer), peer: Bare(peer), bound: true, wantE2E: true}
	if r := f.Value("match_resource"); r != "" {
		s.peer = s.peerBare + "/" + r
	}
	key, verified, err := s.verifyOptions(f)
	if err != nil {
		return nil, Outbound{}, err
	}
	p := &plan{encrypted: true, security: "e2e"}
	p.st.offline = true
	if bad := s.evaluateE2E(f, p); len(bad) > 0 || p.e == nil {
		return nil, Outbound{}, &NegotiationError{Condition: CondNotAcceptable, Fields: bad}
	}
	logOpts, logVar := loggingOptions(f)
	l, ok := s.chooseLogging(logOpts)
	if logVar != "" && !ok {
		return nil, Outbound{}, &NegotiationError{Condition: CondNotAcceptable, Fields: []string{logVar}}
	}
	p.logging, p.loggingVar, p.disclosure = l, logVar, true
	s.neg = &negotiation{plan: p, echo: &parsedFeature{form: f}}
	var res Result
	if err := s.accept(&res); err != nil {
		return nil, Outbound{}, err
	}
	// The answer travels in <init/> (§3.3), with the content.
	ans := res.Out[0].Payload[0].Elements()[0]
	s.peerKey, s.peerKeyVerified = key, verified
	n := s.neg
	kA, kB := n.kA, n.kB
	s.activate(&kB, n.ctrB, &kA, n.ca)
	kA.wipe()
	kB.wipe()
	s.offline = true
	o := s.out(xmltree.New(NSInit, "init").Append(ans))
	o.Type = "chat"
	if len(content) > 0 {
		c, err := s.sealed(content...)
		if err != nil {
			return nil, Outbound{}, err
		}
		o.Payload, o.Encrypted = append(o.Payload, c.Payload...), true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.room() {
		s.Close()
		return nil, Outbound{}, errors.New("esession: too many sessions")
	}
	m.add(sessionKey{s.peerBare, thread}, s)
	return s, o, nil
}

// receiveOffline is Alice's handling, back online, of an offline session
// request (§3.4): the <init/> of a submit form with Bob's identity. Any
// failure is reported as Rejected, without an answer (§3.4: terminate
// "without sending an error").
func (m *Manager) receiveOffline(in *Inbound) (Result, error) {
	reject := func(reason string, err error) (Result, error) {
		return Result{Events: []Event{Rejected{From: in.From, Thread: in.Thread, Reason: reason}}}, err
	}
	pf, err := parseFeature(in.Init, NSInit, "init")
	if err != nil || pf.form.Type != form.TypeSubmit || pf.form.FormType() != FormTypeSSN {
		return reject("malformed offline session", nil)
	}
	f := pf.form
	nonce, ok := decodeField(f, "nonce", 0)
	if !ok {
		return reject("malformed offline session", nil)
	}
	data, err := m.cfg.offline.LoadOffline(nonce)
	if err != nil || data == nil {
		return reject("offline session for unknown options", nil)
	}
	sec, ok := unmarshalOffline(nonce, data)
	clear(data)
	if !ok {
		return reject("offline secrets unreadable", nil)
	}
	defer sec.wipe()
	if !sec.expires.After(m.cfg.now()) {
		// §3.4: discarded without decrypting.
		return reject("offline session for expired options", ErrOfflineExpired)
	}
	s := &Session{cfg: m.cfg, role: Initiator, thread: in.Thread, peerBare: Bare(in.From), peer: in.From, bound: true, wantE2E: true}
	n := &negotiation{offer: sec.offer, nA: slices.Clone(nonce), xs: map[int][]byte{}, es: map[int]*big.Int{}}
	for id, x := range sec.xs {
		if g := m.cfg.group(id); g != nil {
			n.xs[id], n.es[id] = slices.Clone(x), g.Public(x)
		}
	}
	s.neg = n
	fail := func(reason string) (Result, error) {
		n.wipe()
		return reject(reason, ErrAuthentication)
	}
	if bad := s.checkAnswer(f); len(bad) > 0 {
		return fail("offline session with options that were not offered")
	}
	k, ok := s.sharedK()
	if !ok {
		return fail("offline session with a bad public value")
	}
	kl := n.st.keyLen(m.cfg.cv)
	n.kA, n.kB = deriveKeys(&k, true, kl), deriveKeys(&k, false, kl)
	clear(k[:])
	idB, ok1 := decodeField(f, "identity", 0)
	mB, ok2 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 {
		return fail("malformed offline session")
	}
	n.formB = s.normalize(f, "identity", "mac")
	n.ctrB = n.cb
	peerKey, ok := s.checkIdentity(&n.kB, &n.ctrB, IdentifyKey, n.st.signAlg, idB, mB, func(pubKey []byte) [32]byte {
		return sigmaMAC(&n.kB.ks, n.nA, n.nB, mpi(n.d), pubKey, n.formB, nil)
	})
	if !ok {
		return fail("offline session whose identity does not verify")
	}
	// §5: refuse a replayed exchange (the same d, or the same N_B).
	hd := sha256.Sum256(mpi(n.d))
	for _, id := range [][]byte{append([]byte("d:"), hd[:]...), append([]byte("n:"), n.nB...)} {
		replayed, err := m.cfg.offline.MarkUsed(nonce, id)
		if err != nil || replayed {
			return fail("replayed offline session")
		}
	}
	var res Result
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reportKey(&res, peerKey)
	kA, kB := n.kA, n.kB
	s.activate(&kA, n.ca, &kB, n.ctrB)
	kA.wipe()
	kB.wipe()
	s.offline = true
	res.Events = append(res.Events, Established{Session: s, Encrypted: true, Verified: s.peerKeyVerified, PeerKey: peerKey, Offline: true})
	m.mu.Lock()
	k2 := sessionKey{s.peerBare, s.thread}
	if _, taken := m.sessions[k2]; taken || s.thread == "" || !m.room() {
		m.mu.Unlock()
		s.end("no room", nil)
		return reject("offline session on a thread in use", nil)
	}
	m.add(k2, s)
	m.mu.Unlock()
	if in.C != nil {
		return s.openC(&res, in)
	}
	return res, nil
}
