package xeddsa

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func testKey(label string) (priv [32]byte, u [32]byte) {
	priv = sha256.Sum256([]byte(label))
	pub, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	return priv, [32]byte(pub)
}

func TestSignVerify(t *testing.T) {
	for i := range 16 {
		priv, u := testKey(string(rune('a' + i)))
		var z [64]byte
		z[0] = byte(i)
		msg := []byte("signed pre-key")
		sig := Sign(&priv, msg, &z)
		if !Verify(&u, msg, sig[:]) || !VerifyLibsignal(&u, msg, sig[:]) {
			t.Fatal("signature does not verify")
		}
		A := PublicKeyFromPrivate(&priv)
		if !ed25519.Verify(A[:], msg, sig[:]) {
			t.Fatal("not a valid Ed25519 signature")
		}
		if got, _ := EdwardsToMontgomery(A[:]); got != u {
			t.Fatal("A does not map to u")
		}
		bad := sig
		bad[10] ^= 1
		if Verify(&u, msg, bad[:]) || Verify(&u, []byte("other"), sig[:]) {
			t.Fatal("forgery accepted")
		}
		_, other := testKey("other")
		if Verify(&other, msg, sig[:]) {
			t.Fatal("signature verifies under another key")
		}
	}
}

func TestRejectsBadKeys(t *testing.T) {
	var p [32]byte // p = 2^255 - 19, non-canonical u
	for i := range p {
		p[i] = 0xff
	}
	p[0], p[31] = 0xed, 0x7f
	var minus1 = p
	minus1[0] = 0xec // u = -1: u+1 = 0
	for name, u := range map[string][32]byte{"p": p, "top bit": {31: 0x80}, "u=-1": minus1, "zero": {}} {
		if _, err := MontgomeryToEdwards(&u, false); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	identity := [32]byte{0: 1}
	if _, err := EdwardsToMontgomery(identity[:]); err == nil {
		t.Error("identity point accepted")
	}
}

func FuzzVerify(f *testing.F) {
	priv, u := testKey("fuzz")
	var z [64]byte
	sig := Sign(&priv, []byte("m"), &z)
	f.Add(u[:], []byte("m"), sig[:])
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != 32 {
			return
		}
		k := [32]byte(pub)
		Verify(&k, msg, sig)
		VerifyLibsignal(&k, msg, sig)
		if A, err := MontgomeryToEdwards(&k, false); err == nil {
			if back, err := EdwardsToMontgomery(A[:]); err != nil || back != k {
				t.Fatalf("u %x does not round-trip", k)
			}
		}
	})
}
