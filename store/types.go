package store

import (
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"
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
)

// Mechanisms lists the known mechanisms in a stable order.
func Mechanisms() []Mechanism { return []Mechanism{OX, OTR, ESession} }

// ParseMechanism returns the mechanism named s (case-insensitive).
func ParseMechanism(s string) (Mechanism, error) {
	m := Mechanism(strings.ToLower(strings.TrimSpace(s)))
	if !m.valid() {
		return "", fmt.Errorf("store: unknown mechanism %q (want ox, otr or esession)", s)
	}
	return m, nil
}

func (m Mechanism) valid() bool {
	switch m {
	case OX, OTR, ESession:
		return true
	}
	return false
}

// String returns the short name of m.
func (m Mechanism) String() string { return string(m) }

// TrustState is the user's (or a default rule's) decision about one key of
// one contact for one mechanism. The zero value is Undecided.
type TrustState int

// Trust states.
const (
	// Undecided: the user has not decided. Messages signed by it are
	// shown with a warning and never as verified. Whether to encrypt to
	// it is the mechanism's rule: OX encrypts to every announced key that
	// is not Untrusted (XEP-0374 asks for all of a contact's keys), so a
	// new device can read at once while the user still has to decide.
	Undecided TrustState = iota
	// Verified: the user compared the fingerprint out of band, or a
	// protocol proof (OTR SMP, a confirmed ESession SAS) succeeded.
	Verified
	// Blind: trusted on first use without verification (the OX default
	// for a contact's first key).
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
func (t TrustState) String() string {
	if t < 0 || int(t) >= len(trustNames) {
		return fmt.Sprintf("TrustState(%d)", int(t))
	}
	return trustNames[t]
}

// Usable reports whether a key in state t may be used to encrypt to its
// owner: it is Verified or Blind.
func (t TrustState) Usable() bool { return t == Verified || t == Blind }

// ParseTrustState returns the state named s ("undecided", "verified",
// "blind", "untrusted"; case-insensitive).
func ParseTrustState(s string) (TrustState, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for i, n := range trustNames {
		if n == l {
			return TrustState(i), nil
		}
	}
	return 0, fmt.Errorf("store: unknown trust state %q (want undecided, verified, blind or untrusted)", s)
}

func (t TrustState) valid() bool { return t >= Undecided && t <= Untrusted }

// NormalizeFingerprint returns the canonical form of a fingerprint for
// mechanism m, as the store keeps it. For OX and OTR, white space and colons
// are removed and hexadecimal digits are upper-cased, so
// "2fd4e1c6 7a2d28fc ..." and "2FD4E1C67A2D28FC..." name the same key; the
// length is checked. ESession fingerprints are Base64 and only trimmed.
// Every Store method taking a fingerprint applies it.
func NormalizeFingerprint(m Mechanism, fpr string) (string, error) {
	switch m {
	case OX, OTR:
		var b strings.Builder
		for _, r := range fpr {
			switch {
			case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ':':
			case r >= '0' && r <= '9', r >= 'A' && r <= 'F':
				b.WriteRune(r)
			case r >= 'a' && r <= 'f':
				b.WriteRune(r - 'a' + 'A')
			default:
				return "", fmt.Errorf("store: %s fingerprint %q: not hexadecimal", m, fpr)
			}
		}
		s := b.String()
		if len(s) != 40 && !(m == OX && len(s) == 64) {
			return "", fmt.Errorf("store: %s fingerprint %q: %d hex digits", m, fpr, len(s))
		}
		return s, nil
	case ESession:
		s := strings.TrimSpace(fpr)
		if s == "" || len(s) > 512 || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("store: esession fingerprint %q: empty, too long or contains white space", fpr)
		}
		return s, nil
	}
	return "", fmt.Errorf("store: unknown mechanism %q", string(m))
}

// bareJID parses s and returns the normalised bare JID (RFC 7622). A
// resource part is dropped: trust and history belong to the bare JID.
func bareJID(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty JID")
	}
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid JID %q: %w", s, err)
	}
	return j.Bare().String(), nil
}
