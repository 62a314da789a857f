// Package trust is the vocabulary of keys and trust decisions that the
// store and the mechanisms' XMPP glue share: which mechanism a key belongs
// to, the user's decision about it (State), a contact's key as recorded
// (ContactKey, Seen, KeyChange) and the account's own keys (OwnKey). It
// holds plain data and no behaviour beyond parsing and normalising, so
// that the glue packages can declare the storage they need without
// importing the store, and the store can implement it.
package trust

import (
	"fmt"
	"strings"
	"time"
)

// Mechanism names an end-to-end encryption mechanism. The values are the
// short names used in the database and on the command line.
type Mechanism string

// The mechanisms whose keys and trust decisions the store records.
const (
	// OX is OpenPGP for XMPP (XEP-0373, XEP-0374). Fingerprints are v4
	// (40) or v6 (64) hexadecimal digits.
	OX Mechanism = "ox"
	// OTR is Off-the-Record Messaging v3 (XEP-0364). Fingerprints are the
	// 40 hexadecimal digits of the SHA-1 of the DSA public key.
	OTR Mechanism = "otr"
	// ESession is Encrypted Sessions (XEP-0116, XEP-0217). Fingerprints
	// are whatever identifies a public key in XEP-0116 (the Base64 hash of
	// its KeyValue), compared exactly.
	ESession Mechanism = "esession"
	// OMEMO is OMEMO Encryption (XEP-0384), both generations: each key is
	// the identity key of one device. Fingerprints are the 64 hexadecimal
	// digits of the identity key's Curve25519 form (XEP-0384 §8), the
	// same in OMEMO 0.3 and OMEMO 2, kept in lower case.
	OMEMO Mechanism = "omemo"
)

// Mechanisms lists the known mechanisms in a stable order.
func Mechanisms() []Mechanism { return []Mechanism{OX, OTR, ESession, OMEMO} }

// ParseMechanism returns the mechanism named s (case-insensitive).
func ParseMechanism(s string) (Mechanism, error) {
	m := Mechanism(strings.ToLower(strings.TrimSpace(s)))
	if !m.Valid() {
		return "", fmt.Errorf("trust: unknown mechanism %q (want ox, otr, esession or omemo)", s)
	}
	return m, nil
}

// Valid reports whether m is one of the known mechanisms.
func (m Mechanism) Valid() bool {
	switch m {
	case OX, OTR, ESession, OMEMO:
		return true
	}
	return false
}

// String returns the short name of m.
func (m Mechanism) String() string { return string(m) }

// State is the user's (or a default rule's) decision about one key of
// one contact for one mechanism. The zero value is Undecided.
type State int

// Trust states.
const (
	// Undecided: the user has not decided. Messages signed by it are
	// shown with a warning and never as verified. Whether to encrypt to
	// it is the mechanism's rule: OX encrypts to every announced key that
	// is not Untrusted (XEP-0374 asks for all of a contact's keys), so a
	// new device can read at once while the user still has to decide.
	Undecided State = iota
	// Verified: the user compared the fingerprint out of band, or a
	// protocol proof (OTR SMP, a confirmed ESession SAS) succeeded.
	Verified
	// Blind: trusted on first use without verification (the OX default
	// for a contact's first key; for OMEMO, every device of a contact
	// until the user verified one of them: blind trust before
	// verification).
	Blind
	// Untrusted: the user rejected the key. It is never used, and messages
	// signed by it are shown as untrusted.
	Untrusted
)

var trustNames = [...]string{
	Undecided: "undecided",
	Verified:  "verified",
	Blind:     "blind",
	Untrusted: "untrusted",
}

// String returns the lower-case name of t, as stored in the database.
func (t State) String() string {
	if t < 0 || int(t) >= len(trustNames) {
		return fmt.Sprintf("State(%d)", int(t))
	}
	return trustNames[t]
}

// Usable reports whether a key in state t may be used to encrypt to its
// owner: it is Verified or Blind.
func (t State) Usable() bool { return t == Verified || t == Blind }

