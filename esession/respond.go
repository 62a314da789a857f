package esession

import (
	"crypto/subtle"
	"math/big"
	"slices"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the responder's side ("Bob") of a negotiation: the answer
// (message 2), the initiator's identity (message 3) and, in the 4-message
// exchange, the responder's identity (message 4). XEP-0116 §5-§6,
// XEP-0217 §4.3-§5.3.

// accept answers the request (Bob's message 2 for an encrypted session).
func (s *Session) accept(res *Result) error {
	n := s.neg
	p := n.plan
	if p.problem != nil {
		res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread,
			Payload: errorPayload(p.problem.Condition, p.problem.Fields, n.echo.el)})
		s.fail(res, "request not acceptable", p.problem)
		return p.problem
	}
	req := n.echo.form
	s.params = Params{Security: p.security, Logging: p.logging, Version: p.st.version, SharePresence: p.presence == PresenceMay}
	if p.disclosure {
		s.params.Disclosure = "never"
	}
	ans := ssnForm(form.TypeSubmit)
	if !p.encrypted {
		ans.Add(field("accept", "1"))
		if p.loggingVar != "" {
			ans.Add(field(p.loggingVar, loggingValue(p.loggingVar, p.logging)))
		}
		if p.disclosure {
			ans.Add(field("disclosure", "never"))
		}
		if p.presence != "" {
			ans.Add(field("presence", p.presence))
		}
		if req.Field("security") != nil {
			ans.Add(field("security", p.security))
		}
		n.echo = nil
		s.step = stepAccepted
		res.Out = append(res.Out, s.out(feature(ans)))
		return nil
	}
	fail := func(err error) error {
		s.fail(res, "negotiation failed", err)
		return err
	}
	var err error
	if n.nB, err = s.cfg.read(nonceLen); err != nil {
		return fail(err)
	}
	caBytes, err := s.cfg.read(blockSize)
	if err != nil {
		return fail(err)
	}
	copy(n.ca[:], caBytes)
	n.cb = responderCounter(n.ca)
	n.st = p.st
	g := n.st.group
	if n.x, err = modp.RandomExponent(s.cfg.rand, exponentBytes(g)); err != nil {
		return fail(err)
	}
	n.d = g.Public(n.x)
	n.he, n.nA, n.e = p.he, p.nA, p.e
	s.setParams(&n.st)
	// Bob's form answers every field of the request in its order, except
	// dhhashes (dhkeys) and fields he does not use, then appends dhkeys,
	// nonce and counter (XEP-0116 §5.2).
	for _, fl := range req.Fields {
		switch v := fl.Var; v {
		case "accept":
			ans.Add(field(v, "1"))
		case "logging", "otr":
			ans.Add(field(v, loggingValue(v, p.logging)))
		case "disclosure":
			ans.Add(field(v, "never"))
		case "presence":
			if p.presence != "" {
				ans.Add(field(v, p.presence))
			}
		case "security":
			ans.Add(field(v, "e2e"))
		case "modp":
			ans.Add(field(v, strconv.Itoa(g.ID())))
		case "stanzas":
			ans.Add(field(v, n.st.stanzas...))
		case "my_nonce":
			ans.Add(field(v, b64.EncodeToString(n.nB)))
		default:
			if a := n.st.answerValue(v); a != "" {
				ans.Add(field(v, a))
			}
		}
	}
	ans.Add(field("dhkeys", b64.EncodeToString(mpi(n.d))),
		field("nonce", b64.EncodeToString(n.nA)),
		field("counter", b64.EncodeToString(new(big.Int).SetBytes(n.ca[:]).Bytes())))
	n.formB = s.normalize(ans)
	n.echo = nil
	s.step = stepAccepted
	if n.st.sigmaI {
		id, m, err := s.responderIdentity3(n)
		if err != nil {
			return fail(err)
		}
		// form_B is the answer without identity and mac (§5.3 step 2)
		ans = form.New(form.TypeSubmit, append(slices.Clone(ans.Fields),
			field("identity", b64.EncodeToString(id)), field("mac", b64.EncodeToString(m[:])))...)
	}
	res.Out = append(res.Out, s.out(feature(ans)))
	return nil
}

