package client

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// NSPubSubErrors is the namespace of pubsub application error conditions.
const NSPubSubErrors = "http://jabber.org/protocol/pubsub#errors"

// ErrPreconditionNotMet is matched (with errors.Is) by publish errors whose
// publish-options could not be applied to an existing node (XEP-0060
// §7.1.5).
var ErrPreconditionNotMet = errors.New("client: pubsub precondition-not-met")

// PubSubItem is one pubsub item.
type PubSubItem struct {
	ID      string
	Payload *xmltree.Element // nil for notifications without payload
}

// NodeOptions are pubsub node configuration fields (pubsub#access_model,
// pubsub#persist_items, ...), given without the "pubsub#" prefix or with it.
type NodeOptions map[string]string

func (o NodeOptions) form(formType string) *xmltree.Element {
	x := xmltree.New(NSDataForms, "x", "type", "submit")
	x.Append(formField("FORM_TYPE", "hidden", formType))
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if len(name) < 7 || name[:7] != "pubsub#" {
			name = "pubsub#" + name
		}
		x.Append(formField(name, "", o[k]))
	}
	return x
}

type pepState struct {
	mu       sync.Mutex
	handlers map[string][]func(*PEPEvent)
}

func (p *pepState) init() { p.handlers = map[string][]func(*PEPEvent){} }

// HandlePEP calls fn for every notification on node (in the processing
// goroutine, before the PEPEvent is emitted). Subscribing happens through
// the "<node>+notify" disco feature, which HandlePEP adds.
func (c *Client) HandlePEP(node string, fn func(*PEPEvent)) {
	c.pep.mu.Lock()
	c.pep.handlers[node] = append(c.pep.handlers[node], fn)
	c.pep.mu.Unlock()
	c.AddFeature(node + "+notify")
}

func (c *Client) processPEP(from jid.JID, ev *xmltree.Element) {
	items := ev.Child(NSPubSubEvent, "items")
	if items == nil {
		return
	}
	pe := &PEPEvent{From: from.Bare(), Node: items.AttrValue("node")}
	for _, it := range items.ChildrenNamed(NSPubSubEvent, "item") {
		item := PubSubItem{ID: it.AttrValue("id")}
		if els := it.Elements(); len(els) > 0 {
			item.Payload = els[0]
		}
		pe.Items = append(pe.Items, item)
	}
	for _, r := range items.ChildrenNamed(NSPubSubEvent, "retract") {
		pe.Retracted = append(pe.Retracted, r.AttrValue("id"))
	}
	c.pep.mu.Lock()
	hs := append([]func(*PEPEvent){}, c.pep.handlers[pe.Node]...)
	c.pep.mu.Unlock()
	for _, h := range hs {
		h(pe)
	}
	c.emit(pe)
}

// Publish publishes payload as item id on our own PEP node (XEP-0163),
// with publish-options (XEP-0060 §7.1.5) when opts is not empty. A server
// that cannot apply the options to an existing node answers
// precondition-not-met, returned as an error matching
// ErrPreconditionNotMet; see PublishEnsure for the usual recovery.
func (c *Client) Publish(ctx context.Context, node, id string, payload *xmltree.Element, opts NodeOptions) error {
	pubsub := xmltree.New(NSPubSub, "pubsub")
	pub := xmltree.New(NSPubSub, "publish", "node", node)
	item := xmltree.New(NSPubSub, "item")
	if id != "" {
		item.SetAttr("id", id)
	}
	item.Append(payload)
	pub.Append(item)
	pubsub.Append(pub)
	if len(opts) > 0 {
		pubsub.Append(xmltree.New(NSPubSub, "publish-options").Append(opts.form(NSPubSub + "#publish-options")))
	}
	iq := xmltree.New(NSClient, "iq", "type", "set")
	iq.Append(pubsub)
	_, err := c.IQ(ctx, iq)
	return wrapPubSubError(err)
}

func wrapPubSubError(err error) error {
	var se *StanzaError
	if errors.As(err, &se) && se.Has(NSPubSubErrors, "precondition-not-met") {
		return errors.Join(ErrPreconditionNotMet, err)
	}
	return err
}

