package otr

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"math/big"

	"github.com/balcony-im/balcony/internal/modp"
)

// group is the RFC 3526 1536-bit MODP group with generator 2 that
// Protocol-v3 fixes for every Diffie-Hellman computation, the AKE, data
// message keys and SMP.
var (
	group  = modp.MustGroup(5)
	groupP = group.P()
	groupQ = group.Q()
)

// dhExpLen is the length of our DH private exponents: 320 bits, the
// minimum Protocol-v3 ("at least 320 bits") and libotr use.
const dhExpLen = 40

// dhKeyPair is one of our DH key pairs.
type dhKeyPair struct {
	id     uint32
	priv   []byte // dhExpLen bytes, secret
	pub    *big.Int
	pubMPI []byte // MPI encoding of pub
}

func (k *dhKeyPair) wipe() {
	if k != nil {
		clear(k.priv)
	}
}

func newDHKeyPair(r io.Reader, id uint32) (*dhKeyPair, error) {
	x, err := modp.RandomExponent(r, dhExpLen)
	if err != nil {
		return nil, err
	}
	pub := group.Public(x)
	return &dhKeyPair{id: id, priv: x, pub: pub, pubMPI: appendMPIInt(nil, pub)}, nil
}

// checkPublic checks a received Diffie-Hellman public value of the AKE or
// a data message: 2 <= v <= p-2 (Protocol-v3 "Authenticated Key
// Exchange"). That excludes the only small subgroup {1, p-1} of this
// safe-prime group. A value outside the prime-order subgroup could at most
// reveal the parity of one of our ephemeral exponents, which are never
// reused, so the costly subgroup test is kept for SMP (checkElement).
func checkPublic(v *big.Int) bool {
	return group.CheckElement(v) == nil
}

// checkElement checks a received SMP group element: in range, and in the
// prime-order subgroup. Because p is a safe prime, membership is the same
// as v being a quadratic residue, which a Jacobi symbol decides; every
// honest value (a power of 2, a residue mod this p) passes. SMP compares
// secrets derived from the user's secret, so no bit of them may leak
// through an element of the wrong order.
func checkElement(v *big.Int) bool {
	return group.CheckElement(v) == nil && big.Jacobi(v, groupP) == 1
}

// sharedSecret returns secbytes, the MPI encoding of peer^priv mod p
// (Protocol-v3 "Computing AES keys, MAC keys, and the secure session id").
func sharedSecret(peer *big.Int, priv []byte) ([]byte, error) {
	s, err := group.SharedSecret(peer, priv)
	if err != nil {
		return nil, err
	}
	out := appendMPIInt(make([]byte, 0, 4+group.Size()), s)
	modp.Wipe(s)
	return out, nil
}

// h2 is SHA256(b || secbytes).
func h2(b byte, secbytes []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{b})
	h.Write(secbytes)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// aesCTR encrypts or decrypts in with AES-128 in counter mode starting at
// the 16-byte counter block iv, writing to out (which may alias in).
func aesCTR(key []byte, iv *[16]byte, out, in []byte) {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("otr: " + err.Error()) // key is always 16 bytes
	}
	xorCTR(block, iv, out, in, new([32]byte))
}

// ctrShortMax is the length up to which xorCTR works block by block.
const ctrShortMax = 512

// xorCTR XORs src with the counter-mode keystream of block for the initial
// counter block iv (a 128-bit big-endian counter) into dst, which may be
// src itself. Messages up to ctrShortMax bytes, the usual chat message, are
// done block by block in tmp, without allocating; longer ones use
// crypto/cipher's pipelined CTR.
func xorCTR(block cipher.Block, iv *[16]byte, dst, src []byte, tmp *[32]byte) {
	if len(src) > ctrShortMax {
		cipher.NewCTR(block, iv[:]).XORKeyStream(dst, src)
		return
	}
	ctr, ks := tmp[:16], tmp[16:]
	copy(ctr, iv[:])
	for len(src) > 0 {
		block.Encrypt(ks, ctr)
		n := subtle.XORBytes(dst, src, ks)
		dst, src = dst[n:], src[n:]
		for i := 15; i >= 0; i-- {
			ctr[i]++
			if ctr[i] != 0 {
				break
			}
		}
	}
	clear(tmp[:])
}
