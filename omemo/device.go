package omemo

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/balcony-im/balcony/omemo/xeddsa"
)

// Generation selects one of the two incompatible revisions of XEP-0384.
type Generation uint8

const (
	// V03 is OMEMO 0.3 (namespace eu.siacs.conversations.axolotl), the
	// revision most deployed clients speak; its wire format is libsignal's.
	V03 Generation = 1
	// V2 is OMEMO 2 (namespace urn:xmpp:omemo:2), the current text of
	// XEP-0384 (version 0.9), with XEP-0420 payloads.
	V2 Generation = 2
)

// Namespaces of the two generations.
const (
	NS03 = "eu.siacs.conversations.axolotl"
	NS2  = "urn:xmpp:omemo:2"
)

// Namespace returns the XML namespace of the generation.
func (g Generation) Namespace() string {
	switch g {
	case V03:
		return NS03
	case V2:
		return NS2
	}
	return ""
}

func (g Generation) String() string {
	switch g {
	case V03:
		return "OMEMO 0.3"
	case V2:
		return "OMEMO 2"
	}
	return "OMEMO generation " + strconv.Itoa(int(g))
}

func (g Generation) valid() bool { return g == V03 || g == V2 }

// MaxDeviceID is the largest device id (XEP-0384 §5.3.1: 1 to 2^31-1).
const MaxDeviceID = 1<<31 - 1

// Address names one device of one account.
type Address struct {
	JID      string // bare JID
	DeviceID uint32
}

func (a Address) String() string { return a.JID + "/" + strconv.FormatUint(uint64(a.DeviceID), 10) }

// GenerateDeviceID returns a uniformly random device id in 1..2^31-1.
// XEP-0384 §5.3.1 asks the caller to draw again if the id is already on
// the account's device list.
func GenerateDeviceID(rand io.Reader) (uint32, error) {
	n, err := randInt(rand, MaxDeviceID)
	if err != nil {
		return 0, err
	}
	return uint32(n) + 1, nil
}

// randInt returns a uniform integer in [0, n), 0 < n <= 2^31, by
// rejection sampling on 32-bit draws.
func randInt(rand io.Reader, n int) (int, error) {
	limit := uint64(1)<<32 - (uint64(1)<<32)%uint64(n)
	var b [4]byte
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return 0, fmt.Errorf("omemo: reading randomness: %w", err)
		}
		v := uint64(binary.LittleEndian.Uint32(b[:]))
		if v < limit {
			return int(v % uint64(n)), nil
		}
	}
}

// SignedPreKey is one of this device's signed pre-keys.
type SignedPreKey struct {
	ID        uint32
	KeyPair   KeyPair
	Signature []byte
	Created   time.Time
}

// PreKey is one of this device's one-time pre-keys. Used marks a key
// already consumed by a key exchange during archive catch-up: it is left
// out of the bundle and deleted by FinishCatchUp (XEP-0384 §7).
type PreKey struct {
	ID      uint32
	KeyPair KeyPair
	Used    bool
}

// BundlePreKey is one public pre-key of a bundle: the XML's <pk id=…> of
// OMEMO 2 or <preKeyPublic preKeyId=…> of 0.3.
type BundlePreKey struct {
	ID        uint32
	PublicKey []byte
}

// Bundle is a device's published key bundle. Every byte field holds
// exactly what the XML carries base64-encoded:
//
//	OMEMO 2 (<bundle xmlns='urn:xmpp:omemo:2'>): ik = IdentityKey (32-byte
//	Ed25519), spk = SignedPreKey (32 bytes), spks = SignedPreKeySignature
//	(Ed25519 signature of spk), pk = PreKeys.
//	OMEMO 0.3 (<bundle xmlns='eu.siacs.conversations.axolotl'>):
//	identityKey, signedPreKeyPublic and preKeyPublic are 33 bytes (0x05 ||
//	Curve25519 u), signedPreKeySignature is XEdDSA over signedPreKeyPublic.
type Bundle struct {
	Generation            Generation
	DeviceID              uint32
	IdentityKey           []byte
	SignedPreKeyID        uint32
	SignedPreKey          []byte
	SignedPreKeySignature []byte
	PreKeys               []BundlePreKey
}

// checkedBundle is a bundle whose keys and signature are verified.
type checkedBundle struct {
	identity   [32]byte // wire form without prefix: Ed25519 (2) or u (0.3)
	identityX  [32]byte // Curve25519 form
	spkID      uint32
	spk        [32]byte
	preKeys    []BundlePreKey
	preKeyPubs [][32]byte
}

