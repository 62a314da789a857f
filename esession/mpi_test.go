package esession

import (
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/balcony-im/balcony/internal/modp"
)

// MPIs are minimal: a DH result with a leading zero octet is hashed
// without it (XEP-0116 §8.1; esessions pitfall 6), which differs from the
// fixed-width encoding of the same value.
func TestSharedSecretLeadingZero(t *testing.T) {
	g := modp.MustGroup(14)
	var z *big.Int
	for i := 0; i < 4096; i++ {
		x, err := modp.RandomExponent(rand.Reader, 32)
		if err != nil {
			t.Fatal(err)
		}
		if v := g.Public(x); v.BitLen() <= g.Bits()-8 {
			z = v
			break
		}
	}
	if z == nil {
		t.Fatal("no value with a leading zero octet found")
	}
	k := sharedSecret(z)
	if k != sha256.Sum256(z.Bytes()) {
		t.Fatal("K is not SHA256 of the minimal encoding")
	}
	if k == sha256.Sum256(z.FillBytes(make([]byte, g.Size()))) {
		t.Fatal("K equals the hash of the fixed-width encoding")
	}
	if len(mpi(z)) >= g.Size() || mpi(z)[0] == 0 {
		t.Fatalf("mpi kept a leading zero: %d bytes", len(mpi(z)))
	}
	if dhHash(z) != sha256.Sum256(z.Bytes()) {
		t.Fatal("He of a short value is not SHA256 of its minimal encoding")
	}
}
