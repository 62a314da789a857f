package store

import (
	"context"
	"crypto/cipher"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// core applies the rules of this package on top of a Backend: it is the
// AccountStore of every backend.
type core struct {
	b       Backend
	rand    io.Reader
	now     func() time.Time
	noBlind bool
	kdf     KDFParams

	// mu is held shared by every operation and exclusively by Close.
	mu      sync.RWMutex
	closed  bool
	mode    string // KeyMaterial.Mode
	storeID []byte
	dataKey [keySize]byte
	aead    cipher.AEAD // XChaCha20-Poly1305 under dataKey
}

var _ AccountStore = (*core)(nil)

// NewAccountStore returns the AccountStore of the account whose data b
// keeps and whose data key km records. It unlocks km with opts: a
// passphrase or key that does not open it is ErrWrongPassphrase, options
// of another mode ErrEncryptionMode; nothing is written. Material made by
// NewKeyMaterial is used without a second key derivation. km is cleared.
//
// This is how a backend package hands out its stores; applications call
// that package (Create, Open, pgstore.Store.Open ...).
func NewAccountStore(b Backend, km *KeyMaterial, opts Options) (AccountStore, error) {
	c, err := newCore(b, km, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func newCore(b Backend, km *KeyMaterial, opts Options) (*core, error) {
	defer km.Clear()
	if err := opts.validate(false); err != nil {
		return nil, wrap("unlock", err)
	}
	c := &core{b: b, rand: opts.rand(), now: opts.now(), noBlind: opts.NoBlindTrust, kdf: opts.kdf(),
		mode: km.Mode, storeID: km.StoreID}
	if km.fresh != nil {
		c.dataKey = *km.fresh
	} else if err := km.unlock(opts, &c.dataKey); err != nil {
		return nil, wrap("unlock", err)
	}
	aead, err := chacha20poly1305.NewX(c.dataKey[:])
	if err != nil {
		c.clearKey()
		return nil, wrap("unlock", err)
	}
	c.aead = aead
	return c, nil
}

func (c *core) clearKey() {
	clear(c.dataKey[:])
	c.aead = nil
}

// Close clears the data key from memory and closes the backend. Further
// use returns ErrClosed. Close waits for operations in progress.
func (c *core) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.clearKey()
	return wrap("close", c.b.Close())
}

// Encrypted reports whether the store's secrets are protected by a
// passphrase or a key (false for a store created with
// Options.Unencrypted).
func (c *core) Encrypted() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mode != encNone
}

// ChangePassphrase re-wraps the data key under a key derived from
// passphrase with a new salt and the Options.KDF parameters, in one
// transaction; the secrets themselves are not re-encrypted. Stores of the
// same account open elsewhere keep working. A store protected by a key
// or unencrypted cannot be given a passphrase this way
// (ErrEncryptionMode).
func (c *core) ChangePassphrase(ctx context.Context, passphrase []byte) error {
	const op = "change passphrase"
	if len(passphrase) == 0 {
		return wrap(op, failure(ErrPassphraseRequired, ""))
	}
	return c.rewrap(ctx, op, encArgon2id, func() (*KeyMaterial, error) {
		return wrapDataKey(c.rand, passphrase, c.kdf, c.storeID, &c.dataKey)
	})
}

// ChangeKey re-wraps the data key of a store protected by a key
// (Options.Key) under a new 32-byte key, in one transaction. Other stores
// keep working.
func (c *core) ChangeKey(ctx context.Context, key []byte) error {
	const op = "change key"
	if len(key) != keySize {
		return wrap(op, fmt.Errorf("key has %d bytes, want %d", len(key), keySize))
	}
	return c.rewrap(ctx, op, encKey, func() (*KeyMaterial, error) {
		return wrapWithKey(c.rand, key, c.storeID, &c.dataKey)
	})
}

func (c *core) rewrap(ctx context.Context, op, mode string, make func() (*KeyMaterial, error)) error {
	if err := c.enter(); err != nil {
		return wrap(op, err)
	}
	defer c.mu.RUnlock()
	if c.mode != mode {
		return wrap(op, failure(ErrEncryptionMode, "the store is protected otherwise ("+c.mode+")"))
	}
	km, err := make()
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, c.b.Write(ctx, func(q Querier) error {
		old, err := c.b.LoadKeys(ctx, q)
		if err != nil {
			return err
		}
		if old.Mode != mode {
			return failure(ErrEncryptionMode, "the store's key material changed underneath")
		}
		return c.b.SaveKeys(ctx, q, km)
	}))
}

