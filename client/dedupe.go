package client

import (
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// DefaultDedupeWindow is how many message ids the client remembers to
// recognise a message it has already delivered (Config.DedupeWindow).
const DefaultDedupeWindow = 10000

// seenSet recognises messages delivered before, so that each reaches the
// user once whatever number of copies arrive: live, carbon, resent by
// their sender after a lost stream, stored offline by the server for an
// unacknowledged stanza, and fetched from the archive after a
// reconnection. Two ids identify a message (XEP-0359): the stanza-id our
// own server assigned (the same on the live copy and in the archive), and
// the origin-id its sender assigned (the same on every copy the sender
// sent), which counts only together with the sender's bare JID, so that
// nobody can suppress another's messages by reusing their ids. It
// remembers the last window keys (bounded memory), oldest forgotten
// first.
type seenSet struct {
	mu   sync.Mutex
	keys map[string]struct{}
	ring []string
	next int
}

func (s *seenSet) init(window int) {
	s.keys = make(map[string]struct{}, window)
	s.ring = make([]string, window)
}

// add remembers key and reports whether it was known.
func (s *seenSet) add(key string) bool {
	if _, ok := s.keys[key]; ok {
		return true
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.keys, old)
	}
	s.ring[s.next] = key
	s.next = (s.next + 1) % len(s.ring)
	s.keys[key] = struct{}{}
	return false
}

// messageKeys returns the keys identifying a message from 'from' with
// our server's stanza-id sid.
func messageKeys(st *xmltree.Element, from jid.JID, sid string) []string {
	var keys []string
	if sid != "" {
		keys = append(keys, "s\x00"+sid)
	}
	if o := st.Child(NSSID, "origin-id"); o != nil {
		if id := o.AttrValue("id"); id != "" {
			keys = append(keys, "o\x00"+from.Bare().String()+"\x00"+id)
		}
	}
	return keys
}

// admit reports whether a message should be delivered: false when one of
// its keys was seen before, or when it is an archived copy of a message
// this client sent. Every key is remembered either way.
func (s *seenSet) admit(st *xmltree.Element, from jid.JID, sid string, archived bool, self jid.JID) bool {
	keys := messageKeys(st, from, sid)
	s.mu.Lock()
	defer s.mu.Unlock()
	dup := false
	for _, k := range keys {
		if s.add(k) {
			dup = true
		}
	}
	if archived && from.Bare().Equal(self.Bare()) {
		if o := st.Child(NSSID, "origin-id"); o != nil {
			if _, ok := s.keys["m\x00"+o.AttrValue("id")]; ok {
				dup = true
			}
		}
	}
	return !dup
}

// sent remembers a message this client writes, so that its copy in the
// archive is not delivered back as news.
func (s *seenSet) sent(st *xmltree.Element) {
	o := st.Child(NSSID, "origin-id")
	if o == nil || o.AttrValue("id") == "" {
		return
	}
	s.mu.Lock()
	s.add("m\x00" + o.AttrValue("id"))
	s.mu.Unlock()
}

// admit reports whether a live or carbon message is news (see seenSet),
// and notes its archive id for a later catch-up.
func (c *Client) admit(in *inbound) bool {
	if in.origin.StanzaID != "" {
		c.catch.seen(in.origin.StanzaID)
	}
	return c.seen.admit(in.st, in.from, in.origin.StanzaID, in.origin.Archived, c.JID())
}
