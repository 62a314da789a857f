package omemo

import (
	"errors"
)

// Recipient is a device to encrypt for. Bundle is used only when there is
// no session with the device yet; fetch it just before sending (XEP-0384
// §7 advises building sessions only then).
type Recipient struct {
	Address Address
	Bundle  *Bundle
}

// Key is the encrypted key material for one device: the text of a <key
// rid=…> element, base64-encoded by the caller. PreKey is 0.3's
// prekey='true' and OMEMO 2's kex='true'.
type Key struct {
	Address Address
	Data    []byte
	PreKey  bool
}

// Message is an encrypted message, everything the <encrypted/> element
// needs: <header sid=SenderDeviceID>, the <key/>s grouped by
// Address.JID (OMEMO 2's <keys jid=…>), 0.3's <iv/> and the <payload/>.
// Payload is nil for an empty message (no <payload/>); for OMEMO 2 the
// plaintext is the XEP-0420 envelope the caller built.
type Message struct {
	Generation     Generation
	SenderDeviceID uint32
	Payload        []byte
	IV             []byte
	Keys           []Key
}

// Encrypt encrypts plaintext once and its key for every recipient device,
// building sessions from bundles where needed. If some devices fail, the
// Message is still returned for the others with an *EncryptError listing
// the failures; if all fail, the Message is nil.
//
// Trust is the caller's: XEP-0384 §8 forbids sending content to devices
// the user has not decided to trust.
func (m *Manager) Encrypt(plaintext []byte, recipients []Recipient) (*Message, error) {
	payload, iv, material, err := sealPayload(m.cfg.Generation, m.cfg.Rand, plaintext)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	return m.encryptKeys(payload, iv, material, recipients)
}

// EncryptEmpty returns an empty message (XEP-0384 §5.5; 0.3's key
// transport message): key material for each device and no payload. Use it
// to answer a new session or a heartbeat request, and to move ratchets
// forward. For 0.3 it carries a fresh 16-byte key and an IV, as key
// transport messages do; for OMEMO 2 the key material is 32 zero bytes.
func (m *Manager) EncryptEmpty(recipients []Recipient) (*Message, error) {
	var material, iv []byte
	if m.cfg.Generation == V2 {
		material = make([]byte, 32)
	} else {
		material, iv = make([]byte, keyLen03), make([]byte, ivLen03)
		if err := readRand(m.cfg.Rand, material); err != nil {
			return nil, err
		}
		if err := readRand(m.cfg.Rand, iv); err != nil {
			return nil, err
		}
	}
	defer clear(material)
	return m.encryptKeys(nil, iv, material, recipients)
}

func (m *Manager) encryptKeys(payload, iv, material []byte, recipients []Recipient) (*Message, error) {
	msg := &Message{Generation: m.cfg.Generation, SenderDeviceID: m.account.DeviceID, Payload: payload, IV: iv}
	var failed []*RecipientError
	seen := make(map[Address]bool, len(recipients))
	for _, r := range recipients {
		if seen[r.Address] {
			continue
		}
		seen[r.Address] = true
		k, err := m.encryptFor(r, material)
		if err != nil {
			failed = append(failed, &RecipientError{Address: r.Address, Err: err})
			continue
		}
		msg.Keys = append(msg.Keys, k)
	}
	if len(failed) == 0 {
		return msg, nil
	}
	if len(msg.Keys) == 0 {
		msg = nil
	}
	return msg, &EncryptError{Failed: failed}
}

func (m *Manager) encryptFor(r Recipient, material []byte) (Key, error) {
	s, err := m.loadSession(r.Address)
	if err != nil {
		return Key{}, err
	}
	if s == nil {
		if r.Bundle == nil {
			return Key{}, ErrNoSession
		}
		if r.Bundle.DeviceID != r.Address.DeviceID {
			return Key{}, errors.Join(ErrInvalidBundle, errors.New("bundle of another device"))
		}
		if s, err = m.buildActive(r.Bundle); err != nil {
			return Key{}, err
		}
	}
	data := s.encrypt(material)
	k := Key{Address: r.Address, Data: data}
	if s.pending != nil {
		k.PreKey = true
		if m.cfg.Generation == V2 {
			k.Data = encodeKeyExchange2(s.pending, data)
		} else {
			k.Data = encodePreKey03(s.pending, data)
		}
	}
	if err := m.storeSession(r.Address, s); err != nil {
		s.wipe()
		return Key{}, err
	}
	return k, nil
}

