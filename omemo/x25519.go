package omemo

import (
	"crypto/subtle"

	"filippo.io/edwards25519/field"
)

// x25519 is the X25519 function of RFC 7748 §5: the Montgomery ladder in
// constant time over filippo.io/edwards25519's field arithmetic. It
// exists because golang.org/x/crypto/curve25519.X25519 (through
// crypto/ecdh.NewPrivateKey) also computes the private key's public key on
// every call, doubling the cost of each Diffie-Hellman; the ladder is the
// same as the standard library's. The scalar is clamped and the top bit
// of u masked, as §5 requires.
func x25519(scalar, u *[32]byte) [32]byte {
	var k [32]byte
	copy(k[:], scalar[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	defer clear(k[:])

	var x1, x2, z2, x3, z3, tmp0, tmp1 field.Element
	if _, err := x1.SetBytes(u[:]); err != nil {
		panic("omemo: x25519: impossible length")
	}
	x2.One()
	x3.Set(&x1)
	z3.One()
	swap := 0
	for pos := 254; pos >= 0; pos-- {
		b := int(k[pos/8]>>uint(pos&7)) & 1
		swap ^= b
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = b
		// RFC 7748 §5, in the standard library's order of operations.
		tmp0.Subtract(&x3, &z3)
		tmp1.Subtract(&x2, &z2)
		x2.Add(&x2, &z2)
		z2.Add(&x3, &z3)
		z3.Multiply(&tmp0, &x2)
		z2.Multiply(&z2, &tmp1)
		tmp0.Square(&tmp1)
		tmp1.Square(&x2)
		x3.Add(&z3, &z2)
		z2.Subtract(&z3, &z2)
		x2.Multiply(&tmp1, &tmp0)
		tmp1.Subtract(&tmp1, &tmp0)
		z2.Square(&z2)
		z3.Mult32(&tmp1, 121666)
		x3.Square(&x3)
		tmp0.Add(&tmp0, &z3)
		z3.Multiply(&x1, &z2)
		z2.Multiply(&tmp1, &tmp0)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	return [32]byte(x2.Bytes())
}

var x25519Base = [32]byte{9}

// isZero32 reports whether b is all zero, in constant time.
func isZero32(b *[32]byte) bool {
	var zero [32]byte
	return subtle.ConstantTimeCompare(b[:], zero[:]) == 1
}
