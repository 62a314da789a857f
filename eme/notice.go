package eme

import (
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// A Reason says why a message could not be read.
type Reason int

const (
	// ReasonUnspecified gives the plain notice of XEP-0380 §3.1: "This
	// message was encrypted with OTR (urn:xmpp:otr:0) and could not be
	// decrypted." It is the zero Reason.
	ReasonUnspecified Reason = iota
	// ReasonNotSupported: Balcony does not implement the mechanism.
	ReasonNotSupported
	// ReasonNotEnabled: Balcony implements the mechanism but it is off;
	// the notice's Hint is ActionEnable.
	ReasonNotEnabled
	// ReasonNoSession: a session mechanism (OTR, Encrypted Sessions) has
	// no session with the sender, for example after a restart.
	ReasonNoSession
	// ReasonNoKey: the message was not encrypted to any key or device of
	// ours, or the key it needs is missing.
	ReasonNoKey
	// ReasonVerificationFailed: a signature, MAC or other integrity check
	// failed, so the content is not shown.
	ReasonVerificationFailed
	// ReasonMalformed: the payload or the tag cannot be parsed, or a tag
	// names a mechanism whose payload is missing.
	ReasonMalformed
	// ReasonDisagreement: the tags and payloads name different
	// mechanisms; see Notice.Conflicting.
	ReasonDisagreement
	// ReasonSessionRequested: the contact wants to start a session with a
	// mechanism that is not enabled (an OTR query or key exchange, for
	// example); the notice's Hint is ActionStartSession.
	ReasonSessionRequested
	// ReasonUnreadable: the stanza itself could not be parsed (Detect
	// failed), so not even its mechanism is known. Put the error in
	// Notice.Detail.
	ReasonUnreadable
	// ReasonForgedCopy: a message claiming to be a copy of the user's own
	// conversation (a XEP-0280 carbon) came from someone else (XEP-0280
	// §11); Notice.Sender names who sent it.
	ReasonForgedCopy
	// ReasonMalformedCopy: a carbon copy without a forwarded message.
	ReasonMalformedCopy
	// ReasonInvalidSender: the message's 'from' is not a valid address.
	ReasonInvalidSender

	numReasons
)

var reasonNames = [...]string{"unspecified", "not-supported", "not-enabled", "no-session", "no-key", "verification-failed", "malformed", "disagreement", "session-requested", "unreadable", "forged-carbon", "malformed-carbon", "invalid-sender"}

func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "Reason(?)"
	}
	return reasonNames[r]
}

// MarshalText encodes the reason by name ("no-session"), for JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseReason returns the reason named s (as String gives it).
func ParseReason(s string) (Reason, bool) {
	for i, n := range reasonNames {
		if n == s {
			return Reason(i), true
		}
	}
	return 0, false
}

var reasonKeys = [...]string{
	ReasonUnspecified:        keyUnspecified,
	ReasonNotSupported:       keyNotSupported,
	ReasonNotEnabled:         keyNotEnabled,
	ReasonNoSession:          keyNoSession,
	ReasonNoKey:              keyNoKey,
	ReasonVerificationFailed: keyVerificationFailed,
	ReasonMalformed:          keyMalformed,
	ReasonDisagreement:       keyDisagreement,
	ReasonSessionRequested:   keySessionRequested,
	ReasonUnreadable:         keyUnreadable,
	ReasonForgedCopy:         keyForgedCopy,
	ReasonMalformedCopy:      keyMalformedCopy,
	ReasonInvalidSender:      keyInvalidSender,
}

// maxListed limits the mechanisms listed in a notice or log line.
const maxListed = 4

// A Notice replaces a message that could not be read (XEP-0380 §4). It is
// an event of its own, never a message: clients must render it so that no
// message body can look like it (XEP-0380 §6), for example with a marker
// that is never printed in front of message text.
type Notice struct {
	// Namespace is the mechanism's namespace, "" if it could not be read.
	Namespace string
	// MechanismName is the display name. For namespaces Balcony knows,
	// Text always uses Balcony's own name and ignores this field. For
	// others it is the remote 'name' as returned by SanitizeName, or "".
	MechanismName string
	Reason        Reason
	// Conflicting lists the namespaces involved when Reason is
	// ReasonDisagreement.
	Conflicting []string
	// Notes explain the reason further (why a copy can never be read,
	// that a new session is being started); they are shown after the
	// notice, in its language.
	Notes []Message
	// Detail is optional technical text from Balcony itself, such as an
	// engine's error message. It is shown untranslated, after the notes.
	Detail string
	// Hint is what the user can do about it: enable the mechanism
	// (ReasonNotEnabled) or start a session (ReasonNoSession,
	// ReasonSessionRequested). Text does not include it: the application
	// renders it with Hint.Text and its own command.
	Hint Hint
	// Sender is the address a forged copy came from (ReasonForgedCopy);
	// it is remote input and shown sanitised.
	Sender string
}

