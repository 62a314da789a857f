package client

import (
	"sync"

	"mellium.im/xmpp/jid"
)

// maxCachedJIDs bounds the parse cache; when full it starts over.
const maxCachedJIDs = 4096

// jidCache remembers parsed addresses. Parsing a JID applies the PRECIS
// profiles (RFC 7622), a noticeable share of the cost of a small stanza,
// and the same few addresses ('from' of contacts, 'to' of our account)
// come again and again.
type jidCache struct {
	mu sync.Mutex
	m  map[string]jidParsed
}

type jidParsed struct {
	j   jid.JID
	err error
}

// parse is jid.Parse, cached.
func (c *jidCache) parse(s string) (jid.JID, error) {
	c.mu.Lock()
	if p, ok := c.m[s]; ok {
		c.mu.Unlock()
		return p.j, p.err
	}
	c.mu.Unlock()
	j, err := jid.Parse(s)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedJIDs {
		c.m = make(map[string]jidParsed)
	}
	c.m[s] = jidParsed{j, err}
	c.mu.Unlock()
	return j, err
}
