package ox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

// BackupAlphabet is the alphabet of backup codes (XEP-0373 §5.4): digits and
// upper-case Latin letters without '0' and 'O'.
const BackupAlphabet = "123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"

// ErrBackupCode means a string is not a well-formed backup code.
var ErrBackupCode = errors.New("ox: invalid backup code (24 characters from " + BackupAlphabet + " in six dash-separated groups of four)")

// backupS2KCount is the iteration count of the passphrase S2K. The code has
// about 122 bits of entropy, so stretching adds little; this is the common
// GnuPG and go-crypto default.
const backupS2KCount = 16777216

// NewBackupCode returns a fresh backup code: 24 characters drawn uniformly
// from [BackupAlphabet] with rand (nil means crypto/rand), in six groups of
// four joined by '-', such as TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW. It carries about
// 122 bits of entropy.
func NewBackupCode(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	const n = len(BackupAlphabet)
	const limit = 256 - 256%n // reject bytes at or above this to avoid bias
	code := make([]byte, 0, 29)
	var buf [32]byte
	defer clear(buf[:])
	count := 0
	for count < 24 {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("ox: reading randomness: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit || count == 24 {
				continue
			}
			if count > 0 && count%4 == 0 {
				code = append(code, '-')
			}
			code = append(code, BackupAlphabet[int(b)%n])
			count++
		}
	}
	return string(code), nil
}

// ValidBackupCode reports whether code has exactly the form of a backup code:
// 29 characters, six groups of four characters from [BackupAlphabet] joined by
// '-'. The code is a passphrase and is used verbatim; see
// [NormalizeBackupCode] for codes typed by a user.
func ValidBackupCode(code string) bool {
	if len(code) != 29 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if i%5 == 4 {
			if code[i] != '-' {
				return false
			}
		} else if strings.IndexByte(BackupAlphabet, code[i]) < 0 {
			return false
		}
	}
	return true
}

// NormalizeBackupCode turns a code as a user may type it (lower case, spaces
// or no dashes) into the canonical form, and fails if the result is not a
// valid code. It never substitutes look-alike characters.
func NormalizeBackupCode(input string) (string, error) {
	var chars []byte
	for _, r := range input {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
		case r >= 'a' && r <= 'z':
			chars = append(chars, byte(r-'a'+'A'))
		case r < 0x80:
			chars = append(chars, byte(r))
		default:
			return "", ErrBackupCode
		}
	}
	if len(chars) != 24 {
		return "", ErrBackupCode
	}
	var b strings.Builder
	for i, c := range chars {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(c)
	}
	if code := b.String(); ValidBackupCode(code) {
		return code, nil
	}
	return "", ErrBackupCode
}

// SealBackup makes a secret-key backup (XEP-0373 §5.4): the transferable
// secret keys concatenated, their key material unprotected (string-to-key
// usage 0), as binary literal data encrypted with a symmetric-key encrypted
// session key whose passphrase is the whole backup code, dashes included. It
// uses AES-256, iterated and salted S2K with SHA-256 and SEIPD v1, which
// GnuPG 2.2 and the other OX clients read. Put the result in a [SecretKey].
func SealBackup(keys []*Key, code string, cfg *Config) ([]byte, error) {
	if !ValidBackupCode(code) {
		return nil, ErrBackupCode
	}
	if len(keys) == 0 {
		return nil, errors.New("ox: no keys to back up")
	}
	var plain []byte
	defer func() { clear(plain) }()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.fpr] {
			continue
		}
		seen[k.fpr] = true
		if !k.Secret() || k.Locked() {
			return nil, &KeyError{k.fpr, ErrNotSecret}
		}
		b, err := k.MarshalSecret()
		if err != nil {
			return nil, err
		}
		plain = append(plain, b...)
		clear(b)
	}
	now := cfg.now()
	pc := &packet.Config{
		Rand:                   cfg.rand(),
		Time:                   func() time.Time { return now },
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
		S2KConfig: &s2k.Config{
			S2KMode:  s2k.IteratedSaltedS2K,
			Hash:     crypto.SHA256,
			S2KCount: backupS2KCount,
		},
	}
	pass := []byte(code)
	defer clear(pass)
	var out bytes.Buffer
	w, err := openpgp.SymmetricallyEncrypt(&out, pass, &openpgp.FileHints{IsBinary: true}, pc)
	if err != nil {
		return nil, fmt.Errorf("ox: sealing backup: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("ox: sealing backup: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("ox: sealing backup: %w", err)
	}
	return out.Bytes(), nil
}

