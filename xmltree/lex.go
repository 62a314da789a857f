package xmltree

// The lexical layer of Parse: names, markup that is skipped, character
// data and attribute values, each read from p.s at p.i exactly as
// encoding/xml's Decoder reads it in strict mode.

import (
	"strings"
	"unicode/utf8"
)

// space skips white space (XML 1.0 §2.3 production [3]).

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// name reads a Name (XML 1.0 §2.3) and returns it with the index of
// its first colon (-1 if none) and the number of colons.
func (p *parser) name() (name string, colon, colons int, err error) {
	s := p.s
	i := p.i
	if i < len(s) && s[i] < utf8.RuneSelf && !nameStartASCII[s[i]] {
		return "", 0, 0, p.fail("invalid name")
	}
	colon = -1
	ascii := true
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			continue
		}
		if !nameByte[c] {
			break
		}
		if c == ':' {
			if colons == 0 {
				colon = i - p.i
			}
			colons++
		}
	}
	if i == len(s) {
		// encoding/xml needs the byte after a name.
		return "", 0, 0, p.eof()
	}
	name = s[p.i:i]
	if !ascii && !isName(name) {
		return "", 0, 0, p.fail("invalid name")
	}
	p.i = i
	return name, colon, colons, nil
}

// qname reads a Name and splits it at its colon, as encoding/xml does: a
// name with an empty prefix or local part is all local part.
func (p *parser) qname() (prefix, local sref, err error) {
	start := p.i
	s, k, colons, err := p.name()
	switch {
	case err != nil:
		return sref{}, sref{}, err
	case colons > 1:
		return sref{}, sref{}, p.fail("more than one colon in name")
	case k <= 0 || k == len(s)-1:
		return sref{start, start}, sref{start, p.i}, nil
	}
	return sref{start, start + k}, sref{start + k + 1, p.i}, nil
}

// comment skips a comment (XML 1.0 §2.5): "--" must end it.
func (p *parser) comment() error {
	k := strings.Index(p.s[p.i+4:], "--")
	if k < 0 {
		p.i = len(p.s)
		return p.eof()
	}
	p.i += 4 + k + 2
	if p.i >= len(p.s) {
		return p.eof()
	}
	if p.s[p.i] != '>' {
		return p.fail(`"--" in comment`)
	}
	p.i++
	return nil
}

// procInst skips a processing instruction (XML 1.0 §2.6) and returns its
// target. The XML declaration (§2.8) may only give version 1.0 and
// encoding UTF-8.
func (p *parser) procInst() (string, error) {
	p.i += 2
	target, _, _, err := p.name()
	if err != nil {
		return "", err
	}
	p.space()
	k := strings.Index(p.s[p.i:], "?>")
	if k < 0 {
		p.i = len(p.s)
		return "", p.eof()
	}
	inst := p.s[p.i : p.i+k]
	if target == "xml" {
		if v := declParam("version", inst); v != "" && v != "1.0" {
			return "", p.fail("unsupported XML version " + v)
		}
		if enc := declParam("encoding", inst); enc != "" && !strings.EqualFold(enc, "utf-8") {
			return "", p.fail("unsupported encoding " + enc)
		}
	}
	p.i += k + 2
	return target, nil
}

// declParam returns the quoted value of the first "param=" directly
// followed by a quote in s, or "", the way encoding/xml reads the XML
// declaration.
func declParam(param, s string) string {
	param += "="
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], param)
		if k < 0 || i+k+len(param) >= len(s) {
			return ""
		}
		i += k + len(param)
		if q := s[i]; q == '\'' || q == '"' {
			j := strings.IndexByte(s[i+1:], q)
			if j < 0 {
				return ""
			}
			return s[i+1 : i+1+j]
		}
		i++
	}
	return ""
}

// plain marks the ASCII bytes that character data and attribute values
// (XML 1.0 §2.4, §3.1) carry unchanged and that end nothing: Char
// (§2.2) below 0x80 except '<', '&', ']', the quotes and carriage
// return.
var plain = [256]bool{'\t': true, '\n': true}

func init() {
	for c := 0x20; c < 0x80; c++ {
		plain[c] = !strings.ContainsRune(`<&]"'`, rune(c))
	}
}

// skipPlain returns the index of the first word of 8 bytes at or after
// i, in steps of 8, that holds a byte that is not plain (or a tab or a
// line feed, which are plain but left to the caller).
func skipPlain(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := word(s[i : i+8])
		if (x|below(x, 0x20)|hasByte(x, '<')|hasByte(x, '&')|hasByte(x, ']')|hasByte(x, '"')|hasByte(x, '\''))&highs != 0 {
			break
		}
	}
	return i
}

// simple reports whether s is all printable ASCII other than '<', '&'
// and ']': text or an attribute value that needs no further look.
func simple(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := word(s[i : i+8])
		if (x|below(x, 0x20)|hasByte(x, '<')|hasByte(x, '&')|hasByte(x, ']'))&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '<' || c == '&' || c == ']' {
			return false
		}
	}
	return true
}

// Words of 8 bytes are tested together with the tricks of "Bit Twiddling
// Hacks": for a word of bytes below 0x80, below(x, n)&highs is not zero
// iff some byte is below n, and hasByte(x, c)&highs is not zero iff some
// byte is c.
const ones, highs = 0x0101010101010101, 0x8080808080808080