// NewNotice returns a notice for a message encrypted with the mechanism
// namespace, whose tag carried remoteName (or ""). The remote name is kept
// only for mechanisms Balcony does not know, and only sanitised.
func NewNotice(namespace, remoteName string, reason Reason) Notice {
	n := Notice{
		Namespace:     namespace,
		MechanismName: DisplayName(namespace, remoteName),
		Reason:        reason,
	}
	if _, known := Lookup(namespace); known {
		switch reason {
		case ReasonNotEnabled:
			n.Hint = Hint{Action: ActionEnable, Mechanism: namespace}
		case ReasonNoSession, ReasonSessionRequested:
			n.Hint = Hint{Action: ActionStartSession, Mechanism: namespace}
		}
	}
	return n
}

// Notice returns the notice for a message that could not be opened; reason
// is why. The detection overrides it where it knows better: contradictory
// markers give ReasonDisagreement, and a tag alone, with no payload of its
// known mechanism or with no readable namespace, gives ReasonMalformed.
func (d Detection) Notice(reason Reason) Notice {
	switch {
	case d.Disagreement != nil && d.Disagreement.Kind == TagWithoutPayload:
		reason = ReasonMalformed
	case d.Disagreement != nil:
		return Notice{Namespace: d.Mechanism, Reason: ReasonDisagreement, Conflicting: d.Disagreement.Namespaces()}
	case d.Mechanism == "" && d.MalformedTags > 0:
		reason = ReasonMalformed
	}
	var remote string
	if t, ok := d.Tag(); ok {
		remote = t.Name
	}
	return NewNotice(d.Mechanism, remote, reason)
}

// Text returns the notice in the supported language closest to lang,
// English if none is close (see Languages). The text is one line; every
// part that a remote entity controls is sanitised, and a remote name is
// quoted.
func (n Notice) Text(lang language.Tag) string {
	p := printer(lang)
	var b strings.Builder
	switch n.Reason {
	case ReasonDisagreement:
		var names []string
		for _, ns := range n.Conflicting {
			if len(names) == maxListed {
				names = append(names, "…")
				break
			}
			if m, ok := Lookup(ns); ok {
				names = append(names, describe(m))
			} else if s := sanitizeNamespace(ns); s != "" {
				names = append(names, s)
			}
		}
		list := strings.Join(names, ", ")
		if list == "" {
			list = n.mechanism(p)
		}
		b.WriteString(p.Sprintf(keyDisagreement, list))
	case ReasonUnreadable, ReasonMalformedCopy, ReasonInvalidSender:
		b.WriteString(p.Sprintf(reasonKeys[n.Reason]))
	case ReasonForgedCopy:
		b.WriteString(p.Sprintf(keyForgedCopy, SanitizeName(n.Sender)))
	default:
		key := keyUnspecified
		if n.Reason >= 0 && n.Reason < numReasons {
			key = reasonKeys[n.Reason]
		}
		b.WriteString(p.Sprintf(key, n.mechanism(p)))
	}
	if notes := Texts(lang, n.Notes...); notes != "" {
		b.WriteString(" " + notes)
	}
	if detail := clean(n.Detail, maxDetailRunes, false); detail != "" {
		b.WriteString(" " + p.Sprintf(keyDetail, detail))
	}
	return b.String()
}

// String returns the English text.
func (n Notice) String() string { return n.Text(language.English) }

// mechanism returns the phrase that names the mechanism in a notice.
func (n Notice) mechanism(p *message.Printer) string {
	if m, ok := Lookup(n.Namespace); ok {
		return describe(m)
	}
	ns := sanitizeNamespace(n.Namespace)
	if ns == "" {
		return p.Sprintf(keyUnknown)
	}
	if name := SanitizeName(n.MechanismName); name != "" {
		return name + " (" + ns + ")"
	}
	return p.Sprintf(keyUnknownNamespace, ns)
}
