package otr

import (
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"strings"
)

// PublicKey is a DSA public key (p 1024 bits, q 160 bits), OTR's long-term
// identity key.
type PublicKey struct {
	p, q, g, y *big.Int
}

// PrivateKey is a DSA private key.
type PrivateKey struct {
	PublicKey
	x *big.Int
}

// Fingerprint is the SHA-1 fingerprint of a public key (Protocol-v3
// "Public keys, signatures, and fingerprints").
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

var errNotImplemented = errors.New("otr: not implemented")

// GenerateKey generates a new DSA-1024/160 key. rand nil means crypto/rand.
func GenerateKey(rand io.Reader) (*PrivateKey, error) { return nil, errNotImplemented }

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey { return &k.PublicKey }

// Fingerprint returns the key's fingerprint.
func (k *PublicKey) Fingerprint() Fingerprint { return Fingerprint{} }

// AccountKey is one entry of a libotr private key file.
type AccountKey struct {
	Account  string
	Protocol string
	Key      *PrivateKey
}

// ParseLibotrPrivateKeys parses a libotr private key file (otr.private_key,
// an S-expression).
func ParseLibotrPrivateKeys(data []byte) ([]AccountKey, error) { return nil, errNotImplemented }

// MarshalLibotrPrivateKeys writes keys in libotr's private key file format.
func MarshalLibotrPrivateKeys(keys []AccountKey) ([]byte, error) { return nil, errNotImplemented }