// Check opens every sealed value and returns ErrCorrupt describing the
// first that does not open. It reads every secret and the whole message
// log and may take a while.
func (c *core) Check(ctx context.Context) error {
	return c.read(ctx, "check", func(q Querier) error { return c.checkSealed(ctx, q) })
}

// enter takes the shared lock and fails if c is closed. The caller must
// c.mu.RUnlock() when enter returns nil.
func (c *core) enter() error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// read runs fn in a read of the backend.
func (c *core) read(ctx context.Context, op string, fn func(q Querier) error) error {
	if err := c.enter(); err != nil {
		return wrap(op, err)
	}
	defer c.mu.RUnlock()
	return wrap(op, c.b.Read(ctx, fn))
}

// update runs fn in a write transaction of the backend.
func (c *core) update(ctx context.Context, op string, fn func(q Querier) error) error {
	if err := c.enter(); err != nil {
		return wrap(op, err)
	}
	defer c.mu.RUnlock()
	return wrap(op, c.b.Write(ctx, fn))
}

func (c *core) nowMillis() int64 { return c.now().UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// seal encrypts a secret bound to its table and row identity.
func (c *core) seal(plaintext []byte, table string, row ...string) ([]byte, error) {
	return sealWith(c.aead, c.rand, adFor(table, row...), plaintext)
}

// open decrypts a sealed value; failure is ErrCorrupt.
func (c *core) open(blob []byte, table string, row ...string) ([]byte, error) {
	pt, err := openWith(c.aead, adFor(table, row...), blob)
	if err != nil {
		return nil, &opError{kind: ErrCorrupt, detail: table, cause: err}
	}
	return pt, nil
}

// checkSealed opens every sealed value in the account's tables.
func (c *core) checkSealed(ctx context.Context, q Querier) error {
	sources := []struct {
		table, query string
		ids          int // identity columns after the sealed one
	}{
		{"account.password", `SELECT password FROM account WHERE /*account*/ password IS NOT NULL`, 0},
		{"own_keys", `SELECT secret, mechanism, fingerprint FROM own_keys WHERE /*account*/ TRUE`, 2},
		{"retained_secrets", `SELECT secret, peer, CAST(id AS TEXT) FROM retained_secrets WHERE /*account*/ TRUE`, 2},
		{"esession_offline", `SELECT secrets, nonce FROM esession_offline WHERE /*account*/ TRUE`, 1},
		{"outbox", `SELECT body, CAST(id AS TEXT) FROM outbox WHERE /*account*/ TRUE`, 1},
		{"messages", `SELECT body, CAST(id AS TEXT) FROM messages WHERE /*account*/ TRUE`, 1},
		{"mechanism_state", `SELECT value, mechanism, key FROM mechanism_state WHERE /*account*/ TRUE`, 2},
	}
	for _, src := range sources {
		rows, err := q.Query(ctx, src.query)
		if err != nil {
			return err
		}
		for rows.Next() {
			var blob []byte
			ids := make([]string, src.ids)
			dest := []any{&blob}
			for i := range ids {
				dest = append(dest, &ids[i])
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
			pt, err := c.open(blob, src.table, ids...)
			clear(pt)
			if err != nil {
				rows.Close()
				return &opError{kind: ErrCorrupt, detail: fmt.Sprintf("sealed value in %s %v", src.table, ids), cause: errSealed}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
