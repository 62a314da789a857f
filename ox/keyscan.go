package ox

import (
	"errors"
	"fmt"
)

// Verifying the self-signatures of a key costs what the key's parameters
// make it cost: a DSA key with a 65,535-bit modulus takes minutes, and
// anyone can publish one. Before go-crypto sees a key block, scanKeyBlock
// walks its packets (RFC 4880 §4.2) and checks what each key packet
// declares (§5.5.2) against the bounds below, without any arithmetic.

// Bounds on a key block, checked before any signature is verified.
const (
	// MaxPublicKeySize is the largest block of public keys accepted. A v4
	// RSA-4096 key with a few subkeys and user IDs takes about 10 KiB.
	MaxPublicKeySize = 64 << 10
	// maxKeyPackets bounds the packets of a block, signatures included.
	maxKeyPackets = 512
	// maxKeyPacketsOfKind bounds the key and subkey packets of a block.
	maxKeyPacketsOfKind = 64
	// maxRSABits is the largest RSA modulus accepted; RSA verification
	// with a small public exponent stays cheap at this size.
	maxRSABits = 8192
	// maxRSAExponentBits bounds the public exponent (Go's crypto/rsa takes
	// exponents below 2^31).
	maxRSAExponentBits = 31
	// maxDSAPBits and maxDSAQBits are FIPS 186-4's largest DSA sizes.
	maxDSAPBits, maxDSAQBits = 3072, 256
	// maxElGamalBits bounds ElGamal encryption subkeys.
	maxElGamalBits = 4096
	// maxECBytes bounds the OID and point of an elliptic-curve key.
	maxOIDBytes, maxPointBits = 16, 8 * 200
)

// ErrKeyTooExpensive reports a key whose algorithm or sizes are outside
// what Balcony accepts from others (see MaxPublicKeySize): it is refused
// before any signature is checked.
var ErrKeyTooExpensive = errors.New("ox: key algorithm or size not accepted")

// OpenPGP packet tags (RFC 4880 §4.3).
const (
	tagSignature     = 2
	tagSecretKey     = 5
	tagPublicKey     = 6
	tagSecretSubkey  = 7
	tagPublicSubkey  = 14
	tagUserID        = 13
	tagUserAttribute = 17
	tagTrust         = 12
	tagMarker        = 10
	tagPadding       = 21
)

// scanKeyBlock checks the packets of a binary key block. It reports
// whether the block holds secret key material.
func scanKeyBlock(b []byte) (secret bool, err error) {
	packets, keys := 0, 0
	for len(b) > 0 {
		tag, body, rest, err := nextPacket(b)
		if err != nil {
			return false, err
		}
		b = rest
		packets++
		if packets > maxKeyPackets {
			return false, fmt.Errorf("%w: more than %d packets", ErrKeyTooExpensive, maxKeyPackets)
		}
		switch tag {
		case tagSecretKey, tagSecretSubkey:
			secret = true
			fallthrough
		case tagPublicKey, tagPublicSubkey:
			keys++
			if keys > maxKeyPacketsOfKind {
				return false, fmt.Errorf("%w: more than %d keys and subkeys", ErrKeyTooExpensive, maxKeyPacketsOfKind)
			}
			if err := checkKeyPacket(body); err != nil {
				return false, err
			}
		case tagSignature, tagUserID, tagUserAttribute, tagTrust, tagMarker, tagPadding:
		default:
			return false, fmt.Errorf("ox: invalid key: unexpected packet (tag %d) in a key block", tag)
		}
	}
	if keys == 0 {
		return false, errors.New("ox: no key found")
	}
	return secret, nil
}

