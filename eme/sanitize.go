package eme

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxNameRunes is the length limit of SanitizeName, in runes, without the
// quotation marks.
const MaxNameRunes = 64

// maxNamespaceRunes limits an unknown namespace shown in a notice.
const maxNamespaceRunes = 128

// maxDetailRunes limits Notice.Detail and Notice.HowToEnable in Text.
const maxDetailRunes = 256

// maxCombining is the longest run of combining marks kept after one base
// character; longer runs only serve to draw over neighbouring lines.
const maxCombining = 2

// SanitizeName returns a remote 'name' attribute in the only form in which
// Balcony shows it: NFC-normalised, without control, format (including
// bidirectional overrides and zero-width characters), private-use or
// unassigned characters, with every run of white space collapsed to one
// space, double quotation marks replaced by apostrophes, runs of more than
// two combining marks cut, at most MaxNameRunes runes long (a longer name is
// cut and ends in "…"), and enclosed in “ and ”. It returns "" when nothing
// printable remains.
//
// SanitizeName is idempotent: sanitising its result gives the same string.
func SanitizeName(remote string) string {
	s := strings.TrimSpace(remote)
	if strings.HasPrefix(s, "“") && strings.HasSuffix(s, "”") && len(s) >= len("“”") {
		s = s[len("“") : len(s)-len("”")]
	}
	s = clean(s, MaxNameRunes, true)
	if s == "" {
		return ""
	}
	return "“" + s + "”"
}

// MaxRemoteTextRunes is the length limit of QuoteRemote, in runes, without
// the quotation marks.
const MaxRemoteTextRunes = 200

// QuoteRemote returns free text that a remote entity wrote (the text of an
// error, a reason given for declining, an OTR error message, an SMP
// question) in the only form in which it may appear inside a notice or
// status line: cleaned as SanitizeName cleans a name, at most
// MaxRemoteTextRunes runes (a longer text is cut and ends in "…"), and
// enclosed in “ and ”, so that it can neither pass for Balcony's own words
// nor run over other lines. It returns "" when nothing printable remains.
func QuoteRemote(remote string) string {
	s := clean(strings.TrimSpace(remote), MaxRemoteTextRunes, true)
	if s == "" {
		return ""
	}
	return "“" + s + "”"
}

// sanitizeNamespace returns a remote namespace in the form shown in
// notices: cleaned like a name, longer limit, not quoted.
func sanitizeNamespace(ns string) string {
	return clean(ns, maxNamespaceRunes, false)
}

// clean filters s as described in SanitizeName and cuts it to maxRunes.
// With noQuotes, double quotation marks become apostrophes.
func clean(s string, maxRunes int, noQuotes bool) string {
	// Normalisation is the only step whose cost depends on the input length
	// in a non-trivial way, so look at a bounded prefix only: no cleaned
	// rune takes less than one byte, and at most maxCombining marks follow
	// each kept rune, so this prefix always yields maxRunes runes if the
	// whole input does, unless it is mostly characters that are dropped.
	truncated := false
	if limit := (maxRunes + 1) * 4 * (maxCombining + 1) * 4; len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s, truncated = s[:cut], true
	}
	// Drop what is never shown before normalising, so that the result is
	// in NFC even where a dropped character separated a base character
	// from its marks.
	s = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return -1
		case isSpace(r):
			return ' '
		case !printable(r):
			return -1
		case noQuotes && isDoubleQuote(r):
			return '\''
		}
		return r
	}, s)
	s = norm.NFC.String(s)

	var b strings.Builder
	n := 0         // runes written
	space := false // a space is pending
	combining := 0 // combining marks after the last base character
	lastCut := 0   // length of b before the last rune written
	for _, r := range s {
		switch {
		case r == ' ':
			space = n > 0
			combining = 0
			continue
		case unicode.In(r, unicode.Mn, unicode.Me):
			if n == 0 || space || combining >= maxCombining {
				continue
			}
			combining++
		default:
			combining = 0
		}
		if space {
			if n+1 > maxRunes {
				truncated = true
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		if n+1 > maxRunes {
			truncated = true
			break
		}
		if combining == 0 {
			lastCut = b.Len()
		}
		b.WriteRune(r)
		n++
	}
	out := b.String()
	if truncated {
		// Make room for the ellipsis without splitting a base character
		// from its combining marks, and drop a trailing space.
		if n+1 > maxRunes {
			out = out[:lastCut]
		}
		out = strings.TrimRight(out, " ")
		if out == "" {
			return ""
		}
		out += "…"
	}
	return out
}

// printable reports whether r is a character Balcony shows from remote
// input: a letter, mark, number, punctuation or symbol that is assigned,
// not a noncharacter and not a control, format, surrogate or private-use
// character.
func printable(r rune) bool {
	if r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE {
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

func isSpace(r rune) bool {
	return unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

func isDoubleQuote(r rune) bool {
	switch r {
	case '"', '“', '”', '„', '‟', '«', '»', '‹', '›', '〝', '〞', '〟', '″', '‶':
		return true
	}
	return false
}
