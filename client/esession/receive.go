package esession

import (
	"context"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// Open decrypts a received XEP-0200 <c/>.
func (e *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	if in.Origin.Copy() {
		return nil, &client.OpenError{Reason: eme.ReasonNoSession, Notes: []eme.Message{copyNote(in.Origin)}}
	}
	res, keyEvents, err := e.receive(ctx, in)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	op := e.convert(in, res, keyEvents)
	for _, ev := range res.Events {
		switch ev := ev.(type) {
		case engine.Terminated:
			if ev.Err != nil && !op.hasMessage {
				// The events say what happened to the session; the
				// message itself becomes the notice.
				e.emitAll(in.From, op.Events)
				return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed,
					Notes: []eme.Message{eme.Msg(eme.MsgESEnded, ev.Session.Peer())}}
			}
		case engine.Rejected:
			if !op.hasMessage {
				// The notice says it; no KindIgnored event besides.
				var rest []*client.SecurityEvent
				for _, x := range op.Events {
					if x.Kind != KindIgnored {
						rest = append(rest, x)
					}
				}
				e.emitAll(in.From, rest)
				return nil, &client.OpenError{Reason: eme.ReasonNoSession, Detail: ev.Reason}
			}
		}
	}
	if !op.hasMessage {
		op.Silent = true
	}
	return &op.Opened, nil
}

// Intercept reads XEP-0155 negotiation stanzas and plaintext sent on the
// thread of an encrypted session.
func (e *Mechanism) Intercept(ctx context.Context, in *client.Incoming) (*client.Opened, bool) {
	st := in.Stanza
	switch st.AttrValue("type") {
	case "groupchat", "headline", "error":
		return nil, false
	}
	neg := st.Child(engine.NSFeatureNeg, "feature") != nil || st.Child(engine.NSInit, "init") != nil
	if !neg {
		thread := st.ChildText(client.NSClient, "thread")
		if thread == "" || in.Origin.Copy() || e.m().Session(in.From.String(), thread) == nil {
			return nil, false
		}
	}
	if in.Origin.Copy() {
		if in.Origin.Archived {
			return &client.Opened{Silent: true}, true
		}
		return &client.Opened{Silent: true, Events: []*client.SecurityEvent{{
			Peer: in.From, Mechanism: e.Namespace(), Kind: KindCopy,
			Message: eme.Msg(eme.MsgESCopyIgnored),
		}}}, true
	}
	res, keyEvents, err := e.receive(ctx, in)
	if err != nil {
		return &client.Opened{Silent: true, Events: []*client.SecurityEvent{{
			Peer: in.From, Mechanism: e.Namespace(), Kind: KindIgnored,
			Message: eme.Msg(eme.MsgESMalformed, in.From.String(), err.Error()),
		}}}, true
	}
	if res.Unhandled {
		return nil, false
	}
	op := e.convert(in, res, keyEvents)
	if op.unencrypted != nil {
		op.Body, _, op.Payload = client.SplitContent(st.Elements())
		op.Security = client.Security{Warnings: []client.Warning{client.Warn(eme.MsgESClearOnThread, op.unencrypted.Session.Peer())}}
		return &op.Opened, true
	}
	if !op.hasMessage {
		if body, ok, _ := client.SplitContent(st.Elements()); ok && body != "" {
			// Never lose a body, even one riding on a negotiation stanza.
			op.Body, op.Payload = body, nil
			op.Security = client.Security{Warnings: []client.Warning{client.Warn(eme.MsgESClearWithNegotiation)}}
		} else {
			op.Silent = true
		}
	}
	return &op.Opened, true
}

// receive hands a live stanza to the engine and sends what it answers.
// The key events (a new, changed or rejected key of the contact) come
// first: they precede everything of the session they concern.
func (e *Mechanism) receive(ctx context.Context, in *client.Incoming) (engine.Result, []*client.SecurityEvent, error) {
	inb, err := engine.ParseMessage(in.Stanza)
	if err != nil {
		return engine.Result{}, nil, err
	}
	inb.From = in.From.String()
	inb.Subscribed = e.h.Subscribed(in.From)
	inb.Delayed = inb.Delayed || in.Origin.Delayed
	unlock := e.lockSend()
	res, _ := e.m().Receive(inb) // errors come with events
	keyEvents, _ := e.handled(ctx, &res)
	unlock()
	e.afterHandled(ctx, res)
	return res, keyEvents, nil
}

