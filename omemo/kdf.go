package omemo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"

	"golang.org/x/crypto/hkdf"
)

// The KDF parameters of each generation. OMEMO 2 takes its strings from
// XEP-0384 §4.2 and §4.3; OMEMO 0.3 uses libsignal's (RatchetingSession,
// RootKey and ChainKey of libsignal-protocol), which is what
// eu.siacs.conversations.axolotl peers speak.
const (
	x3dhInfo03       = "WhisperText"
	x3dhInfo2        = "OMEMO X3DH"
	rootInfo03       = "WhisperRatchet"
	rootInfo2        = "OMEMO Root Chain"
	messageKeyInfo03 = "WhisperMessageKeys"
	messageKeyInfo2  = "OMEMO Message Key Material"
	payloadInfo2     = "OMEMO Payload"
)

// x3dhKDF derives the 32-byte shared secret SK of X3DH (Signal's X3DH
// specification §2.2): HKDF-SHA-256 with a zero salt over 32 0xFF bytes
// followed by the DH outputs. OMEMO 0.3 uses the first 32 bytes of
// libsignal's 64-byte output, which are the same bytes.
func x3dhKDF(info string, dhs ...*[32]byte) [32]byte {
	ikm := make([]byte, 0, 32+32*len(dhs))
	for range 32 {
		ikm = append(ikm, 0xff)
	}
	for _, d := range dhs {
		ikm = append(ikm, d[:]...)
	}
	var sk [32]byte
	var zero [32]byte
	readHKDF(ikm, zero[:], info, sk[:])
	clear(ikm)
	return sk
}

// rootKDF is KDF_RK (Double Ratchet §5.2, XEP-0384 §4.3): HKDF-SHA-256 with
// the root key as salt and the DH output as input; 64 bytes become the new
// root key and a chain key.
func rootKDF(info string, rk *[32]byte, dhOut *[32]byte) (newRK, ck [32]byte) {
	var out [64]byte
	readHKDF(dhOut[:], rk[:], info, out[:])
	copy(newRK[:], out[:32])
	copy(ck[:], out[32:])
	clear(out[:])
	return newRK, ck
}

// chainKDF is KDF_CK (Double Ratchet §5.2, XEP-0384 §4.3): the message key
// is HMAC-SHA-256(ck, 0x01), the next chain key HMAC-SHA-256(ck, 0x02).
func chainKDF(ck *[32]byte) (next, mk [32]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write([]byte{0x01})
	m.Sum(mk[:0])
	m.Reset()
	m.Write([]byte{0x02})
	m.Sum(next[:0])
	return next, mk
}

// cbcKeys are the AES-256-CBC key, HMAC-SHA-256 key and IV that HKDF
// derives from a message key (XEP-0384 §4.3 ENCRYPT; libsignal's
// MessageKeys) or from an OMEMO 2 payload key (§4.4).
type cbcKeys struct {
	enc [32]byte
	mac [32]byte
	iv  [16]byte
}

func (k *cbcKeys) wipe() { clear(k.enc[:]); clear(k.mac[:]); clear(k.iv[:]) }

// deriveCBCKeys expands 80 bytes with HKDF-SHA-256, a zero salt and info.
func deriveCBCKeys(key []byte, info string) cbcKeys {
	var out [80]byte
	var zero [32]byte
	readHKDF(key, zero[:], info, out[:])
	var k cbcKeys
	copy(k.enc[:], out[:32])
	copy(k.mac[:], out[32:64])
	copy(k.iv[:], out[64:])
	clear(out[:])
	return k
}

func readHKDF(secret, salt []byte, info string, out []byte) {
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), out); err != nil {
		panic("omemo: hkdf: " + err.Error())
	}
}

// macOf returns HMAC-SHA-256(key, parts...) truncated to n bytes.
func macOf(key *[32]byte, n int, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key[:])
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)[:n]
}

func macEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// cbcEncrypt pads plaintext with PKCS#7 and encrypts it with AES-256-CBC.
func cbcEncrypt(key *[32]byte, iv *[16]byte, plaintext []byte) []byte {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("omemo: aes: " + err.Error())
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	out := make([]byte, len(plaintext)+pad)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(out, out)
	return out
}

var errPadding = errors.New("omemo: bad padding")

// cbcDecrypt decrypts AES-256-CBC and removes PKCS#7 padding. Callers have
// checked a MAC over the ciphertext first, so the padding check is no
// oracle.
func cbcDecrypt(key *[32]byte, iv *[16]byte, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, errPadding
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic("omemo: aes: " + err.Error())
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv[:]).CryptBlocks(out, ciphertext)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, errPadding
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errPadding
		}
	}
	return out[:len(out)-pad], nil
}
