// Package xeddsa implements XEdDSA (Signal's "The XEdDSA and VXEdDSA
// Signature Schemes", revision 1, 2016-10-20, a final specification):
// Ed25519-compatible signatures made and checked with Montgomery
// (Curve25519) keys, and the birational maps between Curve25519 and
// Ed25519 public keys that RFC 7748 §4.1 defines, which OMEMO (XEP-0384)
// needs to use one identity key for both X25519 and signatures.
//
// All functions are safe for concurrent use. Sign runs in constant time
// with respect to the private key; the verification functions and the
// public-key maps handle public data only.
package xeddsa

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// SignatureSize is the size of an XEdDSA signature: R || s.
const SignatureSize = 64

// ErrInvalidPublicKey is returned for a public key that is not a
// canonical encoding of a point of the prime-order subgroup's curve, or
// that has small order.
var ErrInvalidPublicKey = errors.New("xeddsa: invalid public key")

// hash1Prefix is the domain-separation prefix of hash_1 (XEdDSA §2.5):
// 2^256 - 1 - 1 encoded as 32 little-endian bytes.
var hash1Prefix = [32]byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// calculateKeyPair is calculate_key_pair of XEdDSA §2.3: the Edwards key
// pair (A, a) with sign bit 0 for the Montgomery private key k (clamped
// as X25519 clamps it). aBytes is the encoding of a that the nonce hash
// takes: like libsignal's xed25519_sign and libxeddsa, the clamped k
// itself when no negation is needed and -k mod q otherwise (the
// specification reduces k mod q in both cases; this only changes the
// deterministic nonce, and it makes our signatures byte-identical to
// theirs for the same Z).
func calculateKeyPair(k *[32]byte) (A *edwards25519.Point, a *edwards25519.Scalar, aBytes [32]byte) {
	aBytes = *k
	aBytes[0] &= 248
	aBytes[31] &= 127
	aBytes[31] |= 64
	a, err := edwards25519.NewScalar().SetBytesWithClamping(k[:])
	if err != nil {
		panic("xeddsa: impossible scalar length")
	}
	A = new(edwards25519.Point).ScalarBaseMult(a)
	enc := A.Bytes()
	if enc[31]&0x80 != 0 {
		a.Negate(a)
		A.Negate(A)
		copy(aBytes[:], a.Bytes())
	}
	return A, a, aBytes
}

// Sign returns the XEdDSA signature (XEdDSA §2.5, xeddsa_sign) of message
// under the Curve25519 private key priv, using the 64 bytes of random as
// Z. The signature verifies with Verify under priv's X25519 public key
// and with crypto/ed25519 under PublicKeyFromPrivate(priv).
func Sign(priv *[32]byte, message []byte, random *[64]byte) [SignatureSize]byte {
	A, a, aBytes := calculateKeyPair(priv)
	defer clear(aBytes[:])

	h := sha512.New()
	h.Write(hash1Prefix[:])
	h.Write(aBytes[:])
	h.Write(message)
	h.Write(random[:])
	var digest [64]byte
	h.Sum(digest[:0])
	r, _ := edwards25519.NewScalar().SetUniformBytes(digest[:])
	clear(digest[:])
	R := new(edwards25519.Point).ScalarBaseMult(r)

	var sig [SignatureSize]byte
	copy(sig[:32], R.Bytes())
	h.Reset()
	h.Write(sig[:32])
	h.Write(A.Bytes())
	h.Write(message)
	h.Sum(digest[:0])
	k, _ := edwards25519.NewScalar().SetUniformBytes(digest[:])
	s := edwards25519.NewScalar().MultiplyAdd(k, a, r)
	copy(sig[32:], s.Bytes())
	r.Set(edwards25519.NewScalar())
	a.Set(edwards25519.NewScalar())
	return sig
}

// PublicKeyFromPrivate returns the Ed25519 public key A (sign bit 0) that
// XEdDSA associates with the Curve25519 private key priv.
func PublicKeyFromPrivate(priv *[32]byte) [32]byte {
	A, a, aBytes := calculateKeyPair(priv)
	a.Set(edwards25519.NewScalar())
	clear(aBytes[:])
	return [32]byte(A.Bytes())
}

// Verify reports whether sig is a valid XEdDSA signature (XEdDSA §2.6,
// xeddsa_verify) of message under the Curve25519 public key u. It is
// strict: u must be canonical (u < p), s below 2^253, and the sign bit of
// the Edwards key is always 0.
func Verify(u *[32]byte, message []byte, sig []byte) bool {
	if len(sig) != SignatureSize || sig[63]&0xe0 != 0 {
		return false
	}
	A, err := MontgomeryToEdwards(u, false)
	if err != nil {
		return false
	}
	return verifyEd(&A, message, sig)
}

