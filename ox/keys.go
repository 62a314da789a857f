package ox

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"
)

// Algorithm selects the kind of key [GenerateKey] makes.
type Algorithm uint8

const (
	// EdDSA25519 is a v4 key with a legacy EdDSA (Ed25519, algorithm 22)
	// primary key for signing and certification and a Cv25519 ECDH
	// (algorithm 18) subkey for encryption. It is the default: small, fast
	// and usable by GnuPG 2.2, which rejects the RFC 9580 Ed25519 and X25519
	// algorithms (27 and 25).
	EdDSA25519 Algorithm = iota
	// RSA3072 is a v4 key with an RSA-3072 primary key and an RSA-3072
	// encryption subkey, for peers without elliptic-curve support.
	RSA3072
)

// String names the algorithm.
func (a Algorithm) String() string {
	switch a {
	case EdDSA25519:
		return "EdDSA/Cv25519"
	case RSA3072:
		return "RSA-3072"
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

// MaxKeySize is the largest key block [ParseKeys] accepts.
const MaxKeySize = 1 << 20

// ErrUnsupportedKey means a key is not an OpenPGP v4 key. XEP-0373 §6.1
// requires v4 or higher packets, and keys are announced by their v4
// fingerprint, so Balcony uses v4 keys only.
var ErrUnsupportedKey = errors.New("ox: only OpenPGP v4 keys are supported")

// KeyError reports a problem with one key, named by its fingerprint.
type KeyError struct {
	Fingerprint string
	Err         error
}

func (e *KeyError) Error() string { return "ox: key " + e.Fingerprint + ": " + errText(e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// errText strips our own package prefix from a wrapped error message.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), "ox: ")
}

// A Key is an OpenPGP v4 transferable key: a public key, or a secret key that
// also holds the secret material. Keys are immutable and safe for concurrent
// use; parse them once (see [KeyCache]) and share them.
type Key struct {
	entity *openpgp.Entity
	fpr    string
}

func newKey(e *openpgp.Entity) (*Key, error) {
	if e.PrimaryKey.Version != 4 {
		return nil, ErrUnsupportedKey
	}
	for _, s := range e.Subkeys {
		if s.PublicKey.Version != 4 {
			return nil, ErrUnsupportedKey
		}
	}
	return &Key{entity: e, fpr: strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))}, nil
}

// GenerateKey makes a new v4 key for the bare JID of addr. Its only user ID is
// exactly "xmpp:" followed by the bare JID (XEP-0373 §7.5), and it never
// expires (some clients refuse to restore expiring keys from a backup). The
// self-signatures prefer AES-256, AES-128, SHA-256 and no compression.
func GenerateKey(addr jid.JID, alg Algorithm, cfg *Config) (*Key, error) {
	bare := addr.Bare()
	if bare.Domainpart() == "" {
		return nil, errors.New("ox: cannot generate a key for an empty address")
	}
	uid := "xmpp:" + bare.String()
	now := cfg.now()
	pc := &packet.Config{
		Rand:                   cfg.rand(),
		Time:                   func() time.Time { return now },
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	switch alg {
	case EdDSA25519:
		pc.Algorithm = packet.PubKeyAlgoEdDSA
		pc.Curve = packet.Curve25519
	case RSA3072:
		pc.Algorithm = packet.PubKeyAlgoRSA
		pc.RSABits = 3072
	default:
		return nil, fmt.Errorf("ox: unknown key algorithm %d", alg)
	}
	// packet.NewUserId refuses the characters ()<> that RFC 4880 uses to
	// split a user ID into name, comment and address; a JID localpart may
	// contain parentheses, so such user IDs are set up below instead.
	name := uid
	if packet.NewUserId(uid, "", "") == nil {
		name = "xmpp:placeholder"
	}
	e, err := openpgp.NewEntity(name, "", "", pc)
	if err != nil {
		return nil, fmt.Errorf("ox: generating key: %w", err)
	}
	if name != uid {
		ident := e.Identities[name]
		delete(e.Identities, name)
		sig := *ident.SelfSignature
		if err := sig.SignUserId(uid, e.PrimaryKey, e.PrivateKey, pc); err != nil {
			return nil, fmt.Errorf("ox: generating key: %w", err)
		}
		e.Identities[uid] = &openpgp.Identity{
			Name:          uid,
			UserId:        &packet.UserId{Id: uid},
			SelfSignature: &sig,
			Signatures:    []*packet.Signature{&sig},
		}
	}
	return newKey(e)
}

// ParseKeys parses one or more transferable keys, public or secret, in binary
// form or ASCII armored. Every key must be a well-formed v4 key with valid
// self-signatures on its user IDs and subkeys; otherwise ParseKeys fails
// rather than silently dropping a key. Parsing verifies every self-signature
// and is relatively expensive: use a [KeyCache] for keys seen repeatedly.
//
// What a key may cost is bounded before any signature is checked, since
// keys come from anyone: only v4 keys of the usual algorithms and sizes
// (RSA up to 8192 bits, DSA up to 3072, ElGamal up to 4096, the elliptic
// curves), at most 64 keys and subkeys and 512 packets, and at most
// MaxPublicKeySize bytes for a block of public keys (MaxKeySize for one
// holding secret keys); anything else is ErrKeyTooExpensive or
// ErrTooLarge.
func ParseKeys(data []byte) ([]*Key, error) {
	if len(data) > MaxKeySize {
		return nil, ErrTooLarge
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")) {
		block, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, fmt.Errorf("ox: invalid armored key: %w", err)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("ox: armored block is a %q, not a key", block.Type)
		}
		if data, err = io.ReadAll(io.LimitReader(block.Body, MaxKeySize+1)); err != nil {
			return nil, fmt.Errorf("ox: invalid armored key: %w", err)
		}
		if len(data) > MaxKeySize {
			return nil, ErrTooLarge
		}
	}
	secret, err := scanKeyBlock(data)
	if err != nil {
		return nil, err
	}
	if !secret && len(data) > MaxPublicKeySize {
		return nil, ErrTooLarge
	}
	packets := packet.NewReader(bytes.NewReader(data))
	var keys []*Key
	for {
		e, err := openpgp.ReadEntity(packets)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ox: invalid key: %w", err)
		}
		k, err := newKey(e)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("ox: no key found")
	}
	return keys, nil
}

