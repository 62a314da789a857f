package ox

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Seal turns c into a binary OpenPGP message, ready for [Element].
//
// What Seal does depends on c.Kind (XEP-0373 §3.1):
//   - Signcrypt: signed by signer and encrypted to recipients;
//   - Sign: signed by signer, not encrypted (recipients must be empty);
//   - Crypt: encrypted to recipients, not signed (signer must be nil).
//
// Signcrypt and Sign need at least one c.To. If c.Time is zero, Seal uses the
// current time; if c.Rpad is empty, Seal adds random padding to Signcrypt and
// Crypt elements. The message uses a v4 one-pass signature over binary literal
// data and SEIPD v1 without compression, which GnuPG 2.2 and every other OX
// implementation read.
//
// recipients must already be filtered by the caller, who owns the trust
// decisions. The rule for IM (XEP-0374 §4.1 and XEP-0373 §3.1) is: every key
// announced by every recipient that the user has not marked untrusted, plus
// every key of one's own account (so that one's other devices, carbons and
// MAM can read the message), including the signer's own key. Duplicates are
// removed. Every recipient key must pass [Key.CanEncrypt]; Seal fails rather
// than silently leaving a device out. [Recipients] applies this rule.
func Seal(c Content, signer *Key, recipients []*Key, cfg *Config) ([]byte, error) {
	if !c.Kind.valid() {
		return nil, fmt.Errorf("ox: invalid content kind %d", c.Kind)
	}
	now := cfg.now()
	if c.Kind.signed() {
		if signer == nil {
			return nil, fmt.Errorf("ox: %s needs a signing key", c.Kind)
		}
		if len(c.To) == 0 {
			return nil, fmt.Errorf("ox: %s needs at least one <to/>", c.Kind)
		}
		if !signer.Secret() || signer.Locked() {
			return nil, &KeyError{signer.fpr, ErrNotSecret}
		}
		if err := signer.validAt(now); err != nil {
			return nil, &KeyError{signer.fpr, err}
		}
		sk, ok := signer.entity.SigningKey(now)
		if !ok || sk.PrivateKey == nil || sk.PrivateKey.Encrypted {
			return nil, &KeyError{signer.fpr, ErrNoSigningKey}
		}
	} else if signer != nil {
		return nil, errors.New("ox: crypt must not be signed")
	}

	var to []*openpgp.Entity
	if c.Kind.encrypted() {
		seen := make(map[string]bool, len(recipients))
		for _, k := range recipients {
			if k == nil || seen[k.fpr] {
				continue
			}
			seen[k.fpr] = true
			if err := k.CanEncrypt(now); err != nil {
				return nil, err
			}
			to = append(to, k.entity)
		}
		if len(to) == 0 {
			return nil, fmt.Errorf("ox: %s needs at least one recipient key", c.Kind)
		}
	} else if len(recipients) > 0 {
		return nil, errors.New("ox: sign must not be encrypted")
	}

	rnd := cfg.rand()
	if c.Time.IsZero() {
		c.Time = now
	}
	if c.Rpad == "" && c.Kind != Sign {
		var err error
		if c.Rpad, err = newRpad(rnd); err != nil {
			return nil, err
		}
	}
	plain, err := c.appendXML(make([]byte, 0, c.sizeHint()))
	if err != nil {
		return nil, err
	}
	defer clear(plain)

	pc := &packet.Config{
		Rand:                   rnd,
		Time:                   func() time.Time { return now },
		DefaultHash:            crypto.SHA256,
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
	hints := &openpgp.FileHints{IsBinary: true}
	var out bytes.Buffer
	out.Grow(len(plain) + 256 + 160*len(to))
	var w io.WriteCloser
	switch c.Kind {
	case Signcrypt:
		w, err = openpgp.Encrypt(&out, to, signer.entity, hints, pc)
	case Sign:
		w, err = openpgp.Sign(&out, signer.entity, hints, pc)
	case Crypt:
		w, err = openpgp.Encrypt(&out, to, nil, hints, pc)
	}
	if err != nil {
		return nil, fmt.Errorf("ox: sealing: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("ox: sealing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("ox: sealing: %w", err)
	}
	return out.Bytes(), nil
}

// Recipients applies the encryption rule of XEP-0374 §4.1 to keys the caller
// has already filtered by trust: it joins the key sets (typically every
// contact's announced keys that are not marked untrusted, and all of one's
// own keys), drops duplicates, and separates the keys that can encrypt at
// time now from those that cannot (expired, revoked, no encryption subkey),
// which are returned as [*KeyError] values so the client can tell the user
// which device will not be able to read the message.
func Recipients(now time.Time, sets ...[]*Key) (usable []*Key, unusable []error) {
	seen := map[string]bool{}
	for _, set := range sets {
		for _, k := range set {
			if k == nil || seen[k.fpr] {
				continue
			}
			seen[k.fpr] = true
			if err := k.CanEncrypt(now); err != nil {
				unusable = append(unusable, err)
				continue
			}
			usable = append(usable, k.Public())
		}
	}
	return usable, unusable
}
