// Package client is Balcony's XMPP layer, on mellium.im/xmpp: the
// connection (STARTTLS or direct TLS with a verified certificate, SCRAM
// with channel binding when offered), resource binding, roster, presence,
// service discovery (XEP-0030) and entity capabilities (XEP-0115), message
// carbons (XEP-0280), delivery receipts (XEP-0184), hints (XEP-0334), the
// message archive (XEP-0313) with paging, PEP (XEP-0163/0060) with
// publish-options, stanza ids (XEP-0359), reconnection with backoff, and
// the message pipeline into which every end-to-end encryption mechanism
// plugs through the Mechanism interface.
//
//	c, err := client.New(client.Config{JID: me, Password: pw})
//	err = c.Connect(ctx)
//	for ev := range c.Events() { ... }              // *MessageEvent, *NoticeEvent, ...
//	_, err = c.Send(ctx, &client.Outgoing{To: bob, Body: "hi"}, "")
//
// # The message pipeline (XEP-0380)
//
// Every incoming message becomes exactly one event: a MessageEvent with its
// security state (mechanism, verified or not, fingerprint, warnings), or a
// NoticeEvent saying which mechanism protected it and why it could not be
// read, in the user's language. Carbon copies and archived messages are
// unwrapped first and marked in Origin; a carbon is accepted only from our
// own bare JID. Detection (package eme) recognises every known mechanism,
// tagged or not; a message whose tags and payloads disagree is reported,
// never guessed; the fallback body of an encrypted message is never shown
// as the message. Delivery receipts are sent only for live messages that
// were read (decrypted, or plaintext).
//
// Outgoing messages are sealed by the chosen mechanism; the pipeline then
// adds the EME tag (with a name only for mechanisms XEP-0380 does not
// list), the fallback body and the hints and carbons directive the
// mechanism asks for (Needs), and an origin-id, and writes them under one
// lock, in the order they were sealed. Per-contact policies (eme.Policy)
// refuse downgrades before anything is sent.
//
// # Mechanisms
//
// The pipeline is the only seam. A mechanism implements Mechanism and is
// plugged in with Client.Register; Balcony's own are in client/otr
// (XEP-0364), client/ox (XEP-0373/0374) and client/esession (the XEP-0218
// family), and a mechanism written in another module plugs in the same
// way (see examples/psk in the repository). A mechanism never holds the
// *Client: through the Host it gets in Attach it sends (always through the
// pipeline), holds the wire for ordered protocol messages, sends IQs and
// presence, uses PEP and service discovery, reads the clock and logs.
// Optional abilities are discovered by type assertion: Attacher,
// Interceptor, PlaintextObserver, BatchOpener, PresenceObserver,
// StreamObserver, ErrorObserver, Availability, PreCloser and Shutdowner.
//
// # Unreliable networks (XEP-0198)
//
// With stream management (XEP-0198, Draft), used when the server offers
// it, the client counts every stanza it writes and reads, asks the server
// for acknowledgements and keeps what is not acknowledged (bounded:
// Config.MaxUnacked, MaxUnackedBytes). With Config.Reconnect a dropped
// connection is resumed and the unacknowledged stanzas are sent again;
// when resumption fails the client logs in anew, ends the sessions of
// mechanisms that lived in the lost stream (StreamObserver), reports
// messages sealed in them failed, catches up from the archive since
// the last message seen (once the new session sent its presence),
// recognising duplicates by stanza-id and origin-id, and sends again the
// messages of the clear and of Needs.Replayable mechanisms that the
// server acknowledged just before it lost the session and whose receipt
// has not come (a restarting server loses what it has not yet handed
// on). Only the user's messages wait for room in the queue; the client's
// own requests, presence and receipts never do. A watchdog probes a silent connection (an <r/>, or an
// XEP-0199 ping without stream management) and drops it when no answer
// comes within Config.ProbeTimeout. ConnectionEvents report each change
// and ConnectionStatus the current state (connected, stalled,
// reconnecting).
//
// Each message sent has a fate, reported as FateEvents by its id: queued,
// sent, acked by the server, delivered (XEP-0184) or failed with a
// reason. Messages sent without a stream wait in Config.Outbox (the
// command keeps them in Balcony's store) when their mechanism allows
// (Needs.Deferrable: the clear, OX and OMEMO) and leave in order when the stream
// is back, also after a restart of the process.
//
// # Events
//
// Events carry data: NoticeEvent.Reason is an eme.Reason, SecurityEvent.Kind
// a SecurityKind declared by the mechanism's package, warnings and security
// texts are eme.Message values that the client renders in the language set
// with Pipeline.SetLanguage (Text fields), and what the user can do next is
// an eme.Hint for the application to turn into its own command or button.
//
// Storage is the caller's: this package never imports the store, and each
// mechanism package declares the small storage interface it needs
// (otr.Store, ox.Store, esession.Config.Secrets), which *store.Store
// satisfies, so that another backend can be plugged in.
package client
