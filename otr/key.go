package otr

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"filippo.io/bigmod"
	"golang.org/x/crypto/cryptobyte"

	"github.com/balcony-im/balcony/internal/modp"
)

// PublicKey is a DSA public key, OTR's long-term identity key (Protocol-v3
// "Public keys, signatures, and fingerprints"). q is 160 bits; p is 1024
// bits for keys this package generates, and up to 3072 bits for keys it
// accepts. A PublicKey is immutable and safe for concurrent use.
type PublicKey struct {
	p, q, g, y *big.Int
	fp         Fingerprint
}

// PrivateKey is a DSA private key. It signs in constant time with respect
// to the private key and the nonce. A PrivateKey is immutable and safe for
// concurrent use.
type PrivateKey struct {
	PublicKey
	x    *big.Int
	pMod *bigmod.Modulus
	qMod *bigmod.Modulus
	gNat *bigmod.Nat // g mod p
	qm2  []byte      // q-2, the exponent that inverts mod q
}

// Fingerprint is the SHA-1 fingerprint of a public key: the hash of its
// PUBKEY encoding without the two key-type bytes.
type Fingerprint [20]byte

// String returns the fingerprint as libotr shows it: five groups of eight
// upper-case hex digits separated by spaces.
func (f Fingerprint) String() string {
	h := strings.ToUpper(hex.EncodeToString(f[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 8 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i : i+8])
	}
	return b.String()
}

// Hex returns the fingerprint as 40 lower-case hex digits, the form used in
// xmpp: URIs (XEP-0364's otr-fingerprint query parameter).
func (f Fingerprint) Hex() string { return hex.EncodeToString(f[:]) }

// ParseFingerprint parses a fingerprint in either form returned by String
// and Hex (spaces are ignored, case does not matter).
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	h := strings.ReplaceAll(s, " ", "")
	if len(h) != 40 {
		return f, fmt.Errorf("otr: fingerprint %q: want 40 hex digits", s)
	}
	if _, err := hex.Decode(f[:], []byte(h)); err != nil {
		return f, fmt.Errorf("otr: fingerprint %q: %w", s, err)
	}
	return f, nil
}

const (
	dsaL    = 1024 // bits of p that GenerateKey produces
	dsaN    = 160  // bits of q
	dsaMaxL = 3072 // largest p accepted from a peer
	sigLen  = 2 * dsaN / 8
)

var errBadKey = errors.New("otr: invalid DSA key")

// newPublicKey validates DSA public parameters. It checks sizes and ranges
// and that q divides p-1; it does not test primality (a peer with bogus
// parameters only weakens its own signatures).
func newPublicKey(p, q, g, y *big.Int) (*PublicKey, error) {
	if p.BitLen() < dsaL || p.BitLen() > dsaMaxL || p.Bit(0) == 0 || q.BitLen() != dsaN || q.Bit(0) == 0 {
		return nil, errBadKey
	}
	one := big.NewInt(1)
	if g.Cmp(one) <= 0 || g.Cmp(p) >= 0 || y.Cmp(one) <= 0 || y.Cmp(p) >= 0 {
		return nil, errBadKey
	}
	pm1 := new(big.Int).Sub(p, one)
	if new(big.Int).Mod(pm1, q).Sign() != 0 {
		return nil, errBadKey
	}
	k := &PublicKey{p: p, q: q, g: g, y: y}
	k.fp = sha1.Sum(k.appendMPIs(nil))
	return k, nil
}

func newPrivateKey(pub *PublicKey, x *big.Int) (*PrivateKey, error) {
	if x.Sign() <= 0 || x.Cmp(pub.q) >= 0 {
		return nil, errBadKey
	}
	k := &PrivateKey{PublicKey: *pub, x: x}
	var err error
	if k.pMod, err = bigmod.NewModulus(pub.p.Bytes()); err != nil {
		return nil, errBadKey
	}
	if k.qMod, err = bigmod.NewModulus(pub.q.Bytes()); err != nil {
		return nil, errBadKey
	}
	if k.gNat, err = bigmod.NewNat().SetBytes(pub.g.Bytes(), k.pMod); err != nil {
		return nil, errBadKey
	}
	k.qm2 = new(big.Int).Sub(pub.q, big.NewInt(2)).Bytes()
	// y must match x; this also catches a corrupted key file.
	xb := k.x.FillBytes(make([]byte, dsaN/8))
	defer clear(xb)
	y := bigmod.NewNat().Exp(k.gNat, xb, k.pMod)
	yb := pub.y.FillBytes(make([]byte, k.pMod.Size()))
	if subtle.ConstantTimeCompare(y.Bytes(k.pMod), yb) != 1 {
		return nil, errBadKey
	}
	return k, nil
}

