package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
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
// than asked for. PublishNode does the same on every server, whatever it
// supports, and checks the result.
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

// NodeConfigError reports that one of our PEP nodes does not have a
// required configuration after publishing: the server ignored or refused
// the options and the configuration request.
type NodeConfigError struct {
	Node, Field, Got, Want string
}

func (e *NodeConfigError) Error() string {
	return fmt.Sprintf("client: node %s has %s %q, not %q", e.Node, e.Field, e.Got, e.Want)
}

// PublishNode publishes payload as item id to our own PEP node so that
// the node ends up with the required options, and with the optional ones
// where the server accepts them; it reads the configuration back and
// returns a *NodeConfigError if a required option does not hold. The item
// is never published to a node whose required options are not in place:
//
//  1. With publish-options advertised, one publish carries all options.
//  2. When the server refuses an option (XEP-0060 §7.1.5: bad-request,
//     precondition-not-met, resource-constraint as ejabberd answers for
//     fields it does not take as publish-options, ...), or offers no
//     publish-options: the node is configured first (created with its
//     configuration if it does not exist, XEP-0060 §8.1.3), with all
//     options, else the required ones only, and the item published
//     without options.
//  3. The configuration is read back and the required options checked;
//     a server that ignored them gets one more configuration request.
func (c *Client) PublishNode(ctx context.Context, node, id string, payload *xmltree.Element, required, optional NodeOptions) error {
	if err := c.needs(func(s ServerInfo) bool { return s.PEP }, "personal eventing (XEP-0163)"); err != nil {
		return err
	}
	// Access models are not checked against discovery: Prosody 0.12 and
	// ejabberd 23.01 implement the whitelist model on PEP nodes without
	// advertising pubsub#access-whitelist. The configuration read back
	// below is the check, and nothing is published to a node before its
	// required options are in place.
	all := NodeOptions{}
	maps.Copy(all, required)
	maps.Copy(all, optional)
	log := c.cfg.logger()
	var err error = &UnsupportedError{Feature: "pubsub publish-options (XEP-0060)"}
	if c.needs(func(s ServerInfo) bool { return s.PublishOptions }, "") == nil {
		err = c.Publish(ctx, node, id, payload, all)
	}
	if err != nil {
		if !optionRefused(err) {
			return fmt.Errorf("client: publishing to %s: %w", node, err)
		}
		log.Info("publish-options not applied, configuring the node first", "node", node, "err", err)
		if err := c.prepareNode(ctx, node, required, all); err != nil {
			return fmt.Errorf("client: configuring %s: %w", node, err)
		}
		if err := c.Publish(ctx, node, id, payload, nil); err != nil {
			return fmt.Errorf("client: publishing to %s: %w", node, err)
		}
	}
	err = c.checkNode(ctx, node, required)
	if _, bad := errors.AsType[*NodeConfigError](err); bad {
		// The server took the item but not the options: insist once.
		if cerr := c.ConfigureNode(ctx, node, required); cerr == nil {
			err = c.checkNode(ctx, node, required)
		}
	}
	return err
}

// optionRefused reports whether a publish error may come from its options
// (or their absence) rather than from the publish itself.
func optionRefused(err error) bool {
	if errors.Is(err, ErrNotOffered) || errors.Is(err, ErrPreconditionNotMet) {
		return true
	}
	se, ok := errors.AsType[*StanzaError](err)
	if !ok {
		return false
	}
	switch se.Condition {
	case "forbidden", "not-authorized", "not-allowed", "registration-required", "remote-server-not-found", "remote-server-timeout", "service-unavailable":
		return false
	}
	return true
}

// prepareNode gives our node the options all (else the required ones)
// before anything is published to it, creating it if needed.
func (c *Client) prepareNode(ctx context.Context, node string, required, all NodeOptions) error {
	err := c.ConfigureNode(ctx, node, all)
	if err != nil && len(all) > len(required) && !isCondition(err, "item-not-found") {
		err = c.ConfigureNode(ctx, node, required)
	}
	if isCondition(err, "item-not-found") {
		err = c.createNode(ctx, node, all)
		if err != nil && len(all) > len(required) && !isCondition(err, "conflict") {
			err = c.createNode(ctx, node, required)
		}
		if isCondition(err, "conflict") {
			// The node came into being meanwhile (ejabberd creates it
			// with the publish whose options it refused, and may say
			// so only after our configuration request): configure it.
			err = c.ConfigureNode(ctx, node, all)
			if err != nil && len(all) > len(required) {
				err = c.ConfigureNode(ctx, node, required)
			}
		}
	}
	return err
}

// createNode creates our PEP node with a configuration (XEP-0060 §8.1.3).
func (c *Client) createNode(ctx context.Context, node string, opts NodeOptions) error {
	ps := xmltree.New(NSPubSub, "pubsub")
	ps.Append(xmltree.New(NSPubSub, "create", "node", node))
	ps.Append(xmltree.New(NSPubSub, "configure").Append(opts.form(NSPubSub + "#node_config")))
	iq := xmltree.New(NSClient, "iq", "type", "set")
	iq.Append(ps)
	_, err := c.IQ(ctx, iq)
	return err
}

// checkNode reads our node's configuration and compares the required
// options.
func (c *Client) checkNode(ctx context.Context, node string, required NodeOptions) error {
	cfg, err := c.NodeConfig(ctx, node)
	if err != nil {
		return fmt.Errorf("client: reading the configuration of %s: %w", node, err)
	}
	for _, k := range slices.Sorted(maps.Keys(required)) {
		name := k
		if !strings.HasPrefix(name, "pubsub#") {
			name = "pubsub#" + name
		}
		if got, want := cfg[name], required[k]; !sameOption(got, want) {
			return &NodeConfigError{Node: node, Field: name, Got: got, Want: want}
		}
	}
	return nil
}

// sameOption compares form values, booleans by meaning.
func sameOption(got, want string) bool {
	norm := func(s string) string {
		switch s {
		case "1", "true":
			return "true"
		case "0", "false":
			return "false"
		}
		return s
	}
	return norm(got) == norm(want)
}

func isCondition(err error, cond string) bool {
	se, ok := errors.AsType[*StanzaError](err)
	return ok && se.Condition == cond
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
