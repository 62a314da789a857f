package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"golang.org/x/text/language"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/xmltree"
)

// A Mechanism is an end-to-end encryption mechanism plugged into the
// message pipeline. The pipeline owns everything that is the same for all
// mechanisms: the EME tag, the fallback body, the hints and carbons
// directives the mechanism asks for, stanza ids, receipts, policies,
// detection of incoming encryption and the notices for what cannot be read.
//
// Optional abilities are discovered by type assertion: PresenceObserver,
// StreamObserver, ErrorObserver, Shutdowner.
type Mechanism interface {
	// Namespace is the mechanism's EME namespace (XEP-0380).
	Namespace() string
	// Needs tells the pipeline how to decorate this mechanism's messages.
	Needs() Needs
	// Seal protects an outgoing message. It returns the <message/> stanzas
	// to send (an OTR key exchange may need several, fragments too), each
	// carrying the mechanism's payload; 'to', 'type' and 'id' may be left
	// empty for the pipeline to fill. Seal must not change out.
	Seal(ctx context.Context, out *Outgoing) (Sealed, error)
	// Open reads an incoming message that detection attributed to this
	// mechanism. Copies (carbons, archive) have in.Origin.Copy() set and
	// must never change session state. An error should be an *OpenError.
	Open(ctx context.Context, in *Incoming) (*Opened, error)
}

// Needs are the decorations a mechanism's messages get.
type Needs struct {
	// FallbackBody adds a non-encrypted <body/> explaining the encryption
	// when the sealed stanza has none (XEP-0380 §5).
	FallbackBody bool
	// Hints are XEP-0334 hints by local name: "store", "no-store",
	// "no-copy", "no-permanent-store".
	Hints []string
	// Private adds the XEP-0280 <private/> directive so the server sends no
	// carbon copies.
	Private bool
}

// Sealed is what a mechanism's Seal returns.
type Sealed struct {
	// Stanzas are the <message/> stanzas to send, in order.
	Stanzas []*xmltree.Element
	// Held means the message itself is not in Stanzas: the mechanism holds
	// it until its session is established (OTR under a policy that
	// requires encryption sends a query instead) and sends it then.
	Held bool
}

// Sent describes a message that Send handed to the stream.
type Sent struct {
	// ID is the id of the message (of its first stanza).
	ID string
	// IDs are the ids of every stanza sent for it (fragments, a query).
	IDs []string
	// Held means the mechanism holds the message until its session is
	// established; it leaves then, without another call to Send.
	Held bool
}

// Outgoing is a message the user sends.
type Outgoing struct {
	To     jid.JID
	Type   string // default "chat"
	ID     string // default: a new random id
	Thread string
	Body   string
	// Payload are further children to protect with the body (chat states,
	// receipt requests, ...); a mechanism that cannot carry XML (OTR)
	// sends only the body.
	Payload []*xmltree.Element
	// Receipt asks for a XEP-0184 delivery receipt.
	Receipt bool
}

// Incoming is a message handed to a mechanism's Open.
type Incoming struct {
	Stanza    *xmltree.Element
	From, To  jid.JID
	Origin    Origin
	Detection eme.Detection
	Time      time.Time
}

// Opened is what a mechanism read from a message.
type Opened struct {
	Body    string
	Payload []*xmltree.Element // protected children other than the body
	// Security of the content; Mechanism is filled by the pipeline if empty.
	Security Security
	// Replies are protocol messages to send back (key exchange, SMP, ...);
	// the pipeline decorates them like sealed messages.
	Replies []*xmltree.Element
	// Silent means there is nothing to show the user (a protocol message).
	Silent bool
	// Events are security events to emit (session started, key changed...).
	Events []*SecurityEvent
}

// OpenError explains why a mechanism could not open a message; Reason
// selects the notice the user sees (eme.ReasonNoSession,
// eme.ReasonNoKey, eme.ReasonVerificationFailed, eme.ReasonMalformed, ...).
type OpenError struct {
	Reason eme.Reason
	Detail string
	Err    error
}