// GenerateKey generates a new DSA key with a 1024-bit p and a 160-bit q
// (FIPS 186-3 style parameter generation, as libotr's keys have). rand nil
// means crypto/rand. It takes around a second.
func GenerateKey(random io.Reader) (*PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	p, q, g, err := generateParameters(random)
	if err != nil {
		return nil, err
	}
	x, err := modp.RandomBelow(random, big.NewInt(1), q)
	if err != nil {
		return nil, fmt.Errorf("otr: generating key: %w", err)
	}
	// y = g^x in constant time with respect to x
	pm, err := bigmod.NewModulus(p.Bytes())
	if err != nil {
		return nil, err
	}
	gn, err := bigmod.NewNat().SetBytes(g.Bytes(), pm)
	if err != nil {
		return nil, err
	}
	xb := x.FillBytes(make([]byte, dsaN/8))
	y := new(big.Int).SetBytes(bigmod.NewNat().Exp(gn, xb, pm).Bytes(pm))
	clear(xb)
	pk, err := newPublicKey(p, q, g, y)
	if err != nil {
		return nil, err
	}
	return newPrivateKey(pk, x)
}

// generateParameters follows FIPS 186-3 appendix A.1.1 in spirit (random
// search rather than a seeded one, like crypto/dsa).
func generateParameters(random io.Reader) (p, q, g *big.Int, err error) {
	qb := make([]byte, dsaN/8)
	pb := make([]byte, dsaL/8)
	p, q, rem := new(big.Int), new(big.Int), new(big.Int)
	one := big.NewInt(1)
	for {
		if _, err := io.ReadFull(random, qb); err != nil {
			return nil, nil, nil, fmt.Errorf("otr: generating key: %w", err)
		}
		qb[0] |= 0x80
		qb[len(qb)-1] |= 1
		q.SetBytes(qb)
		if !q.ProbablyPrime(20) {
			continue
		}
		twoQ := new(big.Int).Lsh(q, 1)
		for i := 0; i < 4*dsaL; i++ {
			if _, err := io.ReadFull(random, pb); err != nil {
				return nil, nil, nil, fmt.Errorf("otr: generating key: %w", err)
			}
			pb[0] |= 0x80
			p.SetBytes(pb)
			rem.Mod(p, twoQ)
			p.Sub(p, rem).Add(p, one)
			if p.BitLen() < dsaL || !p.ProbablyPrime(20) {
				continue
			}
			e := new(big.Int).Div(new(big.Int).Sub(p, one), q)
			for h := int64(2); ; h++ {
				g = new(big.Int).Exp(big.NewInt(h), e, p)
				if g.Cmp(one) != 0 {
					return p, q, g, nil
				}
			}
		}
	}
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey { return &k.PublicKey }

// Fingerprint returns the key's fingerprint.
func (k *PublicKey) Fingerprint() Fingerprint { return k.fp }

// Equal reports whether k and other are the same key.
func (k *PublicKey) Equal(other *PublicKey) bool {
	return other != nil && k.p.Cmp(other.p) == 0 && k.q.Cmp(other.q) == 0 &&
		k.g.Cmp(other.g) == 0 && k.y.Cmp(other.y) == 0
}

func (k *PublicKey) appendMPIs(b []byte) []byte {
	b = appendMPIInt(b, k.p)
	b = appendMPIInt(b, k.q)
	b = appendMPIInt(b, k.g)
	return appendMPIInt(b, k.y)
}

// appendPubKey appends the PUBKEY encoding: type 0x0000 then p, q, g, y.
func (k *PublicKey) appendPubKey(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, 0)
	return k.appendMPIs(b)
}

func readPubKey(s *cryptobyte.String) (*PublicKey, bool) {
	var typ uint16
	var p, q, g, y *big.Int
	if !s.ReadUint16(&typ) || typ != 0 || !readMPIInt(s, &p) || !readMPIInt(s, &q) ||
		!readMPIInt(s, &g) || !readMPIInt(s, &y) {
		return nil, false
	}
	k, err := newPublicKey(p, q, g, y)
	return k, err == nil
}

// MarshalBinary returns the PUBKEY encoding of Protocol-v3.
func (k *PublicKey) MarshalBinary() ([]byte, error) { return k.appendPubKey(nil), nil }

