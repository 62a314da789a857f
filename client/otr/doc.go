// Package otr carries Off-the-Record messaging over XMPP as XEP-0364
// (Deferred, Informational) describes: it is the OTR mechanism of the
// client's message pipeline. The protocol itself, OTR version 3
// (compatible with version 2 and with libotr 4.1), is the engine package
// github.com/balcony-im/balcony/otr:
//
//	o, err := otr.New(otr.Config{Key: key, InstanceTag: tag, Store: st})
//	err = c.Register(o)
//	err = o.Start(ctx, bobFullJID)                  // query; "otr-private" event follows
//	_, err = c.Send(ctx, &client.Outgoing{To: bobFullJID, Body: "hi"}, eme.OTR)
//
// Discovery and starting. A whitespace tag in a plaintext message and any
// OTR message mark the sending resource as known to run OTR; so does a
// fingerprint of the contact in the store. Start (a query message) is
// always possible. Automatic starts follow the OTR policy (Config.Policy:
// WhitespaceStartAKE, ErrorStartAKE, RequireEncryption) and
// Config.AutoStart: AutoStartKnown (the default) starts only with
// known resources, AutoStartNever never (a whitespace tag then only
// yields an "otr-available" event), AutoStartAlways with any resource.
// A query from the peer is always answered.
//
// Addressing and sessions. OTR talks to one resource: Seal, Start, End and
// the SMP methods need a full JID (ErrFullJID otherwise) and every OTR
// message is sent to it. Conversations are kept per full JID and per
// instance tag of the peer's OTR software, so that a peer that restarts
// with a new instance tag is accepted (a query without tags is answered
// with a DH-Commit addressed to any instance) while the old instance's
// messages still reach their own conversation.
//
// Sending. Seal encrypts only in an encrypted conversation and never lets
// the text out in the clear: without one it fails with ErrNoSession
// (or, with AutoStartAlways and a policy requiring encryption, holds
// the message, sends a query, and sends the message after the AKE), and
// with a peer that ended the conversation it fails with otr.ErrFinished
// until End or Start; Usable (Availability) reports an encrypted
// conversation, for the "prefer encryption" policy. OTR carries text
// only: Outgoing.Payload is not sent.
// Every OTR message carries the no-copy and no-permanent-store hints, the
// carbons <private/> element and the EME tag for urn:xmpp:otr:0, and no
// fallback body (Needs). Protocol messages (AKE, SMP, errors, heartbeats)
// are sent by the mechanism itself, in the order the engine produced them.
//
// Receiving. Carbon copies and archived (MAM) copies never reach a
// conversation: an encrypted copy becomes a notice (eme.ReasonNoKey; one
// per fragmented message), a query, key exchange or error inside a copy is
// silently ignored (XEP-0364 §3.2). A live message that cannot be
// decrypted (no conversation, or one made stale by the peer's restart)
// becomes a notice (eme.ReasonNoSession, so the pipeline sends no receipt),
// the peer is told with an OTR error message, and, if AutoStart allows, a
// new AKE starts at once; an unreadable message sent to our bare JID was
// probably meant for another of our resources and only gives the notice.
// Receipts are sent by the pipeline only for messages that were decrypted;
// protocol messages are Silent. Decrypted text goes through Text: HTML
// from libpurple-based peers is shown as text (known tags removed,
// entities decoded, nothing interpreted).
//
// Trust and state. After each AKE the peer's fingerprint is recorded with
// Store.RecordSeenKey (a changed key gives an "otr-fingerprint-changed"
// event); a successful SMP marks it trust.Verified. Messages carry
// Security{Mechanism: eme.OTR, Verified, Fingerprint, Trust}; Status and
// Sessions report plaintext, private-unverified, private-verified or
// finished, with fingerprint, session id and instance tags.
// FingerprintURI and ParseFingerprintURI read and write XEP-0364's
// xmpp:JID?otr-fingerprint=HEX URIs.
//
// Security events: their Kind is one of the Kind constants (KindPrivate
// and KindVerified when an AKE completed, KindFinished when the peer
// ended, went offline, bounced or our stream ended, the SMP kinds, ...);
// their Message comes from the eme catalogue (the client renders it in
// the user's language as Text), and their Hint names what the user can do
// next (verify with SMP, answer an SMP request, end a finished
// conversation). The peer's words in a message (an SMP question, an error
// text) are quoted and clipped but must still be escaped for display.
//
// Lifetime (XEP-0364 §5). When a peer's resource goes unavailable, or a
// bounce of one of our OTR messages says it is gone, its conversations
// end; so do all of them when our stream ends. On Client.Close the stream
// is closed, then TCP, then Shutdown forgets every conversation, in the
// order §5.2 asks. So that the peer learns when we go offline even without
// a presence subscription, the mechanism sends directed presence to the
// peer's full JID when a conversation starts. While a conversation is
// encrypted a goroutine sends the heartbeats the protocol asks for after a
// minute of silence, so that keys rotate.
//
// What OTR does not give over XMPP: messages for another device or the
// archive are unreadable by design; both sides must be online; the fact,
// timing and length of messages are visible to the servers.
package otr
