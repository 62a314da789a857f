package otr

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The whitespace tag (Protocol-v3 "Tagged plaintext messages").
var (
	wsBase = []byte("\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20")
	wsV1   = []byte("\x20\x09\x20\x09\x20\x20\x09\x20")
	wsV2   = []byte("\x20\x20\x09\x09\x20\x20\x09\x20")
	wsV3   = []byte("\x20\x20\x09\x09\x20\x20\x09\x09")
)

// kind is the class of an incoming message body.
type kind int

const (
	kindPlain kind = iota
	kindTagged
	kindQuery
	kindError
	kindEncoded
	kindFragment
)

// classify decides what an incoming body is. The order matters: fragments
// ("?OTR|", "?OTR,") are checked before encoded messages ("?OTR:"), as
// Protocol-v3 "Receiving Fragments" requires.
func classify(msg []byte) kind {
	if bytes.Contains(msg, otrPrefix) {
		switch {
		case bytes.Contains(msg, fragV3Prefix), bytes.Contains(msg, fragV2Prefix):
			return kindFragment
		case bytes.Contains(msg, encodedPrefix):
			return kindEncoded
		case bytes.Contains(msg, errorPrefix):
			return kindError
		}
		if _, _, ok := parseQuery(msg); ok {
			return kindQuery
		}
	}
	if bytes.Contains(msg, wsBase) {
		return kindTagged
	}
	return kindPlain
}

// parseQuery finds a query message ("?OTR?" or "?OTRv...?") anywhere in msg
// and reports which of versions 2 and 3 it offers. Unknown version
// identifiers are ignored (Protocol-v3 "OTR Query Messages").
func parseQuery(msg []byte) (v2, v3, ok bool) {
	rest := msg
	for {
		i := bytes.Index(rest, otrPrefix)
		if i < 0 {
			return false, false, false
		}
		rest = rest[i+len(otrPrefix):]
		if len(rest) == 0 {
			return false, false, false
		}
		if rest[0] != '?' && rest[0] != 'v' {
			continue
		}
		if rest[0] == '?' { // version 1, possibly followed by "v...?"
			rest = rest[1:]
			if len(rest) == 0 || rest[0] != 'v' {
				return false, false, true
			}
		}
		// rest[0] == 'v'
		end := bytes.IndexByte(rest, '?')
		if end < 0 {
			// "?OTRv" without the closing '?': libotr still treats it as a
			// query; read the identifiers up to the end.
			end = len(rest)
		}
		for _, c := range rest[1:end] {
			switch c {
			case '2':
				v2 = true
			case '3':
				v3 = true
			}
		}
		return v2, v3, true
	}
}

// queryString returns the version string for a policy, e.g. "?OTRv23?".
func queryString(p Policy) string {
	s := "?OTRv"
	if p.has(AllowV2) {
		s += "2"
	}
	if p.has(AllowV3) {
		s += "3"
	}
	return s + "?"
}

// findWhitespaceTag returns the versions a whitespace tag in msg offers and
// msg with every tag removed. found is false when there is no tag.
func findWhitespaceTag(msg []byte) (stripped []byte, v2, v3, found bool) {
	i := bytes.Index(msg, wsBase)
	if i < 0 {
		return msg, false, false, false
	}
	out := make([]byte, 0, len(msg))
	for i >= 0 {
		out = append(out, msg[:i]...)
		msg = msg[i+len(wsBase):]
		for {
			switch {
			case bytes.HasPrefix(msg, wsV1):
			case bytes.HasPrefix(msg, wsV2):
				v2 = true
			case bytes.HasPrefix(msg, wsV3):
				v3 = true
			default:
				goto next
			}
			msg = msg[8:]
		}
	next:
		i = bytes.Index(msg, wsBase)
	}
	out = append(out, msg...)
	return out, v2, v3, true
}

// whitespaceTag returns the tag advertising the versions policy allows.
func whitespaceTag(p Policy) []byte {
	t := append([]byte(nil), wsBase...)
	if p.has(AllowV2) {
		t = append(t, wsV2...)
	}
	if p.has(AllowV3) {
		t = append(t, wsV3...)
	}
	return t
}

// WhitespaceTag returns the whitespace tag (Protocol-v3 "Tagged plaintext
// messages") advertising the versions p allows, for a caller that sends
// plaintext outside any Conversation.
func WhitespaceTag(p Policy) []byte { return whitespaceTag(p) }

// StripWhitespaceTag removes every whitespace tag from msg and reports
// whether there was one.
func StripWhitespaceTag(msg []byte) ([]byte, bool) {
	out, _, _, found := findWhitespaceTag(msg)
	return out, found
}

// parseError returns the human-readable text of an OTR error message.
func parseError(msg []byte) string {
	i := bytes.Index(msg, errorPrefix)
	if i < 0 {
		return ""
	}
	return string(bytes.TrimSpace(msg[i+len(errorPrefix):]))
}

// fragment is one parsed fragment (Protocol-v3 "Fragmentation").
type fragment struct {
	version          int // 2 or 3
	sender, receiver uint32
	k, n             int
	piece            []byte
}

// parseFragment parses a version 3 fragment
// "?OTR|sender|receiver,k,n,piece," or a version 2 fragment
// "?OTR,k,n,piece,". Instance tags and k, n may have leading zeroes.
func parseFragment(msg []byte) (fragment, bool) {
	var f fragment
	var s []byte
	if i := bytes.Index(msg, fragV3Prefix); i >= 0 {
		f.version = 3
		s = msg[i+len(fragV3Prefix):]
		var ok bool
		if f.sender, s, ok = hexField(s, '|'); !ok {
			return f, false
		}
		if f.receiver, s, ok = hexField(s, ','); !ok {
			return f, false
		}
	} else if i := bytes.Index(msg, fragV2Prefix); i >= 0 {
		f.version = 2
		s = msg[i+len(fragV2Prefix):]
	} else {
		return f, false
	}
	var ok bool
	if f.k, s, ok = decField(s); !ok {
		return f, false
	}
	if f.n, s, ok = decField(s); !ok {
		return f, false
	}
	j := bytes.IndexByte(s, ',')
	if j <= 0 {
		return f, false // no terminating comma, or empty piece
	}
	f.piece = s[:j]
	return f, true
}