// PublishEnsure publishes with publish-options; when the node exists with
// a different configuration it reconfigures the node to opts and publishes
// again, so that keys are never left readable by fewer (or more) entities
// than asked for.
func (c *Client) PublishEnsure(ctx context.Context, node, id string, payload *xmltree.Element, opts NodeOptions) error {
	err := c.Publish(ctx, node, id, payload, opts)
	if !errors.Is(err, ErrPreconditionNotMet) {
		return err
	}
	if err := c.ConfigureNode(ctx, node, opts); err != nil {
		return err
	}
	return c.Publish(ctx, node, id, payload, opts)
}

// ConfigureNode submits a node configuration form for our own PEP node.
func (c *Client) ConfigureNode(ctx context.Context, node string, opts NodeOptions) error {
	iq := xmltree.New(NSClient, "iq", "type", "set")
	cfg := xmltree.New(NSPubSubOwner, "configure", "node", node)
	cfg.Append(opts.form(NSPubSub + "#node_config"))
	iq.Append(xmltree.New(NSPubSubOwner, "pubsub").Append(cfg))
	_, err := c.IQ(ctx, iq)
	return err
}

// NodeConfig fetches the configuration of one of our PEP nodes as a map of
// field var to first value.
func (c *Client) NodeConfig(ctx context.Context, node string) (map[string]string, error) {
	iq := xmltree.New(NSClient, "iq", "type", "get")
	iq.Append(xmltree.New(NSPubSubOwner, "pubsub").Append(xmltree.New(NSPubSubOwner, "configure", "node", node)))
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	ps := resp.Child(NSPubSubOwner, "pubsub")
	if ps == nil {
		return nil, errors.New("client: node configuration without pubsub")
	}
	cfg := ps.Child(NSPubSubOwner, "configure")
	if cfg == nil {
		return nil, errors.New("client: node configuration without configure")
	}
	if x := cfg.Child(NSDataForms, "x"); x != nil {
		for _, f := range x.ChildrenNamed(NSDataForms, "field") {
			out[f.AttrValue("var")] = f.ChildText(NSDataForms, "value")
		}
	}
	return out, nil
}

// FetchItems gets items from owner's PEP node: the given ids, or the last
// maxItems (0 = all the server returns).
func (c *Client) FetchItems(ctx context.Context, owner jid.JID, node string, maxItems int, ids ...string) ([]PubSubItem, error) {
	iq := xmltree.New(NSClient, "iq", "type", "get")
	if owner.Domainpart() != "" && !owner.Bare().Equal(c.JID().Bare()) {
		iq.SetAttr("to", owner.Bare().String())
	}
	items := xmltree.New(NSPubSub, "items", "node", node)
	if maxItems > 0 {
		items.SetAttr("max_items", strconv.Itoa(maxItems))
	}
	for _, id := range ids {
		items.Append(xmltree.New(NSPubSub, "item", "id", id))
	}
	iq.Append(xmltree.New(NSPubSub, "pubsub").Append(items))
	resp, err := c.IQ(ctx, iq)
	if err != nil {
		return nil, err
	}
	ps := resp.Child(NSPubSub, "pubsub")
	if ps == nil {
		return nil, nil
	}
	its := ps.Child(NSPubSub, "items")
	if its == nil {
		return nil, nil
	}
	var out []PubSubItem
	for _, it := range its.ChildrenNamed(NSPubSub, "item") {
		item := PubSubItem{ID: it.AttrValue("id")}
		if els := it.Elements(); len(els) > 0 {
			item.Payload = els[0]
		}
		out = append(out, item)
	}
	return out, nil
}

// DeleteNode deletes one of our PEP nodes.
func (c *Client) DeleteNode(ctx context.Context, node string) error {
	iq := xmltree.New(NSClient, "iq", "type", "set")
	iq.Append(xmltree.New(NSPubSubOwner, "pubsub").Append(xmltree.New(NSPubSubOwner, "delete", "node", node)))
	_, err := c.IQ(ctx, iq)
	return err
}
