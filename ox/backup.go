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
func OpenBackup(data []byte, code string) ([]*Key, error) {
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
