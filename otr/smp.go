package otr

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"

	"filippo.io/bigmod"
	"golang.org/x/crypto/cryptobyte"

	"github.com/balcony-im/balcony/internal/modp"
)

// The Socialist Millionaires' Protocol (Protocol-v3 "Socialist
// Millionaires' Protocol (SMP)"), version 1 of the secret format.

type smpState int

const (
	smpExpect1 smpState = iota
	smpExpect2
	smpExpect3
	smpExpect4
)

// smpExpLen is the length of SMP's random exponents: uniform in [1, q-1],
// written as 1536-bit numbers so that exponentiation time does not depend
// on their value.
const smpExpLen = 192

var (
	qMod   = mustModulus(groupQ)
	bigOne = big.NewInt(1)
)

func mustModulus(n *big.Int) *bigmod.Modulus {
	m, err := bigmod.NewModulus(n.Bytes())
	if err != nil {
		panic(err)
	}
	return m
}

// errSMPCheat reports an SMP message that fails a proof or a range check,
// or does not have the expected shape.
var errSMPCheat = errors.New("otr: SMP message failed verification")

type smp struct {
	state smpState

	// A received SMP message 1 waiting for AnswerSMP.
	pending  bool
	question string
	g2a, g3a *big.Int

	secret []byte // x or y: SHA-256 of the secret information, secret

	// exponents, secret, smpExpLen bytes each
	a2, a3, b3 []byte

	g2, g3     *big.Int
	g3o        *big.Int // the other party's g3a (Bob) or g3b (Alice)
	pb, qb     *big.Int // Bob's P and Q
	paPb, qaQb *big.Int // Pa/Pb and Qa/Qb
}

func (s *smp) reset() {
	clear(s.secret)
	clear(s.a2)
	clear(s.a3)
	clear(s.b3)
	// g2 and g3 are Diffie-Hellman results
	modp.Wipe(s.g2)
	modp.Wipe(s.g3)
	*s = smp{}
}

// smpSecret computes SHA256(1 || initiator fp || responder fp || ssid ||
// user secret) (Protocol-v3 "Secret information").
func smpSecret(initiator, responder Fingerprint, ssid [8]byte, user []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(initiator[:])
	h.Write(responder[:])
	h.Write(ssid[:])
	h.Write(user)
	return h.Sum(nil)
}

// smpHash is SHA256(version || MPI a [|| MPI b]) as an integer.
func smpHash(version byte, a, b *big.Int) *big.Int {
	buf := appendMPIInt([]byte{version}, a)
	if b != nil {
		buf = appendMPIInt(buf, b)
	}
	sum := sha256.Sum256(buf)
	return new(big.Int).SetBytes(sum[:])
}

func randomSMPExponent(r io.Reader) ([]byte, error) {
	e, err := modp.RandomBelow(r, bigOne, groupQ)
	if err != nil {
		return nil, err
	}
	b := e.FillBytes(make([]byte, smpExpLen))
	modp.Wipe(e)
	return b, nil
}

// expSecret is base^e mod p in constant time for a secret exponent.
func expSecret(base *big.Int, e []byte) *big.Int {
	v, err := group.Exp(base, e)
	if err != nil {
		panic("otr: SMP base out of range") // bases are checked or computed
	}
	return v
}

// expPublic is base^e mod p for public values.
func expPublic(base, e *big.Int) *big.Int { return new(big.Int).Exp(base, e, groupP) }

func mulMod(a, b *big.Int) *big.Int {
	v := new(big.Int).Mul(a, b)
	return v.Mod(v, groupP)
}

func divMod(a, b *big.Int) *big.Int {
	inv := new(big.Int).ModInverse(b, groupP)
	return mulMod(a, inv)
}

// proofD computes r - e*c mod q in constant time with respect to r and e.
func proofD(r, e []byte, c *big.Int) *big.Int {
	rn, err1 := bigmod.NewNat().SetBytes(r, qMod)
	en, err2 := bigmod.NewNat().SetOverflowingBytes(e, qMod)
	cn, err3 := bigmod.NewNat().SetBytes(c.Bytes(), qMod)
	if err1 != nil || err2 != nil || err3 != nil {
		panic("otr: SMP exponent out of range")
	}
	en.Mul(cn, qMod)
	rn.Sub(en, qMod)
	d := new(big.Int).SetBytes(rn.Bytes(qMod))
	clear(rn.Bits())
	clear(en.Bits())
	return d
}

// encodeSMP encodes the MPIs of an SMP TLV: INT count, then the MPIs.
func encodeSMP(vals ...*big.Int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(vals)))
	for _, v := range vals {
		b = appendMPIInt(b, v)
	}
	return b
}

