package eme

import (
	"encoding/base64"
	"strings"
)

// An OTRKind classifies the text of a <body/> as an OTR message (OTR
// protocol version 3, §"Unencoded messages", "Encoded messages" and
// "Fragmentation"). OTR has no XML element of its own: its messages travel
// in the body.
type OTRKind int

const (
	// OTRNone is a body that is not an OTR message.
	OTRNone OTRKind = iota
	// OTRWhitespaceTag is plaintext carrying the OTR whitespace tag, an
	// offer to use OTR. The text is readable once the tag is removed.
	OTRWhitespaceTag
	// OTRQuery is a query message ("?OTRv23?"), a request to start a
	// session. It may carry human-readable text for clients without OTR.
	OTRQuery
	// OTRError is an OTR error message ("?OTR Error: …"), plaintext
	// written by the peer's OTR implementation.
	OTRError
	// OTRKeyExchange is an encoded message of the authenticated key
	// exchange (DH-Commit, DH-Key, Reveal Signature, Signature, or the
	// version 1 Key Exchange): session set-up, no user content.
	OTRKeyExchange
	// OTRData is an encoded Data Message: encrypted user content.
	OTRData
	// OTRFragment is one fragment of an encoded message. Its content
	// cannot be known before reassembly, so it counts as encrypted.
	OTRFragment
	// OTREncoded is an encoded message ("?OTR:" and Base64) of an unknown
	// version or type. It counts as encrypted.
	OTREncoded
)

var otrKindNames = [...]string{"none", "whitespace-tag", "query", "error", "key-exchange", "data", "fragment", "encoded"}

func (k OTRKind) String() string {
	if k < 0 || int(k) >= len(otrKindNames) {
		return "OTRKind(?)"
	}
	return otrKindNames[k]
}

// Encrypted reports whether a body of this kind carries encrypted content:
// a data message, a fragment or an encoded message of unknown type.
func (k OTRKind) Encrypted() bool {
	return k == OTRData || k == OTRFragment || k == OTREncoded
}

// Control reports whether a body of this kind is OTR session management
// without user content that the sender meant as ciphertext: a query, an
// error or a key-exchange message.
func (k OTRKind) Control() bool {
	return k == OTRQuery || k == OTRError || k == OTRKeyExchange
}

// priority orders kinds when a message has several bodies: encrypted
// content first, then session management, then plaintext.
func (k OTRKind) priority() int {
	switch k {
	case OTRData, OTRFragment, OTREncoded:
		return 4
	case OTRKeyExchange:
		return 3
	case OTRError:
		return 2
	case OTRQuery:
		return 1
	case OTRWhitespaceTag:
		return 0
	}
	return -1
}

// otrTagBase is the whitespace tag that announces OTR; one or more 8-byte
// version tags made of spaces and tabs follow it.
const otrTagBase = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20"

var otrTagVersions = map[string]int{
	"\x20\x09\x20\x09\x20\x20\x09\x20": 1,
	"\x20\x20\x09\x09\x20\x20\x09\x20": 2,
	"\x20\x20\x09\x09\x20\x20\x09\x09": 3,
}

// ClassifyOTR returns the kind of OTR message the text of a <body/> is, and
// the OTR protocol version it uses: for a query or whitespace tag the
// highest of versions 1 to 3 it offers, for fragments 3 ("?OTR|") or 2
// ("?OTR,"), for encoded messages the version in their header; 0 if unknown.
//
// Like libotr, ClassifyOTR looks for the markers anywhere in the text, not
// only at its start, because some clients wrap OTR messages in markup.
// Fragments are recognised first, as the OTR specification requires, and
// only if they are well formed: "?OTR|%x|%x,%hu,%hu,piece," or
// "?OTR,%hu,%hu,piece," with 1 <= k <= n and a non-empty piece. Then the
// first "?OTR" decides: "?OTR:" followed by a Base64 header is an encoded
// message, "?OTR?" or "?OTRv" a query, "?OTR Error:" an error. Last comes the
// whitespace tag.
func ClassifyOTR(body string) (kind OTRKind, version int) {
	if i := strings.Index(body, "?OTR|"); i >= 0 && validFragment(body[i+len("?OTR|"):], true) {
		return OTRFragment, 3
	}
	if i := strings.Index(body, "?OTR,"); i >= 0 && validFragment(body[i+len("?OTR,"):], false) {
		return OTRFragment, 2
	}
	if i := strings.Index(body, "?OTR"); i >= 0 {
		rest := body[i+len("?OTR"):]
		switch {
		case strings.HasPrefix(rest, ":"):
			if k, v, ok := classifyEncoded(rest[1:]); ok {
				return k, v
			}
		case strings.HasPrefix(rest, "?"), strings.HasPrefix(rest, "v"):
			return OTRQuery, queryVersion(rest)
		case strings.HasPrefix(rest, " Error:"):
			return OTRError, 0
		}
	}
	if i := strings.Index(body, otrTagBase); i >= 0 {
		return OTRWhitespaceTag, tagVersion(body[i+len(otrTagBase):])
	}
	return OTRNone, 0
}

