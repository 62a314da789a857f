package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/text/language"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

func (p *Pipeline) notice(in *inbound, det eme.Detection, reason eme.Reason, detail string, notes ...eme.Message) *NoticeEvent {
	n := det.Notice(reason)
	n.Detail = detail
	n.Notes = notes
	if n.Hint.Action != eme.ActionNone {
		n.Hint.Peer = in.from.String()
	}
	return &NoticeEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Time: in.time, Origin: in.origin,
		Namespace: n.Namespace, Mechanism: n.MechanismName, Reason: n.Reason, Hint: n.Hint, Text: n.Text(p.language()),
	}
}

// language returns the language of the user-facing texts.
func (p *Pipeline) language() language.Tag {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lang
}

// localize fills the texts of an event from its catalogue messages, in
// the user's language. Texts already set are kept.
func (p *Pipeline) localize(ev Event) {
	switch e := ev.(type) {
	case *SecurityEvent:
		if e.Text == "" {
			e.Text = eme.Texts(p.language(), append([]eme.Message{e.Message}, e.Notes...)...)
		}
	case *MessageEvent:
		ws := e.Security.Warnings
		for i := range ws {
			if ws[i].Text == "" {
				ws[i].Text = ws[i].Message.Text(p.language())
			}
		}
	}
}

// policyWarning is the warning for a message the incoming policy flags.
func policyWarning(err error) Warning {
	if de, ok := errors.AsType[*eme.DowngradeError](err); ok {
		return Warning{Message: de.Message()}
	}
	return Warning{Message: eme.Msg(eme.MsgPolicyCheckFailed, err.Error())}
}

// clientNotice is a notice about a stanza the client itself refused
// before any mechanism saw it, in the user's language.
func (p *Pipeline) clientNotice(n eme.Notice, from jid.JID, id string) *NoticeEvent {
	p.mu.Lock()
	lang := p.lang
	p.mu.Unlock()
	return &NoticeEvent{From: from, ID: id, Time: p.c.cfg.now(), Reason: n.Reason, Text: n.Text(lang)}
}

