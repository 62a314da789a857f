package eme

import (
	"errors"
	"fmt"
	"strings"
)

// A Mode is the kind of encryption policy a user sets for a contact.
type Mode int

const (
	// PlaintextAllowed lets messages go out in the clear; the user may
	// still encrypt them. It is the zero Mode.
	PlaintextAllowed Mode = iota
	// PreferEncryption asks the client to encrypt whenever a mechanism is
	// usable for the contact and to send in the clear otherwise.
	PreferEncryption
	// RequireEncryption refuses to send in the clear or with a mechanism
	// weaker than the one required: downgrade protection.
	RequireEncryption
)

// ErrDowngrade is matched, with errors.Is, by every *DowngradeError.
var ErrDowngrade = errors.New("eme: downgrade refused")

// A Policy is a per-contact encryption policy. The zero value allows
// plaintext. Policy values are immutable and safe for concurrent use.
//
// Policies are checked against the mechanism that actually protects a
// message (the one that sealed an outgoing message, or decrypted and
// verified an incoming one), never against an EME tag: tags are
// unauthenticated.
type Policy struct {
	Mode Mode
	// Mechanism, with RequireEncryption, is the namespace of the weakest
	// accepted mechanism: it and every mechanism of equal or higher
	// Mechanism.Rank are accepted. Empty means any mechanism Balcony
	// knows. It is ignored by the other modes.
	Mechanism string
}

// ParsePolicy parses a policy as written in configuration files and on the
// command line: "plaintext", "prefer", "require" (any known mechanism) or
// "require:" followed by a mechanism's Short name or namespace, such as
// "require:ox" or "require:urn:xmpp:openpgp:0". Case and surrounding white
// space are ignored. Errors are of type *ParseError.
func ParsePolicy(s string) (Policy, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	switch in {
	case "plaintext":
		return Policy{Mode: PlaintextAllowed}, nil
	case "prefer":
		return Policy{Mode: PreferEncryption}, nil
	case "require":
		return Policy{Mode: RequireEncryption}, nil
	}
	if name, ok := strings.CutPrefix(in, "require:"); ok {
		m, ok := lookupShort(strings.TrimSpace(name))
		if !ok {
			return Policy{}, &ParseError{Msg: fmt.Sprintf("policy %q: unknown mechanism (known: %s)", trimForError(s), shortNames())}
		}
		return Policy{Mode: RequireEncryption, Mechanism: m.Namespace}, nil
	}
	return Policy{}, &ParseError{Msg: fmt.Sprintf("unknown policy %q (want plaintext, prefer, require or require:<mechanism>)", trimForError(s))}
}

func shortNames() string {
	s := make([]string, len(mechanisms))
	for i, m := range mechanisms {
		s[i] = m.Short
	}
	return strings.Join(s, ", ")
}

// String returns the policy in the form ParsePolicy reads, with the
// mechanism's Short name.
func (p Policy) String() string {
	switch p.Mode {
	case PlaintextAllowed:
		return "plaintext"
	case PreferEncryption:
		return "prefer"
	case RequireEncryption:
		if p.Mechanism == "" {
			return "require"
		}
		if m, ok := Lookup(p.Mechanism); ok {
			return "require:" + m.Short
		}
		return "require:" + p.Mechanism
	}
	return fmt.Sprintf("Policy(%d)", int(p.Mode))
}

