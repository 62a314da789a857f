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

// signXEdDSA signs msg with XEdDSA (OMEMO 0.3), with 64 bytes of rand.
func (ik *IdentityKeyPair) signXEdDSA(rand io.Reader, msg []byte) ([]byte, error) {
	var z [64]byte
	if _, err := io.ReadFull(rand, z[:]); err != nil {
		return nil, fmt.Errorf("omemo: reading randomness: %w", err)
	}
	priv := ik.x25519Private()
	sig := xeddsa.Sign(&priv, msg, &z)
	clear(priv[:])
	clear(z[:])
	return sig[:], nil
}

// Wipe zeroes the seed.
func (ik *IdentityKeyPair) Wipe() { clear(ik.Seed[:]) }
