package esession

import (
	"crypto/rand"
	"io"
	"slices"
	"sync"

	engine "github.com/balcony-im/balcony/esession"
)

// passwords holds the passwords users entered to share with a contact
// for one negotiation (XEP-0116 "other shared secret"): the engine mixes
// the one set for the peer into the session key of the 4-message
// exchange. A password is kept only until a session with the contact is
// established or fails, then wiped.
type passwords struct {
	mu sync.Mutex
	m  map[string][]byte // peer bare JID -> password
}

var _ engine.OtherSecrets = (*passwords)(nil)

// set records a copy of pw for peer; an empty one removes it.
func (p *passwords) set(peer string, pw []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.m[peer]; old != nil {
		clear(old)
		delete(p.m, peer)
	}
	if len(pw) == 0 {
		return
	}
	if p.m == nil {
		p.m = map[string][]byte{}
	}
	p.m[peer] = slices.Clone(pw)
}

// OtherSecret returns a copy of the password for peer.
func (p *passwords) OtherSecret(peer string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pw, ok := p.m[peer]
	return slices.Clone(pw), ok
}

// forget wipes the password for peer.
func (p *passwords) forget(peer string) { p.set(peer, nil) }

// randReader is the default source of randomness.
func randReader() io.Reader { return rand.Reader }
