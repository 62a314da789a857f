package otr

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Message types (Protocol-v3 "Encoded messages").
const (
	msgDHCommit  = 0x02
	msgData      = 0x03
	msgDHKey     = 0x0a
	msgRevealSig = 0x11
	msgSig       = 0x12
)

// Data message flags.
const flagIgnoreUnreadable = 0x01

const (
	macLen      = 20 // MAC field
	minInstance = 0x100
	maxMPILen   = 1 << 14 // far above any value this protocol carries
)

var (
	encodedPrefix = []byte("?OTR:")
	fragV3Prefix  = []byte("?OTR|")
	fragV2Prefix  = []byte("?OTR,")
	errorPrefix   = []byte("?OTR Error:")
	otrPrefix     = []byte("?OTR")
)

// header is the common start of every encoded version 2 or 3 message.
type header struct {
	version  uint16
	typ      byte
	sender   uint32 // v3 only
	receiver uint32 // v3 only
}

func (h header) len() int {
	if h.version == 3 {
		return 11
	}
	return 3
}

func appendHeader(b []byte, h header) []byte {
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = append(b, h.typ)
	if h.version == 3 {
		b = binary.BigEndian.AppendUint32(b, h.sender)
		b = binary.BigEndian.AppendUint32(b, h.receiver)
	}
	return b
}

// parseHeader reads the header of a decoded binary message. Versions other
// than 2 and 3 are reported as malformed.
func parseHeader(s *cryptobyte.String) (header, bool) {
	var h header
	if !s.ReadUint16(&h.version) || !s.ReadUint8(&h.typ) {
		return h, false
	}
	switch h.version {
	case 2:
	case 3:
		if !s.ReadUint32(&h.sender) || !s.ReadUint32(&h.receiver) {
			return h, false
		}
	default:
		return h, false
	}
	return h, true
}

