package omemo

import (
	"slices"
	"sync"
)

// Account is a device's long-term state, shared by both generations
// (python-omemo shares them too): its device id and identity key.
type Account struct {
	DeviceID uint32
	Identity IdentityKeyPair
}

// Keys is a device's pre-key state for one generation.
type Keys struct {
	// SignedPreKeys holds the current signed pre-key first, then the
	// previous ones still accepted for delayed key exchanges.
	SignedPreKeys []SignedPreKey
	// PreKeys holds the one-time pre-keys, published and Used ones.
	PreKeys []PreKey
	// NextPreKeyID and NextSignedPreKeyID are the ids the next generated
	// keys get; ids are not reused while they may still be referenced.
	NextPreKeyID       uint32
	NextSignedPreKeyID uint32
}

// Store persists the engine's state. A Manager reads each session from it
// once and keeps a copy, so only that Manager may change the sessions of
// its generation in a Store. It holds secrets: implementations
// keep it encrypted at rest or in 0600 files. Nothing about trust is
// stored here; trust decisions stay with the caller.
//
// Load methods return (nil, nil) when nothing is stored. A Manager calls
// the Store from the goroutine that calls the Manager.
type Store interface {
	LoadAccount() (*Account, error)
	StoreAccount(*Account) error
	LoadKeys(Generation) (*Keys, error)
	StoreKeys(Generation, *Keys) error
	// LoadSession returns the serialised session with a device.
	LoadSession(g Generation, device Address) ([]byte, error)
	// StoreSession must copy state if it keeps it: the Manager reuses
	// (and wipes) the slice after the call.
	StoreSession(g Generation, device Address, state []byte) error
	DeleteSession(g Generation, device Address) error
}

// MemoryStore is a Store in memory, for tests and ephemeral use. Its zero
// value is ready to use; it is safe for concurrent use and copies what it
// is given and what it returns.
type MemoryStore struct {
	mu       sync.Mutex
	account  *Account
	keys     map[Generation]*Keys
	sessions map[Generation]map[Address][]byte
}

var _ Store = (*MemoryStore)(nil)

// LoadAccount implements Store.
func (m *MemoryStore) LoadAccount() (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.account == nil {
		return nil, nil
	}
	a := *m.account
	return &a, nil
}

// StoreAccount implements Store.
func (m *MemoryStore) StoreAccount(a *Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *a
	m.account = &c
	return nil
}

func copyKeys(k *Keys) *Keys {
	c := *k
	c.SignedPreKeys = slices.Clone(k.SignedPreKeys)
	for i := range c.SignedPreKeys {
		c.SignedPreKeys[i].Signature = slices.Clone(c.SignedPreKeys[i].Signature)
	}
	c.PreKeys = slices.Clone(k.PreKeys)
	return &c
}

// LoadKeys implements Store.
func (m *MemoryStore) LoadKeys(g Generation) (*Keys, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.keys[g]
	if k == nil {
		return nil, nil
	}
	return copyKeys(k), nil
}

// StoreKeys implements Store.
func (m *MemoryStore) StoreKeys(g Generation, k *Keys) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = make(map[Generation]*Keys)
	}
	m.keys[g] = copyKeys(k)
	return nil
}

// LoadSession implements Store.
func (m *MemoryStore) LoadSession(g Generation, a Address) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sessions[g][a]), nil
}

// StoreSession implements Store.
func (m *MemoryStore) StoreSession(g Generation, a Address, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = make(map[Generation]map[Address][]byte)
	}
	if m.sessions[g] == nil {
		m.sessions[g] = make(map[Address][]byte)
	}
	m.sessions[g][a] = slices.Clone(state)
	return nil
}

// DeleteSession implements Store.
func (m *MemoryStore) DeleteSession(g Generation, a Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions[g], a)
	return nil
}
