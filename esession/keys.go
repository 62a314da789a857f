package esession

import (
	"slices"
	"sync"
)

// KeyAssociations is what the engine reads of the client's trust store
// about public keys (XEP-0116 §10.4, "Key Associations"): which keys are
// associated with a peer and which JIDs with a key. The engine never
// writes: it reports each key it verified, and anything unexpected about
// it, with a KeyAlert event before the Established event, and the client
// records the association (and the user's verification) in its store.
// Implementations must be safe for concurrent use.
type KeyAssociations interface {
	// KeysFor returns the keys associated with peer, a bare JID.
	KeysFor(peer string) ([]KnownKey, error)
	// JIDsFor returns the bare JIDs associated with a key fingerprint
	// (PublicKey.Fingerprint).
	JIDsFor(fingerprint [32]byte) ([]string, error)
}

// KnownKey is a key the trust store associates with a peer.
type KnownKey struct {
	Key *PublicKey
	// Verified records that the user confirmed, out of band, that the key
	// is the peer's. A session authenticated with a verified key is
	// verified.
	Verified bool
}

// KeyAlertKind says what is remarkable about a peer's key.
type KeyAlertKind int

// Kinds of KeyAlert.
const (
	// KeyNew: the peer identified with a key the store does not know,
	// and the store knows no other key for the peer. Record it.
	KeyNew KeyAlertKind = iota + 1
	// KeyChanged: the store knows other keys for the peer, not this one.
	// XEP-0116 §10.4: the user MUST be alerted.
	KeyChanged
	// KeyMissing: the peer identified without a key although the store
	// associates keys with it (§10.4 MUST alert).
	KeyMissing
	// KeyOtherJID: the key is associated with other JIDs too (§10.4 MUST
	// alert immediately): someone who holds a trusted key could use it to
	// pose as another contact.
	KeyOtherJID
)

func (k KeyAlertKind) String() string {
	switch k {
	case KeyNew:
		return "new key"
	case KeyChanged:
		return "changed key"
	case KeyMissing:
		return "key missing"
	case KeyOtherJID:
		return "key of another JID"
	}
	return "unknown"
}

// KeyAlert reports what the engine found out about the public key a peer
// identified with (or did not), during a negotiation. It always comes
// before the Established event (and before any content) of that session.
// The client records Key with the peer's bare JID in its trust store.
type KeyAlert struct {
	Session *Session
	Kind    KeyAlertKind
	// Key is the key the peer presented; nil for KeyMissing.
	Key *PublicKey
	// OtherJIDs are the other bare JIDs associated with Key (KeyOtherJID).
	OtherJIDs []string
}

func (KeyAlert) event() {}

// knownKeys returns the keys associated with the peer, or nil.
func (s *Session) knownKeys() []KnownKey {
	if s.cfg.keys == nil {
		return nil
	}
	list, err := s.cfg.keys.KeysFor(s.peerBare)
	if err != nil {
		return nil
	}
	return list
}

// assessKey compares the key the peer identified with (nil for none)
// with the trust store, returns the alerts to report and whether the key
// is one the user verified for this peer.
func (s *Session) assessKey(key *PublicKey) ([]Event, bool) {
	if s.cfg.keys == nil {
		return nil, false
	}
	known := s.knownKeys()
	if key == nil {
		if len(known) > 0 {
			return []Event{KeyAlert{Session: s, Kind: KeyMissing}}, false
		}
		return nil, false
	}
	var evs []Event
	fp := key.Fingerprint()
	verified, found := false, false
	for _, k := range known {
		if k.Key.Fingerprint() == fp {
			found, verified = true, k.Verified
		}
	}
	switch {
	case !found && len(known) > 0:
		evs = append(evs, KeyAlert{Session: s, Kind: KeyChanged, Key: key})
	case !found:
		evs = append(evs, KeyAlert{Session: s, Kind: KeyNew, Key: key})
	}
	if jids, err := s.cfg.keys.JIDsFor(fp); err == nil {
		others := slices.DeleteFunc(slices.Clone(jids), func(j string) bool { return j == s.peerBare })
		if len(others) > 0 {
			evs = append(evs, KeyAlert{Session: s, Kind: KeyOtherJID, Key: key, OtherJIDs: others})
			verified = false
		}
	}
	return evs, verified
}

// MemoryKeys is a KeyAssociations kept in memory, for tests and as a
// model of what a trust store does with KeyAlert events. The zero value
// is ready to use.
type MemoryKeys struct {
	mu sync.Mutex
	m  map[string][]KnownKey
}

var _ KeyAssociations = (*MemoryKeys)(nil)

// Associate records key for peer, verified or not (a second call can
// mark it verified).
func (m *MemoryKeys) Associate(peer string, key *PublicKey, verified bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]KnownKey{}
	}
	fp := key.Fingerprint()
	for i, k := range m.m[peer] {
		if k.Key.Fingerprint() == fp {
			m.m[peer][i].Verified = verified
			return
		}
	}
	m.m[peer] = append(m.m[peer], KnownKey{Key: key, Verified: verified})
}

// KeysFor returns the keys associated with peer.
func (m *MemoryKeys) KeysFor(peer string) ([]KnownKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.m[peer]), nil
}

// JIDsFor returns the JIDs associated with the fingerprint, sorted.
func (m *MemoryKeys) JIDsFor(fingerprint [32]byte) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for peer, list := range m.m {
		for _, k := range list {
			if k.Key.Fingerprint() == fingerprint {
				out = append(out, peer)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// OtherSecrets supplies the Other Shared Secret of XEP-0116 (§3, "Other
// Secret"): a password both users entered for each other, mixed into the
// final session key K' = HASH(K | SRS | OSS) of the 4-message exchange. A
// peer that uses another password, or none, cannot complete the
// negotiation (it fails with ErrAuthentication). Implementations must be
// safe for concurrent use.
type OtherSecrets interface {
	// OtherSecret returns the secret shared with peer (a bare JID), or
	// false if there is none.
	OtherSecret(peer string) ([]byte, bool)
}

// Password is an OtherSecrets holding one password per peer; the OSS is
// the password's UTF-8 bytes as typed (no Unicode normalisation: both
// users must type the same characters). The zero value is ready to use.
type Password struct {
	mu sync.Mutex
	m  map[string]string
}

var _ OtherSecrets = (*Password)(nil)

// Set records the password shared with peer; an empty one removes it.
func (p *Password) Set(peer, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]string{}
	}
	if password == "" {
		delete(p.m, peer)
		return
	}
	p.m[peer] = password
}

// OtherSecret returns the password shared with peer as bytes.
func (p *Password) OtherSecret(peer string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.m[peer]
	return []byte(pw), ok
}
