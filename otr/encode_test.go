package otr

import "encoding/binary"

// Encoders used only by tests: the engine writes data messages directly
// (session.seal).

// buildPlaintext joins text and TLV records into a data message plaintext.
func buildPlaintext(text []byte, tlvs []tlv) []byte {
	n := len(text)
	if len(tlvs) > 0 {
		n++
		for _, t := range tlvs {
			n += 4 + len(t.value)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, text...)
	if len(tlvs) > 0 {
		b = append(b, 0)
		for _, t := range tlvs {
			b = appendTLV(b, t)
		}
	}
	return b
}

// marshal encodes m with the MAC already in m.mac (for tests and
// re-encoding; the sender computes the MAC over the prefix instead).
func (m *dataMsg) marshal(h header) []byte {
	b := appendHeader(nil, h)
	b = appendDataPrefix(b, m)
	b = append(b, m.mac...)
	return appendData(b, m.oldMACs)
}

// appendDataPrefix appends the MAC-covered body of a data message after the
// header.
func appendDataPrefix(b []byte, m *dataMsg) []byte {
	b = append(b, m.flags)
	b = binary.BigEndian.AppendUint32(b, m.senderKeyID)
	b = binary.BigEndian.AppendUint32(b, m.receiverKeyID)
	b = appendMPI(b, m.nextDH)
	b = append(b, m.ctr[:]...)
	return appendData(b, m.enc)
}
