// Package esession carries Encrypted Sessions over XMPP: it is the
// mechanism of the client's message pipeline for the XEP-0218 family,
// XEP-0201 threads (Active), XEP-0155 stanza session negotiation (Draft),
// the XEP-0217 and XEP-0116 key agreements with XEP-0200 stanza
// encryption and its re-keying, XEP-0189 public keys over PEP and
// XEP-0187 offline sessions (all Deferred since 2007-2010, never
// analysed), and the XEP-0136 logging negotiation (Deprecated) mapped to
// the server's XEP-0313 archive preferences. The protocol itself is the engine
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
// encrypts them at rest (balcony uses its SQLite store). Config.Store holds
// this account's signing key and the contacts' keys with the user's trust
// decisions, in the trust store the other mechanisms share; Config.Offline
// the secrets of published offline options, encrypted at rest.
//
// Negotiation. Start asks a contact's resource for an encrypted session
// under a new ThreadID; a bare JID works when exactly one resource is
// online (or supports Encrypted Sessions), else ErrAmbiguousResource. The
// session binds to the resource that answers; directed presence goes to
// it only when temporary presence sharing was agreed (XEP-0155
// "presence"). With a Store, the contact's published key (XEP-0189) is
// fetched first, so that a new or changed key, or one known for another
// contact, is reported before anything of the session.
// StartOptions.ThreeMessage asks for the 3-message SIGMA-I exchange
// (XEP-0116 §4.2: both identify with their keys, no SAS); Password in
// StartOptions and AcceptOptions puts a secret both users typed into the
// keys (XEP-0116 "other shared secret"): with different passwords the
// initiator's check fails and the session never starts. A request raises an "esession-request" event and waits for
// Accept or Decline: nothing at all is sent until the user decides, unless
// Config.AcceptPolicy is AcceptSubscribed and the contact has a
// presence subscription to the user (roster "from" or "both"), and never
// for a request the server stored while the user was offline.
//
// Verification. A session signed with a key the user verified (in the
// trust store) is verified. Otherwise the "esession-established" event
// carries the short
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
// body; offline sessions go without no-permanent-store and no-store, so
// that servers keep them for the contact. Usable reports an established session to the "prefer encryption"
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
// During a session. Rekey exchanges new keys now (XEP-0200 §9); sessions
// also re-key by themselves after Config.RekeyFreq stanzas and after a
// silence (Config.IdleTimeout), keeping older receiving keys for a grace
// period so that nothing in flight is lost. Renegotiate agrees on logging
// anew (XEP-0155 §6). Continue moves the session to another resource of
// this account (XEP-0155 §5): Handover exports it once the contact agreed,
// and that resource's Adopt takes it over with its keys. SendPresence and
// IQ carry presence and iq stanzas when the session negotiated them
// (Config.Stanzas). In a session agreed as logging "mustnot"
// (Config.Logging, or the contact's request) every stanza carries no-store
// hints, MustNotLog tells the application not to keep a history, and the
// contact is put on the server archive's "never" list while the session
// lasts, where the server offers XEP-0313 preferences. PlainThread gives
// plain chats their XEP-0201 thread.
//
// Offline sessions. PublishOffline publishes signed session options for
// presence subscribers (XEP-0187) and keeps their secrets in
// Config.Offline (Closing publishes them when Config.OfflineLifetime is
// set); StartOffline starts a session with a contact who is offline from
// the options it published and sends the first message in it; the
// contact reads it when it comes back, after checking the options' nonce,
// expiry, a replayed exchange and the sender's key.
//
// Ending. End sends the encrypted terminate; the contact's
// acknowledgement or its own terminate, a failed MAC or a malformed,
// repeated or reordered stanza (the message becomes a notice), an error
// stanza from the contact, a rejected key and the loss of our stream all
// end a session. The contact's resource going offline keeps it, as
// XEP-0155 §9.4 recommends (an "esession-peer-offline" event), unless
// Config.OnUnavailable says to terminate. Client.Close terminates every live
// session (encrypted terminate forms, XEP-0217 §6) while the stream still
// works, through the PreCloser hook, before it goes offline.
//
// Security events (SecurityEvent.Kind): "esession-request",
// "esession-established", "esession-verified",
// "esession-continuity-broken", "esession-declined", "esession-failed"
// (an error from the contact or its server), "esession-terminated",
// "esession-ignored" (a stanza refused without changing any session),
// "esession-copy", "esession-secret-not-stored", "esession-peer-offline",
// the key events "esession-key-new", "esession-key-changed",
// "esession-key-missing", "esession-key-other-jid" and
// "esession-key-untrusted", and "esession-rekeyed",
// "esession-renegotiated", "esession-moved", "esession-logging" and
// "esession-offline".
package esession