func (e *OpenError) Error() string {
	s := "client: cannot open message: " + e.Reason.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *OpenError) Unwrap() error { return e.Err }

// PresenceObserver is implemented by mechanisms that react to presence
// (OTR ends a session when the peer's resource goes offline).
type PresenceObserver interface {
	Presence(ctx context.Context, ev *PresenceEvent) []*SecurityEvent
}

// StreamObserver is implemented by mechanisms that react to our stream
// ending (XEP-0364 §5.2).
type StreamObserver interface {
	StreamEnded() []*SecurityEvent
}

// ErrorObserver is implemented by mechanisms that react to error stanzas
// for messages they sent.
type ErrorObserver interface {
	MessageError(ev *ErrorEvent) []*SecurityEvent
}

// Interceptor is implemented by mechanisms whose protocol messages are
// not encrypted payloads (XEP-0155 negotiation forms for Encrypted
// Sessions). Intercept is called for every message that detection found
// to be plaintext, before it is delivered; a mechanism that recognises the
// message returns handled = true and what to do with it. Copies (carbons,
// archive) are offered too, with in.Origin set.
type Interceptor interface {
	Intercept(ctx context.Context, in *Incoming) (opened *Opened, handled bool)
}

// Availability is implemented by mechanisms that can tell whether they can
// protect a message to a contact right now (OX: the contact announced a
// usable key; OTR and Encrypted Sessions: a session is established).
// Pipeline.Best uses it for the "prefer encryption" policy.
type Availability interface {
	Usable(ctx context.Context, to jid.JID) bool
}

// PreCloser is implemented by mechanisms that must say goodbye while the
// stream still works (XEP-0217 §6: terminate every Encrypted Session
// before going offline). Client.Close calls Closing first, with a bounded
// context, before the unavailable presence and the end of the stream.
type PreCloser interface {
	Closing(ctx context.Context) error
}

// PlaintextObserver is implemented by mechanisms that take part in
// plaintext messages: OTR advertises itself with a whitespace tag on
// outgoing plaintext, stops doing so once the contact answered in plaintext,
// and warns about plaintext that arrives during a private conversation.
// Neither method sees carbon or archive copies.
type PlaintextObserver interface {
	OutgoingPlaintext(to jid.JID, body string) string
	IncomingPlaintext(in *Incoming) (warnings []string)
}

// Shutdowner is implemented by mechanisms that must end sessions when the
// client closes; it runs after the stream and TCP connection are closed.
type Shutdowner interface {
	Shutdown()
}

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
	hints    eme.Hints
}

func newPipeline(c *Client) *Pipeline {
	return &Pipeline{c: c, mechs: map[string]Mechanism{}, enabled: map[string]bool{},
		policies: map[string]eme.Policy{}, lang: language.English, hints: eme.DefaultHints()}
}

// Pipeline returns the client's message pipeline.
func (c *Client) Pipeline() *Pipeline { return c.pipeline }

// Register adds a mechanism, enabled or not. A disabled mechanism's
// messages produce a "not enabled" notice with the hint howToEnable (a
// command; "{jid}" stands for the contact), or eme.DefaultHints' hint
// when it is empty.
func (p *Pipeline) Register(m Mechanism, enabled bool, howToEnable string) {
	p.mu.Lock()
	p.mechs[m.Namespace()] = m
	p.enabled[m.Namespace()] = enabled
	if howToEnable != "" {
		p.hints[m.Namespace()] = howToEnable
	}
	p.mu.Unlock()
	if s, ok := m.(Shutdowner); ok {
		p.c.OnShutdown(s.Shutdown)
	}
}

