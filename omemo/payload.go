package omemo

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
)

// Payload encryption: the content is encrypted once with a fresh key and
// the key material is what each device's ratchet encrypts.
//
// OMEMO 0.3: AES-128-GCM, a 12-byte IV carried in the <header>'s <iv/>,
// key material = the 16-byte key || the 16-byte GCM tag (the ciphertext
// in <payload/> is without its tag). Received IVs of 16 bytes are accepted
// (early clients), and so is 16-byte key material with the tag still at
// the end of the payload.
//
// OMEMO 2 (XEP-0384 §4.4): a random 32-byte key, HKDF-SHA-256 (zero salt,
// "OMEMO Payload") to 80 bytes: AES-256-CBC key, HMAC-SHA-256 key, IV;
// key material = key || HMAC(ciphertext) truncated to 16 bytes.

const (
	keyLen03      = 16
	tagLen03      = 16
	ivLen03       = 12
	keyLen2       = 32
	material2Len  = keyLen2 + macLen2
	material03Len = keyLen03 + tagLen03
)

func readRand(rand io.Reader, b []byte) error {
	if _, err := io.ReadFull(rand, b); err != nil {
		return fmt.Errorf("omemo: reading randomness: %w", err)
	}
	return nil
}

// sealPayload encrypts plaintext and returns the payload, the IV (0.3) and
// the key material.
func sealPayload(g Generation, rand io.Reader, plaintext []byte) (payload, iv, material []byte, err error) {
	if g == V03 {
		var key [keyLen03]byte
		iv = make([]byte, ivLen03)
		if err := readRand(rand, key[:]); err != nil {
			return nil, nil, nil, err
		}
		if err := readRand(rand, iv); err != nil {
			return nil, nil, nil, err
		}
		block, _ := aes.NewCipher(key[:])
		gcm, _ := cipher.NewGCM(block)
		sealed := gcm.Seal(nil, iv, plaintext, nil)
		ct, tag := sealed[:len(plaintext)], sealed[len(plaintext):]
		material = append(append(make([]byte, 0, material03Len), key[:]...), tag...)
		clear(key[:])
		return ct, iv, material, nil
	}
	var key [keyLen2]byte
	if err := readRand(rand, key[:]); err != nil {
		return nil, nil, nil, err
	}
	k := deriveCBCKeys(key[:], payloadInfo2)
	defer k.wipe()
	payload = cbcEncrypt(&k.enc, &k.iv, plaintext)
	material = append(append(make([]byte, 0, material2Len), key[:]...), macOf(&k.mac, macLen2, payload)...)
	clear(key[:])
	return payload, nil, material, nil
}

// openPayload reverses sealPayload. Every failure is ErrInvalidMessage.
func openPayload(g Generation, material, payload, iv []byte) ([]byte, error) {
	if g == V03 {
		var key, tag []byte
		switch len(material) {
		case material03Len:
			key, tag = material[:keyLen03], material[keyLen03:]
		case keyLen03:
			if len(payload) < tagLen03 {
				return nil, ErrInvalidMessage
			}
			key, tag = material, payload[len(payload)-tagLen03:]
			payload = payload[:len(payload)-tagLen03]
		default:
			return nil, ErrInvalidMessage
		}
		if len(iv) != 12 && len(iv) != 16 {
			return nil, ErrInvalidMessage
		}
		block, _ := aes.NewCipher(key)
		var gcm cipher.AEAD
		if len(iv) == ivLen03 {
			gcm, _ = cipher.NewGCM(block) // the standard nonce size has the fast path
		} else {
			gcm, _ = cipher.NewGCMWithNonceSize(block, len(iv))
		}
		sealed := make([]byte, 0, len(payload)+tagLen03)
		sealed = append(append(sealed, payload...), tag...)
		pt, err := gcm.Open(sealed[:0], iv, sealed, nil)
		if err != nil {
			return nil, ErrInvalidMessage
		}
		return pt, nil
	}
	if len(material) != material2Len {
		return nil, ErrInvalidMessage
	}
	k := deriveCBCKeys(material[:keyLen2], payloadInfo2)
	defer k.wipe()
	if !macEqual(macOf(&k.mac, macLen2, payload), material[keyLen2:]) {
		return nil, ErrInvalidMessage
	}
	pt, err := cbcDecrypt(&k.enc, &k.iv, payload)
	if err != nil {
		return nil, ErrInvalidMessage
	}
	return pt, nil
}
