// Package esession carries Encrypted Sessions over XMPP: it is the
// mechanism of the client's message pipeline for the XEP-0218 family,
// XEP-0201 threads (Active), XEP-0155 stanza session negotiation (Draft),
// and the XEP-0217 key agreement with XEP-0200 stanza encryption (both
// Deferred since 2007, never analysed). The protocol itself is the engine
// package github.com/balcony-im/balcony/esession, which says what is
// implemented and what a session protects:
//
//	es, err := esession.New(esession.Config{Secrets: secrets})
//	err = c.Register(es)
//	err = c.Connect(ctx)
//	_, err = es.Start(ctx, bobFullJID)              // "esession-established" event follows
//	_, err = c.Send(ctx, &client.Outgoing{To: bob, Body: "hi"}, esession.NSStanzaEncryption)
//	_, err = es.ConfirmSAS(bob, sas, "")            // the SAS compared by voice
//	_, err = es.End(ctx, bob)
//	c.Close()                                       // terminates the remaining sessions first
//
// Set-up. Register the mechanism before Connect: it advertises
// engine.FeatureESession and engine.FormTypeSSN. Config.Secrets
// keeps the retained secrets between sessions; give it a store that
// encrypts them at rest (balcony uses its SQLite store).
//
// Negotiation. Start asks a contact's resource for an encrypted session
// under a new ThreadID; a bare JID works when exactly one resource is
// online (or supports Encrypted Sessions), else ErrAmbiguousResource. The
// session binds to the resource that answers, and both sides send it
// directed presence so that it learns when they go offline even without a
// subscription. A request raises an "esession-request" event and waits for
// Accept or Decline: nothing at all is sent until the user decides, unless
// Config.AcceptPolicy is AcceptSubscribed and the contact has a
// presence subscription to the user (roster "from" or "both"), and never
// for a request the server stored while the user was offline.
//
// Verification. The "esession-established" event carries the short
// authentication string (SAS) in Fingerprint and asks the user to compare
// it with the contact over a channel they trust, at every session until a
// comparison is confirmed, unless the session continues a chain of
// sessions whose SAS was confirmed (then an "esession-verified" event
// follows at once). ConfirmSAS records the comparison in the session and
// in its retained secret. "esession-continuity-broken" reports that
// retained secrets existed but none matched.
//
// Sending. Client.Send with esession.NSStanzaEncryption seals for the
// contact's newest established session (or the session of
// Outgoing.Thread), addressed to the bound resource, and fails with
// ErrNoSession (saying why) when there is none: there is no plaintext
// fallback. The pipeline adds the XEP-0380 tag with a name, the no-copy,
// no-permanent-store and no-store hints and <private/>, and no fallback
// body. Usable reports an established session to the "prefer encryption"
// policy. The receiver ends the session on any reordering, so send one
// message at a time per contact.
//
// Receiving. A <c/> becomes a MessageEvent whose Security names the
// mechanism, carries the SAS as Fingerprint and is Verified as the session
// is. Anything sent beside <c/> is discarded with a warning; a plaintext
// message on a session's thread is delivered with a warning, never as
// protected. Carbon copies and archived copies never reach the engine: a
// copy of a <c/> becomes a notice (eme.ReasonNoSession), a copy of a
// negotiation stanza an "esession-copy" event (nothing from the archive).
//
// Ending. End sends the encrypted terminate; the contact's
// acknowledgement or its own terminate, a failed MAC or a malformed,
// repeated or reordered stanza (the message becomes a notice), an error
// stanza from the contact, the contact's resource going offline and the
// loss of our stream all end a session. Client.Close terminates every live
// session (encrypted terminate forms, XEP-0217 §6) while the stream still
// works, through the PreCloser hook, before it goes offline.
//
// Security events (SecurityEvent.Kind): "esession-request",
// "esession-established", "esession-verified",
// "esession-continuity-broken", "esession-declined", "esession-failed"
// (an error from the contact or its server), "esession-terminated",
// "esession-ignored" (a stanza refused without changing any session),
// "esession-copy" and "esession-secret-not-stored".
package esession