func word(w string) uint64 {
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

func below(x uint64, n byte) uint64 { return (x - ones*uint64(n)) &^ x }

func hasByte(x uint64, c byte) uint64 {
	v := x ^ ones*uint64(c)
	return (v - ones) &^ v
}

// badRune reports whether the rune decoded from input of at least two
// bytes is malformed UTF-8 or not a Char (XML 1.0 §2.2).
func badRune(r rune, size int) bool {
	return r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF
}

// inRange reports whether r is a Char (XML 1.0 §2.2).
func inRange(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= utf8.MaxRune
}

// chars reads character data up to '<' or the end of input when quote
// is 0, or an attribute value up to its closing quote, which it
// consumes. References are expanded (§4.1, only the predefined entities
// of §4.6) and line ends normalised (§2.11: CR LF and CR alone become
// LF). If nothing needed changing, the result is a substring of the
// input; otherwise dec is true and the result is in p.buf.
func (p *parser) chars(quote byte) (text sref, dec bool, err error) {
	s := p.s
	start := p.i
	// Most text and most attribute values are printable ASCII without
	// references: find the end, check the bytes before it, done.
	end := byte('<')
	if quote != 0 {
		end = quote
	}
	if n := strings.IndexByte(s[start:], end); n >= 0 && simple(s[start:start+n]) {
		p.i = start + n
		if quote != 0 {
			p.i++
		}
		return sref{start, start + n}, false, nil
	}
	i := start
	run := start // start of the bytes not yet copied to p.buf
	for i < len(s) {
		i = skipPlain(s, i)
		if i >= len(s) {
			break
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '<':
			if quote != 0 {
				p.i = i
				return sref{}, false, p.fail("'<' in attribute value")
			}
			return p.charsEnd(start, run, i, i, dec)
		case c == quote && quote != 0:
			return p.charsEnd(start, run, i, i+1, dec)
		case c == '"' || c == '\'':
			i++
		case c == ']':
			if quote == 0 && strings.HasPrefix(s[i:], "]]>") {
				p.i = i
				return sref{}, false, p.fail("']]>' in character data")
			}
			i++
		case c == '&' || c == '\r':
			if !dec {
				p.buf = append(p.buf[:0], s[start:i]...)
				dec = true
			} else {
				p.buf = append(p.buf, s[run:i]...)
			}
			if c == '\r' {
				p.buf = append(p.buf, '\n')
				i++
				if i < len(s) && s[i] == '\n' {
					i++
				}
			} else {
				r, n := p.ref(i)
				if n == 0 {
					p.i = i
					return sref{}, false, p.fail("invalid character reference or undeclared entity")
				}
				p.buf = utf8.AppendRune(p.buf, r)
				i += n
			}
			run = i
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if badRune(r, size) {
				p.i = i
				return sref{}, false, p.fail("invalid UTF-8 or character")
			}
			i += size
		default:
			p.i = i
			return sref{}, false, p.fail("illegal character")
		}
	}
	if quote != 0 {
		p.i = i
		return sref{}, false, p.eof()
	}
	return p.charsEnd(start, run, i, i, dec)
}

func (p *parser) charsEnd(start, run, end, next int, dec bool) (sref, bool, error) {
	p.i = next
	if dec {
		p.buf = append(p.buf, p.s[run:end]...)
		return sref{}, true, nil
	}
	return sref{start, end}, false, nil
}

// predefined are the entities of XML 1.0 §4.6 with their references'
// remainder after '&'.
var predefined = [...]struct {
	ref string
	r   rune
}{{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"apos;", '\''}, {"quot;", '"'}}

// ref reads the reference at s[i] == '&' and returns its character and
// length, or 0 if it is not a character reference to a Char (§4.1; a
// surrogate code point becomes U+FFFD, as encoding/xml has it) or a
// predefined entity.
func (p *parser) ref(i int) (rune, int) {
	s := p.s[i+1:]
	if !strings.HasPrefix(s, "#") {
		for _, e := range predefined {
			if strings.HasPrefix(s, e.ref) {
				return e.r, 1 + len(e.ref)
			}
		}
		return 0, 0
	}
	j, base := 1, rune(10)
	if j < len(s) && s[j] == 'x' {
		j, base = 2, 16
	}
	first := j
	v := rune(0)
	for ; j < len(s); j++ {
		var d rune
		switch c := rune(s[j]); {
		case '0' <= c && c <= '9':
			d = c - '0'
		case base == 16 && 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			d = -1
		}
		if d < 0 {
			break
		}
		if v <= utf8.MaxRune {
			v = v*base + d
		}
	}
	if j == first || j >= len(s) || s[j] != ';' || v > utf8.MaxRune {
		return 0, 0
	}
	if 0xD800 <= v && v <= 0xDFFF {
		v = utf8.RuneError
	}
	if !inRange(v) {
		return 0, 0
	}
	return v, j + 2
}

// cdata reads a CDATA section (§2.7) as character data.
func (p *parser) cdata() (text sref, dec bool, err error) {
	p.i += len("<![CDATA[")
	k := strings.Index(p.s[p.i:], "]]>")
	if k < 0 {
		p.i = len(p.s)
		return sref{}, false, p.eof()
	}
	body := p.s[p.i : p.i+k]
	cr := false
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(body[i:])
			if badRune(r, size) {
				p.i += i
				return sref{}, false, p.fail("invalid UTF-8 or character")
			}
			i += size
			continue
		case c == '\r':
			cr = true
		case c < 0x20 && c != '\t' && c != '\n':
			p.i += i
			return sref{}, false, p.fail("illegal character")
		}
		i++
	}
	start := p.i
	p.i += k + 3
	if !cr {
		return sref{start, start + k}, false, nil
	}
	p.buf = p.buf[:0]
	for i := 0; i < len(body); i++ {
		if body[i] != '\r' {
			p.buf = append(p.buf, body[i])
			continue
		}
		p.buf = append(p.buf, '\n')
		if i+1 < len(body) && body[i+1] == '\n' {
			i++
		}
	}
	return sref{}, true, nil
}