// Fingerprint returns the v4 fingerprint of the primary key as 40 upper-case
// hexadecimal digits without spaces (XEP-0373 §4.1).
func (k *Key) Fingerprint() string { return k.fpr }

// String returns the fingerprint.
func (k *Key) String() string { return k.fpr }

// KeyIDs returns the 64-bit key IDs of the primary key and all subkeys.
func (k *Key) KeyIDs() []uint64 {
	ids := []uint64{k.entity.PrimaryKey.KeyId}
	for _, s := range k.entity.Subkeys {
		ids = append(ids, s.PublicKey.KeyId)
	}
	return ids
}

// Algorithm describes the primary key algorithm and size, such as
// "EdDSA/Cv25519" or "RSA-3072".
func (k *Key) Algorithm() string {
	pk := k.entity.PrimaryKey
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoEdDSA:
		return "EdDSA/Cv25519"
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSASignOnly:
		if n, err := pk.BitLength(); err == nil {
			return fmt.Sprintf("RSA-%d", n)
		}
		return "RSA"
	}
	return fmt.Sprintf("algorithm %d", pk.PubKeyAlgo)
}

// Secret reports whether the key holds secret key material for its primary key.
func (k *Key) Secret() bool { return k.entity.PrivateKey != nil }

// Locked reports whether some of the secret key material is still protected
// by a passphrase (see [Key.Unlock]).
func (k *Key) Locked() bool {
	if p := k.entity.PrivateKey; p != nil && p.Encrypted {
		return true
	}
	for _, s := range k.entity.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// Unlock returns a copy of the key with its passphrase-protected secret key
// material decrypted. The receiver is not changed. Keys imported from GnuPG
// usually need this; keys made by [GenerateKey] or restored from a backup do
// not.
func (k *Key) Unlock(passphrase []byte) (*Key, error) {
	if !k.Secret() {
		return nil, &KeyError{k.fpr, ErrNotSecret}
	}
	b, err := k.MarshalSecret()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, err
	}
	if err := keys[0].entity.DecryptPrivateKeys(passphrase); err != nil {
		return nil, &KeyError{k.fpr, errors.New("wrong passphrase")}
	}
	return keys[0], nil
}

// Public returns the key without any secret key material.
func (k *Key) Public() *Key {
	if !k.Secret() && !slices.ContainsFunc(k.entity.Subkeys, func(s openpgp.Subkey) bool { return s.PrivateKey != nil }) {
		return k
	}
	e := *k.entity
	e.PrivateKey = nil
	e.Subkeys = slices.Clone(e.Subkeys)
	for i := range e.Subkeys {
		e.Subkeys[i].PrivateKey = nil
	}
	return &Key{entity: &e, fpr: k.fpr}
}

// UserIDs returns the user IDs with a valid self-signature, sorted.
func (k *Key) UserIDs() []string {
	ids := make([]string, 0, len(k.entity.Identities))
	for name := range k.entity.Identities {
		ids = append(ids, name)
	}
	slices.Sort(ids)
	return ids
}