// Enable turns a registered mechanism on or off.
func (p *Pipeline) Enable(namespace string, on bool) {
	p.mu.Lock()
	p.enabled[namespace] = on
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

// Send sends a message, protected by the mechanism with EME namespace
// mechanism, or in the clear when mechanism is "". The contact's policy is
// checked first: a downgrade is refused with an error wrapping
// eme.ErrDowngrade and nothing is sent.
//
// Send does not change *out: the defaults (type "chat", a new id) are
// applied to a copy.
func (c *Client) Send(ctx context.Context, out *Outgoing, mechanism string) (Sent, error) {
	return c.pipeline.send(ctx, out, mechanism)
}

func (p *Pipeline) send(ctx context.Context, msg *Outgoing, mechanism string) (Sent, error) {
	if msg.To.Domainpart() == "" {
		return Sent{}, errors.New("client: message without recipient")
	}
	if err := p.Policy(msg.To).CheckOutgoing(mechanism); err != nil {
		return Sent{}, err
	}
	o := *msg
	out := &o
	if out.Type == "" {
		out.Type = "chat"
	}
	if out.ID == "" {
		out.ID = NewID()
	}
	if mechanism == "" {
		st := xmltree.New(NSClient, "message", "to", out.To.String(), "type", out.Type, "id", out.ID)
		if out.Body != "" {
			body := out.Body
			for _, po := range p.plaintextObservers() {
				body = po.OutgoingPlaintext(out.To, body)
			}
			st.Append(xmltree.New(NSClient, "body").AppendText(body))
		}
		if out.Thread != "" {
			st.Append(xmltree.New(NSClient, "thread").AppendText(out.Thread))
		}
		for _, e := range out.Payload {
			st.Append(e)
		}
		p.decorate(st, out, "", Needs{Hints: nil})
		return Sent{ID: out.ID, IDs: []string{out.ID}}, p.c.SendElement(ctx, st)
	}
	m, ok, enabled := p.mechanism(mechanism)
	if !ok {
		return Sent{}, fmt.Errorf("client: mechanism %s is not available", eme.DisplayName(mechanism, ""))
	}
	if !enabled {
		err := fmt.Errorf("client: %s is not enabled", eme.DisplayName(mechanism, ""))
		p.mu.Lock()
		hint := p.hints.For(mechanism, out.To.String())
		p.mu.Unlock()
		if hint != "" {
			err = fmt.Errorf("%w; enable it with: %s", err, hint)
		}
		return Sent{}, err
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	sealed, err := m.Seal(ctx, out)
	if err != nil {
		return Sent{}, err
	}
	sent := Sent{ID: out.ID, Held: sealed.Held}
	for i, st := range sealed.Stanzas {
		if i > 0 && st.AttrValue("id") == out.ID {
			st.SetAttr("id", NewID())
		}
		p.decorate(st, out, mechanism, m.Needs())
		sent.IDs = append(sent.IDs, st.AttrValue("id"))
		if err := p.c.SendElement(ctx, st); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// decorate adds what every message of a mechanism carries.
func (p *Pipeline) decorate(st *xmltree.Element, out *Outgoing, mechanism string, needs Needs) {
	if out != nil {
		if st.AttrValue("to") == "" {
			st.SetAttr("to", out.To.String())
		}
		if st.AttrValue("type") == "" {
			st.SetAttr("type", out.Type)
		}
		if st.AttrValue("id") == "" {
			st.SetAttr("id", out.ID)
		}
		if out.Receipt && st.Child(NSReceipts, "request") == nil {
			st.Append(xmltree.New(NSReceipts, "request"))
		}
	} else if st.AttrValue("id") == "" {
		st.SetAttr("id", NewID())
	}
	if st.AttrValue("type") == "" {
		st.SetAttr("type", "chat")
	}
	// XEP-0380 tags and fallback bodies go only on messages that carry
	// something to read: a body-less message (a chat state, a receipt) with
	// a tag would show every other client an "unreadable message" notice
	// for nothing.
	carriesText := st.Child(NSClient, "body") != nil || (out != nil && out.Body != "")
	if mechanism != "" && carriesText {
		if st.Child(eme.NS, "encryption") == nil {
			tag := eme.NewTag(mechanism)
			e := xmltree.New(eme.NS, "encryption", "namespace", tag.Namespace)
			if tag.Name != "" {
				e.SetAttr("name", tag.Name)
			}
			st.Append(e)
		}
		if needs.FallbackBody && st.Child(NSClient, "body") == nil {
			st.Append(xmltree.New(NSClient, "body").AppendText(eme.FallbackBody(mechanism)))
		}
	}
	for _, h := range needs.Hints {
		if st.Child(NSHints, h) == nil {
			st.Append(xmltree.New(NSHints, h))
		}
	}
	if needs.Private && st.Child(NSCarbons, "private") == nil {
		st.Append(xmltree.New(NSCarbons, "private"))
	}
	if st.Child(NSSID, "origin-id") == nil {
		st.Append(xmltree.New(NSSID, "origin-id", "id", st.AttrValue("id")))
	}
}

// SendProtocol sends protocol messages of a mechanism (replies, session
// management) to peer, decorated like sealed messages.
func (p *Pipeline) SendProtocol(ctx context.Context, peer jid.JID, mechanism string, stanzas []*xmltree.Element) error {
	m, ok, _ := p.mechanism(mechanism)
	if !ok {
		return fmt.Errorf("client: mechanism %s is not available", mechanism)
	}
	for _, st := range stanzas {
		if st.AttrValue("to") == "" {
			st.SetAttr("to", peer.String())
		}
		p.decorate(st, nil, mechanism, m.Needs())
		if err := p.c.SendElement(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pipeline) notice(in *inbound, det eme.Detection, reason eme.Reason, detail string) *NoticeEvent {
	p.mu.Lock()
	lang := p.lang
	hints := p.hints
	p.mu.Unlock()
	n := det.Notice(reason)
	n.Detail = detail
	switch n.Reason {
	case eme.ReasonNotEnabled, eme.ReasonNoSession, eme.ReasonSessionRequested:
		n.HowToEnable = hints.For(n.Namespace, in.from.String())
	}
	return &NoticeEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Time: in.time, Origin: in.origin,
		Namespace: n.Namespace, Mechanism: n.MechanismName, Reason: n.Reason.String(), Text: n.Text(lang),
	}
}

// clientNotice is a notice about a stanza the client itself refused
// before any mechanism saw it, in the user's language.
func (p *Pipeline) clientNotice(n eme.Notice, from jid.JID, id string) *NoticeEvent {
	p.mu.Lock()
	lang := p.lang
	p.mu.Unlock()
	return &NoticeEvent{From: from, ID: id, Time: p.c.cfg.now(), Reason: n.Reason.String(), Text: n.Text(lang)}
}

// incoming handles one live or carbon message.
func (p *Pipeline) incoming(in *inbound) {
	ev := p.open(context.Background(), in)
	if ev == nil {
		return
	}
	// XEP-0184: acknowledge only what was really delivered (read or, for a
	// plaintext message, shown), and only for live messages. The receipt
	// leaves before the event is handed on, so that a program that stops
	// after the message it waited for does not lose the receipt.
	if m, ok := ev.(*MessageEvent); ok && !in.origin.Copy() && in.origin.Carbon == NotCarbon {
		// A request inside an encrypted payload counts like an outer one.
		if in.st.Child(NSReceipts, "request") != nil || payloadChild(m.Payload, NSReceipts, "request") != nil {
			p.sendReceipt(in)
		}
	}
	p.c.emit(ev)
}

// payloadChild returns the first element named space/local among payload.
func payloadChild(payload []*xmltree.Element, space, local string) *xmltree.Element {
	for _, e := range payload {
		if e.Name.Space == space && e.Name.Local == local {
			return e
		}
	}
	return nil
}

func (p *Pipeline) archived(m ArchivedMessage) Event {
	in := &inbound{st: m.Message, time: m.Stamp, origin: Origin{Archived: true, Delayed: true, StanzaID: m.ID}}
	var err error
	in.from, err = p.c.fromOrAccount(m.Message)
	if err != nil {
		return nil
	}
	if t, err := jid.Parse(m.Message.AttrValue("to")); err == nil {
		in.to = t
	}
	if in.time.IsZero() {
		in.time = p.c.cfg.now()
	}
	return p.open(context.Background(), in)
}

func (p *Pipeline) sendReceipt(in *inbound) {
	id := in.st.AttrValue("id")
	if id == "" || in.st.AttrValue("type") == "groupchat" {
		return
	}
	r := xmltree.New(NSClient, "message", "to", in.from.String(), "id", NewID())
	r.Append(xmltree.New(NSReceipts, "received", "id", id))
	r.Append(xmltree.New(NSHints, "store"))
	if err := p.c.SendElement(context.Background(), r); err != nil {
		p.c.cfg.logger().Warn("sending receipt failed", "err", err)
	}
}

// open turns a message into exactly one event (or nil for a protocol
// message with nothing to show).
func (p *Pipeline) open(ctx context.Context, in *inbound) Event {
	det, err := eme.Detect(in.st.Marshal(""))
	if err != nil {
		return p.notice(in, eme.Detection{}, eme.ReasonUnreadable, err.Error())
	}
	base := &MessageEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Type: in.st.AttrValue("type"),
		Thread: in.st.ChildText(NSClient, "thread"), Time: in.time, Origin: in.origin,
	}
	if !det.Encrypted && !det.Control {
		if ev, handled := p.intercept(ctx, in, det, base); handled {
			return ev
		}
		body, hasBody := plainBody(in.st)
		if det.OTR == eme.OTRWhitespaceTag {
			// A plaintext message offering OTR: the OTR mechanism may start
			// a session (per its policy) and strips the tag.
			if m, ok, enabled := p.mechanism(eme.OTR); ok && enabled && !in.origin.Copy() {
				if opened, err := m.Open(ctx, p.incomingFor(in, det)); err == nil {
					p.afterOpen(ctx, in, eme.OTR, opened)
					body = opened.Body
					base.Security.Warnings = append(base.Security.Warnings, opened.Security.Warnings...)
				}
			} else {
				body = StripOTRWhitespaceTag(body)
			}
		}
		base.Body = body
		base.Payload = otherChildren(in.st)
		if hasBody && !in.origin.Copy() && det.OTR != eme.OTRWhitespaceTag {
			for _, po := range p.plaintextObservers() {
				base.Security.Warnings = append(base.Security.Warnings, po.IncomingPlaintext(p.incomingFor(in, det))...)
			}
		}
		if err := p.Policy(in.from).CheckIncoming(""); hasBody && err != nil && !bareEqual(in.from, p.c.JID()) {
			base.Security.Warnings = append(base.Security.Warnings, err.Error())
		}
		return base
	}

	if det.Disagreement != nil || det.Mechanism == "" {
		// Contradictory or unreadable markers: report, never guess.
		return p.notice(in, det, eme.ReasonUnspecified, "")
	}
	ns := det.Mechanism
	m, ok, enabled := p.mechanism(ns)
	if !ok || !enabled {
		control := controlOnly(det)
		switch {
		case control && !det.HasBody:
			// A protocol message with nothing to read (an empty OMEMO
			// message completing a session, a key transport): telling the
			// user that "a message could not be read" would be wrong.
			p.c.cfg.logger().Debug("ignoring a control message of a mechanism that is not in use", "mechanism", ns, "from", in.from.String())
			return nil
		case !ok:
			return p.notice(in, det, eme.ReasonNotSupported, "")
		case control:
			// An OTR query or key exchange, tagged or not.
			return p.notice(in, det, eme.ReasonSessionRequested, "")
		}
		return p.notice(in, det, eme.ReasonNotEnabled, "")
	}
	opened, err := m.Open(ctx, p.incomingFor(in, det))
	if err != nil {
		var oe *OpenError
		if errors.As(err, &oe) {
			return p.notice(in, det, oe.Reason, oe.Detail)
		}
		return p.notice(in, det, eme.ReasonMalformed, err.Error())
	}
	p.afterOpen(ctx, in, ns, opened)
	return p.opened(in, ns, opened)
}

// opened turns what mechanism ns read from in into the event delivered
// (nil for a protocol message with nothing to show). The incoming policy
// counts the message as protected by ns only when the mechanism
// authenticated it as the sender's.
func (p *Pipeline) opened(in *inbound, ns string, opened *Opened) Event {
	if opened.Silent {
		return nil
	}
	if r := payloadChild(opened.Payload, NSReceipts, "received"); r != nil && opened.Body == "" && !in.origin.Copy() {
		// An encrypted receipt (XEP-0184 inside the payload) is a receipt.
		return &ReceiptEvent{From: in.from, ID: r.AttrValue("id")}
	}
	ev := &MessageEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Type: in.st.AttrValue("type"),
		Thread: in.st.ChildText(NSClient, "thread"), Time: in.time, Origin: in.origin,
		Body: opened.Body, Payload: opened.Payload, Security: opened.Security,
	}
	counted := ns
	if !opened.Security.Authenticated {
		counted = ""
	}
	if err := p.Policy(in.from).CheckIncoming(counted); err != nil && !bareEqual(in.from, p.c.JID()) {
		ev.Security.Warnings = append(ev.Security.Warnings, err.Error())
		ev.Security.Verified = false
	}
	if ev.Security.Mechanism == "" {
		ev.Security.Mechanism = ns
	}
	if ev.Security.Name == "" {
		ev.Security.Name = eme.DisplayName(ns, "")
	}
	return ev
}

// controlOnly reports whether every payload of the message is a control
// message of its mechanism (no user content), tagged or not.
func controlOnly(det eme.Detection) bool {
	for _, pl := range det.Payloads {
		if !pl.Control {
			return false
		}
	}
	return len(det.Payloads) > 0
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

func (p *Pipeline) plaintextObservers() []PlaintextObserver {
	obs, _ := mechanismsWith[PlaintextObserver](p, true)
	return obs
}

// intercept offers a plaintext message to the enabled interceptors.
func (p *Pipeline) intercept(ctx context.Context, in *inbound, det eme.Detection, base *MessageEvent) (Event, bool) {
	ics, nss := mechanismsWith[Interceptor](p, true)
	for k, ic := range ics {
		opened, handled := ic.Intercept(ctx, p.incomingFor(in, det))
		if !handled {
			continue
		}
		if opened == nil {
			return nil, true
		}
		p.afterOpen(ctx, in, nss[k], opened)
		if opened.Silent {
			return nil, true
		}
		base.Body = opened.Body
		base.Payload = opened.Payload
		base.Security = opened.Security
		return base, true
	}
	return nil, false
}

func (p *Pipeline) incomingFor(in *inbound, det eme.Detection) *Incoming {
	return &Incoming{Stanza: in.st, From: in.from, To: in.to, Origin: in.origin, Detection: det, Time: in.time}
}

func (p *Pipeline) afterOpen(ctx context.Context, in *inbound, ns string, opened *Opened) {
	for _, e := range opened.Events {
		if e.Mechanism == "" {
			e.Mechanism = ns
		}
		if e.Peer.Domainpart() == "" {
			e.Peer = in.from
		}
		p.c.emit(e)
	}
	if len(opened.Replies) > 0 && !in.origin.Copy() {
		if err := p.SendProtocol(ctx, in.from, ns, opened.Replies); err != nil {
			p.c.cfg.logger().Warn("sending protocol reply failed", "mechanism", ns, "err", err)
		}
	}
}

func plainBody(st *xmltree.Element) (string, bool) {
	b := st.Child(NSClient, "body")
	if b == nil {
		return "", false
	}
	return b.Text(), true
}

// otherChildren returns the children that are not body, thread or
// stanza bookkeeping.
func otherChildren(st *xmltree.Element) []*xmltree.Element {
	var out []*xmltree.Element
	for _, e := range st.Elements() {
		switch {
		case e.Name.Space == NSClient && (e.Name.Local == "body" || e.Name.Local == "thread" || e.Name.Local == "subject"):
		case e.Name.Space == NSSID, e.Name.Space == NSHints, e.Name.Space == NSDelay, e.Name.Space == NSReceipts:
		default:
			out = append(out, e)
		}
	}
	return out
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

// StripOTRWhitespaceTag removes OTR whitespace tags (the base tag and the
// version tags that follow it) from a plaintext body; see
// otr.StripWhitespaceTag.
func StripOTRWhitespaceTag(body string) string {
	out, _ := otr.StripWhitespaceTag([]byte(body))
	return string(out)
}
