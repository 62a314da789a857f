package esession

import (
	"crypto/subtle"
	"math/big"
	"slices"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
)

// This file is the initiator's side ("Alice") of a negotiation: the
// responder's answer (message 2), Alice's identity (message 3) and, in
// the 4-message exchange, the responder's identity (message 4). XEP-0116
// §6-§7, XEP-0217 §5.1-5.4.

// onAnswer handles the responder's answer to our request: a decline, a
// plain acceptance (completed here), or message 2.
func (s *Session) onAnswer(res *Result, in *Inbound, pf *parsedFeature) (Result, error) {
	f := pf.form
	acc, err := f.Field("accept").Bool()
	if err != nil {
		err := s.violation()
		s.fail(res, "malformed answer", err)
		return *res, err
	}
	// XEP-0155 §4.2: the session is bound to the resource that answers.
	s.peer, s.bound = in.From, true
	if !acc {
		reason := f.Value("reason")
		s.end("declined", nil)
		res.Events = append(res.Events, Declined{Session: s, Reason: reason})
		return *res, nil
	}
	if !s.wantE2E {
		return s.onPlainAnswer(res, f)
	}
	return s.onMessage2(res, f, in)
}

// checkCommon checks the XEP-0155 fields of an answer against what we
// offered and returns the unacceptable ones.
func (s *Session) checkCommon(f *form.Form) []string {
	var bad []string
	l := normalLogging(f)
	if !slices.Contains(s.cfg.otr.offered(), l) {
		bad = append(bad, "logging")
	}
	if f.Value("disclosure") != "never" {
		bad = append(bad, "disclosure")
	}
	sec := f.Value("security")
	if s.wantE2E && sec != "e2e" || !s.wantE2E && sec != "c2s" {
		bad = append(bad, "security")
	}
	s.params.Logging, s.params.Disclosure, s.params.Security = l, "never", sec
	switch pv := f.Value("presence"); {
	case pv == "" || !s.cfg.sharePresence:
		// Not offered, or left out: presence is not shared.
	case pv != PresenceMay && pv != PresenceMustNot:
		bad = append(bad, "presence")
	default:
		s.params.SharePresence = pv == PresenceMay
	}
	return bad
}

func (s *Session) onPlainAnswer(res *Result, f *form.Form) (Result, error) {
	if bad := s.checkCommon(f); len(bad) > 0 {
		res.Out = append(res.Out, s.out(feature(completeForm(false))))
		ne := &NegotiationError{Condition: CondNotAcceptable, Fields: bad}
		s.fail(res, "answer not acceptable", ne)
		return *res, ne
	}
	res.Out = append(res.Out, s.out(feature(completeForm(true))))
	s.neg.wipe()
	s.neg = nil
	s.step = stepActive
	res.Events = append(res.Events, Established{Session: s})
	return *res, nil
}

// checkAnswer checks message 2 (XEP-0116 §6.1 steps 1-3) and fills the
// negotiation: the suite, the group's secret, d, N_B and the counters. It
// returns the fields that are not acceptable.
func (s *Session) checkAnswer(f *form.Form) []string {
	n := s.neg
	bad := s.checkCommon(f)
	var g dhGroup
	if id, err := strconv.Atoi(f.Value("modp")); err == nil && n.xs[id] != nil && f.Value("modp") == strconv.Itoa(id) {
		g = s.cfg.group(id)
	}
	if g == nil {
		bad = append(bad, "modp")
	}
	n.st.sigmaI = n.offer.sigmaI
	bad = append(bad, checkSuite(f, n.offer, &n.st)...)
	if n.st.initPub != "" && n.st.initPub != IdentifyNone && n.st.signAlg != "" && s.cfg.key.Public().algorithm() != n.st.signAlg {
		bad = append(bad, "sign_algs") // we cannot sign with the algorithm chosen
	}
	nB, err := b64.DecodeString(f.Value("my_nonce"))
	if err != nil || len(nB) < 8 || len(nB) > 64 {
		bad = append(bad, "my_nonce")
	}
	if nonce, err := b64.DecodeString(f.Value("nonce")); err != nil || subtle.ConstantTimeCompare(nonce, n.nA) != 1 {
		bad = append(bad, "nonce")
	}
	// The counter is an MPI of at most n = 128 bits.
	if cb, err := b64.DecodeString(f.Value("counter")); err != nil || len(cb) == 0 || len(cb) > blockSize {
		bad = append(bad, "counter")
	} else {
		copy(n.ca[blockSize-len(cb):], cb)
	}
	var d *big.Int
	if dfl := f.Field("dhkeys"); dfl == nil || len(dfl.Values) != 1 {
		bad = append(bad, "dhkeys")
	} else if db, err := b64.DecodeString(dfl.Values[0]); err != nil || len(db) == 0 {
		bad = append(bad, "dhkeys")
	} else if d = new(big.Int).SetBytes(db); g != nil && g.CheckElement(d) != nil {
		// XEP-0116 §6.1 step 2: 1 < d < p-1, else not-acceptable
		bad = append(bad, "dhkeys")
	}
	if len(bad) > 0 {
		return bad
	}
	n.st.group = g
	n.x, n.e, n.d, n.nB = n.xs[g.ID()], n.es[g.ID()], d, nB
	delete(n.xs, g.ID())
	for id, xx := range n.xs { // the exponents of the other groups are not needed
		clear(xx)
		delete(n.xs, id)
	}
	n.cb = responderCounter(n.ca)
	s.setParams(&n.st)
	return nil
}

