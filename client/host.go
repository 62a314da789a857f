package client

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// Host is what the client offers a mechanism, and all a mechanism may use:
// the pipeline to send its protocol messages, IQs, PEP, service discovery,
// presence and roster lookups, events for the user, its enabled state, the
// clock and the logger. A mechanism gets its Host in Attach (see
// Attacher); each mechanism has its own, bound to its namespace.
//
// A Host is safe for concurrent use. Its methods that use the network fail
// with ErrNotConnected while the client is offline.
type Host interface {
	// Self is the account's address: the bound full JID when connected,
	// the configured one before.
	Self() jid.JID
	// Now is the client's clock.
	Now() time.Time
	// Logger receives diagnostics (never message content or secrets).
	Logger() *slog.Logger

	// Emit hands an event to the user (a *SecurityEvent, usually). The
	// Mechanism of a SecurityEvent left empty is the mechanism's own.
	Emit(ev Event)
	// SetEnabled turns the mechanism on or off: a disabled mechanism seals
	// nothing, and what arrives for it becomes a "not enabled" notice.
	// Mechanisms start enabled.
	SetEnabled(enabled bool)
	// AddFeature advertises service discovery features (and so changes
	// the entity capabilities of the next presence).
	AddFeature(features ...string)

	// Send sends protocol messages of the mechanism to peer (a 'to' left
	// empty is set to peer): each <message/> is decorated like the
	// mechanism's sealed messages (EME tag, hints, <private/> as Needs
	// says) and every stanza is written under the pipeline's send lock, in
	// order.
	Send(ctx context.Context, peer jid.JID, stanzas ...*xmltree.Element) error
	// Hold takes the pipeline's send lock: the stanzas sent with the
	// returned Wire (decorated as Send does) leave in that order, and no
	// other stanza leaves in between, until Release. A mechanism whose
	// stanzas consume protocol state in order (counters) produces and
	// sends them while it holds the wire. While holding it, do not call
	// Send or Hold, and do not wait for the network.
	Hold() Wire
	// SendPresence sends our available presence, with entity
	// capabilities, to one entity (directed presence, RFC 6121 §4.6), so
	// that it learns when we go offline. It does nothing when the client
	// sends no presence at all (Config.DisablePresence).
	SendPresence(ctx context.Context, to jid.JID) error
	// IQ sends an IQ (type get or set) and returns the answer; an error
	// answer is a *StanzaError.
	IQ(ctx context.Context, iq *xmltree.Element) (*xmltree.Element, error)
	// AnswerIQ returns the client's own answer (result or error) to an iq
	// request: for a mechanism that received the request protected
	// (StanzaOpener) and sends the answer protected in turn.
	AnswerIQ(iq *xmltree.Element) *xmltree.Element
	// QueryInfo asks an entity for its XEP-0030 identities and features.
	QueryInfo(ctx context.Context, to jid.JID, node string) (DiscoInfo, error)

	// Publish publishes payload as item id to our own PEP node, which
	// ends up with the required options (checked) and the optional ones
	// where the server takes them (Client.PublishNode).
	Publish(ctx context.Context, node, id string, payload *xmltree.Element, required, optional NodeOptions) error
	// ConfigureNode sets options of one of our PEP nodes.
	ConfigureNode(ctx context.Context, node string, opts NodeOptions) error
	// NodeConfig reads the configuration of one of our PEP nodes.
	NodeConfig(ctx context.Context, node string) (map[string]string, error)
	// FetchItems reads items of owner's PEP node (all with maxItems 0).
	FetchItems(ctx context.Context, owner jid.JID, node string, maxItems int, ids ...string) ([]PubSubItem, error)
	// DeleteNode deletes one of our PEP nodes.
	DeleteNode(ctx context.Context, node string) error
	// HandlePEP asks for XEP-0163 notifications of node (it advertises
	// node+notify) and calls fn for each, on the processing goroutine of
	// the sender.
	HandlePEP(node string, fn func(*PEPEvent))

	// Resources returns the contact's full JIDs currently available.
	Resources(contact jid.JID) []jid.JID
	// Subscribed reports whether contact has a presence subscription to
	// us (subscription "from" or "both" in the roster).
	Subscribed(contact jid.JID) bool
	// SessionEnded tells the client that the mechanism's session with
	// peer (a full JID, or a bare one for all its resources) ended or was
	// replaced: messages sealed in it that asked for a receipt and have
	// none are reported failed, as they can no longer be read (and
	// delivered after all if their receipt still comes).
	SessionEnded(peer jid.JID)
}