// UnmarshalBinary parses a PUBKEY encoding.
func (k *PublicKey) UnmarshalBinary(data []byte) error {
	s := cryptobyte.String(data)
	pk, ok := readPubKey(&s)
	if !ok || !s.Empty() {
		return errBadKey
	}
	*k = *pk
	return nil
}

// MarshalBinary returns the PUBKEY encoding followed by the MPI x. The
// result is secret.
func (k *PrivateKey) MarshalBinary() ([]byte, error) {
	return appendMPIInt(k.appendPubKey(nil), k.x), nil
}

// UnmarshalBinary parses the encoding of MarshalBinary and checks that the
// private and public halves match.
func (k *PrivateKey) UnmarshalBinary(data []byte) error {
	s := cryptobyte.String(data)
	pk, ok := readPubKey(&s)
	var x *big.Int
	if !ok || !readMPIInt(&s, &x) || !s.Empty() {
		return errBadKey
	}
	priv, err := newPrivateKey(pk, x)
	if err != nil {
		return err
	}
	*k = *priv
	return nil
}

// sign produces a DSA signature r||s over the integer m mod q (Protocol-v3:
// the 32-byte MAC "taken modulo q instead of being truncated ... and not
// hashed again"). Every operation involving x or the nonce is constant time
// (bigmod); the nonce is uniform in [1, q-1].
func (k *PrivateKey) sign(random io.Reader, m []byte) ([sigLen]byte, error) {
	var sig [sigLen]byte
	mNat, err := bigmod.NewNat().SetBytes(m, k.pMod) // m < 2^256 < p
	if err != nil {
		return sig, errBadKey
	}
	z := bigmod.NewNat().Mod(mNat, k.qMod)
	xb := k.x.FillBytes(make([]byte, dsaN/8))
	defer clear(xb)
	one, qBig := big.NewInt(1), k.q
	for {
		kb, err := modp.RandomBelow(random, one, qBig)
		if err != nil {
			return sig, fmt.Errorf("otr: signing: %w", err)
		}
		kBytes := kb.FillBytes(make([]byte, dsaN/8))
		modp.Wipe(kb)
		gk := bigmod.NewNat().Exp(k.gNat, kBytes, k.pMod)
		r := bigmod.NewNat().Mod(gk, k.qMod)
		kNat, err := bigmod.NewNat().SetBytes(kBytes, k.qMod)
		clear(kBytes)
		if err != nil || r.IsZero() == 1 {
			continue
		}
		kInv := bigmod.NewNat().Exp(kNat, k.qm2, k.qMod)
		clear(kNat.Bits())
		s, _ := bigmod.NewNat().SetBytes(xb, k.qMod)
		s.Mul(r, k.qMod).Add(z, k.qMod).Mul(kInv, k.qMod)
		clear(kInv.Bits())
		if s.IsZero() == 1 {
			continue
		}
		copy(sig[:dsaN/8], r.Bytes(k.qMod))
		copy(sig[dsaN/8:], s.Bytes(k.qMod))
		clear(s.Bits())
		return sig, nil
	}
}

// verify checks a signature r||s over m mod q. Everything here is public,
// so math/big's variable-time arithmetic is fine.
func (k *PublicKey) verify(m, sig []byte) bool {
	if len(sig) != sigLen {
		return false
	}
	r := new(big.Int).SetBytes(sig[:dsaN/8])
	s := new(big.Int).SetBytes(sig[dsaN/8:])
	if r.Sign() <= 0 || r.Cmp(k.q) >= 0 || s.Sign() <= 0 || s.Cmp(k.q) >= 0 {
		return false
	}
	w := new(big.Int).ModInverse(s, k.q)
	if w == nil {
		return false
	}
	z := new(big.Int).SetBytes(m)
	u1 := z.Mul(z, w).Mod(z, k.q)
	u2 := w.Mul(r, w).Mod(w, k.q)
	v1 := new(big.Int).Exp(k.g, u1, k.p)
	v2 := new(big.Int).Exp(k.y, u2, k.p)
	v1.Mul(v1, v2).Mod(v1, k.p).Mod(v1, k.q)
	return v1.Cmp(r) == 0
}

// AccountKey is one entry of a libotr private key file.
type AccountKey struct {
	Account  string // e.g. "alice@example.org"
	Protocol string // e.g. "prpl-jabber" (libpurple) or "xmpp"
	Key      *PrivateKey
}
