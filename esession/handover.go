package esession

import (
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/balcony-im/balcony/xmltree"
)

// This file moves an encrypted session to another resource of this
// client (XEP-0155 §5): after the peer acknowledged Continue, the old
// resource exports the session's state and the new one adopts it, so that
// the keys and counters go on where they were.

// handoverVersion is the first byte of a handover state.
const handoverVersion = 2

// ErrHandover reports a handover state that cannot be adopted.
var ErrHandover = errors.New("esession: unusable session handover")

// Handover exports the state of an encrypted session that the peer agreed
// to continue with another resource of this client (a Moved event with
// Handover set), and ends the session here, wiping its keys. The state
// holds the session keys: the caller must carry it to the new resource
// over a channel that protects it (never the session's peer or servers in
// the clear), clear it after use, and have the new resource call
// Manager.Adopt before the peer's next stanza arrives there.
func (s *Session) Handover() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return nil, ErrEnded
	}
	if s.step != stepMoved {
		return nil, ErrState
	}
	var b cryptobyte.Builder
	b.AddUint8(handoverVersion)
	str := func(v string) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
	}
	bytes16 := func(v []byte) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v) })
	}
	flag := func(v bool) {
		if v {
			b.AddUint8(1)
		} else {
			b.AddUint8(0)
		}
	}
	p := &s.params
	str(s.thread)
	str(s.peerBare)
	str(s.peer)
	b.AddUint8(uint8(s.role))
	flag(s.cfg.cv.gajim)
	str(p.Security)
	str(p.Logging)
	str(p.Disclosure)
	b.AddUint16(uint16(p.Group))
	str(p.Version)
	str(p.Cipher)
	b.AddUint8(uint8(len(p.Stanzas)))
	for _, k := range p.Stanzas {
		str(k)
	}
	b.AddUint32(p.RekeyFreq)
	str(p.InitiatorKey)
	str(p.ResponderKey)
	str(p.SignAlg)
	flag(p.ThreeMessage)
	flag(p.SharePresence)
	str(s.sas)
	flag(s.sasConfirmed)
	flag(s.chainVerified)
	flag(s.peerKeyVerified)
	var pk []byte
	if s.peerKey != nil {
		pk = s.peerKey.normalized()
	}
	bytes16(pk)
	ch := s.ch
	flag(ch.pad)
	for _, d := range []*direction{&ch.send, &ch.recv} {
		b.AddBytes(d.kc[:])
		b.AddUint8(uint8(d.kcLen))
		b.AddBytes(d.km[:])
		b.AddBytes(d.ctr[:])
		b.AddUint64(d.used)
	}
	r := &ch.rk
	flag(r.enabled)
	var peerPub []byte
	if r.peerPub != nil {
		peerPub = mpi(r.peerPub)
	}
	bytes16(peerPub)
	b.AddUint32(uint32(r.newKeys))
	b.AddUint64(r.exchanged)
	b.AddUint8(uint8(len(r.sets)))
	for _, set := range r.sets {
		b.AddBytes(set.kc[:])
		b.AddBytes(set.km[:])
		bytes16(set.x)
		b.AddUint64(uint64(set.created.UnixNano()))
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("esession: encoding the handover: %w", err)
	}
	s.end("handed over to "+s.moveTo, nil)
	return out, nil
}

// Adopt takes over an encrypted session that another resource of this
// client handed over (Session.Handover). The Manager's Config must allow
// the session's group and profile. The session is active at once, bound
// to the same peer resource; the caller should clear state afterwards.
func (m *Manager) Adopt(state []byte) (*Session, error) {
	s, err := m.decodeHandover(state)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := sessionKey{s.peerBare, s.thread}
	if _, ok := m.sessions[k]; ok || !m.room() {
		s.end("not adopted", nil)
		return nil, fmt.Errorf("%w: the thread is in use or there is no room", ErrHandover)
	}
	m.add(k, s)
	return s, nil
}