// A Wire sends under the pipeline's send lock; see Host.Hold.
type Wire interface {
	Send(ctx context.Context, peer jid.JID, stanzas ...*xmltree.Element) error
	// Release gives the send lock back. It may be called more than once.
	Release()
}

// host is the Host of one registered mechanism.
type host struct {
	c  *Client
	ns string
}

var _ Host = (*host)(nil)

func (h *host) Self() jid.JID          { return h.c.JID() }
func (h *host) Now() time.Time         { return h.c.cfg.now() }
func (h *host) Logger() *slog.Logger   { return h.c.cfg.logger().With("mechanism", h.ns) }
func (h *host) SetEnabled(on bool)     { h.c.pipeline.setEnabled(h.ns, on) }
func (h *host) AddFeature(f ...string) { h.c.AddFeature(f...) }

func (h *host) Emit(ev Event) {
	if se, ok := ev.(*SecurityEvent); ok && se.Mechanism == "" {
		se.Mechanism = h.ns
	}
	h.c.emit(ev)
}

func (h *host) Send(ctx context.Context, peer jid.JID, stanzas ...*xmltree.Element) error {
	w := h.Hold()
	defer w.Release()
	return w.Send(ctx, peer, stanzas...)
}

func (h *host) Hold() Wire {
	h.c.pipeline.sendMu.Lock()
	return &wire{p: h.c.pipeline, ns: h.ns}
}

// wire is a Wire: the send lock, held.
type wire struct {
	p        *Pipeline
	ns       string
	released bool
}

func (w *wire) Send(ctx context.Context, peer jid.JID, stanzas ...*xmltree.Element) error {
	if w.released {
		return errors.New("client: sending on a released wire")
	}
	return w.p.writeProtocol(ctx, peer, w.ns, stanzas)
}

func (w *wire) Release() {
	if !w.released {
		w.released = true
		w.p.sendMu.Unlock()
	}
}

func (h *host) SendPresence(ctx context.Context, to jid.JID) error {
	if h.c.cfg.DisablePresence {
		return nil
	}
	p := h.c.presenceStanza("", "", h.c.cfg.Status)
	p.SetAttr("to", to.String())
	h.c.pipeline.sendMu.Lock()
	defer h.c.pipeline.sendMu.Unlock()
	return h.c.writeStanza(ctx, p, nil)
}

func (h *host) IQ(ctx context.Context, iq *xmltree.Element) (*xmltree.Element, error) {
	return h.c.IQ(ctx, iq)
}

func (h *host) AnswerIQ(iq *xmltree.Element) *xmltree.Element { return h.c.handleIQ(iq) }

func (h *host) QueryInfo(ctx context.Context, to jid.JID, node string) (DiscoInfo, error) {
	return h.c.QueryInfo(ctx, to, node)
}

func (h *host) Publish(ctx context.Context, node, id string, payload *xmltree.Element, required, optional NodeOptions) error {
	return h.c.PublishNode(ctx, node, id, payload, required, optional)
}

func (h *host) ConfigureNode(ctx context.Context, node string, opts NodeOptions) error {
	return h.c.ConfigureNode(ctx, node, opts)
}

func (h *host) NodeConfig(ctx context.Context, node string) (map[string]string, error) {
	return h.c.NodeConfig(ctx, node)
}

func (h *host) FetchItems(ctx context.Context, owner jid.JID, node string, maxItems int, ids ...string) ([]PubSubItem, error) {
	return h.c.FetchItems(ctx, owner, node, maxItems, ids...)
}

func (h *host) DeleteNode(ctx context.Context, node string) error { return h.c.DeleteNode(ctx, node) }

func (h *host) HandlePEP(node string, fn func(*PEPEvent)) { h.c.HandlePEP(node, fn) }

func (h *host) Resources(contact jid.JID) []jid.JID { return h.c.Resources(contact) }

func (h *host) Subscribed(contact jid.JID) bool { return h.c.Subscribed(contact) }
func (h *host) SessionEnded(peer jid.JID) {
	h.c.failLater(h.c.fates.sealedFor(h.ns, peer), "its session ended before the recipient confirmed it, so it may not have been read")
}