// ParseState returns the state named s ("undecided", "verified",
// "blind", "untrusted"; case-insensitive).
func ParseState(s string) (State, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for i, n := range trustNames {
		if n == l {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("trust: unknown trust state %q (want undecided, verified, blind or untrusted)", s)
}

// Valid reports whether t is one of the trust states.
func (t State) Valid() bool { return t >= Undecided && t <= Untrusted }

// NormalizeFingerprint returns the canonical form of a fingerprint for
// mechanism m, as the store keeps it. For OX and OTR, white space and colons
// are removed and hexadecimal digits are upper-cased, so
// "2fd4e1c6 7a2d28fc ..." and "2FD4E1C67A2D28FC..." name the same key; the
// length is checked. ESession fingerprints are Base64 and only trimmed.
// Every store method taking a fingerprint applies it.
func NormalizeFingerprint(m Mechanism, fpr string) (string, error) {
	switch m {
	case OX, OTR:
		s, err := hexDigits(m, fpr, strings.ToUpper)
		if err == nil && len(s) != 40 && !(m == OX && len(s) == 64) {
			err = fmt.Errorf("trust: %s fingerprint %q: %d hex digits", m, fpr, len(s))
		}
		return s, err
	case OMEMO:
		s, err := hexDigits(m, fpr, strings.ToLower)
		if err == nil && len(s) != 64 {
			err = fmt.Errorf("trust: omemo fingerprint %q: %d hex digits, want 64", fpr, len(s))
		}
		return s, err
	case ESession:
		s := strings.TrimSpace(fpr)
		if s == "" || len(s) > 512 || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("trust: esession fingerprint %q: empty, too long or contains white space", fpr)
		}
		return s, nil
	}
	return "", fmt.Errorf("trust: unknown mechanism %q", string(m))
}

// hexDigits returns the hexadecimal digits of fpr in the case fold gives
// them, without white space and colons.
func hexDigits(m Mechanism, fpr string, fold func(string) string) (string, error) {
	var b strings.Builder
	for _, r := range fpr {
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':':
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f', r >= 'A' && r <= 'F':
			b.WriteRune(r)
		default:
			return "", fmt.Errorf("trust: %s fingerprint %q: not hexadecimal", m, fpr)
		}
	}
	return fold(b.String()), nil
}

// ContactKey is a contact's key for one mechanism and the trust decision
// about it.
type ContactKey struct {
	Contact     string // bare JID
	Mechanism   Mechanism
	Fingerprint string // normalised, see NormalizeFingerprint
	// Data is the public key in the mechanism's own encoding, as last
	// seen (OX: the binary OpenPGP key; OTR: the PUBKEY encoding). It is
	// nil for a key known only from a trust decision.
	Data  []byte
	Trust State
	// FirstSeen is zero for a key the user decided about before it was
	// ever seen (for example from a scanned fingerprint).
	FirstSeen time.Time
	LastSeen  time.Time
	// Announced is true while the key is listed in the contact's
	// published key list (OX: the PEP public-keys metadata node).
	Announced bool
	// Published is the date the contact announced with the key whose
	// data is stored (OX: the date of its key list entry); zero when
	// unknown. A newer date means the data should be fetched again.
	// ListKeys fills it in.
	Published time.Time
}

// Seen is what RecordSeenKey found.
type Seen struct {
	// Key is the key as recorded, with its trust state.
	Key ContactKey
	// New is true the first time this fingerprint is seen for this
	// contact and mechanism.
	New bool
	// Change is non-nil when the key is new and the contact already had
	// another key for the mechanism. It must be shown to the user; it also
	// stays in PendingKeyChanges until acknowledged.
	Change *KeyChange
}

// KeyChange reports a new key for a contact who already had another one
// for the same mechanism: a new device, a reinstall, or an attack.
type KeyChange struct {
	// ID identifies the change for AcknowledgeKeyChange.
	ID          int64
	Contact     string
	Mechanism   Mechanism
	Fingerprint string   // the new key
	Previous    []string // the keys seen before, oldest first
	Trust       State
	Time        time.Time
}

// OwnKey is one of the account's own key pairs for a mechanism: an OX
// OpenPGP key, the OTR DSA key, an ESession (XEP-0116) signing key. The
// secret part is kept sealed and returned only by OwnKeySecret.
type OwnKey struct {
	Mechanism   Mechanism
	Fingerprint string
	// Public is the public key in the mechanism's own encoding (OX: the
	// binary OpenPGP public key; OTR: the PUBKEY encoding).
	Public  []byte
	Created time.Time
	// Active marks the key used for signing and announced to contacts. A
	// mechanism has at most one active key.
	Active bool
}
