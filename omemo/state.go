package omemo

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Session serialisation: a versioned binary record, so that sessions
// survive a restart and a later version can read what this one wrote.
//
//	"OMS" version(1)=1 gen(1) flags(1)
//	local(32) remote(32) rk(32) dhs.priv(32) dhs.pub(32) dhr(32) cks(32) ckr(32)
//	ns(4) nr(4) pn(4)
//	u16 count, count × (dh(32) n(4) mk(32))        skipped keys, oldest first
//	u8 count, count × dh(32)                        earlier ratchet keys
//	[pending kx]  [origin kx]   each: preKeyID(4) spkID(4) ik(32) base(32) regID(4)
//	[lostDH(32) lostN(4)]
//	version 2 only: u8 count (1..maxArchived), count × (u24 length, record)
//
// flags: 1 initiator, 2 hasDHr, 4 hasCKs, 8 hasCKr, 16 pending, 32 origin,
// 64 heartbeat, 128 lost.
//
// Version 1 is a session with no archived states; version 2 adds the
// archived states (see session.archive), each a version 1 record of its
// own, newest first. A record is written as version 1 whenever the
// archive is empty, so each session has exactly one encoding and records
// from before the archive existed load unchanged.

const (
	stateVersion1 = 1
	stateVersion2 = 2
)

const (
	flagInitiator = 1 << iota
	flagDHr
	flagCKs
	flagCKr
	flagPending
	flagOrigin
	flagHeartbeat
	flagLost
)

func (s *session) marshal() []byte { return s.appendTo(nil) }