// setParams records the agreed algorithms in the session's Params.
func (s *Session) setParams(st *suite) {
	s.params.Group = st.group.ID()
	s.params.Version = st.version
	s.params.Cipher = st.cipher
	s.params.Stanzas = st.stanzas
	s.params.RekeyFreq = st.rekeyFreq
	s.params.InitiatorKey, s.params.ResponderKey = st.initPub, st.respPub
	s.params.SignAlg = st.signAlg
	s.params.ThreeMessage = st.sigmaI
}

// ownProof returns this side's proof for the identification method.
func (s *Session) ownProof(method, alg string) *proof {
	return &proof{method: method, key: s.cfg.key, alg: alg}
}

// responderIdentity3 derives the session keys of the 3-message variant
// from K = HASH(e^y) and computes Bob's identity over form_B (XEP-0116
// §5.1 step 6, §5.3-5.4: no form_B2).
func (s *Session) responderIdentity3(n *negotiation) ([]byte, [32]byte, error) {
	z, err := n.st.group.SharedSecret(n.e, n.x)
	if err != nil {
		return nil, [32]byte{}, ErrAuthentication // the range was checked; cannot happen
	}
	k := sharedSecret(z)
	modp.Wipe(z)
	defer clear(k[:])
	kl := n.st.keyLen(s.cfg.cv)
	n.kA, n.kB = deriveKeys(&k, true, kl), deriveKeys(&k, false, kl)
	pr := s.ownProof(n.st.respPub, n.st.signAlg)
	macB := sigmaMAC(&n.kB.ks, n.nA, n.nB, mpi(n.d), pr.pubKeyBytes(), n.formB, nil)
	defer clear(macB[:])
	pt, err := pr.plaintext(s, &macB)
	if err != nil {
		return nil, [32]byte{}, err
	}
	defer clear(pt)
	n.ctrB = n.cb
	id, m := hideIdentity(&n.kB, &n.ctrB, pt, s.cfg.cv)
	return id, m, nil
}

// onComplete is Bob's handling of the completion: a plain result, a
// cancel, or message 3 (answered with message 4 in the 4-message
// exchange).
func (s *Session) onComplete(res *Result, pf *parsedFeature, in *Inbound) (Result, error) {
	f := pf.form
	acc, err := f.Field("accept").Bool()
	if err != nil {
		err := s.violation()
		s.fail(res, "malformed completion", err)
		return *res, err
	}
	if !acc {
		s.end("cancelled by peer", nil)
		res.Events = append(res.Events, Terminated{Session: s, ByPeer: true, Reason: "cancelled by peer"})
		return *res, nil
	}
	if !s.wantE2E {
		s.neg.wipe()
		s.neg = nil
		s.step = stepActive
		res.Events = append(res.Events, Established{Session: s})
		return *res, nil
	}
	if s.neg.st.sigmaI {
		return s.onMessage3i(res, f, in)
	}
	return s.onMessage3(res, f)
}

// identityFail ends a negotiation whose identity check failed: XEP-0116
// §6.2 and XEP-0217 §5.3.1 answer feature-not-implemented. The same answer
// and error for every check, so nothing tells which one failed.
func (s *Session) identityFail(res *Result) (Result, error) {
	s.failWith(res, CondFeatureNotImplemented, nil, "identity verification failed", ErrAuthentication)
	return *res, ErrAuthentication
}

// verifyInitiator checks Alice's identity in message 3 under her keys kA
// (XEP-0116 §6.2): returns her key (nil without public keys).
func (s *Session) verifyInitiator(res *Result, n *negotiation, f *form.Form, kA *keySet, ctrA *counter) (*PublicKey, []byte, bool) {
	id, ok1 := decodeField(f, "identity", 0)
	mA, ok2 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 {
		return nil, nil, false
	}
	formA2 := s.normalize(f, "identity", "mac")
	key, ok := s.checkIdentity(kA, ctrA, n.st.initPub, n.st.signAlg, id, mA, func(pubKey []byte) [32]byte {
		return sigmaMAC(&kA.ks, n.nB, n.nA, mpi(n.e), pubKey, n.formA, formA2)
	})
	return key, mA, ok
}

