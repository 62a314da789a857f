package omemo

import (
	"encoding/binary"
	"math"
)

// A minimal protobuf (proto2) reader and writer for the five message types
// of the two generations. Encoding writes fields in field-number order, as
// protobuf-generated code (libsignal's and python-omemo's) does, so the
// bytes match theirs; decoding is strict about what it knows (wire types,
// lengths, duplicates, required fields, integer ranges) and skips unknown
// fields of the four valid wire types, as protobuf itself does.

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendUint32Field(b []byte, field int, v uint32) []byte {
	b = appendTag(b, field, wireVarint)
	return binary.AppendUvarint(b, uint64(v))
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// protoField is one decoded field: for varints val, for bytes data.
type protoField struct {
	num  int
	wire int
	val  uint64
	data []byte
}

// readVarint decodes a varint of at most 10 bytes without overflow.
func readVarint(b []byte) (uint64, int, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, false
	}
	return v, n, true
}

// parseProto splits b into fields and calls fn for each. It rejects
// truncated input, groups, field number 0 and lengths past the end.
func parseProto(b []byte, fn func(protoField) bool) bool {
	for len(b) > 0 {
		tag, n, ok := readVarint(b)
		if !ok || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
			return false
		}
		b = b[n:]
		f := protoField{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case wireVarint:
			v, n, ok := readVarint(b)
			if !ok {
				return false
			}
			f.val, b = v, b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return false
			}
			f.val, b = binary.LittleEndian.Uint64(b), b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return false
			}
			f.val, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case wireBytes:
			l, n, ok := readVarint(b)
			if !ok || l > uint64(len(b)-n) {
				return false
			}
			f.data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return false
		}
		if !fn(f) {
			return false
		}
	}
	return true
}

// fieldSet tracks which known fields were seen, to reject duplicates and
// missing required fields. Field numbers of our messages are below 16.
type fieldSet uint16

// see records field num of the wanted wire type; false on a duplicate or
// wrong wire type.
func (s *fieldSet) see(f protoField, wire int) bool {
	if f.wire != wire || *s&(1<<f.num) != 0 {
		return false
	}
	*s |= 1 << f.num
	return true
}

func (s fieldSet) has(nums ...int) bool {
	for _, n := range nums {
		if s&(1<<n) == 0 {
			return false
		}
	}
	return true
}

// uint32Of checks the range of a varint field declared uint32.
func uint32Of(f protoField) (uint32, bool) {
	if f.val > math.MaxUint32 {
		return 0, false
	}
	return uint32(f.val), true
}

// u32 records a uint32 field into dst.
func (s *fieldSet) u32(f protoField, dst *uint32) bool {
	if !s.see(f, wireVarint) {
		return false
	}
	v, ok := uint32Of(f)
	*dst = v
	return ok
}

// raw records a bytes field into dst.
func (s *fieldSet) raw(f protoField, dst *[]byte) bool {
	*dst = f.data
	return s.see(f, wireBytes)
}

// key records a bytes field holding a public key, parsed by decode.
func (s *fieldSet) key(f protoField, dst *[32]byte, decode func([]byte) ([32]byte, bool)) bool {
	if !s.see(f, wireBytes) {
		return false
	}
	var ok bool
	*dst, ok = decode(f.data)
	return ok
}
