package esession

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
)

// This file gives plain one-to-one chats XEP-0201 threads: a thread per
// conversation with each contact, the contact's own thread continued in
// replies, a new one when a message arrives without a thread.

// PlainThread returns the ThreadID for a plain (unencrypted) message to
// peer: the thread of the current conversation with the contact, or a
// new one (XEP-0201 §4.1). Client.Send puts it in Outgoing.Thread.
func (e *Mechanism) PlainThread(peer jid.JID) string {
	th, err := e.threads.Outgoing(peer.Bare().String())
	if err != nil {
		return ""
	}
	return th
}

// EndPlainThread ends the plain conversation with peer: the next plain
// message starts a new thread.
func (e *Mechanism) EndPlainThread(peer jid.JID) {
	bare := peer.Bare().String()
	if th, err := e.threads.Outgoing(bare); err == nil {
		e.threads.End(bare, th)
	}
}

// OutgoingPlaintext implements client.PlaintextObserver: the body is
// left as it is.
func (e *Mechanism) OutgoingPlaintext(to jid.JID, body string) string { return body }

// IncomingPlaintext implements client.PlaintextObserver: a live plain
// chat message makes its thread (or, without one, a new thread) the
// current conversation with the sender, continued by PlainThread.
func (e *Mechanism) IncomingPlaintext(ctx context.Context, in *client.Incoming, body string) client.Plaintext {
	typ := in.Stanza.AttrValue("type")
	if in.Origin.Copy() || (typ != "" && typ != "chat" && typ != "normal") {
		return client.Plaintext{Body: body}
	}
	thread := in.Stanza.ChildText(client.NSClient, "thread")
	if thread == "" || e.m().Session(in.From.String(), thread) == nil {
		e.threads.Incoming(in.From.Bare().String(), thread) //nolint:errcheck // a thread is a convenience
	}
	return client.Plaintext{Body: body}
}
