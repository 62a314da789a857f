package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"

	"golang.org/x/text/language"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// Pipeline routes messages through mechanisms. Get it with Client.Pipeline.
type Pipeline struct {
	c *Client
	// sendMu serialises sealing and writing, so that messages of session
	// mechanisms (whose counters must arrive in order) leave in the order
	// they were sealed.
	sendMu   sync.Mutex
	mu       sync.Mutex
	mechs    map[string]Mechanism
	enabled  map[string]bool
	policies map[string]eme.Policy // bare JID -> policy
	def      eme.Policy
	lang     language.Tag
}

func newPipeline(c *Client) *Pipeline {
	return &Pipeline{c: c, mechs: map[string]Mechanism{}, enabled: map[string]bool{},
		policies: map[string]eme.Policy{}, lang: language.English}
}

// Pipeline returns the client's message pipeline.
func (c *Client) Pipeline() *Pipeline { return c.pipeline }

// Register plugs a mechanism into the pipeline, enabled. A mechanism that
// implements Attacher is attached first and may disable itself there
// (Host.SetEnabled); one that implements Shutdowner is shut down by Close.
// Register mechanisms before Connect, so that their service discovery
// features are in the first presence. A second mechanism for the same
// namespace is refused.
func (c *Client) Register(m Mechanism) error {
	p := c.pipeline
	ns := m.Namespace()
	if ns == "" {
		return errors.New("client: a mechanism needs a namespace")
	}
	p.mu.Lock()
	if _, dup := p.mechs[ns]; dup {
		p.mu.Unlock()
		return fmt.Errorf("client: a mechanism for %s is registered already", ns)
	}
	p.mechs[ns] = m
	p.enabled[ns] = true
	p.mu.Unlock()
	if a, ok := m.(Attacher); ok {
		if err := a.Attach(&host{c: c, ns: ns}); err != nil {
			p.mu.Lock()
			delete(p.mechs, ns)
			delete(p.enabled, ns)
			p.mu.Unlock()
			return err
		}
	}
	if s, ok := m.(Shutdowner); ok {
		c.OnShutdown(s.Shutdown)
	}
	return nil
}

// Enabled reports whether the mechanism for namespace is registered and
// enabled.
func (p *Pipeline) Enabled(namespace string) bool {
	_, ok, on := p.mechanism(namespace)
	return ok && on
}

func (p *Pipeline) setEnabled(namespace string, on bool) {
	p.mu.Lock()
	if _, ok := p.mechs[namespace]; ok {
		p.enabled[namespace] = on
	}
	p.mu.Unlock()
}

// SetLanguage sets the language of notices (BCP 47, e.g. "de"); an
// unparsable tag keeps English.
func (p *Pipeline) SetLanguage(lang string) {
	t, err := language.Parse(lang)
	if err != nil {
		t = language.English
	}
	p.mu.Lock()
	p.lang = t
	p.mu.Unlock()
}

// SetPolicy sets the encryption policy for one contact (bare JID).
func (p *Pipeline) SetPolicy(contact jid.JID, pol eme.Policy) {
	p.mu.Lock()
	p.policies[contact.Bare().String()] = pol
	p.mu.Unlock()
}

// SetDefaultPolicy sets the policy for contacts without their own.
func (p *Pipeline) SetDefaultPolicy(pol eme.Policy) {
	p.mu.Lock()
	p.def = pol
	p.mu.Unlock()
}

// Policy returns the policy that applies to contact.
func (p *Pipeline) Policy(contact jid.JID) eme.Policy {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pol, ok := p.policies[contact.Bare().String()]; ok {
		return pol
	}
	return p.def
}

// Best returns the mechanism to use for a message to "to" when the user did
// not choose one: the policy's mechanism when it requires one; otherwise,
// when the policy prefers encryption, the strongest enabled mechanism that
// is usable for the contact now (by eme rank); otherwise "" (plaintext).
func (p *Pipeline) Best(ctx context.Context, to jid.JID) string {
	pol := p.Policy(to)
	switch pol.Mode {
	case eme.RequireEncryption:
		if pol.Mechanism != "" {
			return pol.Mechanism
		}
	case eme.PlaintextAllowed:
		return ""
	}
	avail, nss := mechanismsWith[Availability](p, true)
	best, bestRank := "", -1
	for k, a := range avail {
		if !a.Usable(ctx, to) {
			continue
		}
		info, _ := eme.Lookup(nss[k])
		if info.Rank > bestRank || (info.Rank == bestRank && nss[k] < best) {
			best, bestRank = nss[k], info.Rank
		}
	}
	return best
}

func (p *Pipeline) mechanism(ns string) (Mechanism, bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.mechs[ns]
	return m, ok, p.enabled[ns]
}

// mechanismsWith returns the registered mechanisms that implement T (only
// the enabled ones when enabledOnly), with their namespaces, taken under
// the lock so that callers can run them without it.
func mechanismsWith[T any](p *Pipeline, enabledOnly bool) (list []T, namespaces []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ns, m := range p.mechs {
		if t, ok := m.(T); ok && (!enabledOnly || p.enabled[ns]) {
			list = append(list, t)
			namespaces = append(namespaces, ns)
		}
	}
	return list, namespaces
}

// namedOpener is a StanzaOpener with its namespace.
type namedOpener struct {
	m  StanzaOpener
	ns string
}

// stanzaOpener returns the enabled StanzaOpener whose namespace a child
// of st is in.
func (p *Pipeline) stanzaOpener(st *xmltree.Element) (namedOpener, bool) {
	sos, nss := mechanismsWith[StanzaOpener](p, true)
	for i, ns := range nss {
		for _, ch := range st.Elements() {
			if ch.Name.Space == ns {
				return namedOpener{sos[i], ns}, true
			}
		}
	}
	return namedOpener{}, false
}

func (p *Pipeline) presence(ev *PresenceEvent) {
	obs, _ := mechanismsWith[PresenceObserver](p, true)
	for _, o := range obs {
		for _, e := range o.Presence(context.Background(), ev) {
			p.c.emit(e)
		}
	}
}

// closing runs the PreClosers while the stream still works.
func (p *Pipeline) closing(ctx context.Context) {
	pcs, _ := mechanismsWith[PreCloser](p, false)
	for _, pc := range pcs {
		if err := pc.Closing(ctx); err != nil {
			p.c.cfg.logger().Warn("mechanism could not close its sessions", "err", err)
		}
	}
}

func (p *Pipeline) streamEnded() {
	obs, _ := mechanismsWith[StreamObserver](p, false)
	for _, o := range obs {
		for _, e := range o.StreamEnded() {
			p.c.emit(e)
		}
	}
}

func (p *Pipeline) messageError(ev *ErrorEvent) {
	obs, _ := mechanismsWith[ErrorObserver](p, false)
	for _, o := range obs {
		for _, e := range o.MessageError(ev) {
			p.c.emit(e)
		}
	}
}