// VerifyLibsignal is Verify as libsignal's curve25519_verify does it, the
// check that OMEMO 0.3 peers apply to signed pre-keys: the Edwards sign
// bit is taken from the top bit of the signature's last byte (where
// pre-XEdDSA libsignal and python-omemo put the sign of their Ed25519
// identity key) and cleared before the usual checks. Signatures made by
// Sign have that bit 0 and verify with both functions.
func VerifyLibsignal(u *[32]byte, message []byte, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	var s [SignatureSize]byte
	copy(s[:], sig)
	sign := s[63]&0x80 != 0
	s[63] &= 0x7f
	if s[63]&0xe0 != 0 {
		return false
	}
	A, err := MontgomeryToEdwards(u, sign)
	if err != nil {
		return false
	}
	return verifyEd(&A, message, s[:])
}

// verifyEd checks R == sB - hA with h = SHA-512(R || A || M) mod q, where s
// may be any value below 2^253 (XEdDSA §2.6 reduces it mod q).
func verifyEd(A *[32]byte, message, sig []byte) bool {
	Ap, err := new(edwards25519.Point).SetBytes(A[:])
	if err != nil {
		return false
	}
	var wide [64]byte
	copy(wide[:32], sig[32:])
	s, _ := edwards25519.NewScalar().SetUniformBytes(wide[:])
	h := sha512.New()
	h.Write(sig[:32])
	h.Write(A[:])
	h.Write(message)
	var digest [64]byte
	h.Sum(digest[:0])
	k, _ := edwards25519.NewScalar().SetUniformBytes(digest[:])
	minusA := new(edwards25519.Point).Negate(Ap)
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, s)
	return subtle.ConstantTimeCompare(R.Bytes(), sig[:32]) == 1
}

var feOne = new(field.Element).One()

// MontgomeryToEdwards maps the Curve25519 public key u to the Ed25519
// public key with the given sign bit: y = (u - 1) / (u + 1) (RFC 7748
// §4.1, XEdDSA §2.3 convert_mont). It rejects a non-canonical u (u >= p),
// a u that maps to no curve point, and points of small order.
func MontgomeryToEdwards(u *[32]byte, sign bool) ([32]byte, error) {
	if u[31]&0x80 != 0 {
		return [32]byte{}, ErrInvalidPublicKey
	}
	fu, err := new(field.Element).SetBytes(u[:])
	if err != nil || subtle.ConstantTimeCompare(fu.Bytes(), u[:]) != 1 {
		return [32]byte{}, ErrInvalidPublicKey
	}
	num := new(field.Element).Subtract(fu, feOne)
	den := new(field.Element).Add(fu, feOne)
	if den.Equal(new(field.Element).Zero()) == 1 {
		return [32]byte{}, ErrInvalidPublicKey
	}
	y := new(field.Element).Multiply(num, den.Invert(den))
	out := [32]byte(y.Bytes())
	if sign {
		out[31] |= 0x80
	}
	if _, err := checkPoint(out[:]); err != nil {
		return [32]byte{}, err
	}
	return out, nil
}

// EdwardsToMontgomery maps the Ed25519 public key A to its Curve25519
// form u = (1 + y) / (1 - y) (RFC 7748 §4.1; libsodium's
// crypto_sign_ed25519_pk_to_curve25519). It rejects encodings that are not
// canonical points and points of small order.
func EdwardsToMontgomery(A []byte) ([32]byte, error) {
	p, err := checkPoint(A)
	if err != nil {
		return [32]byte{}, err
	}
	return [32]byte(p.BytesMontgomery()), nil
}

// checkPoint decodes a canonical Edwards point that is not of small order.
func checkPoint(enc []byte) (*edwards25519.Point, error) {
	if len(enc) != 32 {
		return nil, ErrInvalidPublicKey
	}
	p, err := new(edwards25519.Point).SetBytes(enc)
	if err != nil || subtle.ConstantTimeCompare(p.Bytes(), enc) != 1 {
		return nil, ErrInvalidPublicKey
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, ErrInvalidPublicKey
	}
	return p, nil
}

// SeedToPrivate returns the Curve25519 private key that belongs to the
// Ed25519 private key with the given 32-byte seed (RFC 8032 §5.1.5: the
// clamped lower half of SHA-512(seed); libsodium's
// crypto_sign_ed25519_sk_to_curve25519). Its X25519 public key is
// EdwardsToMontgomery of the seed's Ed25519 public key.
func SeedToPrivate(seed *[32]byte) [32]byte {
	d := sha512.Sum512(seed[:])
	var k [32]byte
	copy(k[:], d[:32])
	clear(d[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	return k
}