// Incoming is a received message as the caller extracted it from the
// <encrypted/> element: the sender, the <key/> addressed to this device,
// and the payload and IV if present.
type Incoming struct {
	From    Address
	Key     []byte
	PreKey  bool   // 0.3 prekey='true', OMEMO 2 kex='true'
	Payload []byte // nil: an empty message
	IV      []byte // 0.3 only
	// Archived marks a message read during archive (MAM) catch-up: a
	// pre-key it consumes is kept until FinishCatchUp, so that another
	// copy or a racing key exchange with the same pre-key still works
	// (XEP-0384 §7).
	Archived bool
}

// Decrypted is the result of Decrypt.
type Decrypted struct {
	// Plaintext is the decrypted payload; nil when Empty.
	Plaintext []byte
	// Empty reports an empty (key transport, heartbeat) message.
	Empty bool
	// IdentityKey is the sender device's identity key in the
	// generation's wire form: the caller checks its trust (Fingerprint).
	IdentityKey []byte
	// NewSession reports that a key exchange built a new session.
	NewSession bool
	// HeartbeatDue asks the caller to send an empty message (EncryptEmpty)
	// to the sender device: after a new session, so the peer stops sending
	// key exchanges (XEP-0384 §7), and on the first message of a ratchet
	// key with a counter of HeartbeatThreshold or more.
	HeartbeatDue bool
	// BundleChanged asks the caller to republish the bundle: a pre-key was
	// consumed (and the set possibly refilled).
	BundleChanged bool
}

// Decrypt decrypts a received message. It is all or nothing: on any
// error, no state changes. A second copy of a message already decrypted
// returns ErrDuplicate, whether it is a key exchange or not, and never
// consumes a second pre-key.
func (m *Manager) Decrypt(in *Incoming) (*Decrypted, error) {
	g := m.cfg.Generation
	out := new(Decrypted)
	s, err := m.loadSession(in.From)
	if err != nil {
		return nil, err
	}
	stored := false
	defer func() {
		if !stored && s != nil {
			s.wipe()
		}
	}()
	var material []byte
	var keys *Keys
	consumed := -1
	if in.PreKey {
		var kx keyExchange
		var inner []byte
		var ok bool
		if g == V2 {
			kx, inner, ok = parseKeyExchange2(in.Key)
		} else {
			kx, inner, ok = parsePreKey03(in.Key)
		}
		if !ok {
			return nil, ErrInvalidMessage
		}
		switch i := s.builtFrom(&kx); {
		case i > 0:
			// A copy, or a later message, of the exchange an archived
			// state was built from.
			s = s.promote(i - 1)
		case i < 0:
			// A new exchange (the peer started a session, perhaps while
			// we started one with it): build a session from it and keep
			// the current one archived, not wiped, so that messages on it
			// still decrypt.
			if keys, err = m.loadKeys(); err != nil {
				return nil, err
			}
			n, c, err := m.buildPassive(&kx, keys)
			if err != nil {
				return nil, err
			}
			if s != nil {
				s.archiveInto(n)
			}
			s, consumed = n, c
			out.NewSession = true
		}
		if material, err = s.decrypt(m.cfg.Rand, inner, m.cfg.MaxSkip, m.cfg.MaxSkippedKeys); err != nil {
			return nil, err
		}
	} else {
		if s == nil {
			return nil, ErrNoSession
		}
		if s, material, err = s.decryptAny(m.cfg.Rand, in.Key, m.cfg.MaxSkip, m.cfg.MaxSkippedKeys); err != nil {
			return nil, err
		}
	}
	defer clear(material)
	if in.Payload == nil {
		out.Empty = true
	} else if out.Plaintext, err = openPayload(g, material, in.Payload, in.IV); err != nil {
		return nil, err
	}
	if out.NewSession || (s.hasCKr && s.nr > HeartbeatThreshold && !s.heartbeat) {
		out.HeartbeatDue = true
		if !out.NewSession {
			s.heartbeat = true
		}
	}
	if consumed >= 0 {
		if in.Archived {
			keys.PreKeys[consumed].Used = true
		} else {
			keys.PreKeys[consumed].KeyPair.Wipe()
			keys.PreKeys = append(keys.PreKeys[:consumed], keys.PreKeys[consumed+1:]...)
		}
		if err := m.storeKeys(keys); err != nil {
			return nil, err
		}
		if _, err := m.Maintain(); err != nil {
			return nil, err
		}
		out.BundleChanged = true
	}
	if err := m.storeSession(in.From, s); err != nil {
		return nil, err
	}
	stored = true
	w := s.remote
	if g == V03 {
		out.IdentityKey = encodeCurve03(&w)
	} else {
		out.IdentityKey = w[:]
	}
	return out, nil
}