func decodeCurve(g Generation, b []byte) ([32]byte, bool) {
	if g == V03 {
		return decodeCurve03(b)
	}
	return decodeCurve2(b)
}

// check validates b for generation g: lengths, key encodings, ids and the
// signed pre-key signature (Ed25519 for OMEMO 2; for 0.3 XEdDSA as
// libsignal verifies it, sign bit carried in the signature).
func (b *Bundle) check(g Generation) (*checkedBundle, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidBundle, fmt.Sprintf(format, args...))
	}
	if b.Generation != g {
		return nil, bad("%v bundle given to an %v engine", b.Generation, g)
	}
	if b.DeviceID == 0 || b.DeviceID > MaxDeviceID {
		return nil, bad("device id %d out of range", b.DeviceID)
	}
	c := &checkedBundle{spkID: b.SignedPreKeyID}
	var ok bool
	switch g {
	case V2:
		if len(b.IdentityKey) != 32 {
			return nil, bad("identity key of %d bytes, want 32", len(b.IdentityKey))
		}
		c.identity = [32]byte(b.IdentityKey)
	case V03:
		if c.identity, ok = decodeCurve03(b.IdentityKey); !ok {
			return nil, bad("identity key is not 0x05 and 32 bytes")
		}
	}
	var err error
	if c.identityX, err = identityX25519(g, &c.identity); err != nil {
		return nil, bad("identity key is not a valid public key")
	}
	if c.spk, ok = decodeCurve(g, b.SignedPreKey); !ok {
		return nil, bad("signed pre-key has a bad length or type")
	}
	switch g {
	case V2:
		ok = len(b.SignedPreKeySignature) == ed25519.SignatureSize &&
			ed25519.Verify(ed25519.PublicKey(c.identity[:]), b.SignedPreKey, b.SignedPreKeySignature)
	case V03:
		ok = xeddsa.VerifyLibsignal(&c.identityX, b.SignedPreKey, b.SignedPreKeySignature)
	}
	if !ok {
		return nil, bad("signed pre-key signature does not verify")
	}
	for _, pk := range b.PreKeys {
		pub, ok := decodeCurve(g, pk.PublicKey)
		if !ok {
			return nil, bad("pre-key %d has a bad length or type", pk.ID)
		}
		c.preKeys = append(c.preKeys, pk)
		c.preKeyPubs = append(c.preKeyPubs, pub)
	}
	if len(c.preKeys) == 0 {
		// XEP-0384 §4.2: key exchanges without a pre-key MUST be rejected.
		return nil, bad("no pre-keys")
	}
	return c, nil
}

// Fingerprint returns the fingerprint users compare for an identity key as
// a bundle or Decrypted.IdentityKey carries it for generation g: the
// lowercase hex of the key's Curve25519 form in eight groups of eight
// (XEP-0384 §8 Security Considerations, and the 0.3 clients' display: the
// 32-byte key without its 0x05 prefix). Both generations give the same
// fingerprint for the same identity.
func Fingerprint(g Generation, identityKey []byte) (string, error) {
	var u [32]byte
	switch {
	case g == V03 && len(identityKey) == 33 && identityKey[0] == djbType:
		u = [32]byte(identityKey[1:])
	case g == V2 && len(identityKey) == 32:
		var err error
		if u, err = xeddsa.EdwardsToMontgomery(identityKey); err != nil {
			return "", fmt.Errorf("omemo: fingerprint: %w", err)
		}
	default:
		return "", fmt.Errorf("omemo: fingerprint: identity key of %d bytes is not an %v key", len(identityKey), g)
	}
	h := hex.EncodeToString(u[:])
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = h[8*i : 8*i+8]
	}
	return strings.Join(groups, " "), nil
}

// Verify checks a peer's bundle as Encrypt would before building a
// session from it: key lengths and encodings, device id, at least one
// pre-key, and the signed pre-key signature. Errors wrap ErrInvalidBundle.
func (b *Bundle) Verify() error {
	if !b.Generation.valid() {
		return fmt.Errorf("%w: unknown generation %d", ErrInvalidBundle, b.Generation)
	}
	_, err := b.check(b.Generation)
	return err
}

// VerifyLabel reports whether labelsig is a valid signature of a device
// label (the device element's label and labelsig attributes, OMEMO 2 only,
// XEP-0384 §5.3.2) under the OMEMO 2 identity key identityKey. The caller
// ignores the label if it does not verify.
func VerifyLabel(identityKey []byte, label string, labelsig []byte) bool {
	if len(identityKey) != ed25519.PublicKeySize || len(labelsig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(identityKey, []byte(label), labelsig)
}
