package esession

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"math/big"
)

// This file holds the XEP-0217 (and XEP-0116) formulas as pure functions,
// each with a known-answer test. Conventions where the specifications are
// ambiguous, chosen by the plain reading of the text (the "spec" profile
// of the test vectors):
//
//   - Keys are HMAC-SHA256 outputs; the AES-128 cipher key is the 16 least
//     significant bytes, that is the LAST 16 bytes (XEP-0217 §5.2.2 "the 128
//     least significant bits"); MAC and SIGMA keys use all 32 bytes
//     (XEP-0116 §5.4.2 "the maximum length" for variable-length keys).
//   - Counter mode as in NIST SP 800-38A: the first block of keystream is
//     AES(KC, C), then C+1, ...; the stored counter advances by one per
//     full or partial block, modulo 2^128 (XEP-0200 §5 step 3).
//   - Counters are MACed as 16 big-endian bytes (their fixed n-bit size),
//     both in the identity MACs and in the XEP-0200 stanza MAC; only the
//     "counter" form field carries the counter as an MPI.
//   - Integers that are not fixed-size (e, d, the DH result, the counter
//     field) are MPIs: big-endian without leading zero bytes (XEP-0116 §8.1).

// blockSize is n/8, the AES block size in bytes.
const blockSize = 16

// counter is a 128-bit big-endian block counter.
type counter [blockSize]byte

// add advances c by n modulo 2^128.
func (c *counter) add(n uint64) {
	lo := binary.BigEndian.Uint64(c[8:])
	hi := binary.BigEndian.Uint64(c[:8])
	sum := lo + n
	if sum < lo {
		hi++
	}
	binary.BigEndian.PutUint64(c[8:], sum)
	binary.BigEndian.PutUint64(c[:8], hi)
}

// responderCounter returns C_B = C_A XOR 2^(n-1) (XEP-0217 §5.2.1 step 3).
func responderCounter(ca counter) counter {
	ca[0] ^= 0x80
	return ca
}

// blocks returns the number of counter values a message of n bytes uses:
// one per full or partial block, and one for an empty message (XEP-0200
// §5 and §6).
func blocks(n int) uint64 {
	if n == 0 {
		return 1
	}
	return uint64((n + blockSize - 1) / blockSize)
}

// mpi returns n as an XEP-0116 §8.1 multiple-precision integer: big-endian
// bytes without leading zero octets.
func mpi(n *big.Int) []byte { return n.Bytes() }

func hmacSHA256(key []byte, parts ...[]byte) (out [32]byte) {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	m.Sum(out[:0])
	return out
}

func sha256Sum(parts ...[]byte) (out [32]byte) {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(out[:0])
	return out
}

// dhHash returns He = SHA256(MPI(e)), the hash commitment of message 1.
func dhHash(e *big.Int) [32]byte { return sha256Sum(mpi(e)) }

// sharedSecret returns K = SHA256(MPI(z)) for the DH result z.
func sharedSecret(z *big.Int) [32]byte {
	b := mpi(z)
	defer clear(b)
	return sha256Sum(b)
}

// conv holds the conventions on which the "spec" profile (the plain
// reading of the text, the default) and the "gajim" profile (what Gajim
// 0.12 to 0.16 computed) differ. The zero value is the spec profile.
type conv struct {
	// gajim selects every Gajim deviation: the cipher key is the whole
	// 32-byte HMAC (AES-256 although aes128-ctr was negotiated), the
	// keystream of a message starts at C+1, the identity MACs take the
	// counter as an MPI, a received stanza MAC may take it as an MPI
	// (Gajim sends it so; a sent one takes 16 bytes, which is what Gajim
	// checks), the SAS is not padded
	// to five characters, and terminate forms travel in the clear.
	gajim bool
}

// keyLen is the cipher key length for aes128-ctr.
func (cv conv) keyLen() int {
	if cv.gajim {
		return 32
	}
	return 16
}

// start returns the counter block the keystream of a message starts at.
func (cv conv) start(c counter) counter {
	if cv.gajim {
		c.add(1)
	}
	return c
}

// macCounter returns the counter as an identity MAC takes it: 16 bytes,
// or its MPI in the gajim profile.
func (cv conv) macCounter(c *counter) []byte {
	if cv.gajim {
		return mpiBytes(c[:])
	}
	return c[:]
}

