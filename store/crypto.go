package store

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KDFParams are the Argon2id parameters that turn a passphrase into the key
// wrapping the store's data key. They are recorded in the database when a
// passphrase is set, so a store is always unlocked with the parameters it
// was created with, whatever the current defaults.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // parallelism
}

// DefaultKDFParams returns the default Argon2id parameters: 3 passes over
// 64 MiB with 4 lanes, the second recommended option of RFC 9106 §4. On a
// two-core 2026 machine this takes 0.2 to 0.5 s depending on load, paid
// once per Open and per ChangePassphrase.
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
}

// Limits on parameters read from a database, so a damaged or hostile file
// cannot make Open allocate or compute without bound.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
)

func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range [1, %d]", p.Time, maxKDFTime)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range [%d, %d]", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

const (
	keySize  = chacha20poly1305.KeySize    // 32
	saltSize = 16                          // Argon2id salt
	idSize   = 16                          // random store identity
	nonceLen = chacha20poly1305.NonceSizeX // 24

	// sealVersion is the first byte of every sealed value.
	sealVersion = 1

	encNone     = "none"
	encArgon2id = "argon2id-xchacha20poly1305"
)

// deriveKEK derives the key-encryption key from a passphrase.
func deriveKEK(passphrase, salt []byte, p KDFParams) *[keySize]byte {
	k := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
	var kek [keySize]byte
	copy(kek[:], k)
	clear(k)
	return &kek
}

// wrapAD is the associated data of the wrapped data key: it binds the
// wrapping to this store and to the KDF parameters.
func wrapAD(storeID []byte, p KDFParams) []byte {
	return adFor("data-key", string(storeID), fmt.Sprint(p.Time), fmt.Sprint(p.MemoryKiB), fmt.Sprint(p.Threads))
}

// adFor builds associated data naming a table and the identity of a row:
// each field is length-prefixed, so no two different identities encode
// the same way. A sealed value moved to another row or table fails to open.
func adFor(table string, fields ...string) []byte {
	b := []byte("balcony-store-v1")
	b = binary.BigEndian.AppendUint32(b, uint32(len(table)))
	b = append(b, table...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// sealWith encrypts plaintext under aead: version byte, 24-byte random
// nonce, ciphertext and tag.
func sealWith(aead cipher.AEAD, rand io.Reader, ad, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceLen, 1+nonceLen+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(rand, out[1:]); err != nil {
		return nil, fmt.Errorf("reading random nonce: %w", err)
	}
	return aead.Seal(out, out[1:1+nonceLen], plaintext, ad), nil
}

// errSealed is returned for every sealed value that does not open: a single
// opaque error, whatever the cause.
var errSealed = errors.New("sealed value failed authentication")

func openWith(aead cipher.AEAD, ad, blob []byte) ([]byte, error) {
	if len(blob) < 1+nonceLen+aead.Overhead() || blob[0] != sealVersion {
		return nil, errSealed
	}
	pt, err := aead.Open(nil, blob[1:1+nonceLen], blob[1+nonceLen:], ad)
	if err != nil {
		return nil, errSealed
	}
	return pt, nil
}

// keyMaterial is what the meta table records about the data key.
type keyMaterial struct {
	mode    string // encNone or encArgon2id
	storeID []byte
	salt    []byte
	params  KDFParams
	wrapped []byte // sealed data key (encArgon2id)
	plain   []byte // data key in the clear (encNone)
}

// newKeyMaterial creates a fresh data key and, unless unencrypted, wraps it
// with a key derived from passphrase. dataKey receives the new key.
func newKeyMaterial(rand io.Reader, unencrypted bool, passphrase []byte, p KDFParams, storeID []byte, dataKey *[keySize]byte) (*keyMaterial, error) {
	if _, err := io.ReadFull(rand, dataKey[:]); err != nil {
		return nil, fmt.Errorf("reading random data key: %w", err)
	}
	if storeID == nil {
		storeID = make([]byte, idSize)
		if _, err := io.ReadFull(rand, storeID); err != nil {
			return nil, fmt.Errorf("reading random store id: %w", err)
		}
	}
	if unencrypted {
		return &keyMaterial{mode: encNone, storeID: storeID, plain: append([]byte(nil), dataKey[:]...)}, nil
	}
	return wrapDataKey(rand, passphrase, p, storeID, dataKey)
}

// wrapDataKey seals dataKey under a key derived from passphrase with a new
// random salt.
func wrapDataKey(rand io.Reader, passphrase []byte, p KDFParams, storeID []byte, dataKey *[keySize]byte) (*keyMaterial, error) {
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("reading random salt: %w", err)
	}
	kek := deriveKEK(passphrase, salt, p)
	defer clear(kek[:])
	aead, err := chacha20poly1305.NewX(kek[:])
	if err != nil {
		return nil, err
	}
	wrapped, err := sealWith(aead, rand, wrapAD(storeID, p), dataKey[:])
	if err != nil {
		return nil, err
	}
	return &keyMaterial{mode: encArgon2id, storeID: storeID, salt: salt, params: p, wrapped: wrapped}, nil
}

// unlock recovers the data key into dataKey.
func (km *keyMaterial) unlock(passphrase []byte, dataKey *[keySize]byte) error {
	switch km.mode {
	case encNone:
		if len(km.plain) != keySize {
			return failure(ErrCorrupt, "data key has the wrong size")
		}
		copy(dataKey[:], km.plain)
		return nil
	case encArgon2id:
		if err := km.params.validate(); err != nil {
			return &opError{kind: ErrCorrupt, detail: "stored key derivation parameters", cause: err}
		}
		kek := deriveKEK(passphrase, km.salt, km.params)
		defer clear(kek[:])
		aead, err := chacha20poly1305.NewX(kek[:])
		if err != nil {
			return err
		}
		k, err := openWith(aead, wrapAD(km.storeID, km.params), km.wrapped)
		if err != nil || len(k) != keySize {
			clear(k)
			return failure(ErrWrongPassphrase, "")
		}
		copy(dataKey[:], k)
		clear(k)
		return nil
	}
	return failure(ErrCorrupt, fmt.Sprintf("unknown encryption mode %q", km.mode))
}