// classifyEncoded reads the protocol version and message type from the
// first four Base64 characters after "?OTR:" (three bytes: a big-endian
// SHORT version and a BYTE type).
func classifyEncoded(s string) (OTRKind, int, bool) {
	if len(s) < 4 {
		return OTRNone, 0, false
	}
	hdr, err := base64.StdEncoding.DecodeString(s[:4])
	if err != nil || len(hdr) != 3 {
		return OTRNone, 0, false
	}
	version := int(hdr[0])<<8 | int(hdr[1])
	typ := hdr[2]
	switch version {
	case 1:
		switch typ {
		case 0x03:
			return OTRData, 1, true
		case 0x0a: // Key Exchange
			return OTRKeyExchange, 1, true
		}
	case 2, 3:
		switch typ {
		case 0x03:
			return OTRData, version, true
		case 0x02, 0x0a, 0x11, 0x12: // DH-Commit, DH-Key, Reveal Signature, Signature
			return OTRKeyExchange, version, true
		}
	}
	return OTREncoded, version, true
}

// validFragment parses the rest of a fragment after "?OTR|" (v3, with
// instance tags) or "?OTR,". Instance tags, k and n may have leading zeroes.
func validFragment(s string, v3 bool) bool {
	if v3 {
		var ok bool
		if s, ok = hexField(s, '|'); !ok {
			return false
		}
		if s, ok = hexField(s, ','); !ok {
			return false
		}
	}
	k, s, ok := decField(s)
	if !ok {
		return false
	}
	n, s, ok := decField(s)
	if !ok || k == 0 || n == 0 || k > n {
		return false
	}
	end := strings.IndexByte(s, ',')
	return end > 0
}

// hexField reads a 32-bit hexadecimal number terminated by sep.
func hexField(s string, sep byte) (string, bool) {
	var v uint64
	i := 0
	for ; i < len(s) && s[i] != sep; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return "", false
		}
		if v > 0xFFFFFFFF {
			return "", false
		}
	}
	if i == 0 || i == len(s) {
		return "", false
	}
	return s[i+1:], true
}

// decField reads an unsigned 16-bit decimal number terminated by ','.
func decField(s string) (uint32, string, bool) {
	var v uint32
	i := 0
	for ; i < len(s) && s[i] != ','; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, "", false
		}
		v = v*10 + uint32(c-'0')
		if v > 0xFFFF {
			return 0, "", false
		}
	}
	if i == 0 || i == len(s) {
		return 0, "", false
	}
	return v, s[i+1:], true
}

// queryVersion returns the highest known version (1 to 3) that a query
// offers; s follows "?OTR". "?OTR?" offers version 1, and "v" introduces
// the other version digits up to the next "?".
func queryVersion(s string) int {
	best := 0
	if strings.HasPrefix(s, "?") {
		best = 1
		s = s[1:]
	}
	if !strings.HasPrefix(s, "v") {
		return best
	}
	s = s[1:]
	for i := 0; i < len(s) && s[i] != '?'; i++ {
		if v := int(s[i] - '0'); s[i] >= '1' && s[i] <= '3' && v > best {
			best = v
		}
	}
	return best
}

// tagVersion returns the highest known version among the 8-byte version
// tags that follow the base whitespace tag.
func tagVersion(s string) int {
	best := 0
	for len(s) >= 8 {
		v, ok := otrTagVersions[s[:8]]
		if !ok {
			if strings.Trim(s[:8], " \t") != "" {
				break
			}
		} else if v > best {
			best = v
		}
		s = s[8:]
	}
	return best
}
