package omemo

import "errors"

// X3DH (Signal's X3DH specification, with XEP-0384 §4.2's parameters):
// Curve25519, SHA-256, info "OMEMO X3DH" (OMEMO 2) or libsignal's
// "WhisperText" (0.3); a one-time pre-key is always required.
//
//	DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  DH4 = DH(EK_A, OPK_B)
//	SK  = HKDF(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 || DH4, info)

func (m *Manager) x3dhInfo() string {
	if m.cfg.Generation == V2 {
		return x3dhInfo2
	}
	return x3dhInfo03
}

// buildActive runs X3DH as the initiator against a peer's bundle and
// returns the new session, whose messages carry the key exchange until
// the peer answers.
func (m *Manager) buildActive(b *Bundle) (*session, error) {
	c, err := b.check(m.cfg.Generation)
	if err != nil {
		return nil, err
	}
	i, err := randInt(m.cfg.Rand, len(c.preKeys))
	if err != nil {
		return nil, err
	}
	ek, err := GenerateKeyPair(m.cfg.Rand)
	if err != nil {
		return nil, err
	}
	defer ek.Wipe()
	ik := &m.idPriv
	var dhs [4][32]byte
	defer clear(dhs[:])
	var errs [4]error
	dhs[0], errs[0] = dh(ik, &c.spk)
	dhs[1], errs[1] = dh(&ek.Private, &c.identityX)
	dhs[2], errs[2] = dh(&ek.Private, &c.spk)
	dhs[3], errs[3] = dh(&ek.Private, &c.preKeyPubs[i])
	if err := errors.Join(errs[:]...); err != nil {
		return nil, errors.Join(ErrInvalidBundle, err)
	}
	sk := x3dhKDF(m.x3dhInfo(), &dhs[0], &dhs[1], &dhs[2], &dhs[3])
	defer clear(sk[:])
	s := &session{gen: m.cfg.Generation, initiator: true, local: m.identityWire(), remote: c.identity}
	if err := s.initActive(m.cfg.Rand, &sk, &c.spk); err != nil {
		return nil, err
	}
	s.pending = &keyExchange{
		preKeyID:       c.preKeys[i].ID,
		signedPreKeyID: c.spkID,
		identityKey:    s.local,
		baseKey:        ek.Public,
		registrationID: m.account.DeviceID,
	}
	return s, nil
}

// buildPassive runs X3DH as the responder for a received key exchange.
// It returns the session and the index of the consumed pre-key in k.
func (m *Manager) buildPassive(kx *keyExchange, k *Keys) (*session, int, error) {
	var spk *SignedPreKey
	for i := range k.SignedPreKeys {
		if k.SignedPreKeys[i].ID == kx.signedPreKeyID {
			spk = &k.SignedPreKeys[i]
			break
		}
	}
	opk := -1
	for i := range k.PreKeys {
		if k.PreKeys[i].ID == kx.preKeyID {
			opk = i
			break
		}
	}
	if spk == nil || opk < 0 {
		return nil, 0, ErrUnknownPreKey
	}
	remoteX, err := identityX25519(m.cfg.Generation, &kx.identityKey)
	if err != nil {
		return nil, 0, ErrInvalidMessage
	}
	ik := &m.idPriv
	var dhs [4][32]byte
	defer clear(dhs[:])
	var errs [4]error
	dhs[0], errs[0] = dh(&spk.KeyPair.Private, &remoteX)
	dhs[1], errs[1] = dh(ik, &kx.baseKey)
	dhs[2], errs[2] = dh(&spk.KeyPair.Private, &kx.baseKey)
	dhs[3], errs[3] = dh(&k.PreKeys[opk].KeyPair.Private, &kx.baseKey)
	if errors.Join(errs[:]...) != nil {
		return nil, 0, ErrInvalidMessage
	}
	sk := x3dhKDF(m.x3dhInfo(), &dhs[0], &dhs[1], &dhs[2], &dhs[3])
	defer clear(sk[:])
	s := &session{gen: m.cfg.Generation, local: m.identityWire(), remote: kx.identityKey}
	s.initPassive(&sk, &spk.KeyPair)
	origin := *kx
	s.origin = &origin
	return s, opk, nil
}

// sameExchange reports whether two key exchanges are the same one (a copy
// of a message, or a later message of the same unanswered exchange).
func sameExchange(a, b *keyExchange) bool {
	return a.preKeyID == b.preKeyID && a.signedPreKeyID == b.signedPreKeyID &&
		a.identityKey == b.identityKey && a.baseKey == b.baseKey
}
