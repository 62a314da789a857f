package store

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync/atomic"

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
	encKey      = "key-xchacha20poly1305"
)

// kdfSlots bounds the Argon2id derivations running at once. Each holds
// KDFParams.MemoryKiB (64 MiB by default) while it runs, so a process
// that unlocks many stores together (a service with many accounts) peaks
// at the memory of two derivations, not of all of them.
var kdfSlots = make(chan struct{}, 2)

// kdfRunning counts derivations in progress, for kdfDone.
var kdfRunning atomic.Int32

// deriveKEK derives the key-encryption key from a passphrase.
func deriveKEK(passphrase, salt []byte, p KDFParams) *[keySize]byte {
	kdfSlots <- struct{}{}
	kdfRunning.Add(1)
	k := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
	var kek [keySize]byte
	copy(kek[:], k)
	clear(k)
	<-kdfSlots
	kdfDone(p)
	return &kek
}

// kdfDone gives the derivation's work memory back to the operating
// system when it was the last one running. Otherwise the 64 MiB block
// stays in the process (the runtime returns free memory only slowly) and
// the garbage collector's next target is set by it: an idle client would
// hold several times the memory it uses. This costs one collection per
// unlock, a few milliseconds.
func kdfDone(p KDFParams) {
	if kdfRunning.Add(-1) == 0 && p.MemoryKiB >= 8<<10 {
		debug.FreeOSMemory()
	}
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

// KeyMaterial is what a store records about its data key: how the key is
// protected, and the key itself wrapped (sealed) under the passphrase or
// key that protects it. Backends store the fields as they are and give
// them back; only this package interprets them.
type KeyMaterial struct {
	// Mode is "argon2id-xchacha20poly1305" (a passphrase),
	// "key-xchacha20poly1305" (Options.Key) or "none" (Unencrypted).
	Mode string
	// StoreID is a random 16-byte identity, bound into the wrapping so
	// that the wrapped key of one store does not open in another.
	StoreID []byte
	// Salt and KDF are the Argon2id salt and parameters (passphrase
	// mode).
	Salt []byte
	KDF  KDFParams
	// Wrapped is the sealed data key (passphrase and key modes).
	Wrapped []byte
	// Plain is the data key in the clear (mode "none" only).
	Plain []byte

	// fresh is the data key of material made by NewKeyMaterial, kept
	// until NewAccountStore takes it so that a new store needs no second
	// key derivation.
	fresh *[keySize]byte
}

// NewKeyMaterial makes a random data key for a new store and wraps it as
// opts says: under Options.Passphrase (Argon2id with Options.KDF), under
// Options.Key, or not at all with Options.Unencrypted. The result carries
// the new key in memory until it is given to NewAccountStore or cleared
// with Clear.
func NewKeyMaterial(opts Options) (*KeyMaterial, error) {
	if err := opts.validate(true); err != nil {
		return nil, err
	}
	r := opts.rand()
	dk := new([keySize]byte)
	if _, err := io.ReadFull(r, dk[:]); err != nil {
		return nil, fmt.Errorf("reading random data key: %w", err)
	}
	storeID := make([]byte, idSize)
	if _, err := io.ReadFull(r, storeID); err != nil {
		return nil, fmt.Errorf("reading random store id: %w", err)
	}
	var km *KeyMaterial
	var err error
	switch {
	case opts.Unencrypted:
		km = &KeyMaterial{Mode: encNone, StoreID: storeID, Plain: append([]byte(nil), dk[:]...)}
	case opts.Key != nil:
		km, err = wrapWithKey(r, opts.Key, storeID, dk)
	default:
		km, err = wrapDataKey(r, opts.Passphrase, opts.kdf(), storeID, dk)
	}
	if err != nil {
		clear(dk[:])
		return nil, err
	}
	km.fresh = dk
	return km, nil
}

// Clear removes the data key from km's memory: the one in the clear of an
// unencrypted store, and the one NewKeyMaterial keeps.
func (km *KeyMaterial) Clear() {
	clear(km.Plain)
	if km.fresh != nil {
		clear(km.fresh[:])
		km.fresh = nil
	}
}

// wrapDataKey seals dataKey under a key derived from passphrase with a new
// random salt.
func wrapDataKey(rand io.Reader, passphrase []byte, p KDFParams, storeID []byte, dataKey *[keySize]byte) (*KeyMaterial, error) {
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
	return &KeyMaterial{Mode: encArgon2id, StoreID: storeID, Salt: salt, KDF: p, Wrapped: wrapped}, nil
}

// keyWrapAD is the associated data of a data key wrapped under
// Options.Key: it binds the wrapping to the store.
func keyWrapAD(storeID []byte) []byte { return adFor("data-key", string(storeID), "key") }

// wrapWithKey seals dataKey under key.
func wrapWithKey(rand io.Reader, key []byte, storeID []byte, dataKey *[keySize]byte) (*KeyMaterial, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	wrapped, err := sealWith(aead, rand, keyWrapAD(storeID), dataKey[:])
	if err != nil {
		return nil, err
	}
	return &KeyMaterial{Mode: encKey, StoreID: storeID, Wrapped: wrapped}, nil
}

// unlock checks that opts match the mode of km and recovers the data key
// into dataKey. Nothing is written.
func (km *KeyMaterial) unlock(opts Options, dataKey *[keySize]byte) error {
	if len(km.StoreID) != idSize {
		return failure(ErrCorrupt, "incomplete key material")
	}
	switch km.Mode {
	case encNone:
		if !opts.Unencrypted {
			return failure(ErrEncryptionMode, "the store was created unencrypted (Options.Unencrypted) and must be opened that way")
		}
		if len(km.Plain) != keySize {
			return failure(ErrCorrupt, "data key has the wrong size")
		}
		copy(dataKey[:], km.Plain)
		return nil
	case encArgon2id:
		switch {
		case opts.Unencrypted:
			return failure(ErrEncryptionMode, "the store is encrypted and must be opened with its passphrase, not Options.Unencrypted")
		case opts.Key != nil:
			return failure(ErrEncryptionMode, "the store is protected by a passphrase, not by a key (Options.Key)")
		case len(opts.Passphrase) == 0:
			return failure(ErrPassphraseRequired, "the store is encrypted")
		}
		if err := km.KDF.validate(); err != nil {
			return &opError{kind: ErrCorrupt, detail: "stored key derivation parameters", cause: err}
		}
		kek := deriveKEK(opts.Passphrase, km.Salt, km.KDF)
		defer clear(kek[:])
		return openDataKey(kek[:], wrapAD(km.StoreID, km.KDF), km.Wrapped, dataKey, "")
	case encKey:
		switch {
		case opts.Unencrypted:
			return failure(ErrEncryptionMode, "the store is protected by a key (Options.Key), not unencrypted")
		case len(opts.Passphrase) > 0:
			return failure(ErrEncryptionMode, "the store is protected by a key (Options.Key), not by a passphrase")
		case opts.Key == nil:
			return failure(ErrPassphraseRequired, "the store is protected by a key (Options.Key)")
		}
		return openDataKey(opts.Key, keyWrapAD(km.StoreID), km.Wrapped, dataKey, "the key does not unlock the store")
	}
	return failure(ErrCorrupt, fmt.Sprintf("unknown encryption mode %q", km.Mode))
}

// openDataKey unwraps a data key under kek; failure is ErrWrongPassphrase.
func openDataKey(kek, ad, wrapped []byte, dataKey *[keySize]byte, detail string) error {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return err
	}
	k, err := openWith(aead, ad, wrapped)
	if err != nil || len(k) != keySize {
		clear(k)
		return failure(ErrWrongPassphrase, detail)
	}
	copy(dataKey[:], k)
	clear(k)
	return nil
}