// appendTo appends the record to buf.
func (s *session) appendTo(buf []byte) []byte {
	var flags uint8
	set := func(c bool, f uint8) {
		if c {
			flags |= f
		}
	}
	set(s.initiator, flagInitiator)
	set(s.hasDHr, flagDHr)
	set(s.hasCKs, flagCKs)
	set(s.hasCKr, flagCKr)
	set(s.pending != nil, flagPending)
	set(s.origin != nil, flagOrigin)
	set(s.heartbeat, flagHeartbeat)
	set(s.hasLost, flagLost)
	need := 6 + 8*32 + 12 + 3 + len(s.skipped)*68 + 1 + len(s.prev)*32 + 2*76 + 36
	out := slices.Grow(buf, need)
	version := uint8(stateVersion1)
	if len(s.archive) > 0 {
		version = stateVersion2
	}
	out = append(out, "OMS"...)
	out = append(out, version, uint8(s.gen), flags)
	for _, k := range []*[32]byte{&s.local, &s.remote, &s.rk, &s.dhs.Private, &s.dhs.Public, &s.dhr, &s.cks, &s.ckr} {
		out = append(out, k[:]...)
	}
	out = binary.BigEndian.AppendUint32(out, s.ns)
	out = binary.BigEndian.AppendUint32(out, s.nr)
	out = binary.BigEndian.AppendUint32(out, s.pn)
	out = binary.BigEndian.AppendUint16(out, uint16(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		out = append(out, k.dh[:]...)
		out = binary.BigEndian.AppendUint32(out, k.n)
		out = append(out, k.mk[:]...)
	}
	out = append(out, uint8(len(s.prev)))
	for _, p := range s.prev {
		out = append(out, p[:]...)
	}
	for _, kx := range []*keyExchange{s.pending, s.origin} {
		if kx != nil {
			out = binary.BigEndian.AppendUint32(out, kx.preKeyID)
			out = binary.BigEndian.AppendUint32(out, kx.signedPreKeyID)
			out = append(out, kx.identityKey[:]...)
			out = append(out, kx.baseKey[:]...)
			out = binary.BigEndian.AppendUint32(out, kx.registrationID)
		}
	}
	if s.hasLost {
		out = append(out, s.lostDH[:]...)
		out = binary.BigEndian.AppendUint32(out, s.lostN)
	}
	if len(s.archive) > 0 {
		out = append(out, uint8(len(s.archive)))
		for _, a := range s.archive {
			at := len(out)
			out = append(out, 0, 0, 0)
			out = a.appendTo(out)
			// At most 65535 skipped keys: a record is far below 2^24 bytes.
			n := len(out) - at - 3
			out[at], out[at+1], out[at+2] = byte(n>>16), byte(n>>8), byte(n)
		}
	}
	return out
}

// clone returns a deep copy of s, archived states included.
func (s *session) clone() *session {
	c := s.cloneState()
	for _, a := range s.archive {
		c.archive = append(c.archive, a.clone())
	}
	return c
}

// cloneState returns a deep copy of s without its archived states.
func (s *session) cloneState() *session {
	c := *s
	c.archive = nil
	c.skipped = append([]skippedKey(nil), s.skipped...)
	c.prev = append([][32]byte(nil), s.prev...)
	if s.pending != nil {
		p := *s.pending
		c.pending = &p
	}
	if s.origin != nil {
		o := *s.origin
		c.origin = &o
	}
	return &c
}

// unmarshalSession parses what marshal wrote.
func unmarshalSession(data []byte) (*session, error) {
	return parseSession(data, true)
}

// parseSession parses one record; an archived state (withArchive false)
// must be a version 1 record of the same generation as its session.
func parseSession(data []byte, withArchive bool) (*session, error) {
	bad := fmt.Errorf("%w: session record", ErrCorruptState)
	in := cryptobyte.String(data)
	var magic []byte
	var version, gen, flags uint8
	if !in.ReadBytes(&magic, 3) || string(magic) != "OMS" || !in.ReadUint8(&version) {
		return nil, bad
	}
	if version != stateVersion1 && (version != stateVersion2 || !withArchive) {
		return nil, fmt.Errorf("%w: session record version %d", ErrCorruptState, version)
	}
	s := new(session)
	if !in.ReadUint8(&gen) || !in.ReadUint8(&flags) || !Generation(gen).valid() {
		return nil, bad
	}
	s.gen = Generation(gen)
	s.initiator = flags&flagInitiator != 0
	s.hasDHr = flags&flagDHr != 0
	s.hasCKs = flags&flagCKs != 0
	s.hasCKr = flags&flagCKr != 0
	s.heartbeat = flags&flagHeartbeat != 0
	s.hasLost = flags&flagLost != 0
	for _, k := range []*[32]byte{&s.local, &s.remote, &s.rk, &s.dhs.Private, &s.dhs.Public, &s.dhr, &s.cks, &s.ckr} {
		if !in.CopyBytes(k[:]) {
			return nil, bad
		}
	}
	var nSkipped uint16
	if !in.ReadUint32(&s.ns) || !in.ReadUint32(&s.nr) || !in.ReadUint32(&s.pn) || !in.ReadUint16(&nSkipped) {
		return nil, bad
	}
	s.skipped = make([]skippedKey, nSkipped)
	for i := range s.skipped {
		k := &s.skipped[i]
		if !in.CopyBytes(k.dh[:]) || !in.ReadUint32(&k.n) || !in.CopyBytes(k.mk[:]) {
			return nil, bad
		}
	}
	var nPrev uint8
	if !in.ReadUint8(&nPrev) || nPrev > prevChains {
		return nil, bad
	}
	s.prev = make([][32]byte, nPrev)
	for i := range s.prev {
		if !in.CopyBytes(s.prev[i][:]) {
			return nil, bad
		}
	}
	readKX := func() *keyExchange {
		kx := new(keyExchange)
		if !in.ReadUint32(&kx.preKeyID) || !in.ReadUint32(&kx.signedPreKeyID) ||
			!in.CopyBytes(kx.identityKey[:]) || !in.CopyBytes(kx.baseKey[:]) || !in.ReadUint32(&kx.registrationID) {
			return nil
		}
		return kx
	}
	if flags&flagPending != 0 {
		if s.pending = readKX(); s.pending == nil {
			return nil, bad
		}
	}
	if flags&flagOrigin != 0 {
		if s.origin = readKX(); s.origin == nil {
			return nil, bad
		}
	}
	if s.hasLost && (!in.CopyBytes(s.lostDH[:]) || !in.ReadUint32(&s.lostN)) {
		return nil, bad
	}
	if version == stateVersion2 {
		var n uint8
		if !in.ReadUint8(&n) || n == 0 || n > maxArchived {
			return nil, bad
		}
		for range n {
			var rec cryptobyte.String
			if !in.ReadUint24LengthPrefixed(&rec) {
				s.wipe()
				return nil, bad
			}
			a, err := parseSession(rec, false)
			if err != nil || a.gen != s.gen {
				s.wipe()
				return nil, bad
			}
			s.archive = append(s.archive, a)
		}
	}
	if !in.Empty() {
		return nil, bad
	}
	return s, nil
}