func (m *Manager) decodeHandover(state []byte) (*Session, error) {
	in := cryptobyte.String(state)
	bad := func(what string) (*Session, error) { return nil, fmt.Errorf("%w: %s", ErrHandover, what) }
	var ver, role, n uint8
	var group uint16
	str := func() (string, bool) {
		var v cryptobyte.String
		ok := in.ReadUint16LengthPrefixed(&v)
		return string(v), ok
	}
	flag := func() (bool, bool) {
		var v uint8
		ok := in.ReadUint8(&v) && v <= 1
		return v == 1, ok
	}
	if !in.ReadUint8(&ver) || ver != handoverVersion {
		return bad("version")
	}
	s := &Session{cfg: m.cfg, bound: true, wantE2E: true, step: stepActive, lastActive: m.cfg.now()}
	p := &s.params
	ok := true
	get := func(dst *string) {
		v, o := str()
		*dst, ok = v, ok && o
	}
	getFlag := func(dst *bool) {
		v, o := flag()
		*dst, ok = v, ok && o
	}
	get(&s.thread)
	get(&s.peerBare)
	get(&s.peer)
	ok = ok && in.ReadUint8(&role) && role <= uint8(Responder)
	s.role = Role(role)
	var gajim bool
	getFlag(&gajim)
	get(&p.Security)
	get(&p.Logging)
	get(&p.Disclosure)
	ok = ok && in.ReadUint16(&group)
	p.Group = int(group)
	get(&p.Version)
	get(&p.Cipher)
	ok = ok && in.ReadUint8(&n) && n <= 3
	for range n {
		var k string
		get(&k)
		p.Stanzas = append(p.Stanzas, k)
	}
	ok = ok && in.ReadUint32(&p.RekeyFreq)
	get(&p.InitiatorKey)
	get(&p.ResponderKey)
	get(&p.SignAlg)
	getFlag(&p.ThreeMessage)
	getFlag(&p.SharePresence)
	get(&s.sas)
	getFlag(&s.sasConfirmed)
	getFlag(&s.chainVerified)
	getFlag(&s.peerKeyVerified)
	pk, o := str()
	ok = ok && o
	if !ok || s.thread == "" || Bare(s.peer) != s.peerBare || gajim != m.cfg.cv.gajim || keyLenOf(p.Cipher) == 0 {
		return bad("session")
	}
	g := m.cfg.group(p.Group)
	if g == nil {
		return bad("group not allowed here")
	}
	if pk != "" {
		el, err := xmltree.Parse([]byte(pk), nil)
		if err != nil {
			return bad("peer key")
		}
		if s.peerKey, err = ParseKeyValue(el); err != nil {
			return bad("peer key")
		}
	}
	ch := &channel{cv: m.cfg.cv}
	s.ch = ch
	getFlag(&ch.pad)
	for _, d := range []*direction{&ch.send, &ch.recv} {
		var ks keySet
		var kcLen uint8
		var ctr counter
		var used uint64
		ok = ok && in.CopyBytes(ks.kc[:]) && in.ReadUint8(&kcLen) && in.CopyBytes(ks.km[:]) && in.CopyBytes(ctr[:]) && in.ReadUint64(&used)
		ks.kcLen = int(kcLen)
		if !ok || keyLenOf(p.Cipher) != ks.kcLen && !(gajim && ks.kcLen == 32) {
			s.end("", nil)
			return bad("keys")
		}
		d.init(&ks, ctr, ch.cv)
		d.used = used
		ks.wipe()
	}
	r := &ch.rk
	var peerPub cryptobyte.String
	var newKeys uint32
	getFlag(&r.enabled)
	ok = ok && in.ReadUint16LengthPrefixed(&peerPub) && in.ReadUint32(&newKeys) && in.ReadUint64(&r.exchanged) && in.ReadUint8(&n)
	r.peerPub = new(big.Int).SetBytes(peerPub)
	r.group, r.keyLen, r.freq, r.newKeys = g, ch.send.kcLen, p.RekeyFreq, int(newKeys)
	r.rand, r.now, r.grace = m.cfg.rand, m.cfg.now, m.cfg.rekeyGrace
	if !ok || n == 0 || g.CheckElement(r.peerPub) != nil {
		s.end("", nil)
		return bad("key exchange state")
	}
	for range n {
		var set recvSet
		var x cryptobyte.String
		var created uint64
		if !in.CopyBytes(set.kc[:]) || !in.CopyBytes(set.km[:]) || !in.ReadUint16LengthPrefixed(&x) || !in.ReadUint64(&created) || len(x) == 0 {
			s.end("", nil)
			return bad("key sets")
		}
		set.x = append([]byte(nil), x...) // the caller clears state
		set.created = time.Unix(0, int64(created))
		r.sets = append(r.sets, set)
	}
	if !in.Empty() {
		s.end("", nil)
		return bad("trailing data")
	}
	return s, nil
}
