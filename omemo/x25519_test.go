package omemo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func TestX25519RFC7748(t *testing.T) {
	// RFC 7748 §5.2, the two single-step vectors.
	for _, v := range []struct{ k, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		var k, u [32]byte
		hex.Decode(k[:], []byte(v.k))
		hex.Decode(u[:], []byte(v.u))
		if got := x25519(&k, &u); hex.EncodeToString(got[:]) != v.out {
			t.Errorf("x25519 = %x, want %s", got, v.out)
		}
	}
	// And against golang.org/x/crypto/curve25519 on keys of every kind.
	for i := range 200 {
		k := sha256.Sum256([]byte{byte(i), 'k'})
		u := sha256.Sum256([]byte{byte(i), 'u'})
		want, err := curve25519.X25519(k[:], u[:])
		got := x25519(&k, &u)
		if err == nil && !bytes.Equal(got[:], want) {
			t.Fatalf("x25519 differs from x/crypto for %x, %x", k, u)
		}
		wantPub, _ := curve25519.X25519(k[:], curve25519.Basepoint)
		if pub := x25519(&k, &x25519Base); !bytes.Equal(pub[:], wantPub) {
			t.Fatal("public key differs from x/crypto")
		}
	}
	// Low-order points give all-zero output, which dh rejects.
	var zero, one [32]byte
	one[0] = 1
	k := sha256.Sum256([]byte("k"))
	for _, p := range []*[32]byte{&zero, &one} {
		if _, err := dh(&k, p); err == nil {
			t.Errorf("dh with low-order point %x accepted", p)
		}
	}
}