func hexField(s []byte, sep byte) (uint32, []byte, bool) {
	j := bytes.IndexByte(s, sep)
	if j < 1 || j > 8 {
		return 0, nil, false
	}
	v, err := strconv.ParseUint(string(s[:j]), 16, 32)
	if err != nil {
		return 0, nil, false
	}
	return uint32(v), s[j+1:], true
}

func decField(s []byte) (int, []byte, bool) {
	j := bytes.IndexByte(s, ',')
	if j < 1 || j > 10 {
		return 0, nil, false
	}
	for _, c := range s[:j] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
	}
	v, err := strconv.ParseUint(string(s[:j]), 10, 16)
	if err != nil {
		return 0, nil, false
	}
	return int(v), s[j+1:], true
}

// Fragment overheads: libotr's formats "?OTR|%08x|%08x,%05hu,%05hu,%s," and
// "?OTR,%05hu,%05hu,%s,".
const (
	fragOverheadV3 = 36
	fragOverheadV2 = 18
	maxFragments   = 65535
)

var errFragmentSize = errors.New("otr: fragment size too small")

// fragmentMessage splits msg into fragments of at most size bytes each.
func fragmentMessage(msg []byte, size, version int, sender, receiver uint32) ([][]byte, error) {
	overhead := fragOverheadV2
	if version == 3 {
		overhead = fragOverheadV3
	}
	pieceLen := size - overhead
	if pieceLen < 1 {
		return nil, errFragmentSize
	}
	n := (len(msg) + pieceLen - 1) / pieceLen
	if n > maxFragments {
		return nil, fmt.Errorf("otr: message needs %d fragments, more than %d: %w", n, maxFragments, errFragmentSize)
	}
	out := make([][]byte, 0, n)
	for k := 1; len(msg) > 0; k++ {
		piece := msg[:min(pieceLen, len(msg))]
		msg = msg[len(piece):]
		var f []byte
		if version == 3 {
			f = fmt.Appendf(make([]byte, 0, overhead+len(piece)), "?OTR|%08x|%08x,%05d,%05d,%s,", sender, receiver, k, n, piece)
		} else {
			f = fmt.Appendf(make([]byte, 0, overhead+len(piece)), "?OTR,%05d,%05d,%s,", k, n, piece)
		}
		out = append(out, f)
	}
	return out, nil
}

// maxReassembled bounds a reassembled message; OTR messages over XMPP are a
// few kilobytes. A peer sending more only loses its message.
const maxReassembled = 1 << 20

// reassembler implements the receiving rules of Protocol-v3 "Receiving
// Fragments".
type reassembler struct {
	k, n int
	buf  []byte
}

// keepFragmentBuffer is the capacity a reassembler keeps for the next
// message; a larger buffer is released, so that a peer who once sent a
// large message does not pin that memory.
const keepFragmentBuffer = 16 << 10

func (r *reassembler) reset() {
	r.k, r.n = 0, 0
	if cap(r.buf) > keepFragmentBuffer {
		r.buf = nil
	}
	r.buf = r.buf[:0]
}

// add processes one fragment and returns the complete message when the
// last piece arrives.
func (r *reassembler) add(f fragment) ([]byte, bool) {
	switch {
	case f.k == 0 || f.n == 0 || f.k > f.n:
		return nil, false // illegal: discard, keep what we have
	case f.k == 1:
		r.buf = append(r.buf[:0], f.piece...)
		r.k, r.n = f.k, f.n
	case f.n == r.n && f.k == r.k+1 && len(r.buf)+len(f.piece) <= maxReassembled:
		r.buf = append(r.buf, f.piece...)
		r.k = f.k
	default:
		r.reset()
		return nil, false
	}
	if r.n > 0 && r.k == r.n {
		out := append([]byte(nil), r.buf...)
		r.reset()
		return out, true
	}
	return nil, false
}

// InstanceTags returns the sender and receiver instance tags of a protocol
// version 3 encoded message or fragment, without changing any state. A
// caller that talks to a peer running several instances keeps one
// Conversation per peer instance and uses the sender tag to pick it (see
// the package documentation). ok is false for anything that is not a
// version 3 message or fragment: plaintext, queries, error messages and
// version 2 messages carry no instance tags.
func InstanceTags(msg []byte) (sender, receiver uint32, ok bool) {
	switch classify(msg) {
	case kindFragment:
		f, ok := parseFragment(msg)
		if !ok || f.version != 3 {
			return 0, 0, false
		}
		return f.sender, f.receiver, true
	case kindEncoded:
		i := bytes.Index(msg, encodedPrefix)
		rest := msg[i+len(encodedPrefix):]
		if len(rest) < 16 {
			return 0, 0, false
		}
		var hdr [12]byte
		if _, err := base64.StdEncoding.Decode(hdr[:], rest[:16]); err != nil {
			return 0, 0, false
		}
		if binary.BigEndian.Uint16(hdr[:]) != 3 {
			return 0, 0, false
		}
		return binary.BigEndian.Uint32(hdr[3:]), binary.BigEndian.Uint32(hdr[7:]), true
	}
	return 0, 0, false
}
