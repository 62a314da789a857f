package otr

import (
	"html"
	"strings"
)

// Text returns the text to show for a decrypted OTR message. OTR
// carries text only, but libpurple-based peers (Pidgin and others) send
// HTML: markup, and entities for every '&', '<' and '>' the user typed.
// XEP-0364 §3.1 asks clients to treat such payloads as text, so Text
// shows them as the peer's user typed them: when the text contains markup
// of a known HTML element or a character reference, the known elements
// are removed (a line break for <br>, <hr> and the end of blocks; a
// link's target in parentheses after its text when they differ), and
// entities are decoded. Nothing is interpreted or rendered: the result is
// plain text, which the caller must still escape for its display. Text
// without such markup is returned unchanged, apart from OTR whitespace
// tags, which are always removed.
//
// A decrypted message is up to a reassembled megabyte from any peer that
// starts OTR, so Text takes time linear in its length: a tag does not
// run over a '<' (not even in a quoted attribute value), and links do not
// nest (a link that starts closes the one still open, as in HTML).
func Text(s string) string {
	s = stripWhitespaceTag(s)
	if !looksLikeHTML(s) {
		return s
	}
	var b strings.Builder
	// The open link: its target and where its text starts in b.
	linkOpen, href, start := false, "", 0
	closeLink := func() {
		if shown := strings.TrimSpace(b.String()[start:]); href != "" && shown != href &&
			strings.TrimPrefix(href, "mailto:") != shown {
			b.WriteString(" (" + href + ")")
		}
		linkOpen = false
	}
	text := func(t string) { b.WriteString(html.UnescapeString(t)) }
	commentEnds := true // whether a "-->" may follow
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			text(s)
			break
		}
		text(s[:i])
		s = s[i:]
		if commentEnds && strings.HasPrefix(s, "<!--") {
			if j := strings.Index(s, "-->"); j >= 0 {
				s = s[j+3:]
				continue
			}
			commentEnds = false
		}
		t, n, ok := parseTag(s)
		if !ok || !htmlElements[t.name] {
			b.WriteByte('<')
			s = s[1:]
			continue
		}
		s = s[n:]
		switch {
		case t.name == "br" || t.name == "hr":
			b.WriteByte('\n')
		case t.name == "a" && !t.end:
			if linkOpen {
				closeLink()
			}
			linkOpen, href, start = true, html.UnescapeString(t.href), b.Len()
		case t.name == "a" && t.end && linkOpen:
			closeLink()
		case t.end && blockElements[t.name]:
			b.WriteByte('\n')
		case t.name == "img" && t.alt != "":
			b.WriteString(html.UnescapeString(t.alt))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// looksLikeHTML reports markup of a known element or a character
// reference.
func looksLikeHTML(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<':
			if t, _, ok := parseTag(s[i:]); ok && htmlElements[t.name] {
				return true
			}
		case '&':
			j := strings.IndexByte(s[i:min(i+12, len(s))], ';')
			if j > 1 && j < 12 && html.UnescapeString(s[i:i+j+1]) != s[i:i+j+1] {
				return true
			}
		}
	}
	return false
}

type htmlTag struct {
	name      string // lower case
	end       bool   // </name>
	href, alt string // raw attribute values
}

// parseTag parses a start or end tag at the start of s and returns it and
// its length.
func parseTag(s string) (htmlTag, int, bool) {
	var t htmlTag
	i := 1
	if i < len(s) && s[i] == '/' {
		t.end = true
		i++
	}
	start := i
	for i < len(s) && isASCIILetterOrDigit(s[i]) {
		i++
	}
	if i == start {
		return t, 0, false
	}
	t.name = strings.ToLower(s[start:i])
	for {
		for i < len(s) && isHTMLSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return t, 0, false
		}
		switch s[i] {
		case '>':
			return t, i + 1, true
		case '/':
			if i+1 < len(s) && s[i+1] == '>' {
				return t, i + 2, true
			}
			return t, 0, false
		}
		if t.end || i == start+len(t.name) && !isHTMLSpace(s[i-1]) {
			return t, 0, false
		}
		// An attribute: name, optionally = and a quoted or bare value.
		ns := i
		for i < len(s) && s[i] != '=' && s[i] != '>' && s[i] != '/' && !isHTMLSpace(s[i]) && s[i] != '<' {
			i++
		}
		if i == ns {
			return t, 0, false
		}
		name := strings.ToLower(s[ns:i])
		for i < len(s) && isHTMLSpace(s[i]) {
			i++
		}
		val := ""
		if i < len(s) && s[i] == '=' {
			i++
			for i < len(s) && isHTMLSpace(s[i]) {
				i++
			}
			if i >= len(s) {
				return t, 0, false
			}
			if q := s[i]; q == '"' || q == '\'' {
				j := strings.IndexAny(s[i+1:], string(q)+"<")
				if j < 0 || s[i+1+j] == '<' {
					return t, 0, false
				}
				val = s[i+1 : i+1+j]
				i += j + 2
			} else {
				vs := i
				for i < len(s) && !isHTMLSpace(s[i]) && s[i] != '>' && s[i] != '<' {
					i++
				}
				val = s[vs:i]
			}
		}
		switch name {
		case "href":
			t.href = val
		case "alt":
			t.alt = val
		}
	}
}

func isASCIILetterOrDigit(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHTMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// htmlElements are the elements removed from OTR text: what libpurple
// and other IM clients put in messages (XHTML-IM's set and a few more).
var htmlElements = map[string]bool{
	"a": true, "abbr": true, "acronym": true, "b": true, "big": true, "blockquote": true, "body": true,
	"br": true, "cite": true, "code": true, "del": true, "div": true, "em": true, "font": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true, "html": true,
	"i": true, "img": true, "ins": true, "kbd": true, "li": true, "ol": true, "p": true, "pre": true,
	"q": true, "s": true, "samp": true, "small": true, "span": true, "strike": true, "strong": true,
	"sub": true, "sup": true, "tt": true, "u": true, "ul": true, "var": true,
}

// blockElements end with a line break.
var blockElements = map[string]bool{
	"blockquote": true, "div": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
	"li": true, "p": true, "pre": true,
}