// decodeSMP parses an SMP TLV value with exactly n MPIs.
func decodeSMP(v []byte, n int) ([]*big.Int, bool) {
	s := cryptobyte.String(v)
	var count uint32
	if !s.ReadUint32(&count) || count != uint32(n) {
		return nil, false
	}
	out := make([]*big.Int, n)
	for i := range out {
		if !readMPIInt(&s, &out[i]) {
			return nil, false
		}
	}
	return out, s.Empty()
}

func checkElems(vals ...*big.Int) bool {
	for _, v := range vals {
		if !checkElement(v) {
			return false
		}
	}
	return true
}

func checkExps(vals ...*big.Int) bool {
	for _, v := range vals {
		if group.CheckExponent(v) != nil {
			return false
		}
	}
	return true
}

// verifyKnowledge checks c == H(version, g^D * base^c), the proof that the
// sender knows the exponent of base.
func verifyKnowledge(version byte, base, c, d *big.Int) bool {
	v := mulMod(expPublic(group.Generator(), d), expPublic(base, c))
	return smpHash(version, v, nil).Cmp(c) == 0
}

// proveKnowledge returns (c, D) proving knowledge of e, with a random r.
func proveKnowledge(rnd io.Reader, version byte, e []byte) (c, d *big.Int, err error) {
	r, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, nil, err
	}
	defer clear(r)
	c = smpHash(version, group.Public(r), nil)
	return c, proofD(r, e, c), nil
}

// step1 starts SMP (Alice): message 1 is g2a, c2, D2, g3a, c3, D3.
func (s *smp) step1(rnd io.Reader, secret []byte) ([]byte, error) {
	s.reset()
	var err error
	if s.a2, err = randomSMPExponent(rnd); err != nil {
		return nil, err
	}
	if s.a3, err = randomSMPExponent(rnd); err != nil {
		return nil, err
	}
	g2a, g3a := group.Public(s.a2), group.Public(s.a3)
	c2, d2, err := proveKnowledge(rnd, 1, s.a2)
	if err != nil {
		return nil, err
	}
	c3, d3, err := proveKnowledge(rnd, 2, s.a3)
	if err != nil {
		return nil, err
	}
	s.secret = secret
	s.state = smpExpect2
	return encodeSMP(g2a, c2, d2, g3a, c3, d3), nil
}

// receive1 verifies message 1 (Bob) and keeps it for AnswerSMP.
func (s *smp) receive1(v []byte, question string) error {
	m, ok := decodeSMP(v, 6)
	if !ok {
		return errSMPCheat
	}
	g2a, c2, d2, g3a, c3, d3 := m[0], m[1], m[2], m[3], m[4], m[5]
	if !checkElems(g2a, g3a) || !checkExps(d2, d3) ||
		!verifyKnowledge(1, g2a, c2, d2) || !verifyKnowledge(2, g3a, c3, d3) {
		return errSMPCheat
	}
	s.reset()
	s.pending, s.question, s.g2a, s.g3a = true, question, g2a, g3a
	return nil
}

// step2 answers message 1 (Bob): message 2 is g2b, c2, D2, g3b, c3, D3,
// Pb, Qb, cP, D5, D6.
func (s *smp) step2(rnd io.Reader, secret []byte) ([]byte, error) {
	b2, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, err
	}
	defer clear(b2)
	b3, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, err
	}
	g2b, g3b := group.Public(b2), group.Public(b3)
	c2, d2, err := proveKnowledge(rnd, 3, b2)
	if err != nil {
		return nil, err
	}
	c3, d3, err := proveKnowledge(rnd, 4, b3)
	if err != nil {
		return nil, err
	}
	g2 := expSecret(s.g2a, b2)
	g3 := expSecret(s.g3a, b3)
	r4, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, err
	}
	defer clear(r4)
	r5, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, err
	}
	defer clear(r5)
	r6, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, err
	}
	defer clear(r6)
	pb := expSecret(g3, r4)
	qb := mulMod(group.Public(r4), expSecret(g2, secret))
	cp := smpHash(5, expSecret(g3, r5), mulMod(group.Public(r5), expSecret(g2, r6)))
	d5 := proofD(r5, r4, cp)
	d6 := proofD(r6, secret, cp)
	g3a := s.g3a
	s.reset()
	s.secret, s.b3 = secret, b3
	s.g2, s.g3, s.g3o, s.pb, s.qb = g2, g3, g3a, pb, qb
	s.state = smpExpect3
	return encodeSMP(g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6), nil
}

