package omemo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"

	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/trust"
)

// The engine's state in the store (Store.MechanismState, mechanism
// trust.OMEMO), one sealed value per name:
//
//	account                     device id and identity key (both generations)
//	keys/<g>                    the signed pre-keys and pre-keys of generation g
//	session/<g>/<bare JID>/<id> a session with one device
//	devices/<bare JID>          what is known of an account's devices (JSON)
//	published                   present once this device published itself
//	off                         present while OMEMO is turned off (TurnOff)
//
// where <g> is 1 for OMEMO 0.3 and 2 for OMEMO 2.
const (
	nameAccount   = "account"
	namePublished = "published"
	nameOff       = "off"
	// nameDevicesPrefix starts the names of nameDevices.
	nameDevicesPrefix = "devices/"
)

func nameKeys(g engine.Generation) string { return "keys/" + strconv.Itoa(int(g)) }

func nameSession(g engine.Generation, a engine.Address) string {
	return "session/" + strconv.Itoa(int(g)) + "/" + a.JID + "/" + formatID(a.DeviceID)
}

func nameDevices(bare string) string { return nameDevicesPrefix + bare }

// stage is the engine.Store of a Device: reads go to the account's store
// (or to what the current operation wrote), writes wait in memory until
// commit writes them all in one transaction, so that a message changes the
// stored state completely or not at all (a session and the pre-key it
// consumed, say). Only the Device's operations use it, under its lock.
type stage struct {
	st  Store
	ctx context.Context
	set map[string][]byte
	del map[string]bool
}

var _ engine.Store = (*stage)(nil)

func newStage(st Store) *stage {
	return &stage{st: st, ctx: context.Background(), set: map[string][]byte{}, del: map[string]bool{}}
}

func (s *stage) get(name string) ([]byte, error) {
	if s.del[name] {
		return nil, nil
	}
	if v, ok := s.set[name]; ok {
		return slices.Clone(v), nil
	}
	return s.st.MechanismState(s.ctx, trust.OMEMO, name)
}

func (s *stage) put(name string, v []byte) {
	delete(s.del, name)
	if old, ok := s.set[name]; ok {
		clear(old)
	}
	s.set[name] = v
}

func (s *stage) remove(name string) {
	if old, ok := s.set[name]; ok {
		clear(old)
		delete(s.set, name)
	}
	s.del[name] = true
}

func (s *stage) pending() bool { return len(s.set) > 0 || len(s.del) > 0 }

// commit writes what the operation changed, in one transaction.
func (s *stage) commit() error {
	if !s.pending() {
		return nil
	}
	err := s.st.UpdateMechanismState(s.ctx, trust.OMEMO, s.set, slices.Sorted(maps.Keys(s.del)))
	s.discard()
	if err != nil {
		return fmt.Errorf("client: storing the OMEMO state: %w", err)
	}
	return nil
}

// discard forgets (and wipes) what the operation changed.
func (s *stage) discard() {
	for _, v := range s.set {
		clear(v)
	}
	clear(s.set)
	clear(s.del)
}

// LoadAccount implements engine.Store.
func (s *stage) LoadAccount() (*engine.Account, error) {
	b, err := s.get(nameAccount)
	if err != nil || b == nil {
		return nil, err
	}
	defer clear(b)
	return decodeAccount(b)
}

// StoreAccount implements engine.Store.
func (s *stage) StoreAccount(a *engine.Account) error {
	s.put(nameAccount, encodeAccount(a))
	return nil
}

// LoadKeys implements engine.Store.
func (s *stage) LoadKeys(g engine.Generation) (*engine.Keys, error) {
	b, err := s.get(nameKeys(g))
	if err != nil || b == nil {
		return nil, err
	}
	defer clear(b)
	return decodeKeys(b)
}

// StoreKeys implements engine.Store.
func (s *stage) StoreKeys(g engine.Generation, k *engine.Keys) error {
	s.put(nameKeys(g), encodeKeys(k))
	return nil
}

// LoadSession implements engine.Store.
func (s *stage) LoadSession(g engine.Generation, a engine.Address) ([]byte, error) {
	return s.get(nameSession(g, a))
}

