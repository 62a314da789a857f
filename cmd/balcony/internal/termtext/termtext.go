// Package termtext makes remote text safe to show on a terminal: the
// escapes Balcony applies to everything a contact, a server or anyone on
// the way wrote before it reaches the screen, in "balcony listen" lines
// and in the full-screen client alike.
//
// Line keeps text on one line: control characters (line breaks, escape
// sequences), bidirectional overrides and the Unicode line and paragraph
// separators become visible \u escapes. Addr does the same for an
// address and also escapes every space and invisible character, so that
// an address is always one visible token.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
)

// Line makes remote text safe for one terminal line: control characters
// (including line breaks, escape sequences and bidirectional overrides)
// become visible escapes, and a backslash is doubled so that an escape
// cannot be imitated.
func Line(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Addr escapes an address: like Line, and every space or invisible
// character too (resourceparts may contain them), so that a resource such
// as "x !! verified" cannot shift the fields of a line, visibly or not.
func Addr(s string) string {
	var b strings.Builder
	for _, r := range Line(s) {
		if unicode.IsSpace(r) || !unicode.IsGraphic(r) || Blank(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Blank reports graphic characters that render as empty space.
func Blank(r rune) bool {
	switch r {
	case '\u2800', '\u3164', '\u115f', '\u1160', '\uffa0', '\u180e', '\u200b', '\u2060', '\ufeff':
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

// WithFingerprint appends the fingerprint a security event is about to
// its text, in parentheses, unless the text shows it already (in groups,
// as OMEMO's texts do, or in one piece): once is enough, and a long hex
// run would only wrap.
func WithFingerprint(text, fpr string) string {
	if fpr == "" {
		return text
	}
	if strings.Contains(strings.ToLower(strings.ReplaceAll(text, " ", "")), strings.ToLower(strings.ReplaceAll(fpr, " ", ""))) {
		return text
	}
	return text + " (" + fpr + ")"
}