// Addresses returns the bare JIDs named by the key's "xmpp:" user IDs that
// are not revoked at time now.
func (k *Key) Addresses(now time.Time) []jid.JID {
	var out []jid.JID
	for _, name := range k.UserIDs() {
		ident := k.entity.Identities[name]
		if j, ok := uidAddress(name); ok && !ident.Revoked(now) {
			out = append(out, j)
		}
	}
	return out
}

// uidAddress returns the bare JID of a user ID of the exact form
// "xmpp:<bare JID>". Some normalisation (case of the localpart and domain)
// is tolerated because XEP-0373 §7.6 compares normalised addresses.
func uidAddress(uid string) (jid.JID, bool) {
	rest, ok := strings.CutPrefix(uid, "xmpp:")
	if !ok || rest == "" {
		return jid.JID{}, false
	}
	j, err := jid.Parse(rest)
	if err != nil || j.Resourcepart() != "" {
		return jid.JID{}, false
	}
	return j, true
}

// Created returns the creation time of the primary key.
func (k *Key) Created() time.Time { return k.entity.PrimaryKey.CreationTime }

// Expires returns when the primary key expires, and false if it never does.
func (k *Key) Expires() (time.Time, bool) {
	sig, _ := k.entity.PrimarySelfSignature()
	if sig == nil || sig.KeyLifetimeSecs == nil || *sig.KeyLifetimeSecs == 0 {
		return time.Time{}, false
	}
	return k.Created().Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second), true
}

// Revoked reports whether the primary key is revoked at time now.
func (k *Key) Revoked(now time.Time) bool { return k.entity.Revoked(now) }

// ValidFor checks that the key may be used as the key of addr at time now: it
// has a user ID exactly "xmpp:" followed by the bare JID of addr (compared in
// RFC 7622 normalised form), neither the key nor that user ID is revoked, and
// neither has expired. The error wraps [ErrUserID], [ErrKeyRevoked] or
// [ErrKeyExpired] in a [*KeyError].
func (k *Key) ValidFor(addr jid.JID, now time.Time) error {
	if err := k.validAt(now); err != nil {
		return &KeyError{k.fpr, err}
	}
	if err := k.uidValidAt(addr, now); err != nil {
		return &KeyError{k.fpr, err}
	}
	return nil
}

// CanEncrypt checks that the key is valid at time now and has a usable
// encryption subkey. Seal encrypts only to keys that pass.
func (k *Key) CanEncrypt(now time.Time) error {
	if err := k.validAt(now); err != nil {
		return &KeyError{k.fpr, err}
	}
	if _, ok := k.entity.EncryptionKey(now); !ok {
		return &KeyError{k.fpr, ErrNoEncryptionKey}
	}
	return nil
}

// validAt checks the primary key and its primary self-signature at time t.
func (k *Key) validAt(t time.Time) error {
	e := k.entity
	sig, ident := e.PrimarySelfSignature()
	switch {
	case sig == nil:
		return ErrUserID
	case e.Revoked(t), ident != nil && ident.Revoked(t):
		return ErrKeyRevoked
	case e.PrimaryKey.KeyExpired(sig, t), sig.SigExpired(t):
		return ErrKeyExpired
	}
	return nil
}

func (k *Key) uidValidAt(addr jid.JID, t time.Time) error {
	want := addr.Bare()
	err := ErrUserID
	for name, ident := range k.entity.Identities {
		j, ok := uidAddress(name)
		if !ok || !j.Equal(want) {
			continue
		}
		switch {
		case ident.Revoked(t):
			err = ErrKeyRevoked
		case ident.SelfSignature == nil:
		case ident.SelfSignature.SigExpired(t):
			err = ErrKeyExpired
		default:
			return nil
		}
	}
	return err
}

// MarshalPublic returns the binary transferable public key. With minimal set,
// only self-signatures are kept, and of those only the latest one per user
// ID and subkey plus revocations, as GnuPG's export-minimal does; XEP-0373 §8.2
// advises this for keys published over PEP.
func (k *Key) MarshalPublic(minimal bool) ([]byte, error) {
	var b bytes.Buffer
	if err := k.serialize(&b, false, minimal); err != nil {
		return nil, fmt.Errorf("ox: serializing key: %w", err)
	}
	return b.Bytes(), nil
}

