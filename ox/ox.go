// Package ox implements OpenPGP for XMPP, XEP-0373 version 0.7 (Experimental),
// and its Instant Messaging profile, XEP-0374 (Deferred).
//
// The package is a protocol engine: it does no network I/O and starts no
// goroutines. Bytes and XML trees (package xmltree) go in, bytes and XML
// trees come out; randomness and the clock are injectable through [Config].
// Publishing and fetching keys over PEP, carbons, MAM and the message
// pipeline belong to the client layer, which uses the payload types defined
// here.
//
// # What it provides
//
//   - The content elements <signcrypt/>, <sign/> and <crypt/> ([Content],
//     [ParseContent]) with <to/>, <time/>, <rpad/> and <payload/>.
//   - [Seal], which builds a content element, pads it and turns it into a
//     binary OpenPGP message, and [Opener], which decrypts and verifies one and
//     runs every receiver check of XEP-0373 §3.2 (signature, signer, user ID,
//     recipient, time), reporting each failed check as a typed error.
//     [Recipients] selects the keys to encrypt to.
//   - The <openpgp/> element ([Element]): Base64 of the binary message, never
//     ASCII armor.
//   - Keys ([Key], [GenerateKey], [ParseKeys], [KeyCache]): v4 keys with
//     legacy EdDSA and Cv25519 (the default, readable by GnuPG 2.2) or RSA-3072.
//   - PEP payloads for key announcement (§4): [PubKey], [PublicKeysList],
//     [Merge]; and the secret-key backup (§5): [SecretKey], [NewBackupCode],
//     [SealBackup], [OpenBackup].
//   - The IM profile rules of XEP-0374: [EffectiveChildren] and the constants
//     a client advertises and sends ([NSIM], [FeatureNotify], [FallbackBody]).
//
// # What OX protects and what it does not
//
// A <signcrypt/> message hides the payload (the body and any other protected
// extension) from servers and anyone else who does not hold one of the
// recipients' secret keys, and proves which key signed it, to whom it was
// addressed (<to/>) and when the sender claims it was made (<time/>). The
// random padding hides the exact payload length.
//
// OX does not hide metadata: who talks to whom, when, how often, the
// approximate size of messages and every unencrypted stanza child (hints,
// receipts requested in the clear, thread ids, EME tags) remain visible to the
// servers. It has no forward secrecy: anyone who later obtains a secret key can
// read every message ever encrypted to it, including those archived by MAM.
// It offers no deniability: signatures are transferable proof of authorship.
// A replayed message is detected only through its <time/> stamp and the
// recipient check; there is no counter. Trust in a key (that it really belongs
// to the contact) is not established by this package: keys come from PEP and
// the user must verify fingerprints out of band.
package ox

import (
	"crypto/rand"
	"errors"
	"io"
	"time"
)

// Namespaces, node names and service discovery features.
const (
	// NS is the namespace of every element defined by XEP-0373.
	NS = "urn:xmpp:openpgp:0"

	// NSIM is the service discovery feature of the IM profile (XEP-0374 §2.1).
	// A client supporting OX for instant messages MUST advertise it.
	NSIM = "urn:xmpp:openpgp:im:0"

	// NodePublicKeys is the PEP metadata node listing the announced keys
	// (XEP-0373 §4.2).
	NodePublicKeys = "urn:xmpp:openpgp:0:public-keys"

	// NodeSecretKey is the PEP node holding the secret-key backup
	// (XEP-0373 §5). It must use the whitelist access model.
	NodeSecretKey = "urn:xmpp:openpgp:0:secret-key"

	// FeatureNotify is the filtered-notification feature a client advertises
	// to receive metadata node updates (XEP-0373 §4.5).
	FeatureNotify = NodePublicKeys + "+notify"

	// NSEME is the namespace value an EME <encryption/> element carries for
	// OX (XEP-0380). The client adds that element; Balcony never sends the
	// 'name' attribute for it because the namespace is a listed one.
	NSEME = NS

	// NSHints is the namespace of the message processing hints (XEP-0334).
	// XEP-0374 §3.2 asks for <store xmlns='urn:xmpp:hints'/> on every OX
	// message so servers archive it.
	NSHints = "urn:xmpp:hints"

	// FallbackBody is the unencrypted body sent beside every OX message that
	// carries a body (XEP-0374 §3.2), for clients that cannot read it.
	FallbackBody = "This message is encrypted with OpenPGP for XMPP (XEP-0373) and cannot be displayed by your client."
)

// PublicKeyNode returns the name of the PEP data node that holds the public key
// with the given fingerprint (XEP-0373 §4.1). The fingerprint is used as given:
// pass [Key.Fingerprint], which is already upper case.
func PublicKeyNode(fingerprint string) string {
	return NodePublicKeys + ":" + fingerprint
}

