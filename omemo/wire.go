package omemo

import (
	"github.com/balcony-im/balcony/omemo/xeddsa"
)

// Wire formats. OMEMO 0.3 is libsignal's (WhisperTextProtocol.proto):
//
//	SignalMessage       = 0x33 || proto{1 ratchetKey, 2 counter, 3 previousCounter, 4 ciphertext} || mac[8]
//	PreKeySignalMessage = 0x33 || proto{1 preKeyId, 2 baseKey, 3 identityKey, 4 message, 5 registrationId, 6 signedPreKeyId}
//
// with Curve25519 keys as 0x05 || u (33 bytes). OMEMO 2 is XEP-0384 §9:
//
//	OMEMOMessage              {1 n, 2 pn, 3 dh_pub, 4 ciphertext}
//	OMEMOAuthenticatedMessage {1 mac, 2 message}
//	OMEMOKeyExchange          {1 pk_id, 2 spk_id, 3 ik, 4 ek, 5 message}
//
// with raw 32-byte keys (the identity key in its Ed25519 form).

const (
	version03   = 0x33
	djbType     = 0x05
	macLen03    = 8
	macLen2     = 16
	maxWireSize = 1 << 16 // far above any key element; bounds parsing work
)

// ratchetHeader is the Double Ratchet header (Double Ratchet §3.1).
type ratchetHeader struct {
	dhPub [32]byte
	pn    uint32
	n     uint32
}

// encodeCurve03 serialises a Curve25519 public key the libsignal way.
func encodeCurve03(k *[32]byte) []byte {
	out := make([]byte, 33)
	out[0] = djbType
	copy(out[1:], k[:])
	return out
}

// decodeCurve03 parses 0x05 || u, exactly 33 bytes.
func decodeCurve03(b []byte) ([32]byte, bool) {
	if len(b) != 33 || b[0] != djbType {
		return [32]byte{}, false
	}
	return [32]byte(b[1:]), true
}

// decodeCurve2 parses a raw 32-byte Curve25519 public key.
func decodeCurve2(b []byte) ([32]byte, bool) {
	if len(b) != 32 {
		return [32]byte{}, false
	}
	return [32]byte(b), true
}

// encodeHeader03 is the protobuf part of a SignalMessage without the
// ciphertext; with ct it is the whole body.
func encodeMessage03(h *ratchetHeader, ct []byte) []byte {
	b := make([]byte, 0, 1+40+len(ct)+4+macLen03)
	b = append(b, version03)
	b = appendBytesField(b, 1, encodeCurve03(&h.dhPub))
	b = appendUint32Field(b, 2, h.n)
	b = appendUint32Field(b, 3, h.pn)
	return appendBytesField(b, 4, ct)
}

// parseMessage03 splits a SignalMessage into its MAC'd part, MAC, header
// and ciphertext.
func parseMessage03(b []byte) (body, mac []byte, h ratchetHeader, ct []byte, ok bool) {
	if len(b) < 1+macLen03 || len(b) > maxWireSize || b[0] != version03 {
		return nil, nil, h, nil, false
	}
	body, mac = b[:len(b)-macLen03], b[len(b)-macLen03:]
	var seen fieldSet
	ok = parseProto(body[1:], func(f protoField) bool {
		switch f.num {
		case 1:
			return seen.key(f, &h.dhPub, decodeCurve03)
		case 2:
			return seen.u32(f, &h.n)
		case 3:
			return seen.u32(f, &h.pn)
		case 4:
			return seen.raw(f, &ct)
		}
		return true
	})
	if !ok || !seen.has(1, 2, 3, 4) {
		return nil, nil, h, nil, false
	}
	return body, mac, h, ct, true
}

// keyExchange is the X3DH header that accompanies the first messages of a
// session (PreKeySignalMessage minus message, OMEMOKeyExchange minus
// message).
type keyExchange struct {
	preKeyID       uint32
	signedPreKeyID uint32
	identityKey    [32]byte // 0.3: Curve25519 u; 2: Ed25519
	baseKey        [32]byte // the X3DH ephemeral key, Curve25519
	registrationID uint32   // 0.3 only, informational
}

func encodePreKey03(kx *keyExchange, msg []byte) []byte {
	b := make([]byte, 0, 1+90+len(msg)+6)
	b = append(b, version03)
	b = appendUint32Field(b, 1, kx.preKeyID)
	b = appendBytesField(b, 2, encodeCurve03(&kx.baseKey))
	b = appendBytesField(b, 3, encodeCurve03(&kx.identityKey))
	b = appendBytesField(b, 4, msg)
	b = appendUint32Field(b, 5, kx.registrationID)
	return appendUint32Field(b, 6, kx.signedPreKeyID)
}