// incoming handles one live or carbon message.
func (p *Pipeline) incoming(in *inbound) {
	ev := p.open(context.Background(), in)
	if log := p.c.cfg.logger(); log.Enabled(context.Background(), slog.LevelDebug) {
		// The fate of each message read, by id (never its content).
		log.Debug("message read", "id", in.st.AttrValue("id"), "from", in.from.String(), "carbon", in.origin.Carbon, "archived", in.origin.Archived, "delayed", in.origin.Delayed, "event", eventKind(ev))
	}
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

// eventKind names what a message read became, for the debug log.
func eventKind(ev Event) string {
	switch ev := ev.(type) {
	case nil:
		return "nothing to show"
	case *NoticeEvent:
		return "notice " + ev.Reason.String()
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", ev), "*client.")
	}
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

// archivedInbound is an archived message as the pipeline sees it, or nil
// when its sender address is invalid.
func (p *Pipeline) archivedInbound(m ArchivedMessage) *inbound {
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
	return in
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

// Receive runs one received <message/> through the pipeline synchronously
// and returns its event (nil for a protocol message with nothing to show),
// as the client does with a stanza from the stream once carbons and
// archive results are unwrapped: in.Stanza is the message, From, To,
// Origin and Time describe it, Detection is computed here. No receipt is
// sent. For tests and tools that get stanzas from elsewhere.
func (p *Pipeline) Receive(ctx context.Context, in *Incoming) Event {
	t := in.Time
	if t.IsZero() {
		t = p.c.cfg.now()
	}
	ev := p.open(ctx, &inbound{st: in.Stanza, from: in.From, to: in.To, origin: in.Origin, time: t})
	if ev != nil {
		p.localize(ev)
	}
	return ev
}

// open turns a message into exactly one event (or nil for a protocol
// message with nothing to show).
func (p *Pipeline) open(ctx context.Context, in *inbound) Event {
	det, err := eme.DetectElement(in.st)
	if err != nil {
		return p.notice(in, eme.Detection{}, eme.ReasonUnreadable, err.Error())
	}
	if !det.Encrypted && !det.Control {
		return p.plaintext(ctx, in, det)
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
	return p.finish(ctx, in, det, ns, opened, err)
}

// finish turns what mechanism ns's Open returned into the event.
func (p *Pipeline) finish(ctx context.Context, in *inbound, det eme.Detection, ns string, opened *Opened, err error) Event {
	if err != nil {
		var oe *OpenError
		if errors.As(err, &oe) {
			if m, ok, _ := p.mechanism(ns); ok && oe.Reason == eme.ReasonNoSession && m.Needs().AnswerUnreadable {
				p.tellSender(in)
			}
			return p.notice(in, det, oe.Reason, oe.Detail, oe.Notes...)
		}
		return p.notice(in, det, eme.ReasonMalformed, err.Error())
	}
	p.afterOpen(ctx, in, ns, opened)
	return p.opened(in, ns, opened)
}

// tellSender answers a live message that its mechanism could not read
// because the session that sealed it is gone (Needs.AnswerUnreadable)
// with a message error carrying its id (RFC 6120 §8.3): the sender's
// client learns that this very message was not read (its fate: failed),
// not merely that "some message" was unreadable. Copies (carbons, the
// archive) and errors are never answered; the answer is written off the
// read loop.
func (p *Pipeline) tellSender(in *inbound) {
	id := in.st.AttrValue("id")
	if id == "" || in.origin.Copy() || in.origin.CatchUp || in.st.AttrValue("type") == "error" {
		return
	}
	reply := xmltree.New(NSClient, "message", "type", "error", "to", in.from.String(), "id", id)
	e := xmltree.New(NSClient, "error", "type", "cancel")
	e.Append(xmltree.New(NSStanzas, "not-acceptable"))
	e.Append(xmltree.New(NSStanzas, "text").AppendText(UnreadableText))
	reply.Append(e)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.c.writeStanza(ctx, reply, nil); err != nil {
			p.c.cfg.logger().Debug("telling the sender a message could not be read failed", "err", err)
		}
	}()
}

// UnreadableText is the text of the message error Balcony answers a
// message with when the session that sealed it is gone.
const UnreadableText = "The encrypted session this message was sealed in has ended: it could not be read."

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
		ev.Security.Warnings = append(ev.Security.Warnings, policyWarning(err))
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

// plaintext delivers a message detection found no encryption in: offered
// to the interceptors (negotiation forms), then to every PlaintextObserver
// (markers stripped, warnings added), then checked against the policy.
func (p *Pipeline) plaintext(ctx context.Context, in *inbound, det eme.Detection) Event {
	base := &MessageEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Type: in.st.AttrValue("type"),
		Thread: in.st.ChildText(NSClient, "thread"), Time: in.time, Origin: in.origin,
	}
	if ev, handled := p.intercept(ctx, in, det, base); handled {
		return ev
	}
	body, hasBody, payload := SplitContent(in.st.Elements())
	base.Body, base.Payload = body, payload
	if hasBody {
		obs, _ := mechanismsWith[PlaintextObserver](p, false)
		for _, po := range obs {
			r := po.IncomingPlaintext(ctx, p.incomingFor(in, det), base.Body)
			base.Body = r.Body
			base.Security.Warnings = append(base.Security.Warnings, r.Warnings...)
		}
		if err := p.Policy(in.from).CheckIncoming(""); err != nil && !bareEqual(in.from, p.c.JID()) {
			base.Security.Warnings = append(base.Security.Warnings, policyWarning(err))
		}
	}
	return base
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
		p.sendMu.Lock()
		err := p.writeProtocol(ctx, in.from, ns, opened.Replies)
		p.sendMu.Unlock()
		if err != nil {
			p.c.cfg.logger().Warn("sending protocol reply failed", "mechanism", ns, "err", err)
		}
	}
}

// SplitContent splits the children of a message (or of decrypted
// content) into the text of its first <body/> in a stanza namespace, and
// the other children worth delivering: everything but bodies, the thread,
// the subject and stanza bookkeeping (ids, hints, delays, receipts).
func SplitContent(children []*xmltree.Element) (body string, hasBody bool, payload []*xmltree.Element) {
	for _, e := range children {
		switch {
		case e.Name.Local == "body" && (e.Name.Space == NSClient || e.Name.Space == NSServer || e.Name.Space == ""):
			if !hasBody {
				body, hasBody = e.Text(), true
			}
		case (e.Name.Space == NSClient || e.Name.Space == NSServer || e.Name.Space == "") && (e.Name.Local == "thread" || e.Name.Local == "subject"):
		case e.Name.Space == NSSID, e.Name.Space == NSHints, e.Name.Space == NSDelay, e.Name.Space == NSReceipts:
		default:
			payload = append(payload, e)
		}
	}
	return body, hasBody, payload
}