// onMessage3 is Bob's handling of message 3 of the 4-message exchange
// (XEP-0217 §5.3) and his message 4.
func (s *Session) onMessage3(res *Result, f *form.Form) (Result, error) {
	n := s.neg
	nonce, ok1 := decodeField(f, "nonce", 0)
	eb, ok2 := decodeField(f, "dhkeys", 0)
	if !ok1 || !ok2 || subtle.ConstantTimeCompare(nonce, n.nB) != 1 {
		return s.identityFail(res)
	}
	e := new(big.Int).SetBytes(eb)
	// §5.3.1 step 1: the hash commitment; step 2: 1 < e < p-1.
	he := dhHash(e)
	if subtle.ConstantTimeCompare(he[:], n.he) != 1 {
		return s.identityFail(res)
	}
	z, err := n.st.group.SharedSecret(e, n.x)
	if err != nil {
		return s.identityFail(res)
	}
	n.e = e
	k := sharedSecret(z)
	modp.Wipe(z)
	defer clear(k[:])
	kl := n.st.keyLen(s.cfg.cv)
	kA := deriveKeys(&k, true, kl)
	defer kA.wipe()
	ctrA := n.ca
	peerKey, mA, ok := s.verifyInitiator(res, n, f, &kA, &ctrA)
	if !ok {
		return s.identityFail(res)
	}
	s.sas = sas28x5(mA, n.formB, s.cfg.cv)

	// §5.3.3: the shared retained secret is the one whose HMAC under N_A
	// is among the rshashes.
	var srs *Secret
	secrets := s.liveSecrets()
	if hashes := f.Field("rshashes"); hashes != nil {
	search:
		for i := range secrets {
			h := rsHash(n.nA, &secrets[i].Value)
			for _, v := range hashes.Values {
				got, err := b64.DecodeString(v)
				if err == nil && subtle.ConstantTimeCompare(got, h[:]) == 1 {
					srs = &secrets[i]
					break search
				}
			}
		}
	}
	kf := s.finalKey(&k, srs)
	defer clear(kf[:])
	kA2, kB := deriveKeys(&kf, true, kl), deriveKeys(&kf, false, kl)
	defer kA2.wipe()
	defer kB.wipe()
	var srsh [32]byte
	if srs != nil {
		srsh = srsHash(&srs.Value)
	} else {
		r, err := s.cfg.read(32)
		if err != nil {
			s.fail(res, "negotiation failed", err)
			return *res, err
		}
		copy(srsh[:], r)
	}
	fields := []*form.Field{
		field("nonce", b64.EncodeToString(n.nA)),
		field("srshash", b64.EncodeToString(srsh[:])),
	}
	formB2 := s.normalize(ssnForm(form.TypeResult, fields...))
	pr := s.ownProof(n.st.respPub, n.st.signAlg)
	macB := sigmaMAC(&kB.ks, n.nA, n.nB, mpi(n.d), pr.pubKeyBytes(), n.formB, formB2)
	pt, err := pr.plaintext(s, &macB)
	clear(macB[:])
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return *res, err
	}
	ctrB := n.cb
	idB, mB := hideIdentity(&kB, &ctrB, pt, s.cfg.cv)
	clear(pt)
	fields = append(fields, field("identity", b64.EncodeToString(idB)), field("mac", b64.EncodeToString(mB[:])))
	f4 := ssnForm(form.TypeResult, fields...)

	s.reportKey(res, peerKey)
	ev := s.establish(srs, len(secrets) > 0, &kf)
	for i := range secrets {
		clear(secrets[i].Value[:])
	}
	s.activate(&kB, ctrB, &kA2, ctrA)
	res.Out = append(res.Out, s.out(xmltree.New(NSInit, "init").Append(f4.Element())))
	res.Events = append(res.Events, ev)
	return *res, nil
}

