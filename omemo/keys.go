package omemo

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/balcony-im/balcony/omemo/xeddsa"
)

// KeyPair is an X25519 key pair: a signed pre-key, a one-time pre-key, a
// ratchet key or an X3DH ephemeral key.
type KeyPair struct {
	Private [32]byte
	Public  [32]byte
}

// GenerateKeyPair returns a fresh X25519 key pair read from rand.
func GenerateKeyPair(rand io.Reader) (KeyPair, error) {
	var kp KeyPair
	if _, err := io.ReadFull(rand, kp.Private[:]); err != nil {
		return KeyPair{}, fmt.Errorf("omemo: reading randomness: %w", err)
	}
	kp.Public = x25519(&kp.Private, &x25519Base)
	return kp, nil
}

// Wipe zeroes the private key.
func (kp *KeyPair) Wipe() { clear(kp.Private[:]) }

// errDH is returned for a DH with a low-order public key (all-zero output).
var errDH = errors.New("omemo: invalid Diffie-Hellman public key")

// dh computes X25519(priv, pub) and rejects an all-zero result, which a
// low-order public key produces (X3DH §3.3 via RFC 7748 §6.1).
func dh(priv, pub *[32]byte) ([32]byte, error) {
	out := x25519(priv, pub)
	if isZero32(&out) {
		return out, errDH
	}
	return out, nil
}

// IdentityKeyPair is a device's long-term identity key. It is kept as an
// Ed25519 seed, as python-omemo keeps it, and serves both generations:
// OMEMO 2 publishes the Ed25519 public key and signs with Ed25519
// (XEP-0384 §4.2, the "Ed25519 key pair" choice); OMEMO 0.3 publishes the
// Curve25519 form and signs with XEdDSA, using the X25519 private key
// derived from the seed (RFC 8032 §5.1.5). Both forms are the same point,
// so both generations show the same fingerprint.
type IdentityKeyPair struct {
	Seed [32]byte
}

// GenerateIdentityKeyPair returns a new identity key read from rand.
func GenerateIdentityKeyPair(rand io.Reader) (*IdentityKeyPair, error) {
	ik := new(IdentityKeyPair)
	if _, err := io.ReadFull(rand, ik.Seed[:]); err != nil {
		return nil, fmt.Errorf("omemo: reading randomness: %w", err)
	}
	return ik, nil
}

// Ed25519Public returns the Ed25519 public key (what OMEMO 2 publishes).
func (ik *IdentityKeyPair) Ed25519Public() [32]byte {
	priv := ed25519.NewKeyFromSeed(ik.Seed[:])
	defer clear(priv)
	return [32]byte(priv[32:])
}

// X25519Public returns the Curve25519 form of the public key (what OMEMO
// 0.3 publishes, without its 0x05 prefix).
func (ik *IdentityKeyPair) X25519Public() [32]byte {
	priv := ik.x25519Private()
	defer clear(priv[:])
	return x25519(&priv, &x25519Base)
}

func (ik *IdentityKeyPair) x25519Private() [32]byte { return xeddsa.SeedToPrivate(&ik.Seed) }

// signEd25519 signs msg with Ed25519 (OMEMO 2).
func (ik *IdentityKeyPair) signEd25519(msg []byte) []byte {
	priv := ed25519.NewKeyFromSeed(ik.Seed[:])
	defer clear(priv)
	return ed25519.Sign(priv, msg)
}

// signXEdDSA signs msg for OMEMO 0.3 the way libsignal's curve25519_sign
// and python-omemo do, so that every libsignal verifier accepts it: an
// Ed25519 signature by the identity key, with the sign bit of the Ed25519
// public key carried in the signature's last byte (always 0 in a valid
// Ed25519 signature). A verifier that knows only the Curve25519 key
// recovers the Edwards key from it (xeddsa.VerifyLibsignal), and so
// python-omemo sees the same identity in OMEMO 0.3 bundles as in OMEMO 2
// ones; a plain XEdDSA signature (sign bit 0) would make it derive another
// key for half of all identities. rand is not needed: Ed25519 signing is
// deterministic.
func (ik *IdentityKeyPair) signXEdDSA(_ io.Reader, msg []byte) ([]byte, error) {
	priv := ed25519.NewKeyFromSeed(ik.Seed[:])
	defer clear(priv)
	sig := ed25519.Sign(priv, msg)
	sig[63] |= priv.Public().(ed25519.PublicKey)[31] & 0x80
	return sig, nil
}

// Wipe zeroes the seed.
func (ik *IdentityKeyPair) Wipe() { clear(ik.Seed[:]) }