// sharedK returns K = HASH(d^x mod p).
func (s *Session) sharedK() ([32]byte, bool) {
	n := s.neg
	z, err := n.st.group.SharedSecret(n.d, n.x)
	if err != nil {
		return [32]byte{}, false
	}
	k := sharedSecret(z)
	modp.Wipe(z)
	return k, true
}

// initiatorIdentity computes Alice's identity over form_A2 (XEP-0116
// §6.3) under her keys kA, advancing n.ctrA.
func (s *Session) initiatorIdentity(kA *keySet, formA2 []byte) ([]byte, [32]byte, error) {
	n := s.neg
	pr := s.ownProof(n.st.initPub, n.st.signAlg)
	macA := sigmaMAC(&kA.ks, n.nB, n.nA, mpi(n.e), pr.pubKeyBytes(), n.formA, formA2)
	defer clear(macA[:])
	pt, err := pr.plaintext(s, &macA)
	if err != nil {
		return nil, [32]byte{}, err
	}
	defer clear(pt)
	n.ctrA = n.ca
	id, m := hideIdentity(kA, &n.ctrA, pt, s.cfg.cv)
	return id, m, nil
}

// onMessage2 is Alice's handling of message 2 and her message 3.
func (s *Session) onMessage2(res *Result, f *form.Form, in *Inbound) (Result, error) {
	n := s.neg
	if bad := s.checkAnswer(f); len(bad) > 0 {
		ne := &NegotiationError{Condition: CondNotAcceptable, Fields: bad}
		s.failWith(res, CondNotAcceptable, bad, "answer not acceptable", ne)
		return *res, ne
	}
	k, ok := s.sharedK()
	if !ok {
		s.failWith(res, CondNotAcceptable, []string{"dhkeys"}, "answer not acceptable", ErrAuthentication)
		return *res, ErrAuthentication
	}
	if n.st.sigmaI {
		defer clear(k[:])
		return s.onMessage2i(res, f, &k)
	}
	n.k = k
	n.formB = s.normalize(f)
	kA := deriveKeys(&n.k, true, n.st.keyLen(s.cfg.cv))
	defer kA.wipe()

	// rshashes: HMAC(N_A, RS) for each retained secret, then random decoys
	// (XEP-0217 §5.2.4), so the count reveals little.
	var rshashes []string
	secrets := s.liveSecrets()
	for i := range secrets {
		h := rsHash(n.nA, &secrets[i].Value)
		rshashes = append(rshashes, b64.EncodeToString(h[:]))
		clear(secrets[i].Value[:])
	}
	nd, err := modp.RandomBelow(s.cfg.rand, big.NewInt(1), big.NewInt(4))
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return *res, err
	}
	for range nd.Int64() {
		dec, err := s.cfg.read(32)
		if err != nil {
			s.fail(res, "negotiation failed", err)
			return *res, err
		}
		rshashes = append(rshashes, b64.EncodeToString(dec))
	}
	fields := []*form.Field{
		field("accept", "1"),
		field("nonce", b64.EncodeToString(n.nB)),
		field("dhkeys", b64.EncodeToString(mpi(n.e))),
		field("rshashes", rshashes...),
	}
	id, mA, err := s.initiatorIdentity(&kA, s.normalize(ssnForm(form.TypeResult, fields...)))
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return *res, err
	}
	s.sas = sas28x5(mA[:], n.formB, s.cfg.cv)
	fields = append(fields, field("identity", b64.EncodeToString(id)), field("mac", b64.EncodeToString(mA[:])))
	s.step = stepConfirming
	res.Out = append(res.Out, s.out(feature(ssnForm(form.TypeResult, fields...))))
	return *res, nil
}

