package omemo

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Defaults of Config.
const (
	// DefaultPreKeys is how many one-time pre-keys the bundle carries
	// (XEP-0384 §4.2: "around 100").
	DefaultPreKeys = 100
	// DefaultPreKeyRefill: when fewer unused pre-keys than this remain,
	// the set is refilled to PreKeys (the bundle MUST hold at least 25).
	DefaultPreKeyRefill = 90
	// DefaultSignedPreKeyRotation is the signed pre-key's lifetime; the
	// previous one is accepted for one more period (XEP-0384 §4.2: rotate
	// weekly to monthly, keep the old private key one more period).
	DefaultSignedPreKeyRotation = 7 * 24 * time.Hour
	// HeartbeatThreshold is the message counter from which a received
	// message asks for a heartbeat: XEP-0384 §7 says a client MUST send an
	// empty message on the first message of a ratchet key with a counter
	// of 53 or more, so that a one-way flow still ratchets forward
	// (python-omemo's STALENESS_MAGIC_NUMBER is the same 53).
	HeartbeatThreshold = 53
)

// Config configures a Manager. Store is required; the rest have defaults.
type Config struct {
	Generation Generation
	Store      Store
	// Rand is the source of randomness (nil: crypto/rand.Reader).
	Rand io.Reader
	// Now is the clock, used for signed pre-key rotation (nil: time.Now).
	Now func() time.Time
	// PreKeys, PreKeyRefill, SignedPreKeyRotation: see the Default
	// constants; zero selects the default.
	PreKeys              int
	PreKeyRefill         int
	SignedPreKeyRotation time.Duration
	// MaxSkip and MaxSkippedKeys bound skipped message keys per message
	// and per session (zero: DefaultMaxSkip, DefaultMaxSkippedKeys).
	MaxSkip        int
	MaxSkippedKeys int
}

// Manager is the OMEMO engine of one device for one generation. Two
// Managers, one per generation, may share a Store: they share the device
// id and identity key and keep separate pre-keys and sessions.
//
// A Manager is not safe for concurrent use: the caller serialises calls,
// as it must serialise the messages of a session anyway.
type Manager struct {
	cfg     Config
	account *Account
	// Derived once from the identity seed: the public key in the
	// generation's wire form and the X25519 private key.
	idWire [32]byte
	idPriv [32]byte
	// sessions caches the last stored state of each session, so that a
	// message costs one marshal and no unmarshal; Store stays the truth.
	sessions map[Address]*session
	buf      []byte
}