func parsePreKey03(b []byte) (kx keyExchange, msg []byte, ok bool) {
	if len(b) < 1 || len(b) > maxWireSize || b[0] != version03 {
		return kx, nil, false
	}
	var seen fieldSet
	ok = parseProto(b[1:], func(f protoField) bool {
		switch f.num {
		case 1:
			return seen.u32(f, &kx.preKeyID)
		case 2:
			return seen.key(f, &kx.baseKey, decodeCurve03)
		case 3:
			return seen.key(f, &kx.identityKey, decodeCurve03)
		case 4:
			return seen.raw(f, &msg)
		case 5:
			return seen.u32(f, &kx.registrationID)
		case 6:
			return seen.u32(f, &kx.signedPreKeyID)
		}
		return true
	})
	// OMEMO requires a one-time pre-key (XEP-0384 §4.2), so preKeyId is
	// required here although libsignal's schema makes it optional.
	if !ok || !seen.has(1, 2, 3, 4, 6) {
		return kx, nil, false
	}
	return kx, msg, true
}

func encodeMessage2(h *ratchetHeader, ct []byte, withCT bool) []byte {
	b := make([]byte, 0, 48+len(ct))
	b = appendUint32Field(b, 1, h.n)
	b = appendUint32Field(b, 2, h.pn)
	b = appendBytesField(b, 3, h.dhPub[:])
	if withCT {
		b = appendBytesField(b, 4, ct)
	}
	return b
}

func parseMessage2(b []byte) (h ratchetHeader, ct []byte, ok bool) {
	var seen fieldSet
	ok = parseProto(b, func(f protoField) bool {
		switch f.num {
		case 1:
			return seen.u32(f, &h.n)
		case 2:
			return seen.u32(f, &h.pn)
		case 3:
			return seen.key(f, &h.dhPub, decodeCurve2)
		case 4:
			return seen.raw(f, &ct)
		}
		return true
	})
	// The ciphertext is optional in the schema but a received message
	// without one carries nothing to decrypt.
	if !ok || !seen.has(1, 2, 3, 4) {
		return h, nil, false
	}
	return h, ct, true
}

func encodeAuthenticated2(mac, msg []byte) []byte {
	b := make([]byte, 0, 4+len(mac)+len(msg))
	b = appendBytesField(b, 1, mac)
	return appendBytesField(b, 2, msg)
}

func parseAuthenticated2(b []byte) (mac, msg []byte, ok bool) {
	if len(b) > maxWireSize {
		return nil, nil, false
	}
	var seen fieldSet
	ok = parseProto(b, func(f protoField) bool {
		switch f.num {
		case 1:
			return seen.raw(f, &mac) && len(mac) == macLen2
		case 2:
			return seen.raw(f, &msg)
		}
		return true
	})
	if !ok || !seen.has(1, 2) {
		return nil, nil, false
	}
	return mac, msg, true
}

func encodeKeyExchange2(kx *keyExchange, authenticated []byte) []byte {
	b := make([]byte, 0, 90+len(authenticated))
	b = appendUint32Field(b, 1, kx.preKeyID)
	b = appendUint32Field(b, 2, kx.signedPreKeyID)
	b = appendBytesField(b, 3, kx.identityKey[:])
	b = appendBytesField(b, 4, kx.baseKey[:])
	return appendBytesField(b, 5, authenticated)
}

func parseKeyExchange2(b []byte) (kx keyExchange, authenticated []byte, ok bool) {
	if len(b) > maxWireSize {
		return kx, nil, false
	}
	var seen fieldSet
	ok = parseProto(b, func(f protoField) bool {
		switch f.num {
		case 1:
			return seen.u32(f, &kx.preKeyID)
		case 2:
			return seen.u32(f, &kx.signedPreKeyID)
		case 3:
			return seen.key(f, &kx.identityKey, decodeCurve2)
		case 4:
			return seen.key(f, &kx.baseKey, decodeCurve2)
		case 5:
			return seen.raw(f, &authenticated)
		}
		return true
	})
	if !ok || !seen.has(1, 2, 3, 4, 5) {
		return kx, nil, false
	}
	return kx, authenticated, true
}

// identityX25519 returns the Curve25519 form of a peer's identity key as
// carried in a key exchange or bundle of generation g.
func identityX25519(g Generation, ik *[32]byte) ([32]byte, error) {
	if g == V2 {
		return xeddsa.EdwardsToMontgomery(ik[:])
	}
	if _, err := xeddsa.MontgomeryToEdwards(ik, false); err != nil {
		return [32]byte{}, err
	}
	return *ik, nil
}