// onMessage2i is Alice's handling of message 2 of the 3-message exchange,
// which carries Bob's identity (XEP-0116 §6.2), and her message 3, which
// completes the negotiation.
func (s *Session) onMessage2i(res *Result, f *form.Form, k *[32]byte) (Result, error) {
	n := s.neg
	kl := n.st.keyLen(s.cfg.cv)
	n.kA, n.kB = deriveKeys(k, true, kl), deriveKeys(k, false, kl)
	idB, ok1 := decodeField(f, "identity", 0)
	mB, ok2 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 {
		return s.identityFail(res)
	}
	n.formB = s.normalize(f, "identity", "mac")
	n.ctrB = n.cb
	peerKey, ok := s.checkIdentity(&n.kB, &n.ctrB, n.st.respPub, n.st.signAlg, idB, mB, func(pubKey []byte) [32]byte {
		return sigmaMAC(&n.kB.ks, n.nA, n.nB, mpi(n.d), pubKey, n.formB, nil)
	})
	if !ok {
		return s.identityFail(res)
	}
	fields := []*form.Field{field("accept", "1"), field("nonce", b64.EncodeToString(n.nB))}
	id, mA, err := s.initiatorIdentity(&n.kA, s.normalize(ssnForm(form.TypeResult, fields...)))
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return *res, err
	}
	fields = append(fields, field("identity", b64.EncodeToString(id)), field("mac", b64.EncodeToString(mA[:])))
	s.reportKey(res, peerKey)
	ev := Established{Session: s, Encrypted: true, Verified: s.peerKeyVerified, PeerKey: peerKey}
	res.Out = append(res.Out, s.out(feature(ssnForm(form.TypeResult, fields...))))
	kA, kB := n.kA, n.kB
	s.activate(&kA, n.ctrA, &kB, n.ctrB)
	kA.wipe()
	kB.wipe()
	res.Events = append(res.Events, ev)
	return *res, nil
}

// liveSecrets returns the unexpired retained secrets for the peer, and
// has the expired ones removed from the store.
func (s *Session) liveSecrets() []Secret {
	if s.cfg.secrets == nil {
		return nil
	}
	list, err := s.cfg.secrets.Lookup(s.peerBare)
	if err != nil {
		return nil
	}
	now := s.cfg.now()
	out := list[:0]
	expired := false
	for _, sc := range list {
		if s.cfg.lifetime > 0 && now.Sub(sc.Created) > s.cfg.lifetime {
			expired = true
			continue
		}
		out = append(out, sc)
	}
	// Every dropped value was overwritten by a kept one or lies here.
	clear(list[len(out):])
	if expired {
		// A failure leaves them stored, and still ignored.
		s.cfg.secrets.Expire(s.peerBare, now.Add(-s.cfg.lifetime)) //nolint:errcheck
	}
	return out
}

// onMessage4 is Alice's handling of message 4 of the 4-message exchange
// (XEP-0217 §5.4, XEP-0116 §7).
func (s *Session) onMessage4(res *Result, in *Inbound) (Result, error) {
	n := s.neg
	pf, err := parseFeature(in.Init, NSInit, "init")
	if err != nil {
		return s.identityFail(res)
	}
	f := pf.form
	if f.Type != form.TypeResult || f.FormType() != FormTypeSSN {
		return s.identityFail(res)
	}
	nonce, ok1 := decodeField(f, "nonce", 0)
	srsh, ok2 := decodeField(f, "srshash", 32)
	idB, ok3 := decodeField(f, "identity", 0)
	mB, ok4 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 || !ok3 || !ok4 || subtle.ConstantTimeCompare(nonce, n.nA) != 1 {
		return s.identityFail(res)
	}
	var srs *Secret
	secrets := s.liveSecrets()
	defer func() {
		for i := range secrets {
			clear(secrets[i].Value[:])
		}
	}()
	for i := range secrets {
		h := srsHash(&secrets[i].Value)
		if subtle.ConstantTimeCompare(h[:], srsh) == 1 {
			srs = &secrets[i]
			break
		}
	}
	kf := s.finalKey(&n.k, srs)
	defer clear(kf[:])
	kl := n.st.keyLen(s.cfg.cv)
	kA, kB := deriveKeys(&kf, true, kl), deriveKeys(&kf, false, kl)
	defer kA.wipe()
	defer kB.wipe()
	ctrB := n.cb
	formB2 := s.normalize(f, "identity", "mac")
	peerKey, ok := s.checkIdentity(&kB, &ctrB, n.st.respPub, n.st.signAlg, idB, mB, func(pubKey []byte) [32]byte {
		return sigmaMAC(&kB.ks, n.nA, n.nB, mpi(n.d), pubKey, n.formB, formB2)
	})
	if !ok {
		// §5.4.2: any encrypted content with it is ignored.
		return s.identityFail(res)
	}
	s.reportKey(res, peerKey)
	ev := s.establish(srs, len(secrets) > 0, &kf)
	s.activate(&kA, n.ctrA, &kB, ctrB)
	res.Events = append(res.Events, ev)
	if in.C != nil {
		return s.openC(res, in)
	}
	return *res, nil
}
