package ox

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// packetNew returns a new-format packet (RFC 4880 §4.2.2) with a
// five-octet length.
func packetNew(tag byte, body []byte) []byte {
	n := len(body)
	return append([]byte{0xc0 | tag, 255, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// mpiOf returns a multiprecision integer of the given bit length.
func mpiOf(bits int) []byte {
	b := make([]byte, 2+(bits+7)/8)
	b[0], b[1] = byte(bits>>8), byte(bits)
	b[2] = 0x80 >> ((8 - bits%8) % 8)
	for i := 3; i < len(b); i++ {
		b[i] = 0xa5
	}
	return b
}

// hostileKey is what an attacker publishes to stall its victims: a v4 DSA
// key with huge parameters, a user ID and a bogus self-signature.
func hostileKey(alg byte, bits ...int) []byte {
	body := []byte{4, 0x60, 0, 0, 0, alg}
	for _, n := range bits {
		body = append(body, mpiOf(n)...)
	}
	block := packetNew(tagPublicKey, body)
	block = append(block, packetNew(tagUserID, []byte("xmpp:mallory@example.org"))...)
	sig := []byte{4, 0x13, alg, 8, 0, 0, 0, 0, 0xab, 0xcd}
	sig = append(sig, mpiOf(160)...)
	sig = append(sig, mpiOf(160)...)
	return append(block, packetNew(tagSignature, sig)...)
}

func TestParseKeysRefusesExpensiveKeys(t *testing.T) {
	for name, data := range map[string][]byte{
		"DSA p and q of 65535 bits": hostileKey(algDSA, 65535, 65535, 65535, 65535),
		"DSA p of 16384 bits":       hostileKey(algDSA, 16384, 256, 16384, 16384),
		"RSA of 16384 bits":         hostileKey(algRSA, 16384, 17),
		"RSA with a huge exponent":  hostileKey(algRSA, 4096, 4096),
		"ElGamal of 8192 bits":      hostileKey(algElGamal, 8192, 8, 8192),
		"unknown algorithm":         hostileKey(99, 256),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseKeys(data); !errors.Is(err, ErrKeyTooExpensive) {
				t.Fatalf("got %v, want ErrKeyTooExpensive", err)
			}
		})
	}
	t.Run("many subkeys", func(t *testing.T) {
		var block []byte
		for range maxKeyPacketsOfKind + 1 {
			block = append(block, packetNew(tagPublicSubkey, append([]byte{4, 0x60, 0, 0, 0, algEd25519}, make([]byte, 32)...))...)
		}
		if _, err := ParseKeys(block); !errors.Is(err, ErrKeyTooExpensive) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("large public block", func(t *testing.T) {
		block := hostileKey(algEd25519)
		block = append(block, packetNew(tagUserAttribute, make([]byte, MaxPublicKeySize))...)
		if _, err := ParseKeys(block); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the usual keys pass", func(t *testing.T) {
		k := keys(t)
		for _, key := range []*Key{k.alice, k.bob} {
			pub, err := key.MarshalPublic(true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseKeys(pub); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// parseBounded runs ParseKeys and fails the test when one input takes
// more than a generous bound of time or memory: a resource check for the
// fuzzer, not a benchmark (a key that slips past the limits costs minutes,
// not milliseconds).
func parseBounded(t testing.TB, data []byte) ([]*Key, error) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var keys []*Key
	var err error
	go func() {
		defer close(done)
		keys, err = ParseKeys(data)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("ParseKeys took more than 5 s on %d bytes", len(data))
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("ParseKeys allocated %d MiB for %d bytes", grew>>20, len(data))
	}
	return keys, err
}

func FuzzScanKeyBlock(f *testing.F) {
	f.Add(hostileKey(algDSA, 3072, 256, 3072, 3072))
	f.Add(hostileKey(algRSA, 2048, 17))
	f.Add(hostileKey(algEdDSA))
	f.Add(append([]byte{0x99, 0, 3}, 4, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := scanKeyBlock(b); err != nil {
			return
		}
		// A block that passes the scan is one go-crypto checks: it must do
		// so within the bounds.
		parseBounded(t, b)
	})
}