// New loads the device's state from cfg.Store, creating the identity key,
// device id, signed pre-key and pre-keys on first use.
func New(cfg Config) (*Manager, error) {
	if !cfg.Generation.valid() {
		return nil, fmt.Errorf("omemo: unknown generation %d", cfg.Generation)
	}
	if cfg.Store == nil {
		return nil, errors.New("omemo: Config.Store is nil")
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PreKeys <= 0 {
		cfg.PreKeys = DefaultPreKeys
	}
	if cfg.PreKeyRefill <= 0 {
		cfg.PreKeyRefill = DefaultPreKeyRefill
	}
	if cfg.PreKeyRefill > cfg.PreKeys {
		cfg.PreKeyRefill = cfg.PreKeys
	}
	if cfg.SignedPreKeyRotation <= 0 {
		cfg.SignedPreKeyRotation = DefaultSignedPreKeyRotation
	}
	if cfg.MaxSkip <= 0 {
		cfg.MaxSkip = DefaultMaxSkip
	}
	if cfg.MaxSkippedKeys <= 0 {
		cfg.MaxSkippedKeys = DefaultMaxSkippedKeys
	}
	if cfg.MaxSkippedKeys > math.MaxUint16 {
		cfg.MaxSkippedKeys = math.MaxUint16 // the session record's limit
	}
	m := &Manager{cfg: cfg, sessions: make(map[Address]*session)}
	acc, err := cfg.Store.LoadAccount()
	if err != nil {
		return nil, fmt.Errorf("omemo: loading account: %w", err)
	}
	if acc == nil {
		acc = new(Account)
		if acc.DeviceID, err = GenerateDeviceID(cfg.Rand); err != nil {
			return nil, err
		}
		if err := readRand(cfg.Rand, acc.Identity.Seed[:]); err != nil {
			return nil, err
		}
		if err := cfg.Store.StoreAccount(acc); err != nil {
			return nil, fmt.Errorf("omemo: storing account: %w", err)
		}
	}
	if acc.DeviceID == 0 || acc.DeviceID > MaxDeviceID {
		return nil, fmt.Errorf("%w: device id %d", ErrCorruptState, acc.DeviceID)
	}
	m.account = acc
	if cfg.Generation == V2 {
		m.idWire = acc.Identity.Ed25519Public()
	} else {
		m.idWire = acc.Identity.X25519Public()
	}
	m.idPriv = acc.Identity.x25519Private()
	if _, err := m.Maintain(); err != nil {
		return nil, err
	}
	return m, nil
}

// Generation returns the generation this Manager speaks.
func (m *Manager) Generation() Generation { return m.cfg.Generation }

// DeviceID returns this device's id.
func (m *Manager) DeviceID() uint32 { return m.account.DeviceID }

// IdentityKey returns this device's public identity key in the
// generation's wire form (as in its bundle).
func (m *Manager) IdentityKey() []byte {
	w := m.identityWire()
	if m.cfg.Generation == V03 {
		return encodeCurve03(&w)
	}
	return w[:]
}

// identityWire is the own identity without the 0.3 prefix.
func (m *Manager) identityWire() [32]byte { return m.idWire }

// Fingerprint returns this device's fingerprint (see Fingerprint).
func (m *Manager) Fingerprint() string {
	f, _ := Fingerprint(m.cfg.Generation, m.IdentityKey())
	return f
}

func (m *Manager) loadKeys() (*Keys, error) {
	k, err := m.cfg.Store.LoadKeys(m.cfg.Generation)
	if err != nil {
		return nil, fmt.Errorf("omemo: loading pre-keys: %w", err)
	}
	if k == nil {
		k = &Keys{NextPreKeyID: 1, NextSignedPreKeyID: 1}
	}
	return k, nil
}

func (m *Manager) storeKeys(k *Keys) error {
	if err := m.cfg.Store.StoreKeys(m.cfg.Generation, k); err != nil {
		return fmt.Errorf("omemo: storing pre-keys: %w", err)
	}
	return nil
}

// nextID returns id and the id after it, wrapping within 1..2^31-1.
func nextID(id *uint32) uint32 {
	if *id == 0 || *id > MaxDeviceID {
		*id = 1
	}
	v := *id
	*id = v%MaxDeviceID + 1
	return v
}

// Maintain brings the pre-keys up to date: it rotates the signed pre-key
// when it is older than the rotation period (dropping those older than
// two periods) and refills the one-time pre-keys when fewer than the
// refill threshold are unused. It reports whether the bundle changed, in
// which case the caller republishes it. New calls it; call it again
// periodically (say daily) and after Decrypt reports BundleChanged.
func (m *Manager) Maintain() (changed bool, err error) {
	k, err := m.loadKeys()
	if err != nil {
		return false, err
	}
	now := m.cfg.Now()
	if len(k.SignedPreKeys) == 0 || now.Sub(k.SignedPreKeys[0].Created) >= m.cfg.SignedPreKeyRotation {
		if err := m.rotate(k, now); err != nil {
			return false, err
		}
		changed = true
	}
	kept := k.SignedPreKeys[:1]
	for _, s := range k.SignedPreKeys[1:] {
		if now.Sub(s.Created) < 2*m.cfg.SignedPreKeyRotation {
			kept = append(kept, s)
		} else {
			s.KeyPair.Wipe()
		}
	}
	if len(kept) != len(k.SignedPreKeys) {
		changed = true
	}
	k.SignedPreKeys = kept
	unused := 0
	for _, p := range k.PreKeys {
		if !p.Used {
			unused++
		}
	}
	if unused < m.cfg.PreKeyRefill {
		for ; unused < m.cfg.PreKeys; unused++ {
			kp, err := GenerateKeyPair(m.cfg.Rand)
			if err != nil {
				return false, err
			}
			k.PreKeys = append(k.PreKeys, PreKey{ID: nextID(&k.NextPreKeyID), KeyPair: kp})
		}
		changed = true
	}
	if changed {
		if err := m.storeKeys(k); err != nil {
			return false, err
		}
	}
	return changed, nil
}

// RotateSignedPreKey replaces the signed pre-key now, keeping the previous
// one for delayed key exchanges. The caller republishes the bundle.
func (m *Manager) RotateSignedPreKey() error {
	k, err := m.loadKeys()
	if err != nil {
		return err
	}
	if err := m.rotate(k, m.cfg.Now()); err != nil {
		return err
	}
	return m.storeKeys(k)
}

func (m *Manager) rotate(k *Keys, now time.Time) error {
	kp, err := GenerateKeyPair(m.cfg.Rand)
	if err != nil {
		return err
	}
	spk := SignedPreKey{ID: nextID(&k.NextSignedPreKeyID), KeyPair: kp, Created: now}
	if m.cfg.Generation == V2 {
		spk.Signature = m.account.Identity.signEd25519(kp.Public[:])
	} else if spk.Signature, err = m.account.Identity.signXEdDSA(m.cfg.Rand, encodeCurve03(&kp.Public)); err != nil {
		return err
	}
	k.SignedPreKeys = append([]SignedPreKey{spk}, k.SignedPreKeys...)
	return nil
}

// Bundle returns this device's bundle to publish: the current signed
// pre-key and the unused one-time pre-keys.
func (m *Manager) Bundle() (*Bundle, error) {
	k, err := m.loadKeys()
	if err != nil {
		return nil, err
	}
	if len(k.SignedPreKeys) == 0 {
		return nil, fmt.Errorf("%w: no signed pre-key", ErrCorruptState)
	}
	enc := func(p *[32]byte) []byte {
		if m.cfg.Generation == V03 {
			return encodeCurve03(p)
		}
		return append([]byte(nil), p[:]...)
	}
	spk := k.SignedPreKeys[0]
	b := &Bundle{
		Generation:            m.cfg.Generation,
		DeviceID:              m.account.DeviceID,
		IdentityKey:           m.IdentityKey(),
		SignedPreKeyID:        spk.ID,
		SignedPreKey:          enc(&spk.KeyPair.Public),
		SignedPreKeySignature: append([]byte(nil), spk.Signature...),
	}
	for _, p := range k.PreKeys {
		if !p.Used {
			b.PreKeys = append(b.PreKeys, BundlePreKey{ID: p.ID, PublicKey: enc(&p.KeyPair.Public)})
		}
	}
	return b, nil
}

// FinishCatchUp deletes the private parts of the pre-keys consumed by key
// exchanges decrypted with Incoming.Archived set (XEP-0384 §7: postpone
// deletion until the catch-up is complete). It reports whether any were
// deleted.
func (m *Manager) FinishCatchUp() (bool, error) {
	k, err := m.loadKeys()
	if err != nil {
		return false, err
	}
	kept := k.PreKeys[:0]
	for _, p := range k.PreKeys {
		if p.Used {
			p.KeyPair.Wipe()
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(k.PreKeys) {
		return false, nil
	}
	k.PreKeys = kept
	return true, m.storeKeys(k)
}

// HasSession reports whether a session with the device exists.
func (m *Manager) HasSession(device Address) (bool, error) {
	b, err := m.cfg.Store.LoadSession(m.cfg.Generation, device)
	if err != nil {
		return false, fmt.Errorf("omemo: loading session: %w", err)
	}
	return b != nil, nil
}

// DeleteSession forgets the session with a device, for the manual session
// replacement XEP-0384 §7 asks clients to offer.
func (m *Manager) DeleteSession(device Address) error {
	if s := m.sessions[device]; s != nil {
		s.wipe()
		delete(m.sessions, device)
	}
	if err := m.cfg.Store.DeleteSession(m.cfg.Generation, device); err != nil {
		return fmt.Errorf("omemo: deleting session: %w", err)
	}
	return nil
}

// loadSession returns a private copy of the session with device (nil if
// none); changes take effect only through storeSession.
func (m *Manager) loadSession(device Address) (*session, error) {
	if s := m.sessions[device]; s != nil {
		return s.clone(), nil
	}
	b, err := m.cfg.Store.LoadSession(m.cfg.Generation, device)
	if err != nil {
		return nil, fmt.Errorf("omemo: loading session: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	s, err := unmarshalSession(b)
	if err != nil {
		return nil, err
	}
	if s.gen != m.cfg.Generation {
		return nil, fmt.Errorf("%w: session of another generation", ErrCorruptState)
	}
	m.sessions[device] = s.clone()
	return s, nil
}

// storeSession persists s, which the Manager then owns.
func (m *Manager) storeSession(device Address, s *session) error {
	m.buf = s.appendTo(m.buf[:0])
	err := m.cfg.Store.StoreSession(m.cfg.Generation, device, m.buf)
	clear(m.buf)
	if err != nil {
		delete(m.sessions, device)
		return fmt.Errorf("omemo: storing session: %w", err)
	}
	if old := m.sessions[device]; old != s && old != nil {
		old.wipe()
	}
	m.sessions[device] = s
	return nil
}

// Close wipes the key material the Manager holds in memory (the cached
// identity private key and sessions). The Manager is unusable afterwards;
// the Store is untouched.
func (m *Manager) Close() {
	clear(m.idPriv[:])
	for a, s := range m.sessions {
		s.wipe()
		delete(m.sessions, a)
	}
	clear(m.buf)
	m.account.Identity.Wipe()
}

// SignLabel returns the labelsig attribute value (before base64) for this
// device's label in an OMEMO 2 device list (XEP-0384 §5.3.2): the Ed25519
// signature of the UTF-8 label with the identity key.
func (m *Manager) SignLabel(label string) ([]byte, error) {
	if m.cfg.Generation != V2 {
		return nil, errors.New("omemo: device labels exist only in OMEMO 2")
	}
	return m.account.Identity.signEd25519([]byte(label)), nil
}