// appendMPI appends the MPI encoding of the non-negative integer whose
// big-endian bytes are v; leading zero bytes are stripped so the encoding
// is minimal.
func appendMPI(b, v []byte) []byte {
	for len(v) > 0 && v[0] == 0 {
		v = v[1:]
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendMPIInt(b []byte, v *big.Int) []byte {
	n := (v.BitLen() + 7) / 8
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	start := len(b)
	b = append(b, make([]byte, n)...)
	v.FillBytes(b[start:])
	return b
}

func appendData(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// readMPI reads an MPI and returns its value bytes. A non-minimal encoding
// (a leading zero byte) is rejected: Protocol-v3 "Data types" requires the
// minimum-length encoding, and accepting others would make fingerprints and
// MACs ambiguous.
func readMPI(s *cryptobyte.String, out *[]byte) bool {
	var n uint32
	if !s.ReadUint32(&n) || n > maxMPILen {
		return false
	}
	var v []byte
	if !s.ReadBytes(&v, int(n)) {
		return false
	}
	if n > 0 && v[0] == 0 {
		return false
	}
	*out = v
	return true
}

func readMPIInt(s *cryptobyte.String, out **big.Int) bool {
	var v []byte
	if !readMPI(s, &v) {
		return false
	}
	*out = new(big.Int).SetBytes(v)
	return true
}

func readData(s *cryptobyte.String, out *[]byte) bool {
	var n uint32
	if !s.ReadUint32(&n) || uint64(n) > uint64(len(*s)) {
		return false
	}
	return s.ReadBytes(out, int(n))
}

// encode wraps a binary message as "?OTR:" base64 ".".
func encode(bin []byte) []byte {
	out := make([]byte, len(encodedPrefix)+base64.StdEncoding.EncodedLen(len(bin))+1)
	copy(out, encodedPrefix)
	base64.StdEncoding.Encode(out[len(encodedPrefix):], bin)
	out[len(out)-1] = '.'
	return out
}

// decode extracts and decodes the first "?OTR:...." message in msg,
// appending the binary form to dst[:0]. Like
// libotr it finds the prefix anywhere (clients may wrap it in markup) and
// requires the terminating dot. Whitespace inside the base64 text is
// tolerated because some transports wrap long lines.
func decode(msg, dst []byte) ([]byte, bool) {
	i := bytes.Index(msg, encodedPrefix)
	if i < 0 {
		return nil, false
	}
	rest := msg[i+len(encodedPrefix):]
	j := bytes.IndexByte(rest, '.')
	if j < 0 {
		return nil, false
	}
	b64 := rest[:j]
	// encoding/base64 skips \r and \n itself; spaces and tabs need a copy.
	out, ok := decode64(b64, dst)
	if !ok && bytes.ContainsAny(b64, " \t") {
		out, ok = decode64(bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b64), dst)
	}
	return out, ok
}

func decode64(b64, dst []byte) ([]byte, bool) {
	n := base64.StdEncoding.DecodedLen(len(b64))
	out := slices.Grow(dst[:0], n)[:n]
	n, err := base64.StdEncoding.Decode(out, b64)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// dhCommit is the first AKE message.
type dhCommit struct {
	encGx, hashGx []byte
}

func (m *dhCommit) marshal(h header) []byte {
	b := appendHeader(make([]byte, 0, h.len()+8+len(m.encGx)+len(m.hashGx)), h)
	b = appendData(b, m.encGx)
	return appendData(b, m.hashGx)
}

func (m *dhCommit) unmarshal(s cryptobyte.String) bool {
	return readData(&s, &m.encGx) && readData(&s, &m.hashGx) && len(m.hashGx) == 32 && s.Empty()
}

// dhKey is the second AKE message.
type dhKey struct {
	gy []byte
}

func (m *dhKey) marshal(h header) []byte {
	b := appendHeader(make([]byte, 0, h.len()+4+len(m.gy)), h)
	return appendMPI(b, m.gy)
}

func (m *dhKey) unmarshal(s cryptobyte.String) bool {
	return readMPI(&s, &m.gy) && s.Empty()
}

// revealSig is the third AKE message.
type revealSig struct {
	r      []byte
	encSig []byte
	mac    []byte
}

func (m *revealSig) marshal(h header) []byte {
	b := appendHeader(make([]byte, 0, h.len()+8+len(m.r)+len(m.encSig)+macLen), h)
	b = appendData(b, m.r)
	b = appendData(b, m.encSig)
	return append(b, m.mac...)
}

func (m *revealSig) unmarshal(s cryptobyte.String) bool {
	return readData(&s, &m.r) && len(m.r) == 16 && readData(&s, &m.encSig) &&
		s.ReadBytes(&m.mac, macLen) && s.Empty()
}

// sigMsg is the fourth AKE message.
type sigMsg struct {
	encSig []byte
	mac    []byte
}

func (m *sigMsg) marshal(h header) []byte {
	b := appendHeader(make([]byte, 0, h.len()+4+len(m.encSig)+macLen), h)
	b = appendData(b, m.encSig)
	return append(b, m.mac...)
}

func (m *sigMsg) unmarshal(s cryptobyte.String) bool {
	return readData(&s, &m.encSig) && s.ReadBytes(&m.mac, macLen) && s.Empty()
}

// dataMsg is a parsed Data Message. authenticated is the prefix of the
// binary message that the MAC covers (version through encrypted message).
type dataMsg struct {
	flags         byte
	senderKeyID   uint32
	receiverKeyID uint32
	nextDH        []byte
	ctr           [8]byte
	enc           []byte
	mac           []byte
	oldMACs       []byte
	authenticated []byte
}

// parseData parses a data message body; bin is the whole binary message
// and hlen its header length.
func (m *dataMsg) unmarshal(bin []byte, hlen int) bool {
	s := cryptobyte.String(bin[hlen:])
	var ctr []byte
	if !s.ReadUint8(&m.flags) || !s.ReadUint32(&m.senderKeyID) || !s.ReadUint32(&m.receiverKeyID) ||
		!readMPI(&s, &m.nextDH) || !s.ReadBytes(&ctr, 8) || !readData(&s, &m.enc) {
		return false
	}
	copy(m.ctr[:], ctr)
	m.authenticated = bin[:len(bin)-len(s)]
	if !s.ReadBytes(&m.mac, macLen) || !readData(&s, &m.oldMACs) || !s.Empty() {
		return false
	}
	return true
}

// parseMessage splits a decoded binary message into header and body.
func parseMessage(bin []byte) (header, cryptobyte.String, bool) {
	s := cryptobyte.String(bin)
	h, ok := parseHeader(&s)
	return h, s, ok
}