// ParsePublicKeyNode reports whether node is a public key data node and, if
// so, the fingerprint part of its name exactly as it appears there. Use it to
// route PEP notifications; compare fingerprints with [CanonicalFingerprint].
func ParsePublicKeyNode(node string) (fingerprint string, ok bool) {
	const prefix = NodePublicKeys + ":"
	if len(node) <= len(prefix) || node[:len(prefix)] != prefix {
		return "", false
	}
	return node[len(prefix):], true
}

// Config carries the injectable dependencies of the package. A nil *Config is
// valid and selects the defaults.
type Config struct {
	// Rand is the source of randomness: session keys, padding, backup codes,
	// signature salts and key generation. Nil means crypto/rand.
	//
	// Since Go 1.26 the standard library ignores a custom reader for RSA key
	// generation unless GODEBUG=cryptocustomrand=1 is set, so RSA keys are
	// random even when Rand is deterministic. EdDSA and Cv25519 keys, session
	// keys and padding do come from Rand.
	Rand io.Reader

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time

	// MaxClockSkew is how far the <time/> stamp of a received content element
	// may differ from the reference time before [Opener.Open] reports a
	// [TimeError]; it is also the tolerance for signatures and keys that
	// appear to come from the future. Zero means 10 minutes.
	MaxClockSkew time.Duration
}

// DefaultMaxClockSkew is the clock-skew tolerance used when
// Config.MaxClockSkew is zero.
const DefaultMaxClockSkew = 10 * time.Minute

func (c *Config) rand() io.Reader {
	if c == nil || c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

func (c *Config) now() time.Time {
	if c == nil || c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Config) skew() time.Duration {
	if c == nil || c.MaxClockSkew <= 0 {
		return DefaultMaxClockSkew
	}
	return c.MaxClockSkew
}

// Errors that callers branch on. Failed receiver checks are reported through
// the typed errors [SignerError], [RecipientError], [KindError] and
// [TimeError], which wrap these sentinels, so errors.Is works on them.
var (
	// ErrDecrypt is the single opaque error for every failure to decrypt a
	// message or a backup: a wrong key, a wrong backup code, a tampered or
	// truncated ciphertext and a failed integrity check all return it.
	ErrDecrypt = errors.New("ox: message could not be decrypted")

	// ErrNoKey means the message is encrypted, but to none of our keys. This
	// is decided from the public key IDs in the message alone.
	ErrNoKey = errors.New("ox: message is not encrypted to any of our keys")

	// ErrTooLarge means a message, key or backup exceeds the size limits of
	// this package (see [MaxPlaintext]).
	ErrTooLarge = errors.New("ox: data too large")

	// ErrNotSigned means a <signcrypt/> or <sign/> element came without an
	// OpenPGP signature.
	ErrNotSigned = errors.New("ox: message is not signed")

	// ErrUnknownSigner means the signature was made by a key that is not among
	// the keys announced for the sender.
	ErrUnknownSigner = errors.New("ox: signed by a key not announced for the sender")

	// ErrBadSignature means the signature does not verify.
	ErrBadSignature = errors.New("ox: invalid signature")

	// ErrUserID means a key has no user ID exactly "xmpp:" followed by the
	// expected bare JID (XEP-0373 §3.2 and §7.5).
	ErrUserID = errors.New("ox: key has no user ID for this address")

	// ErrKeyExpired means a key (or the subkey or binding signature needed) has
	// expired, or is not valid yet.
	ErrKeyExpired = errors.New("ox: key expired")

	// ErrKeyRevoked means a key, the subkey used or the XMPP user ID is revoked.
	ErrKeyRevoked = errors.New("ox: key revoked")

	// ErrNoEncryptionKey means a key has no valid subkey that can encrypt.
	ErrNoEncryptionKey = errors.New("ox: key cannot encrypt")

	// ErrNoSigningKey means a key has no valid (and unlocked) secret signing key.
	ErrNoSigningKey = errors.New("ox: key cannot sign")

	// ErrNotSecret means a secret key was needed but only the public part is
	// available, or the secret key material is still passphrase protected.
	ErrNotSecret = errors.New("ox: secret key needed")

	// ErrRecipient means no <to/> element names the outer 'to' address.
	ErrRecipient = errors.New("ox: message not addressed to this recipient")

	// ErrKind means the content element is of the wrong kind for the profile,
	// or the OpenPGP message is signed or encrypted contrary to its kind.
	ErrKind = errors.New("ox: wrong kind of content element")

	// ErrTime means the <time/> stamp is implausible.
	ErrTime = errors.New("ox: implausible time stamp")
)
