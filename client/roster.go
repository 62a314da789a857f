package client

import (
	"context"
	"encoding/xml"
	"errors"
	"sort"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

const xmlNS = "http://www.w3.org/XML/1998/namespace"

func xmlLang(lang string) xml.Attr {
	return xml.Attr{Name: xml.Name{Space: xmlNS, Local: "lang"}, Value: lang}
}

func langOf(e *xmltree.Element) string {
	for _, a := range e.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == xmlNS || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// RosterItem is a contact in the roster (RFC 6121).
type RosterItem struct {
	JID          jid.JID
	Name         string
	Subscription string // none, to, from, both
	Ask          string
	Groups       []string
}

type rosterState struct {
	mu    sync.Mutex
	items map[string]RosterItem
}

func (r *rosterState) list() []RosterItem {
	out := make([]RosterItem, 0, len(r.items))
	for _, it := range r.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JID.String() < out[j].JID.String() })
	return out
}

func parseRosterItem(e *xmltree.Element) (RosterItem, bool) {
	j, err := jid.Parse(e.AttrValue("jid"))
	if err != nil {
		return RosterItem{}, false
	}
	it := RosterItem{JID: j.Bare(), Name: e.AttrValue("name"), Subscription: e.AttrValue("subscription"), Ask: e.AttrValue("ask")}
	if it.Subscription == "" {
		it.Subscription = "none"
	}
	for _, g := range e.ChildrenNamed(NSRoster, "group") {
		it.Groups = append(it.Groups, g.Text())
	}
	return it, true
}

func (r *rosterState) push(c *Client, q *xmltree.Element) {
	r.mu.Lock()
	if r.items == nil {
		r.items = map[string]RosterItem{}
	}
	for _, e := range q.ChildrenNamed(NSRoster, "item") {
		it, ok := parseRosterItem(e)
		if !ok {
			continue
		}
		if it.Subscription == "remove" {
			delete(r.items, it.JID.String())
		} else {
			r.items[it.JID.String()] = it
		}
	}
	items := r.list()
	r.mu.Unlock()
	c.emit(&RosterEvent{Items: items})
}

// FetchRoster gets the roster from the server and emits a RosterEvent.
func (c *Client) FetchRoster(ctx context.Context) ([]RosterItem, error) {
	iq := xmltree.New(NSClient, "iq", "type", "get")
	iq.Append(xmltree.New(NSRoster, "query"))
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return nil, err
	}
	q := resp.Child(NSRoster, "query")
	if q == nil {
		return nil, errors.New("client: roster result without query")
	}
	c.roster.mu.Lock()
	c.roster.items = map[string]RosterItem{}
	for _, e := range q.ChildrenNamed(NSRoster, "item") {
		if it, ok := parseRosterItem(e); ok {
			c.roster.items[it.JID.String()] = it
		}
	}
	items := c.roster.list()
	c.roster.mu.Unlock()
	c.emit(&RosterEvent{Items: items})
	return items, nil
}

// Roster returns the cached roster.
func (c *Client) Roster() []RosterItem {
	c.roster.mu.Lock()
	defer c.roster.mu.Unlock()
	return c.roster.list()
}

// Subscribed reports whether contact has a subscription to our presence
// (roster subscription "from" or "both"): the test XEP-0155 §10.1 asks
// for before a negotiation is answered automatically.
func (c *Client) Subscribed(contact jid.JID) bool {
	c.roster.mu.Lock()
	defer c.roster.mu.Unlock()
	it, ok := c.roster.items[contact.Bare().String()]
	return ok && (it.Subscription == "both" || it.Subscription == "from")
}

// SetRosterItem adds or updates a roster item.
func (c *Client) SetRosterItem(ctx context.Context, it RosterItem) error {
	iq := xmltree.New(NSClient, "iq", "type", "set")
	item := xmltree.New(NSRoster, "item", "jid", it.JID.Bare().String())
	if it.Name != "" {
		item.SetAttr("name", it.Name)
	}
	for _, g := range it.Groups {
		item.Append(xmltree.New(NSRoster, "group").AppendText(g))
	}
	iq.Append(xmltree.New(NSRoster, "query").Append(item))
	_, err := c.IQ(ctx, iq)
	return err
}