// onMessage3i is Bob's handling of message 3 of the 3-message exchange
// (XEP-0116 §6.2): Alice's identity completes the negotiation; encrypted
// content may ride along.
func (s *Session) onMessage3i(res *Result, f *form.Form, in *Inbound) (Result, error) {
	n := s.neg
	nonce, ok := decodeField(f, "nonce", 0)
	if !ok || subtle.ConstantTimeCompare(nonce, n.nB) != 1 {
		return s.identityFail(res)
	}
	ctrA := n.ca
	peerKey, _, ok := s.verifyInitiator(res, n, f, &n.kA, &ctrA)
	if !ok {
		// §6.2: content sent with it is ignored.
		return s.identityFail(res)
	}
	s.reportKey(res, peerKey)
	ev := Established{Session: s, Encrypted: true, Verified: s.peerKeyVerified, PeerKey: peerKey}
	kA, kB := n.kA, n.kB
	s.activate(&kB, n.ctrB, &kA, ctrA)
	kA.wipe()
	kB.wipe()
	res.Events = append(res.Events, ev)
	if in.C != nil {
		return s.openC(res, in)
	}
	return *res, nil
}

// reportKey compares the peer's key with the trust store and reports it
// before anything else of the session is shown (XEP-0116 §10.4).
func (s *Session) reportKey(res *Result, key *PublicKey) {
	alerts, verified := s.assessKey(key)
	res.Events = append(res.Events, alerts...)
	s.peerKey, s.peerKeyVerified = key, verified
}

// finalKey returns K' = HASH(K | SRS | OSS) (XEP-0116 §6.3) with the
// other shared secret this client holds for the peer, if any.
func (s *Session) finalKey(k *[32]byte, srs *Secret) [32]byte {
	var srsVal, oss []byte
	if srs != nil {
		srsVal = srs.Value[:]
	}
	if s.cfg.oss != nil {
		if v, ok := s.cfg.oss.OtherSecret(s.peerBare); ok && len(v) > 0 {
			oss = v
			s.ossUsed = true
		}
	}
	return finalKey(k, srsVal, oss)
}

// establish records the retained-secret outcome of a negotiation and
// stores the new retained secret HMAC(K', "New Retained Secret") in place
// of the one that matched (XEP-0217 §5.3.3, §5.4.1).
func (s *Session) establish(srs *Secret, hadSecrets bool, kf *[32]byte) Established {
	ev := Established{Session: s, Encrypted: true, SAS: s.sas, PeerKey: s.peerKey, OtherSecret: s.ossUsed}
	s.secretMatched = srs != nil
	s.chainVerified = srs != nil && srs.Verified
	s.continuityBroken = srs == nil && hadSecrets
	ev.SecretMatched, ev.ContinuityBroken = s.secretMatched, s.continuityBroken
	ev.Verified = s.chainVerified || s.peerKeyVerified
	s.rs = newRetainedSecret(kf)
	s.rsCreated = s.cfg.now()
	s.haveRS = true
	if s.cfg.secrets != nil {
		var old *[32]byte
		if srs != nil {
			old = &srs.Value
		}
		ev.SecretsErr = s.cfg.secrets.Replace(s.peerBare, old, Secret{Value: s.rs, Verified: s.chainVerified, Created: s.rsCreated})
	}
	return ev
}

// activate starts the XEP-0200 channel with the final keys and the
// counters after the identity blocks, hands it this side's DH secret and
// the peer's public value for re-keying, and ends the negotiation.
func (s *Session) activate(send *keySet, sendCtr counter, recv *keySet, recvCtr counter) {
	n := s.neg
	s.ch = &channel{pad: s.cfg.pad, cv: s.cfg.cv}
	s.ch.send.init(send, sendCtr, s.cfg.cv)
	s.ch.recv.init(recv, recvCtr, s.cfg.cv)
	peer := n.d
	if s.role == Responder {
		peer = n.e
	}
	s.ch.startRekeying(s.cfg, &n.st, n.x, peer)
	n.x = nil // the channel owns it now
	s.neg.wipe()
	s.neg = nil
	s.step = stepActive
	s.lastActive = s.cfg.now()
}