// nextPacket splits the first packet off b (RFC 4880 §4.2). Partial body
// lengths, which only data packets may use, are refused.
func nextPacket(b []byte) (tag byte, body, rest []byte, err error) {
	malformed := errors.New("ox: invalid key: malformed packet header")
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, nil, nil, malformed
	}
	var n, hdr int
	if b[0]&0x40 != 0 { // new format
		tag = b[0] & 0x3f
		switch l := b[1]; {
		case l < 192:
			n, hdr = int(l), 2
		case l < 224:
			if len(b) < 3 {
				return 0, nil, nil, malformed
			}
			n, hdr = (int(l)-192)<<8+int(b[2])+192, 3
		case l == 255:
			if len(b) < 6 {
				return 0, nil, nil, malformed
			}
			n, hdr = int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5]), 6
		default:
			return 0, nil, nil, errors.New("ox: invalid key: partial body length in a key block")
		}
	} else { // old format
		tag = (b[0] >> 2) & 0x0f
		switch b[0] & 3 {
		case 0:
			n, hdr = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return 0, nil, nil, malformed
			}
			n, hdr = int(b[1])<<8|int(b[2]), 3
		case 2:
			if len(b) < 5 {
				return 0, nil, nil, malformed
			}
			n, hdr = int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]), 5
		default:
			return 0, nil, nil, errors.New("ox: invalid key: indeterminate packet length in a key block")
		}
	}
	if n < 0 || n > len(b)-hdr {
		return 0, nil, nil, errors.New("ox: invalid key: truncated packet")
	}
	return tag, b[hdr : hdr+n], b[hdr+n:], nil
}

// OpenPGP public-key algorithms (RFC 4880 §9.1, RFC 6637, RFC 9580 §9.1).
const (
	algRSA, algRSAEncrypt, algRSASign = 1, 2, 3
	algElGamal                        = 16
	algDSA                            = 17
	algECDH, algECDSA                 = 18, 19
	algEdDSA                          = 22
	algX25519, algX448                = 25, 26
	algEd25519, algEd448              = 27, 28
)

// checkKeyPacket checks the public part of a v4 key packet: version,
// algorithm, and the sizes of the parameters that set the cost of using
// it.
func checkKeyPacket(p []byte) error {
	if len(p) < 6 {
		return errors.New("ox: invalid key: short key packet")
	}
	if p[0] != 4 {
		return ErrUnsupportedKey
	}
	alg, params := p[5], p[6:]
	mpis := func(limits ...int) error {
		for _, max := range limits {
			bits, rest, err := mpi(params)
			if err != nil {
				return err
			}
			if bits > max {
				return fmt.Errorf("%w: algorithm %d with a %d-bit parameter (at most %d)", ErrKeyTooExpensive, alg, bits, max)
			}
			params = rest
		}
		return nil
	}
	switch alg {
	case algRSA, algRSAEncrypt, algRSASign:
		return mpis(maxRSABits, maxRSAExponentBits)
	case algDSA:
		return mpis(maxDSAPBits, maxDSAQBits, maxDSAPBits, maxDSAPBits)
	case algElGamal:
		return mpis(maxElGamalBits, maxElGamalBits, maxElGamalBits)
	case algECDH, algECDSA, algEdDSA:
		if len(params) < 1 || params[0] == 0 || params[0] == 0xff || int(params[0]) > maxOIDBytes || len(params) < 1+int(params[0]) {
			return fmt.Errorf("%w: curve identifier of algorithm %d", ErrKeyTooExpensive, alg)
		}
		params = params[1+int(params[0]):]
		return mpis(maxPointBits)
	case algX25519, algX448, algEd25519, algEd448:
		return nil // fixed sizes
	}
	return fmt.Errorf("%w: public-key algorithm %d", ErrKeyTooExpensive, alg)
}

// mpi reads the bit count of a multiprecision integer (RFC 4880 §3.2) and
// skips it.
func mpi(b []byte) (bits int, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, errors.New("ox: invalid key: truncated key parameter")
	}
	bits = int(b[0])<<8 | int(b[1])
	n := (bits + 7) / 8
	if len(b)-2 < n {
		return 0, nil, errors.New("ox: invalid key: truncated key parameter")
	}
	return bits, b[2+n:], nil
}