// StoreSession implements engine.Store.
func (s *stage) StoreSession(g engine.Generation, a engine.Address, state []byte) error {
	s.put(nameSession(g, a), slices.Clone(state))
	return nil
}

// DeleteSession implements engine.Store.
func (s *stage) DeleteSession(g engine.Generation, a engine.Address) error {
	s.remove(nameSession(g, a))
	return nil
}

// Encodings of the engine's records: a version byte, then fixed fields
// (cryptobyte), so that a later version reads what this one wrote.

const stateVersion = 1

var errState = errors.New("client: stored OMEMO state does not parse")

func encodeAccount(a *engine.Account) []byte {
	var b cryptobyte.Builder
	b.AddUint8(stateVersion)
	b.AddUint32(a.DeviceID)
	b.AddBytes(a.Identity.Seed[:])
	return b.BytesOrPanic()
}

func decodeAccount(data []byte) (*engine.Account, error) {
	in := cryptobyte.String(data)
	var v uint8
	a := new(engine.Account)
	if !in.ReadUint8(&v) || v != stateVersion || !in.ReadUint32(&a.DeviceID) || !in.CopyBytes(a.Identity.Seed[:]) || !in.Empty() {
		return nil, fmt.Errorf("%w: account", errState)
	}
	return a, nil
}

func encodeKeys(k *engine.Keys) []byte {
	var b cryptobyte.Builder
	b.AddUint8(stateVersion)
	b.AddUint32(k.NextPreKeyID)
	b.AddUint32(k.NextSignedPreKeyID)
	b.AddUint16(uint16(len(k.SignedPreKeys)))
	for _, s := range k.SignedPreKeys {
		b.AddUint32(s.ID)
		b.AddBytes(s.KeyPair.Private[:])
		b.AddBytes(s.KeyPair.Public[:])
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.Signature) })
		b.AddUint64(uint64(s.Created.UnixNano()))
	}
	b.AddUint32(uint32(len(k.PreKeys)))
	for _, p := range k.PreKeys {
		b.AddUint32(p.ID)
		b.AddBytes(p.KeyPair.Private[:])
		b.AddBytes(p.KeyPair.Public[:])
		used := uint8(0)
		if p.Used {
			used = 1
		}
		b.AddUint8(used)
	}
	return b.BytesOrPanic()
}

// maxStoredPreKeys bounds what decodeKeys accepts.
const maxStoredPreKeys = 1 << 16

func decodeKeys(data []byte) (*engine.Keys, error) {
	in := cryptobyte.String(data)
	bad := fmt.Errorf("%w: pre-keys", errState)
	var v uint8
	var nSPK uint16
	k := new(engine.Keys)
	if !in.ReadUint8(&v) || v != stateVersion || !in.ReadUint32(&k.NextPreKeyID) || !in.ReadUint32(&k.NextSignedPreKeyID) || !in.ReadUint16(&nSPK) {
		return nil, bad
	}
	for range nSPK {
		var s engine.SignedPreKey
		var sig cryptobyte.String
		var created uint64
		if !in.ReadUint32(&s.ID) || !in.CopyBytes(s.KeyPair.Private[:]) || !in.CopyBytes(s.KeyPair.Public[:]) ||
			!in.ReadUint16LengthPrefixed(&sig) || !in.ReadUint64(&created) {
			return nil, bad
		}
		s.Signature = slices.Clone([]byte(sig))
		s.Created = time.Unix(0, int64(created)).UTC()
		k.SignedPreKeys = append(k.SignedPreKeys, s)
	}
	var nPK uint32
	if !in.ReadUint32(&nPK) || nPK > maxStoredPreKeys {
		return nil, bad
	}
	k.PreKeys = make([]engine.PreKey, 0, nPK)
	for range nPK {
		var p engine.PreKey
		var used uint8
		if !in.ReadUint32(&p.ID) || !in.CopyBytes(p.KeyPair.Private[:]) || !in.CopyBytes(p.KeyPair.Public[:]) || !in.ReadUint8(&used) || used > 1 {
			return nil, bad
		}
		p.Used = used == 1
		k.PreKeys = append(k.PreKeys, p)
	}
	if !in.Empty() {
		return nil, bad
	}
	return k, nil
}