// mpiBytes strips the leading zero bytes of a big-endian number.
func mpiBytes(b []byte) []byte {
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// keySet is one direction's keys.
type keySet struct {
	kc    [32]byte // cipher key, kc[:kcLen]
	kcLen int
	km    [32]byte // MAC key
	ks    [32]byte // SIGMA key
}

// cipherKey returns the cipher key.
func (k *keySet) cipherKey() []byte { return k.kc[:k.kcLen] }

func (k *keySet) wipe() {
	clear(k.kc[:])
	clear(k.km[:])
	clear(k.ks[:])
}

// deriveKeys derives one direction's keys from K (XEP-0217 §5.2.2):
// HMAC(K, "Initiator Cipher Key") and so on, or "Responder ...". The
// cipher key is the keyLen least significant, that is the last, bytes of
// its HMAC.
func deriveKeys(k *[32]byte, initiator bool, keyLen int) keySet {
	who := "Responder"
	if initiator {
		who = "Initiator"
	}
	ks := keySet{kcLen: keyLen}
	c := hmacSHA256(k[:], []byte(who+" Cipher Key"))
	copy(ks.kc[:], c[32-keyLen:])
	clear(c[:])
	ks.km = hmacSHA256(k[:], []byte(who+" MAC Key"))
	ks.ks = hmacSHA256(k[:], []byte(who+" SIGMA Key"))
	return ks
}

// sigmaMAC returns mac_A = HMAC(KS_A, N_B | N_A | MPI(e) | pubKey_A |
// form_A | form_A2) when called as sigmaMAC(ks, nB, nA, e, pubKeyA, formA,
// formA2), and mac_B = HMAC(KS_B, N_A | N_B | MPI(d) | pubKey_B | form_B |
// form_B2) with the arguments in that order (XEP-0116 §5.4 and §6.3;
// note the nonce order). pubKey is empty without public keys, and form2
// empty in the 3-message variant's mac_B.
func sigmaMAC(ks *[32]byte, n1, n2, dh, pubKey, form1, form2 []byte) [32]byte {
	return hmacSHA256(ks[:], n1, n2, dh, pubKey, form1, form2)
}

// ctrXOR encrypts or decrypts in with AES-CTR under kc starting at *c (at
// *c+1 in the gajim profile), and advances *c by one per full or partial
// block.
func ctrXOR(kc []byte, c *counter, dst, in []byte, cv conv) {
	b, err := aes.NewCipher(kc)
	if err != nil {
		panic(err) // a 16-, 24- or 32-byte key cannot fail
	}
	iv := cv.start(*c)
	cipher.NewCTR(b, iv[:]).XORKeyStream(dst, in)
	c.add(blocks(len(in)))
}

// hideIdentity returns ID = CIPHER(KC, C, pt) and M = HMAC(KM, C | ID),
// with C the counter before encryption; *c advances by one per block of
// pt (XEP-0217 §5.2.3 steps 4-5, two blocks for a bare MAC). The counter
// comes FIRST in this MAC.
func hideIdentity(ks *keySet, c *counter, pt []byte, cv conv) (id []byte, m [32]byte) {
	before := *c
	id = make([]byte, len(pt))
	ctrXOR(ks.cipherKey(), c, id, pt, cv)
	m = hmacSHA256(ks.km[:], cv.macCounter(&before), id)
	return id, m
}

// revealIdentity checks M = HMAC(KM, C | ID) and returns DECIPHER(KC, C,
// ID), advancing *c by one per block. It reports false, leaving *c
// unchanged, if the MAC does not match or ID is empty or too long.
func revealIdentity(ks *keySet, c *counter, id, m []byte, cv conv) ([]byte, bool) {
	if len(id) == 0 || len(id) > maxIdentity || len(m) != 32 {
		return nil, false
	}
	want := hmacSHA256(ks.km[:], cv.macCounter(c), id)
	if subtle.ConstantTimeCompare(want[:], m) != 1 {
		return nil, false
	}
	pt := make([]byte, len(id))
	ctrXOR(ks.cipherKey(), c, pt, id, cv)
	return pt, true
}

// finalKey returns K' = SHA256(K | SRS | OSS); SRS and OSS are included
// only if present, but the hash is always applied (XEP-0217 §5.3.3).
func finalKey(k *[32]byte, srs, oss []byte) [32]byte {
	return sha256Sum(k[:], srs, oss)
}

// newRetainedSecret returns HMAC(K', "New Retained Secret").
func newRetainedSecret(kFinal *[32]byte) [32]byte {
	return hmacSHA256(kFinal[:], []byte("New Retained Secret"))
}

// rsHash returns HMAC(key=N_A, RS), one value of the "rshashes" field.
func rsHash(nA []byte, rs *[32]byte) [32]byte { return hmacSHA256(nA, rs[:]) }

// srsHash returns HMAC(SRS, "Shared Retained Secret"), the "srshash" field.
func srsHash(srs *[32]byte) [32]byte {
	return hmacSHA256(srs[:], []byte("Shared Retained Secret"))
}

// sasAlphabet is the sas28x5 digit set (XEP-0217 §9), values 0 to 27.
const sasAlphabet = "acdefghikmopqruvwxy123456789"

// sas28x5 returns the short authentication string: the least significant
// 24 bits of SHA256(M_A | form_B | "Short Authentication String") as five
// base-28 digits, most significant first. The gajim profile drops leading
// zero digits.
func sas28x5(mA, formB []byte, cv conv) string {
	h := sha256Sum(mA, formB, []byte("Short Authentication String"))
	n := uint32(h[29])<<16 | uint32(h[30])<<8 | uint32(h[31])
	var out [5]byte
	for i := 4; i >= 0; i-- {
		out[i] = sasAlphabet[n%28]
		n /= 28
	}
	s := string(out[:])
	if cv.gajim {
		for len(s) > 1 && s[0] == sasAlphabet[0] {
			s = s[1:]
		}
	}
	return s
}
