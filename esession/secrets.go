package esession

import (
	"crypto/subtle"
	"slices"
	"sync"
	"time"
)

// Secret is a retained secret shared with one of a peer's clients
// (XEP-0217 §5.3.3).
type Secret struct {
	Value [32]byte
	// Verified records that the chain of sessions this secret continues
	// was verified by the user comparing a short authentication string.
	Verified bool
	// Created is when the secret was computed; secrets older than the
	// configured lifetime are not used.
	Created time.Time
}

// RetainedSecrets stores retained secrets per peer bare JID. The store
// layer implements it with encryption at rest; MemorySecrets is an
// in-memory implementation for tests. Implementations must be safe for
// concurrent use.
//
// A peer may have several secrets, one for each of its clients this
// client has negotiated with. After each session the engine calls Replace
// with the secret that matched (nil if none did) and the new one: the old
// secret must be destroyed and the new one stored in its place, in one
// atomic step. Confirming a SAS calls Verify with the session's secret: it
// must set Verified on that secret if, and only if, it is still stored
// (a later session may have replaced it already), and report whether it
// was; it never inserts anything. When a lookup returned secrets older
// than the configured lifetime, the engine ignores them and calls Expire,
// which must destroy every secret of peer created before the given time.
type RetainedSecrets interface {
	Lookup(peer string) ([]Secret, error)
	Replace(peer string, old *[32]byte, new Secret) error
	Verify(peer string, value *[32]byte) (found bool, err error)
	Expire(peer string, createdBefore time.Time) error
}

// DefaultSecretLifetime is how long a retained secret stays usable when
// Config.SecretLifetime is zero. XEP-0217 §5.3.3 leaves it to the
// implementation; three months bound how long a stolen secret helps an
// attacker while sparing users who talk less than weekly a new SAS
// comparison.
const DefaultSecretLifetime = 90 * 24 * time.Hour

// MemorySecrets is a RetainedSecrets kept in memory. The zero value is
// ready to use.
type MemorySecrets struct {
	mu sync.Mutex
	m  map[string][]Secret
}

var _ RetainedSecrets = (*MemorySecrets)(nil)

// Lookup returns copies of the secrets retained for peer.
func (s *MemorySecrets) Lookup(peer string) ([]Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.m[peer]), nil
}

// Replace wipes the secret equal to old, if any, and stores new.
func (s *MemorySecrets) Replace(peer string, old *[32]byte, new Secret) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]Secret{}
	}
	list := s.m[peer]
	if old != nil {
		for i := range list {
			if subtle.ConstantTimeCompare(list[i].Value[:], old[:]) == 1 {
				clear(list[i].Value[:])
				list = slices.Delete(list, i, i+1)
				break
			}
		}
	}
	s.m[peer] = append(list, new)
	return nil
}

// Verify marks the secret equal to value as verified, if it is stored,
// and reports whether it was.
func (s *MemorySecrets) Verify(peer string, value *[32]byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.m[peer]
	found := -1
	for i := range list {
		if subtle.ConstantTimeCompare(list[i].Value[:], value[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return false, nil
	}
	list[found].Verified = true
	return true, nil
}

// Expire wipes the secrets retained for peer that were created before the
// given time.
func (s *MemorySecrets) Expire(peer string, createdBefore time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.m[peer]
	kept := list[:0]
	for _, sc := range list {
		if sc.Created.Before(createdBefore) {
			clear(sc.Value[:])
			continue
		}
		kept = append(kept, sc)
	}
	clear(list[len(kept):])
	if len(kept) == 0 {
		delete(s.m, peer)
	} else {
		s.m[peer] = kept
	}
	return nil
}

// Forget wipes every secret retained for peer.
func (s *MemorySecrets) Forget(peer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.m[peer] {
		clear(s.m[peer][i].Value[:])
	}
	delete(s.m, peer)
}
