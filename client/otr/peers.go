package otr

import (
	"sort"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
)

// Bounds on the OTR state anyone can make Balcony keep: OTR messages may
// come from any number of resources and instance tags, each with an
// incomplete fragmented message of up to 1 MiB.
const (
	maxOTRInstances    = 4       // conversations per full JID (peer instances)
	maxOTRResources    = 16      // full JIDs per contact
	maxOTRPeers        = 1024    // full JIDs in all
	maxOTRFragsContact = 1 << 20 // incomplete fragments of one contact
	maxOTRFragsTotal   = 8 << 20 // of everyone
)

func (o *Mechanism) peer(j jid.JID) *otrPeer {
	k := j.String()
	p := o.peers[k]
	if p == nil {
		o.makeRoom(j)
		p = &otrPeer{jid: j, byTag: map[uint32]*engine.Conversation{}, used: map[*engine.Conversation]time.Time{}}
		o.peers[k] = p
	}
	p.touched = o.cfg.Now()
	return p
}

// makeRoom evicts peers before j gets one: the least recently used of j's
// contact beyond maxOTRResources, and of everyone beyond maxOTRPeers.
// Peers without a private conversation go first. Callers hold o.mu.
func (o *Mechanism) makeRoom(j jid.JID) {
	bare := j.Bare()
	for {
		var same []*otrPeer
		all := make([]*otrPeer, 0, len(o.peers))
		for _, p := range o.peers {
			all = append(all, p)
			if p.jid.Bare().Equal(bare) {
				same = append(same, p)
			}
		}
		var victim *otrPeer
		switch {
		case len(same) >= maxOTRResources:
			victim = evictable(same)
		case len(all) >= maxOTRPeers:
			victim = evictable(all)
		default:
			return
		}
		for _, c := range victim.convs() {
			_, _ = c.End() // wipes the session keys; nothing is sent
		}
		delete(o.peers, victim.jid.String())
		delete(o.known, victim.jid.String())
	}
}

// evictable returns the peer to forget first: the least recently used one
// without a private conversation, or else the least recently used one.
func evictable(peers []*otrPeer) *otrPeer {
	var best *otrPeer
	better := func(p *otrPeer) bool {
		if best == nil {
			return true
		}
		pp, bp := p.private(), best.private()
		if pp != bp {
			return !pp
		}
		return p.touched.Before(best.touched)
	}
	for _, p := range peers {
		if better(p) {
			best = p
		}
	}
	return best
}

// private reports whether the peer's current conversation is encrypted.
func (p *otrPeer) private() bool { return p.current != nil && p.current.State() == engine.Encrypted }

// addInstance records conv as the conversation with the peer's instance
// tag, forgetting the least recently used other instance beyond
// maxOTRInstances. Callers hold o.mu.
func (o *Mechanism) addInstance(p *otrPeer, tag uint32, conv *engine.Conversation) {
	for len(p.byTag) >= maxOTRInstances {
		var oldTag uint32
		var oldest *engine.Conversation
		for t, c := range p.byTag {
			if c == p.current || c == p.pending {
				continue
			}
			if oldest == nil || p.used[c].Before(p.used[oldest]) {
				oldTag, oldest = t, c
			}
		}
		if oldest == nil {
			break
		}
		_, _ = oldest.End()
		delete(p.byTag, oldTag)
		delete(p.used, oldest)
	}
	p.byTag[tag] = conv
}

// boundFragments drops the incomplete fragmented message conv holds when
// the contact's, or everyone's, incomplete messages exceed their budget.
// Callers hold o.mu.
func (o *Mechanism) boundFragments(p *otrPeer, conv *engine.Conversation) {
	if conv.PendingFragments() == 0 {
		return
	}
	contact, total := 0, 0
	for _, q := range o.peers {
		for _, c := range q.convs() {
			n := c.PendingFragments()
			total += n
			if q.jid.Bare().Equal(p.jid.Bare()) {
				contact += n
			}
		}
	}
	if contact > maxOTRFragsContact || total > maxOTRFragsTotal {
		conv.DiscardFragments()
	}
}

// currentConv returns the peer's current conversation, creating it.
func (o *Mechanism) currentConv(p *otrPeer) (*engine.Conversation, error) {
	if p.current == nil {
		c, err := o.newConv()
		if err != nil {
			return nil, err
		}
		p.current = c
	}
	return p.current, nil
}

// route picks the conversation for an incoming OTR message (see "Instance
// tags and several peer instances" in package otr).
func (o *Mechanism) route(p *otrPeer, body string, kind eme.OTRKind) (*engine.Conversation, error) {
	sender, _, tagged := engine.InstanceTags([]byte(body))
	if !tagged {
		if kind == eme.OTRQuery && p.current != nil && p.current.TheirInstanceTag() != 0 {
			if p.pending == nil {
				c, err := o.newConv()
				if err != nil {
					return nil, err
				}
				p.pending = c
			}
			return p.pending, nil
		}
		return o.currentConv(p)
	}
	if kind == eme.OTRKeyExchange && p.pending != nil {
		if t := p.pending.TheirInstanceTag(); t == 0 || t == sender {
			return p.pending, nil
		}
	}
	if c := p.byTag[sender]; c != nil {
		return c, nil
	}
	if p.current != nil && (p.current.TheirInstanceTag() == 0 || p.current.TheirInstanceTag() == sender) {
		return p.current, nil
	}
	c, err := o.newConv()
	if err != nil {
		return nil, err
	}
	o.addInstance(p, sender, c)
	if p.current == nil {
		p.current = c
	}
	return c, nil
}

// convs returns the peer's distinct conversations.
func (p *otrPeer) convs() []*engine.Conversation {
	seen := map[*engine.Conversation]bool{}
	var out []*engine.Conversation
	add := func(c *engine.Conversation) {
		if c != nil && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	add(p.current)
	add(p.pending)
	tags := make([]uint32, 0, len(p.byTag))
	for t := range p.byTag {
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	for _, t := range tags {
		add(p.byTag[t])
	}
	return out
}

// endPeer forgets a peer's conversations without sending anything (the
// peer or we are gone) and reports whether one was not in plaintext.
// Callers hold o.mu.
func (o *Mechanism) endPeer(p *otrPeer) bool {
	active := false
	for _, c := range p.convs() {
		if c.State() != engine.Plaintext {
			active = true
		}
		_, _ = c.End()
	}
	delete(o.peers, p.jid.String())
	if active && o.h != nil {
		// What was sealed in the sessions and not confirmed cannot be
		// read any more.
		o.h.SessionEnded(p.jid)
	}
	return active
}

// peersOf returns the peers j stands for: itself, or every resource of a
// bare JID. Callers hold o.mu.
func (o *Mechanism) peersOf(j jid.JID) []*otrPeer {
	var out []*otrPeer
	for _, p := range o.peers {
		if p.jid.Equal(j) || j.Resourcepart() == "" && p.jid.Bare().Equal(j) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].jid.String() < out[k].jid.String() })
	return out
}
