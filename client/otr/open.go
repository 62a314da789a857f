package otr

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/trust"
)

// Open implements Mechanism. Live OTR messages go to the conversation of
// the sender's full JID and instance; copies (carbons, archive) never touch
// any state: encrypted ones give a notice (once per fragmented message),
// session set-up inside them is silently ignored (XEP-0364 §3.2).
func (o *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	body := in.Stanza.ChildText(client.NSClient, "body")
	kind := in.Detection.OTR
	if kind == eme.OTRNone {
		kind, _ = eme.ClassifyOTR(body)
	}
	switch {
	case kind == eme.OTRNone:
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Notes: []eme.Message{eme.Msg(eme.MsgOTRTaggedNotOTR)}}
	case kind == eme.OTRWhitespaceTag && (in.Detection.Encrypted || in.Detection.Control):
		// Plaintext with an EME tag: whatever we returned, the pipeline
		// would show it as encrypted. Only untagged plaintext is shown.
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Notes: []eme.Message{eme.Msg(eme.MsgOTRTaggedPlaintext)}}
	case in.Origin.Copy():
		return openCopy(in, body, kind)
	}

	defer o.lockWire()()
	o.mu.Lock()
	p := o.peer(in.From)
	o.known[in.From.String()] = true
	conv, err := o.route(p, body, kind)
	if err != nil {
		o.mu.Unlock()
		return nil, &client.OpenError{Reason: eme.ReasonUnspecified, Err: err}
	}
	res, rerr := conv.Receive([]byte(body))
	p.used[conv] = o.cfg.Now()
	if len(p.used) > maxOTRInstances+2 {
		// Forget the use of conversations replaced meanwhile.
		live := p.convs()
		for c := range p.used {
			if !slices.Contains(live, c) {
				delete(p.used, c)
			}
		}
	}
	if t := conv.TheirInstanceTag(); t != 0 && conv != p.pending && p.byTag[t] == nil {
		o.addInstance(p, t, conv)
	}
	o.boundFragments(p, conv)
	var events []*client.SecurityEvent
	var unreadable, otherInstance, malformed, secure, unencrypted bool
	toSend := res.ToSend
	for _, e := range res.Events {
		switch e.Kind {
		case engine.EventUnencrypted:
			unencrypted = true
		case engine.EventUnreadable:
			unreadable = true
		case engine.EventOtherInstance:
			otherInstance = true
		case engine.EventMalformed:
			malformed = true
		case engine.EventGoneSecure, engine.EventRefreshed:
			secure = true
			events = append(events, o.goneSecure(ctx, p, conv, e.Kind == engine.EventRefreshed)...)
		default:
			if ev := o.securityEvent(ctx, p, conv, e); ev != nil {
				events = append(events, ev)
			}
		}
	}
	// An unreadable message sent to our bare JID was most likely meant for
	// another of our resources: do not disturb its session.
	toBare := in.To.Domainpart() != "" && in.To.Resourcepart() == ""
	reAKE := false
	if unreadable && !toBare && o.mayAutoStart(ctx, in.From) && o.cfg.Now().Sub(p.lastReAKE) > 5*time.Second {
		// XEP-0364 users' top complaint: a stale session after the peer
		// reconnected. Start a new one right away (per policy).
		p.lastReAKE = o.cfg.Now()
		reAKE = true
		if c, err := o.currentConv(p); err == nil {
			if q, err := c.StartAKE(); err == nil {
				toSend = append(toSend, q...)
			}
		}
	}
	if toBare && rerr != nil {
		toSend = nil
	}
	if err := o.send(ctx, p, toSend); err != nil && o.h != nil {
		o.h.Logger().Warn("sending OTR reply failed", "err", err)
	}
	if secure {
		o.sendPresence(ctx, p)
		o.startHeartbeat()
	}
	fpr, verified, trustName := o.peerKey(ctx, p, conv)
	state := conv.State()
	auto := o.auto
	announced := p.announced
	if kind == eme.OTRWhitespaceTag {
		p.announced = true
	}
	o.mu.Unlock()

	switch {
	case unreadable:
		notes := []eme.Message{eme.Msg(eme.MsgOTRNoConversation, in.From.String())}
		if state == engine.Encrypted {
			notes[0] = eme.Msg(eme.MsgOTRStaleConversation, in.From.String())
		}
		switch {
		case toBare:
			notes = append(notes, eme.Msg(eme.MsgOTRSentToBare))
		case reAKE:
			notes = append(notes, eme.Msg(eme.MsgOTRRestarting))
		default:
			notes = append(notes, eme.Msg(eme.MsgOTRPeerTold))
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoSession, Notes: notes, Err: rerr}
	case malformed:
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: rerr}
	case otherInstance && kind.Encrypted():
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: []eme.Message{eme.Msg(eme.MsgOTROtherInstance)}}
	case rerr != nil && kind.Encrypted():
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Err: rerr}
	case rerr != nil:
		// A rejected key exchange message changes nothing; tell the user.
		events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindError,
			Message: eme.Msg(eme.MsgOTRInvalidKeyExchange, in.From.String())})
		return &client.Opened{Silent: true, Events: events}, nil
	}
	if kind == eme.OTRWhitespaceTag {
		// Plaintext offering OTR: the pipeline shows it as plaintext.
		if state == engine.Plaintext && !secure && auto == AutoStartNever && !announced {
			events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindAvailable,
				Message: eme.Msg(eme.MsgOTRAvailable, in.From.String()),
				Hint:    eme.Hint{Action: eme.ActionStartSession, Mechanism: eme.OTR, Peer: in.From.String()}})
		}
		op := &client.Opened{Body: string(res.Plaintext), Events: events}
		if unencrypted || state == engine.Encrypted {
			op.Security.Warnings = append(op.Security.Warnings, client.Warn(eme.MsgOTRSentInClear, in.From.String()))
		}
		return op, nil
	}
	if res.Plaintext == nil {
		return &client.Opened{Silent: true, Events: events}, nil
	}
	if !res.Encrypted {
		// Text that came through OTR unencrypted (a query for a version
		// we do not speak): show it as what it is.
		events = append(events, &client.SecurityEvent{Peer: in.From, Mechanism: eme.OTR, Kind: KindUnsupported,
			Message: eme.Msg(eme.MsgOTRUnsupportedVersion, in.From.String())})
		return &client.Opened{Silent: true, Events: events}, nil
	}
	// A data message is authenticated by the session's MAC keys, which the
	// AKE bound to the contact's DSA key.
	sec := client.Security{Mechanism: eme.OTR, Name: eme.DisplayName(eme.OTR, ""), Verified: verified, Authenticated: true, Fingerprint: fpr, Trust: trustName}
	if trustName == trust.Untrusted.String() {
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOTRKeyUntrusted, fpr))
		sec.Verified = false
	}
	return &client.Opened{Body: Text(string(res.Plaintext)), Security: sec, Events: events}, nil
}

