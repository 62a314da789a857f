package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultBusyTimeout is how long a write waits for a lock held by another
// process (or, in PostgreSQL, another connection) before failing with
// ErrLocked.
const DefaultBusyTimeout = 5 * time.Second

// Options configure a store when it is created or opened. The zero value
// is not usable: set exactly one of Passphrase, Key or Unencrypted.
type Options struct {
	// Passphrase unlocks the store, or protects a new one. The store
	// neither keeps nor modifies the slice; the caller should clear it
	// after the store is created or opened. The bytes are used exactly as
	// given.
	Passphrase []byte

	// Key is a 256-bit key that protects the store instead of a
	// passphrase, for services that run unattended: typically read from a
	// key file (ReadKeyFile) kept apart from the database, or handed out
	// by a key management service. The data key is wrapped under it with
	// no key derivation. Like the passphrase, it is neither kept nor
	// modified.
	Key []byte

	// Unencrypted is the explicit opt-out for bots that run unattended
	// and have nobody to type a passphrase. Secrets are then still
	// sealed, but under a data key stored in the clear beside them:
	// anyone who can read the account directory can read every secret.
	// The choice is recorded in the database when it is created: an
	// encrypted store cannot be opened with Unencrypted, and an
	// unencrypted one cannot be opened without it (ErrEncryptionMode).
	// There is no in-place conversion between the modes. The PostgreSQL
	// backend does not offer it.
	Unencrypted bool

	// KDF sets the Argon2id parameters used when a passphrase is set (on
	// creation and by ChangePassphrase). Nil means DefaultKDFParams.
	// Unlocking always uses the parameters recorded in the database.
	KDF *KDFParams

	// BusyTimeout is how long a write waits for a lock held elsewhere
	// before failing with ErrLocked. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// NoBlindTrust records a contact's first OX key as Undecided instead
	// of Blind. See RecordSeenKey.
	NoBlindTrust bool

	// Rand is the source of randomness for keys, salts, nonces and the
	// OTR instance tag. Nil means crypto/rand.Reader.
	Rand io.Reader

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// Unexported knobs for tests of the SQLite store: stop migrating at
	// this version (0 means the latest), and use these migrations instead
	// of the embedded ones.
	migrateTo  int
	migrations []Migration
}

// validate checks that the options name one way to protect the store;
// creating needs one, opening finds out from the store which it needs.
func (o *Options) validate(create bool) error {
	n := 0
	for _, set := range []bool{len(o.Passphrase) > 0, o.Key != nil, o.Unencrypted} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("Options.Passphrase, Options.Key and Options.Unencrypted are mutually exclusive")
	case o.Key != nil && len(o.Key) != keySize:
		return fmt.Errorf("Options.Key has %d bytes, want %d", len(o.Key), keySize)
	case create && n == 0:
		return failure(ErrPassphraseRequired, "a new store needs a passphrase, a key or Options.Unencrypted")
	}
	return o.kdf().validate()
}

func (o *Options) busyTimeout() time.Duration {
	if o.BusyTimeout <= 0 {
		return DefaultBusyTimeout
	}
	return o.BusyTimeout
}

func (o *Options) kdf() KDFParams {
	if o.KDF != nil {
		return *o.KDF
	}
	return DefaultKDFParams()
}

func (o *Options) rand() io.Reader {
	if o.Rand == nil {
		return rand.Reader
	}
	return o.Rand
}

func (o *Options) now() func() time.Time {
	if o.Now == nil {
		return time.Now
	}
	return o.Now
}