// MarshalSecret returns the binary transferable secret key (RFC 4880 §11.2).
// Secret key material that is not passphrase protected is written with
// string-to-key usage 0, as a backup requires (XEP-0373 §5.4).
func (k *Key) MarshalSecret() ([]byte, error) {
	if !k.Secret() {
		return nil, &KeyError{k.fpr, ErrNotSecret}
	}
	var b bytes.Buffer
	if err := k.serialize(&b, true, true); err != nil {
		return nil, fmt.Errorf("ox: serializing key: %w", err)
	}
	return b.Bytes(), nil
}

func (k *Key) serialize(w io.Writer, secret, minimal bool) error {
	e := k.entity
	var err error
	if secret {
		err = e.PrivateKey.Serialize(w)
	} else {
		err = e.PrimaryKey.Serialize(w)
	}
	if err != nil {
		return err
	}
	for _, s := range e.Revocations {
		if err := s.Serialize(w); err != nil {
			return err
		}
	}
	for _, s := range e.Signatures {
		if err := s.Serialize(w); err != nil {
			return err
		}
	}
	// Identities in a stable order: the primary one first.
	_, primary := e.PrimarySelfSignature()
	names := k.UserIDs()
	if i := slices.Index(names, primaryName(primary)); i > 0 {
		copy(names[1:i+1], names[:i])
		names[0] = primary.Name
	}
	for _, name := range names {
		ident := e.Identities[name]
		if err := ident.UserId.Serialize(w); err != nil {
			return err
		}
		sigs := ident.Signatures
		if minimal {
			sigs = append(slices.Clone(ident.Revocations), ident.SelfSignature)
		}
		for _, s := range sigs {
			if err := s.Serialize(w); err != nil {
				return err
			}
		}
	}
	for _, sub := range e.Subkeys {
		if secret && sub.PrivateKey != nil {
			err = sub.PrivateKey.Serialize(w)
		} else {
			err = sub.PublicKey.Serialize(w)
		}
		if err != nil {
			return err
		}
		for _, s := range sub.Revocations {
			if err := s.Serialize(w); err != nil {
				return err
			}
		}
		if err := sub.Sig.Serialize(w); err != nil {
			return err
		}
	}
	return nil
}

func primaryName(ident *openpgp.Identity) string {
	if ident == nil {
		return ""
	}
	return ident.Name
}

// Armor returns the ASCII armored form of binary OpenPGP data: a public key
// block, a private key block or a message, chosen by the first packet.
// Armor is for files and terminals; XMPP always carries Base64 of the binary
// form (XEP-0373 §3.1, §4.1).
func Armor(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0]&0x80 == 0 {
		return nil, errors.New("ox: not binary OpenPGP data")
	}
	tag := (b[0] >> 2) & 0x0f
	if b[0]&0x40 != 0 {
		tag = b[0] & 0x3f
	}
	typ := "PGP MESSAGE"
	switch tag {
	case 5:
		typ = openpgp.PrivateKeyType
	case 6:
		typ = openpgp.PublicKeyType
	}
	var out bytes.Buffer
	w, err := armor.Encode(&out, typ, nil)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// CanonicalFingerprint returns s as an upper-case v4 fingerprint string if it
// is 40 hexadecimal digits (of either case, spaces allowed between groups as
// GnuPG prints them), and false otherwise.
func CanonicalFingerprint(s string) (string, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if len(s) != 40 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	return strings.ToUpper(s), true
}

// KeyCache parses keys once and hands out the parsed result for identical
// input afterwards, so decrypting a stream of messages from the same senders
// does not re-verify their self-signatures each time. It holds at most a fixed
// number of entries and forgets the oldest first. A KeyCache is safe for
// concurrent use; concurrent requests for the same data parse it once.
type KeyCache struct {
	mu    sync.Mutex
	max   int
	m     map[[32]byte]*cacheEntry
	order [][32]byte // insertion order, for eviction
}

type cacheEntry struct {
	once sync.Once
	keys []*Key
	err  error
}

// NewKeyCache returns a cache holding up to max key blocks; max <= 0 means 1024.
func NewKeyCache(max int) *KeyCache {
	if max <= 0 {
		max = 1024
	}
	return &KeyCache{max: max, m: make(map[[32]byte]*cacheEntry)}
}

// Parse is [ParseKeys] with caching, keyed by the SHA-256 of data.
func (c *KeyCache) Parse(data []byte) ([]*Key, error) {
	id := sha256.Sum256(data)
	c.mu.Lock()
	ent, ok := c.m[id]
	if !ok {
		if len(c.order) >= c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		ent = new(cacheEntry)
		c.m[id] = ent
		c.order = append(c.order, id)
	}
	c.mu.Unlock()
	ent.once.Do(func() { ent.keys, ent.err = ParseKeys(data) })
	return slices.Clone(ent.keys), ent.err
}

// Len returns the number of cached entries.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