// openCopy handles a carbon or archived copy of an OTR message.
func openCopy(in *client.Incoming, body string, kind eme.OTRKind) (*client.Opened, error) {
	detail := []eme.Message{eme.Msg(eme.MsgOTRCopyCarbon)}
	if in.Origin.Archived {
		detail = []eme.Message{eme.Msg(eme.MsgOTRCopyArchive)}
	}
	switch kind {
	case eme.OTRFragment:
		if k, ok := otrFragmentIndex(body); ok && k > 1 {
			return &client.Opened{Silent: true}, nil // one notice per message
		}
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: detail}
	case eme.OTRData, eme.OTREncoded:
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Notes: detail}
	}
	// Query, error, key exchange: never start or change anything from a
	// copy (XEP-0364 §3.2: silently ignored).
	return &client.Opened{Silent: true}, nil
}

// otrFragmentIndex returns k of a fragment "?OTR|s|r,k,n,..." or
// "?OTR,k,n,...".
func otrFragmentIndex(body string) (int, bool) {
	var rest string
	if i := strings.Index(body, "?OTR|"); i >= 0 {
		rest = body[i+5:]
		for n := 0; n < 2; n++ {
			j := strings.IndexAny(rest, "|,")
			if j < 0 {
				return 0, false
			}
			rest = rest[j+1:]
		}
	} else if i := strings.Index(body, "?OTR,"); i >= 0 {
		rest = body[i+5:]
	} else {
		return 0, false
	}
	j := strings.IndexByte(rest, ',')
	if j < 0 {
		return 0, false
	}
	k, err := strconv.Atoi(rest[:j])
	return k, err == nil
}

// IncomingPlaintext implements PlaintextObserver. A whitespace tag
// (a plaintext message offering OTR) is removed; in a live message it may
// also start a private conversation, as the policy and AutoStart say. An
// untagged plaintext answer stops our whitespace tags to that contact, and
// plaintext from a resource we have a private conversation with is
// flagged. Copies change nothing.
func (o *Mechanism) IncomingPlaintext(ctx context.Context, in *client.Incoming, body string) client.Plaintext {
	tagged := in.Detection.OTR == eme.OTRWhitespaceTag
	if in.Origin.Copy() {
		if tagged {
			body = stripWhitespaceTag(body)
		}
		return client.Plaintext{Body: body}
	}
	if tagged {
		opened, err := o.Open(ctx, in)
		if err != nil {
			return client.Plaintext{Body: stripWhitespaceTag(body)}
		}
		if o.h != nil {
			for _, e := range opened.Events {
				o.h.Emit(e)
			}
		}
		return client.Plaintext{Body: opened.Body, Warnings: opened.Security.Warnings}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.noTag[in.From.Bare().String()] = true
	if p := o.peers[in.From.String()]; p != nil && p.current != nil && p.current.State() == engine.Encrypted {
		return client.Plaintext{Body: body, Warnings: []client.Warning{client.Warn(eme.MsgOTRSentInClear, in.From.String())}}
	}
	return client.Plaintext{Body: body}
}

// stripWhitespaceTag removes OTR whitespace tags (the base tag and the
// version tags that follow it) from a plaintext body.
func stripWhitespaceTag(body string) string {
	out, _ := engine.StripWhitespaceTag([]byte(body))
	return string(out)
}
