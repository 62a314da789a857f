package otr

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// A libotr private key file (usually ~/.purple/otr.private_key or
// otr.private_key in a client's profile) is a libgcrypt S-expression:
//
//	(privkeys
//	 (account
//	(name "alice@example.org")
//	(protocol prpl-jabber)
//	(private-key
//	 (dsa
//	  (p #00C21A...#)
//	  (q #00E4B1...#)
//	  (g #12B32A...#)
//	  (y #1F1B75...#)
//	  (x #00AE0E...#)
//	  )
//	 )
//	 )
//	)
//
// The reader accepts every atom form of libgcrypt's advanced and canonical
// formats: tokens, quoted strings with C escapes, #hex#, |base64| and
// length-prefixed verbatim strings.

// sexp is an atom (list == nil, atom != nil) or a list.
type sexp struct {
	atom   []byte
	list   []*sexp
	isList bool
}

// SyntaxError reports a malformed libotr private key file.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("otr: private key file: offset %d: %s", e.Offset, e.Msg)
}

type sexpParser struct {
	data  []byte
	pos   int
	depth int
}

func (p *sexpParser) fail(msg string) error { return &SyntaxError{Offset: p.pos, Msg: msg} }

func (p *sexpParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\r', '\n', '\f', '\v':
			p.pos++
		default:
			return
		}
	}
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-./_:*+=", c) >= 0
}

func (p *sexpParser) parse() (*sexp, error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	c := p.data[p.pos]
	switch {
	case c == '(':
		p.depth++
		if p.depth > 32 {
			return nil, p.fail("nesting too deep")
		}
		p.pos++
		l := &sexp{isList: true}
		for {
			p.skipSpace()
			if p.pos >= len(p.data) {
				return nil, p.fail("unterminated list")
			}
			if p.data[p.pos] == ')' {
				p.pos++
				p.depth--
				return l, nil
			}
			e, err := p.parse()
			if err != nil {
				return nil, err
			}
			l.list = append(l.list, e)
		}
	case c == ')':
		return nil, p.fail("unexpected ')'")
	case c == '"':
		return p.quoted()
	case c == '#':
		end := bytes.IndexByte(p.data[p.pos+1:], '#')
		if end < 0 {
			return nil, p.fail("unterminated hex string")
		}
		h := bytes.Map(dropSpace, p.data[p.pos+1:p.pos+1+end])
		v := make([]byte, hex.DecodedLen(len(h)))
		if _, err := hex.Decode(v, h); err != nil {
			return nil, p.fail("bad hex string")
		}
		p.pos += end + 2
		return &sexp{atom: v}, nil
	case c == '|':
		end := bytes.IndexByte(p.data[p.pos+1:], '|')
		if end < 0 {
			return nil, p.fail("unterminated base64 string")
		}
		v, err := base64.StdEncoding.DecodeString(string(bytes.Map(dropSpace, p.data[p.pos+1:p.pos+1+end])))
		if err != nil {
			return nil, p.fail("bad base64 string")
		}
		p.pos += end + 2
		return &sexp{atom: v}, nil
	case c >= '0' && c <= '9':
		// a length-prefixed verbatim string "3:abc", or a token
		i := p.pos
		for i < len(p.data) && p.data[i] >= '0' && p.data[i] <= '9' {
			i++
		}
		if i < len(p.data) && p.data[i] == ':' {
			n, err := strconv.Atoi(string(p.data[p.pos:i]))
			if err != nil || n > len(p.data)-i-1 {
				return nil, p.fail("bad verbatim length")
			}
			v := append([]byte(nil), p.data[i+1:i+1+n]...)
			p.pos = i + 1 + n
			return &sexp{atom: v}, nil
		}
		fallthrough
	case isTokenChar(c):
		i := p.pos
		for i < len(p.data) && isTokenChar(p.data[i]) {
			i++
		}
		v := append([]byte(nil), p.data[p.pos:i]...)
		p.pos = i
		return &sexp{atom: v}, nil
	}
	return nil, p.fail(fmt.Sprintf("unexpected character %q", c))
}

func dropSpace(r rune) rune {
	switch r {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return r
}

// quoted parses a C-style quoted string as libgcrypt writes it.
func (p *sexpParser) quoted() (*sexp, error) {
	p.pos++ // opening quote
	var v []byte
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		p.pos++
		switch c {
		case '"':
			return &sexp{atom: v}, nil
		case '\\':
			if p.pos >= len(p.data) {
				return nil, p.fail("unterminated escape")
			}
			e := p.data[p.pos]
			p.pos++
			switch e {
			case 'b':
				v = append(v, '\b')
			case 't':
				v = append(v, '\t')
			case 'v':
				v = append(v, '\v')
			case 'n':
				v = append(v, '\n')
			case 'f':
				v = append(v, '\f')
			case 'r':
				v = append(v, '\r')
			case '"', '\'', '\\':
				v = append(v, e)
			case '\n', '\r': // line continuation, optionally \r\n or \n\r
				if p.pos < len(p.data) && (p.data[p.pos] == '\n' || p.data[p.pos] == '\r') && p.data[p.pos] != e {
					p.pos++
				}
			case 'x':
				if p.pos+2 > len(p.data) {
					return nil, p.fail("bad \\x escape")
				}
				b, err := strconv.ParseUint(string(p.data[p.pos:p.pos+2]), 16, 8)
				if err != nil {
					return nil, p.fail("bad \\x escape")
				}
				v = append(v, byte(b))
				p.pos += 2
			default:
				if e >= '0' && e <= '7' && p.pos+2 <= len(p.data) {
					b, err := strconv.ParseUint(string(p.data[p.pos-1:p.pos+2]), 8, 8)
					if err != nil {
						return nil, p.fail("bad octal escape")
					}
					v = append(v, byte(b))
					p.pos += 2
					continue
				}
				return nil, p.fail(fmt.Sprintf("unknown escape \\%c", e))
			}
		default:
			v = append(v, c)
		}
	}
	return nil, p.fail("unterminated string")
}