// handled sends what the engine produced and checks the contact's keys.
// The caller holds the send lock.
func (e *Mechanism) handled(ctx context.Context, res *engine.Result) ([]*client.SecurityEvent, error) {
	err := e.send(ctx, res.Out)
	return e.checkKeys(ctx, res), err
}

// afterHandled does what established and ended sessions call for once
// the send lock is released: directed presence where it was agreed, the
// archive check of sessions that must not be stored, and waking WaitFor.
func (e *Mechanism) afterHandled(ctx context.Context, res engine.Result) {
	e.track(res.Events)
	for _, ev := range res.Events {
		switch ev := ev.(type) {
		case engine.Established:
			if p := ev.Session.Params(); ev.Encrypted && p.SharePresence && !ev.Offline {
				e.directedPresence(ctx, ev.Session.Peer())
			}
			if ev.Session.Params().Logging == engine.LoggingMustNot {
				e.keepOutOfArchive(ev.Session)
			}
		case engine.Renegotiated:
			if ev.Accepted && ev.Params.Logging == engine.LoggingMustNot {
				e.keepOutOfArchive(ev.Session)
			}
		case engine.Terminated:
			e.sessionEnded(ev.Session)
		}
	}
	e.notify()
}

// directedPresence sends available presence to the resource a session is
// bound to, unless the client sends no presence at all. The server then
// tells that resource when we go offline (RFC 6121 §4.6.3), even without
// a presence subscription, so that its session ends even if our terminate
// never left. The contact learns nothing new: it is in a session with us.
func (e *Mechanism) directedPresence(ctx context.Context, peer string) {
	if e.h == nil || !strings.Contains(peer, "/") {
		return
	}
	to, err := jid.Parse(peer)
	if err != nil {
		return
	}
	if e.wire != nil {
		err = e.wire.Send(ctx, to, xmltree.New(client.NSClient, "presence", "to", to.String()))
	} else {
		err = e.h.SendPresence(ctx, to)
	}
	if err != nil {
		e.log().Warn("sending directed presence failed", "to", peer, "err", err)
	}
}

// converted is an Opened being built from engine events.
type converted struct {
	client.Opened
	hasMessage  bool
	unencrypted *engine.Unencrypted
}

// convert turns engine events into the message and security events.
func (e *Mechanism) convert(in *client.Incoming, res engine.Result, keyEvents []*client.SecurityEvent) converted {
	var op converted
	op.Events = append(op.Events, keyEvents...)
	for _, ev := range res.Events {
		if m, ok := ev.(engine.Message); ok && !op.hasMessage {
			op.hasMessage = true
			op.Body, op.Payload = messageContent(m.Content)
			op.Security = e.security(m.Session)
			for _, n := range m.Stripped {
				if n == "request" && in.Stanza.Child(client.NSReceipts, "request") != nil {
					continue // the pipeline's receipt request rides outside <c/>
				}
				op.Security.Warnings = append(op.Security.Warnings, client.Warn(eme.MsgESStripped, n))
			}
			continue
		}
		if u, ok := ev.(engine.Unencrypted); ok {
			op.unencrypted = &u
			continue
		}
		op.Events = append(op.Events, e.securityEvents(ev)...)
	}
	return op
}

// security is the Security of a message received in s.
func (e *Mechanism) security(s *engine.Session) client.Security {
	// Stanzas of an established session are authenticated by its MAC keys.
	return client.Security{Mechanism: e.Namespace(), Name: eme.DisplayName(e.Namespace(), ""),
		Verified: s.Verified(), Authenticated: true, Fingerprint: sessionFingerprint(s)}
}

// sessionFingerprint is what identifies a session to the user: its SAS,
// or (in the SIGMA-I exchange, which has none) the contact's key.
func sessionFingerprint(s *engine.Session) string {
	if sas := s.SAS(); sas != "" {
		return sas
	}
	if k := s.PeerKey(); k != nil {
		return Fingerprint(k)
	}
	return ""
}

// messageContent splits decrypted stanza content into the body and the
// other children.
func messageContent(content []*xmltree.Element) (string, []*xmltree.Element) {
	body, _, payload := client.SplitContent(content)
	return body, payload
}

func copyNote(o client.Origin) eme.Message {
	if o.Archived {
		return eme.Msg(eme.MsgESCopyArchived)
	}
	return eme.Msg(eme.MsgESCopyCarbon)
}
