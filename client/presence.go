package client

import (
	"context"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

type presenceInfo struct {
	available bool
	capsNode  string
	capsVer   string
}

type presenceState struct {
	mu    sync.Mutex
	peers map[string]presenceInfo // full JID -> last presence
}

func (p *presenceState) init() { p.peers = map[string]presenceInfo{} }

// maxPresences bounds the resources whose presence is remembered.
const maxPresences = 16384

func (p *presenceState) reset() {
	p.mu.Lock()
	p.peers = map[string]presenceInfo{}
	p.mu.Unlock()
}

// Available reports whether the full JID has sent available presence
// since we connected.
func (c *Client) Available(full jid.JID) bool {
	c.presence.mu.Lock()
	defer c.presence.mu.Unlock()
	return c.presence.peers[full.String()].available
}

// Resources returns the contact's full JIDs currently available.
func (c *Client) Resources(contact jid.JID) []jid.JID {
	c.presence.mu.Lock()
	defer c.presence.mu.Unlock()
	var out []jid.JID
	for k, v := range c.presence.peers {
		if !v.available {
			continue
		}
		j, err := jid.Parse(k)
		if err == nil && bareEqual(j, contact) {
			out = append(out, j)
		}
	}
	return out
}

// SendPresence broadcasts available presence with our entity capabilities.
// show is "", "away", "chat", "dnd" or "xa".
func (c *Client) SendPresence(ctx context.Context, show, status string) error {
	c.ownPres.set(show, status)
	return c.sendPresenceTyped(ctx, "", show, status)
}

// ownPresence is the show and status we last broadcast, for the
// presences the client sends again on its own (a caps change, a new
// subscriber).
type ownPresence struct {
	mu           sync.Mutex
	show, status string
	sent         bool
}

func (p *ownPresence) set(show, status string) {
	p.mu.Lock()
	p.show, p.status, p.sent = show, status, true
	p.mu.Unlock()
}

// current returns what we last broadcast, or the configured status.
func (p *ownPresence) current(cfgStatus string) (show, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sent {
		return "", cfgStatus
	}
	return p.show, p.status
}

// rebroadcast sends our current presence again.
func (c *Client) rebroadcast(ctx context.Context) error {
	if !c.Connected() || c.cfg.DisablePresence {
		return nil
	}
	show, status := c.ownPres.current(c.cfg.Status)
	return c.SendPresence(ctx, show, status)
}

// sendPresenceTyped writes our presence of type typ ("" for available).
func (c *Client) sendPresenceTyped(ctx context.Context, typ, show, status string) error {
	c.pipeline.sendMu.Lock()
	defer c.pipeline.sendMu.Unlock()
	return c.writeStanza(ctx, c.presenceStanza(typ, show, status), nil)
}

// presenceStanza builds our presence of the given type ("" for available)
// with entity capabilities.
func (c *Client) presenceStanza(typ, show, status string) *xmltree.Element {
	p := xmltree.New(NSClient, "presence")
	if typ != "" {
		p.SetAttr("type", typ)
	}
	if show != "" {
		p.Append(xmltree.New(NSClient, "show").AppendText(show))
	}
	if status != "" {
		p.Append(xmltree.New(NSClient, "status").AppendText(status))
	}
	if typ == "" {
		if c.cfg.Priority != 0 {
			p.Append(xmltree.New(NSClient, "priority").AppendText(strconv.Itoa(int(c.cfg.Priority))))
		}
		p.Append(xmltree.New(NSCaps, "c", "hash", "sha-1", "node", c.cfg.CapsNode, "ver", c.CapsVer()))
	}
	return p
}

// Subscribe asks contact for a presence subscription and adds it to the
// roster.
func (c *Client) Subscribe(ctx context.Context, contact jid.JID) error {
	return c.SendElement(ctx, xmltree.New(NSClient, "presence", "type", "subscribe", "to", contact.Bare().String()))
}

// ApproveSubscription allows contact to see our presence.
func (c *Client) ApproveSubscription(ctx context.Context, contact jid.JID) error {
	return c.SendElement(ctx, xmltree.New(NSClient, "presence", "type", "subscribed", "to", contact.Bare().String()))
}

// processPresence handles a received presence; mechanism names the
// mechanism that protected it, if any.
func (c *Client) processPresence(st *xmltree.Element, mechanism string) {
	from, err := c.fromOrAccount(st)
	if err != nil {
		return
	}
	typ := st.AttrValue("type")
	switch typ {
	case "", "unavailable":
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		c.emit(&SubscriptionEvent{From: from.Bare(), Type: typ})
		if typ == "subscribed" {
			// Our presence again, now that the contact's server counts
			// us as a subscriber: ejabberd 23.01 sends us PEP
			// notifications of the contact's nodes (keys, device lists)
			// only after it has had a presence from us since then.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = c.rebroadcast(ctx)
			cancel()
		}
		return
	default:
		return
	}
	ev := &PresenceEvent{
		From:      from,
		Mechanism: mechanism,
		Available: typ == "",
		Show:      st.ChildText(NSClient, "show"),
		Status:    st.ChildText(NSClient, "status"),
	}
	if p, err := strconv.Atoi(trimmed(st.ChildText(NSClient, "priority"))); err == nil {
		ev.Priority = p
	}
	if caps := st.Child(NSCaps, "c"); caps != nil {
		ev.CapsNode, ev.CapsVer, ev.CapsHash = caps.AttrValue("node"), caps.AttrValue("ver"), caps.AttrValue("hash")
	}
	c.presence.mu.Lock()
	if ev.Available {
		// Directed presence can come from anyone: beyond maxPresences the
		// presence of a new resource is shown but not remembered.
		if _, known := c.presence.peers[from.String()]; known || len(c.presence.peers) < maxPresences {
			c.presence.peers[from.String()] = presenceInfo{available: true, capsNode: ev.CapsNode, capsVer: ev.CapsVer}
		}
	} else {
		delete(c.presence.peers, from.String())
	}
	c.presence.mu.Unlock()
	c.pipeline.presence(ev)
	c.emit(ev)
}