// name returns the first atom of a list, the S-expression's "name".
func (s *sexp) name() string {
	if !s.isList || len(s.list) == 0 || s.list[0].isList {
		return ""
	}
	return string(s.list[0].atom)
}

// find returns the first sub-list with the given name.
func (s *sexp) find(name string) *sexp {
	for _, e := range s.list {
		if e.name() == name {
			return e
		}
	}
	return nil
}

// value returns the single atom of a (name value) list.
func (s *sexp) value() ([]byte, bool) {
	if s == nil || len(s.list) != 2 || s.list[1].isList {
		return nil, false
	}
	return s.list[1].atom, true
}

// ParseLibotrPrivateKeys parses a libotr private key file (the
// S-expression format libotr's otrl_privkey_read and otrl_privkey_generate
// use) and returns each account's DSA key. Every key is checked: sizes,
// ranges and that y = g^x mod p.
func ParseLibotrPrivateKeys(data []byte) ([]AccountKey, error) {
	p := &sexpParser{data: data}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return nil, p.fail("trailing data")
	}
	if root.name() != "privkeys" {
		return nil, &SyntaxError{Offset: 0, Msg: "not a privkeys list"}
	}
	var out []AccountKey
	for i, acct := range root.list[1:] {
		if acct.name() != "account" {
			return nil, fmt.Errorf("otr: private key file: entry %d is not an account", i+1)
		}
		name, ok1 := acct.find("name").value()
		proto, ok2 := acct.find("protocol").value()
		pk := acct.find("private-key")
		if !ok1 || !ok2 || pk == nil || len(pk.list) != 2 || pk.list[1].name() != "dsa" {
			return nil, fmt.Errorf("otr: private key file: account %d: missing name, protocol or DSA key", i+1)
		}
		dsa := pk.list[1]
		var v [5]*big.Int
		for j, n := range []string{"p", "q", "g", "y", "x"} {
			b, ok := dsa.find(n).value()
			if !ok {
				return nil, fmt.Errorf("otr: private key file: account %q: missing %s", name, n)
			}
			v[j] = new(big.Int).SetBytes(b)
		}
		pub, err := newPublicKey(v[0], v[1], v[2], v[3])
		if err != nil {
			return nil, fmt.Errorf("otr: private key file: account %q: %w", name, err)
		}
		key, err := newPrivateKey(pub, v[4])
		if err != nil {
			return nil, fmt.Errorf("otr: private key file: account %q: %w", name, err)
		}
		out = append(out, AccountKey{Account: string(name), Protocol: string(proto), Key: key})
	}
	return out, nil
}

// MarshalLibotrPrivateKeys writes keys in libotr's private key file format,
// byte for byte as libotr 4.1.1 (through libgcrypt) lays it out, so that a
// libotr-based client can read it. The result is secret: write it to a
// file created with mode 0600.
func MarshalLibotrPrivateKeys(keys []AccountKey) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("(privkeys\n")
	for _, k := range keys {
		if k.Key == nil {
			return nil, fmt.Errorf("otr: account %q has no key", k.Account)
		}
		b.WriteString(" (account\n(name ")
		writeAtom(&b, []byte(k.Account))
		b.WriteString(")\n(protocol ")
		writeAtom(&b, []byte(k.Protocol))
		b.WriteString(")\n(private-key \n (dsa \n")
		for _, f := range []struct {
			n string
			v *big.Int
		}{{"p", k.Key.p}, {"q", k.Key.q}, {"g", k.Key.g}, {"y", k.Key.y}, {"x", k.Key.x}} {
			fmt.Fprintf(&b, "  (%s #%s#)\n", f.n, gcryHex(f.v))
		}
		b.WriteString("  )\n )\n )\n")
	}
	b.WriteString(")\n")
	return b.Bytes(), nil
}

// gcryHex formats an unsigned integer as libgcrypt's signed hex: upper
// case, with a 00 byte prepended when the top bit is set.
func gcryHex(v *big.Int) string {
	b := v.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// writeAtom writes a string the way libgcrypt's advanced format chooses:
// a bare token when possible, a quoted string when printable, hex
// otherwise.
func writeAtom(b *bytes.Buffer, v []byte) {
	token := len(v) > 0 && (v[0] < '0' || v[0] > '9')
	printable := true
	for _, c := range v {
		if !isTokenChar(c) {
			token = false
		}
		if (c < 0x20 || c >= 0x7f && c < 0xa0) && strings.IndexByte("\b\t\v\n\f\r", c) < 0 {
			printable = false
		}
	}
	switch {
	case token:
		b.Write(v)
	case printable:
		b.WriteByte('"')
		for _, c := range v {
			switch c {
			case '\b':
				b.WriteString(`\b`)
			case '\t':
				b.WriteString(`\t`)
			case '\v':
				b.WriteString(`\v`)
			case '\n':
				b.WriteString(`\n`)
			case '\f':
				b.WriteString(`\f`)
			case '\r':
				b.WriteString(`\r`)
			case '"', '\'', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	default:
		b.WriteByte('#')
		b.WriteString(strings.ToUpper(hex.EncodeToString(v)))
		b.WriteByte('#')
	}
}
