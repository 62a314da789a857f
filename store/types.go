package store

import (
	"errors"
	"fmt"

	"github.com/balcony-im/balcony/trust"

	"mellium.im/xmpp/jid"
)

// Mechanism names an end-to-end encryption mechanism (see trust.Mechanism).
type Mechanism = trust.Mechanism

// The mechanisms whose keys and trust decisions the store records.
const (
	OX       = trust.OX
	OTR      = trust.OTR
	ESession = trust.ESession
	OMEMO    = trust.OMEMO
)

// Mechanisms lists the known mechanisms in a stable order.
func Mechanisms() []Mechanism { return trust.Mechanisms() }

// ParseMechanism returns the mechanism named s (case-insensitive).
func ParseMechanism(s string) (Mechanism, error) { return trust.ParseMechanism(s) }

// TrustState is the user's decision about a key (see trust.State).
type TrustState = trust.State

// Trust states.
const (
	Undecided = trust.Undecided
	Verified  = trust.Verified
	Blind     = trust.Blind
	Untrusted = trust.Untrusted
)

// ParseTrustState returns the state named s (see trust.ParseState).
func ParseTrustState(s string) (TrustState, error) { return trust.ParseState(s) }

// NormalizeFingerprint returns the canonical form of a fingerprint for
// mechanism m (see trust.NormalizeFingerprint). Every Store method taking a
// fingerprint applies it.
func NormalizeFingerprint(m Mechanism, fpr string) (string, error) {
	return trust.NormalizeFingerprint(m, fpr)
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