// step3 verifies message 2 and builds message 3 (Alice): Pa, Qa, cP, D5,
// D6, Ra, cR, D7.
func (s *smp) step3(rnd io.Reader, v []byte) ([]byte, error) {
	m, ok := decodeSMP(v, 11)
	if !ok {
		return nil, errSMPCheat
	}
	g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6 := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10]
	if !checkElems(g2b, g3b, pb, qb) || !checkExps(d2, d3, d5, d6) ||
		!verifyKnowledge(3, g2b, c2, d2) || !verifyKnowledge(4, g3b, c3, d3) {
		return nil, errSMPCheat
	}
	g2 := expSecret(g2b, s.a2)
	g3 := expSecret(g3b, s.a3)
	// cP = H(5, g3^D5 Pb^cP, g1^D5 g2^D6 Qb^cP)
	l := mulMod(expPublic(g3, d5), expPublic(pb, cp))
	r := mulMod(mulMod(expPublic(group.Generator(), d5), expPublic(g2, d6)), expPublic(qb, cp))
	if smpHash(5, l, r).Cmp(cp) != 0 {
		return nil, errSMPCheat
	}
	var rs [4][]byte
	for i := range rs {
		e, err := randomSMPExponent(rnd)
		if err != nil {
			return nil, err
		}
		rs[i] = e
		defer clear(e)
	}
	r4, r5, r6, r7 := rs[0], rs[1], rs[2], rs[3]
	pa := expSecret(g3, r4)
	qa := mulMod(group.Public(r4), expSecret(g2, s.secret))
	cp2 := smpHash(6, expSecret(g3, r5), mulMod(group.Public(r5), expSecret(g2, r6)))
	d5a := proofD(r5, r4, cp2)
	d6a := proofD(r6, s.secret, cp2)
	qaQb := divMod(qa, qb)
	ra := expSecret(qaQb, s.a3)
	cr := smpHash(7, group.Public(r7), expSecret(qaQb, r7))
	d7 := proofD(r7, s.a3, cr)
	s.g3o, s.paPb, s.qaQb = g3b, divMod(pa, pb), qaQb
	clear(s.a2)
	s.state = smpExpect4
	return encodeSMP(pa, qa, cp2, d5a, d6a, ra, cr, d7), nil
}

// step4 verifies message 3 and builds message 4 (Bob): Rb, cR, D7. It
// also reports whether the secrets matched.
func (s *smp) step4(rnd io.Reader, v []byte) ([]byte, bool, error) {
	m, ok := decodeSMP(v, 8)
	if !ok {
		return nil, false, errSMPCheat
	}
	pa, qa, cp, d5, d6, ra, cr, d7 := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]
	if !checkElems(pa, qa, ra) || !checkExps(d5, d6, d7) {
		return nil, false, errSMPCheat
	}
	// cP = H(6, g3^D5 Pa^cP, g1^D5 g2^D6 Qa^cP)
	l := mulMod(expPublic(s.g3, d5), expPublic(pa, cp))
	r := mulMod(mulMod(expPublic(group.Generator(), d5), expPublic(s.g2, d6)), expPublic(qa, cp))
	if smpHash(6, l, r).Cmp(cp) != 0 {
		return nil, false, errSMPCheat
	}
	// cR = H(7, g1^D7 g3a^cR, (Qa/Qb)^D7 Ra^cR)
	qaQb := divMod(qa, s.qb)
	l = mulMod(expPublic(group.Generator(), d7), expPublic(s.g3o, cr))
	r = mulMod(expPublic(qaQb, d7), expPublic(ra, cr))
	if smpHash(7, l, r).Cmp(cr) != 0 {
		return nil, false, errSMPCheat
	}
	r7, err := randomSMPExponent(rnd)
	if err != nil {
		return nil, false, err
	}
	defer clear(r7)
	rb := expSecret(qaQb, s.b3)
	cr2 := smpHash(8, group.Public(r7), expSecret(qaQb, r7))
	d7b := proofD(r7, s.b3, cr2)
	rab := expSecret(ra, s.b3)
	match := group.Equal(rab, divMod(pa, s.pb))
	s.reset()
	return encodeSMP(rb, cr2, d7b), match, nil
}

// receive4 verifies message 4 (Alice) and reports whether the secrets
// matched.
func (s *smp) receive4(v []byte) (bool, error) {
	m, ok := decodeSMP(v, 3)
	if !ok {
		return false, errSMPCheat
	}
	rb, cr, d7 := m[0], m[1], m[2]
	if !checkElems(rb) || !checkExps(d7) {
		return false, errSMPCheat
	}
	// cR = H(8, g1^D7 g3b^cR, (Qa/Qb)^D7 Rb^cR)
	l := mulMod(expPublic(group.Generator(), d7), expPublic(s.g3o, cr))
	r := mulMod(expPublic(s.qaQb, d7), expPublic(rb, cr))
	if smpHash(8, l, r).Cmp(cr) != 0 {
		return false, errSMPCheat
	}
	rab := expSecret(rb, s.a3)
	match := group.Equal(rab, s.paPb)
	s.reset()
	return match, nil
}
