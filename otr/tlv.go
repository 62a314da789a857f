package otr

import (
	"bytes"
	"encoding/binary"
)

// TLV record types (Protocol-v3 "Data Message").
const (
	tlvPadding      = 0
	tlvDisconnected = 1
	tlvSMP1         = 2
	tlvSMP2         = 3
	tlvSMP3         = 4
	tlvSMP4         = 5
	tlvSMPAbort     = 6
	tlvSMP1Q        = 7
	tlvExtraKey     = 8
)

type tlv struct {
	typ   uint16
	value []byte
}

// appendTLV appends one TLV record. Values longer than 65535 bytes cannot
// be encoded; callers never produce them.
func appendTLV(b []byte, t tlv) []byte {
	if len(t.value) > 0xffff {
		panic("otr: TLV value too long")
	}
	b = binary.BigEndian.AppendUint16(b, t.typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.value)))
	return append(b, t.value...)
}

// splitPlaintext splits a decrypted data message into its human-readable
// part and its TLV records. The human-readable part ends at the first NUL.
// A truncated trailing record is dropped, as libotr does; the records
// before it are kept. The returned slices alias p.
func splitPlaintext(p []byte) (text []byte, tlvs []tlv) {
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return p, nil
	}
	text, rest := p[:i], p[i+1:]
	for len(rest) >= 4 {
		typ := binary.BigEndian.Uint16(rest)
		n := int(binary.BigEndian.Uint16(rest[2:]))
		if len(rest)-4 < n {
			break
		}
		tlvs = append(tlvs, tlv{typ: typ, value: rest[4 : 4+n]})
		rest = rest[4+n:]
	}
	return text, tlvs
}