// MarshalText implements encoding.TextMarshaler.
func (p Policy) MarshalText() ([]byte, error) {
	if p.Mode < PlaintextAllowed || p.Mode > RequireEncryption {
		return nil, fmt.Errorf("eme: invalid policy mode %d", int(p.Mode))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePolicy.
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// minRank is the lowest rank the policy accepts; RankPlaintext means
// plaintext is accepted.
func (p Policy) minRank() int {
	if p.Mode != RequireEncryption {
		return RankPlaintext
	}
	if m, ok := Lookup(p.Mechanism); ok {
		return m.Rank
	}
	// Any known mechanism; an unknown required mechanism (a Policy built by
	// hand) cannot be ranked, so nothing but the strongest passes.
	if p.Mechanism == "" {
		return RankLegacy
	}
	return RankRatchet + 1
}

// Accepts reports whether the policy accepts a message protected by
// mechanism, "" meaning plaintext.
func (p Policy) Accepts(mechanism string) bool {
	min := p.minRank()
	if min == RankPlaintext {
		return true
	}
	if mechanism == p.Mechanism && mechanism != "" {
		return true
	}
	_, known := Lookup(mechanism)
	return known && rank(mechanism) >= min
}

// CheckOutgoing returns a *DowngradeError if the policy forbids sending a
// message protected by mechanism ("" for plaintext): with RequireEncryption,
// plaintext, an unknown mechanism and any mechanism ranked below the
// required one are refused. The client calls it as the last step before a
// message leaves, with the mechanism that sealed it.
func (p Policy) CheckOutgoing(mechanism string) error {
	if p.Accepts(mechanism) {
		return nil
	}
	return &DowngradeError{Policy: p, Mechanism: mechanism}
}

// CheckIncoming is CheckOutgoing for a received message: mechanism is the
// one that decrypted and verified it, "" if it was plaintext or could not
// be opened, never the mechanism named by its tag. The client still
// delivers the message, marked with the error.
func (p Policy) CheckIncoming(mechanism string) error {
	if p.Accepts(mechanism) {
		return nil
	}
	return &DowngradeError{Policy: p, Mechanism: mechanism, Incoming: true}
}

// A DowngradeError reports a message refused (outgoing) or flagged
// (incoming) because its protection is weaker than the policy requires.
type DowngradeError struct {
	Policy    Policy
	Mechanism string // the mechanism of the message; "" for plaintext
	Incoming  bool
}

// Is makes errors.Is(err, ErrDowngrade) true.
func (e *DowngradeError) Is(target error) bool { return target == ErrDowngrade }

func (e *DowngradeError) Error() string {
	var used string
	switch m, ok := Lookup(e.Mechanism); {
	case e.Mechanism == "":
		used = "in the clear"
	case ok:
		used = "with " + describe(m)
	default:
		used = fmt.Sprintf("with unknown mechanism %q", sanitizeNamespace(e.Mechanism))
	}
	var required string
	switch m, ok := Lookup(e.Policy.Mechanism); {
	case e.Policy.Mechanism == "":
		required = "encryption"
	case ok:
		required = describe(m) + " or a mechanism at least as strong"
	default:
		required = fmt.Sprintf("mechanism %q", sanitizeNamespace(e.Policy.Mechanism))
	}
	if e.Incoming {
		return fmt.Sprintf("eme: message received %s, but the policy for this contact (%s) requires %s", used, e.Policy, required)
	}
	return fmt.Sprintf("eme: refusing to send %s: the policy for this contact (%s) requires %s", used, e.Policy, required)
}

func describe(m Mechanism) string {
	return m.Name + " (" + m.Namespace + ")"
}

// Message is the warning a user sees for an incoming message flagged by
// the policy, as a catalogue message.
func (e *DowngradeError) Message() Message {
	policy := e.Policy.String()
	var used string
	switch m, ok := Lookup(e.Mechanism); {
	case e.Mechanism == "":
	case ok:
		used = describe(m)
	default:
		used = QuoteRemote(sanitizeNamespace(e.Mechanism))
	}
	var required string
	switch m, ok := Lookup(e.Policy.Mechanism); {
	case e.Policy.Mechanism == "":
	case ok:
		required = describe(m)
	default:
		required = QuoteRemote(sanitizeNamespace(e.Policy.Mechanism))
	}
	switch {
	case used == "" && required == "":
		return Msg(MsgPolicyClearNeedsEncryption, policy)
	case used == "":
		return Msg(MsgPolicyClearNeedsMechanism, policy, required)
	case required == "":
		return Msg(MsgPolicyWeakNeedsEncryption, used, policy)
	}
	return Msg(MsgPolicyWeakNeedsMechanism, used, policy, required)
}