// OpenBackup decrypts a secret-key backup with the backup code, used verbatim
// as the passphrase, and returns every key in it (a backup may hold several,
// for example when another client appended its own). A wrong code and a
// damaged backup both return [ErrDecrypt]. Every key must be a secret key;
// keys whose material is still passphrase protected, against the XEP, are
// returned locked (see [Key.Locked]).
//
// The backup comes from the server, and a key is derived from the code for
// each of its passphrase packets until one fits, so a backup that asks for
// more than two such derivations, or for Argon2 with more than 64 MiB or
// four passes, returns [ErrDecrypt] before any is made.
func OpenBackup(data []byte, code string) ([]*Key, error) {
	if err := checkBackupS2K(data); err != nil {
		return nil, err
	}
	pass := []byte(code)
	defer clear(pass)
	tried := false
	prompt := func(_ []openpgp.Key, symmetric bool) ([]byte, error) {
		if tried || !symmetric {
			return nil, ErrDecrypt
		}
		tried = true
		return pass, nil
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(data), nil, prompt, &packet.Config{MaxDecompressedMessageSize: &maxBackup})
	if err != nil || !md.IsSymmetricallyEncrypted {
		return nil, ErrDecrypt
	}
	plain, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, maxBackup+1))
	defer clear(plain)
	if err != nil {
		return nil, ErrDecrypt
	}
	if len(plain) > int(maxBackup) {
		return nil, ErrTooLarge
	}
	keys, err := ParseKeys(plain)
	if err != nil {
		return nil, fmt.Errorf("ox: backup: %w", err)
	}
	for _, k := range keys {
		if !k.Secret() {
			return nil, &KeyError{k.fpr, fmt.Errorf("backup holds a public key only: %w", ErrNotSecret)}
		}
	}
	return keys, nil
}

var maxBackup = int64(MaxKeySize)

// Limits on the key derivations a backup may ask for. go-crypto derives a
// key from the code for every passphrase packet (SKESK, RFC 4880 §5.3,
// RFC 9580 §5.3) until one fits, as its string-to-key specifier (RFC 9580
// §3.7.1) asks: a quarter of a megabyte holds 15000 packets, and Argon2
// may ask for 2^31 KiB of memory, which no allocator survives.
const (
	// maxBackupSKESKs is how many passphrase packets a backup may hold:
	// XEP-0373 §5.4 backups have one; a second allows for a v6 packet
	// beside a v4 one. Iteration counts are not bounded: GnuPG calibrates
	// its count, and GnuPG 2.2 on a current machine writes the largest
	// one (65011712 bytes hashed).
	maxBackupSKESKs = 2
	// maxBackupArgon2Exp bounds the memory of an Argon2 derivation to
	// 2^16 KiB (64 MiB): the default of go-crypto and OpenPGP.js, and the
	// second recommended option of RFC 9106 §4.
	maxBackupArgon2Exp = 16
	// maxBackupArgon2Passes bounds its passes (three in those defaults).
	maxBackupArgon2Passes = 4
)

// errBackupS2K reports a backup beyond those limits.
var errBackupS2K = fmt.Errorf("%w: the backup asks for more key derivation than allowed", ErrDecrypt)

// OpenPGP packet tags (RFC 4880 §4.3) that end the key packets of an
// encrypted message.
const (
	tagOnePassSig = 4
	tagCompressed = 8
	tagSED        = 9
	tagLiteral    = 11
	tagSEIPD      = 18
	tagAEAD       = 20
)

// checkBackupS2K checks the passphrase packets of a backup against the
// limits above, reading the packets before the encrypted data as
// go-crypto does (RFC 4880 §4.2; only data packets may have partial
// lengths).
func checkBackupS2K(b []byte) error {
	skesks := 0
	for len(b) > 0 {
		if b[0]&0x80 == 0 {
			return ErrDecrypt
		}
		tag := b[0] >> 2 & 0x0f
		if b[0]&0x40 != 0 {
			tag = b[0] & 0x3f
		}
		switch tag {
		case tagOnePassSig, tagCompressed, tagSED, tagLiteral, tagSEIPD, tagAEAD:
			return nil
		}
		tag, body, rest, err := nextPacket(b)
		if err != nil {
			return ErrDecrypt
		}
		b = rest
		if tag != 3 {
			continue
		}
		if skesks++; skesks > maxBackupSKESKs {
			return errBackupS2K
		}
		// The version, then for version 4 the cipher; 5: cipher and AEAD
		// mode; 6: a count, cipher, AEAD mode and a count. Then the S2K
		// specifier; for Argon2, mode 4, 16 octets of salt, passes,
		// parallelism and the memory exponent.
		var spec []byte
		switch {
		case len(body) > 2 && body[0] == 4:
			spec = body[2:]
		case len(body) > 3 && body[0] == 5:
			spec = body[3:]
		case len(body) > 5 && body[0] == 6:
			spec = body[5:]
		}
		if len(spec) >= 20 && spec[0] == 4 && (spec[17] > maxBackupArgon2Passes || spec[19] > maxBackupArgon2Exp) {
			return errBackupS2K
		}
	}
	return nil
}
