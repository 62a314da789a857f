// Package esession implements Encrypted Sessions for XMPP as the XEP-0218
// bootstrapping roadmap (Deferred) lays them out: XEP-0201 message threads
// (Active), XEP-0155 stanza session negotiation (Draft), XEP-0200 stanza
// encryption (Deferred) and the XEP-0217 simplified 4-message key
// agreement (Deferred), the minimum profile of XEP-0116 (Deferred).
//
// It is an engine: it does no I/O and starts no goroutines. It works on
// the module's one XML type, *xmltree.Element: the client passes each
// received message stanza's tree to Manager.Receive (as an Inbound, which
// ParseMessage reads from the tree) and sends the Outbound stanzas the
// returned Result holds (Outbound.Stanza builds each one's tree); user
// actions (Manager.Start, Session.Accept, Session.Decline, Session.Seal,
// Session.Terminate, Session.ConfirmSAS) return what to send in the same
// way. Decrypted content is parsed with xmltree.Parse and delivered as
// elements (Message.Content). Randomness and the clock are injectable
// (Config.Rand, Config.Now).
//
// # Status of the specifications
//
// Every ESession specification was Deferred for inactivity between 2007 and
// 2010: XEP-0218 v0.1, XEP-0200 v0.2, XEP-0217 v0.1, XEP-0116 v0.16,
// XEP-0188 v0.6 (informative), XEP-0189 v0.14 and XEP-0187 v0.5. XEP-0155
// v1.2 is Draft, XEP-0201 v1.0 Active, XEP-0004 Final, and XEP-0136 (the
// archiving add-on) Deprecated. No security analysis of the protocol was
// ever published, and the one client implementation that existed (Gajim
// 0.12 to 0.16) deviated from the text and was removed in 2018. Use this
// package where a peer speaks ESessions; prefer OMEMO, OX or OTR otherwise.
//
// # What is implemented
//
// The XEP-0218 order, phase by phase:
//
//   - XEP-0201: NewThreadID (128 random bits, URL-safe), a ThreadID per
//     session echoed in every reply, and Threads for plain chats: an
//     unknown or missing ThreadID starts a new conversation.
//   - XEP-0155: request, accept, decline with a reason, the 503, 501 and
//     406 errors listing the fields concerned, complete and cancel,
//     renegotiation (of "logging", in plain sessions), moving to another
//     resource (accepted from the peer; requested by Session.Continue for
//     plain sessions), terminate and its acknowledgement. A session binds
//     to the resource that answers the request. Nothing is answered
//     automatically to a peer without a presence subscription (§10.1):
//     Config.AutoAccept applies to subscribed peers only.
//   - XEP-0200: aes128-ctr, HMAC-SHA256, no compression, message stanzas.
//     Any MAC failure, malformed <c/> or malformed decrypted content
//     terminates the session, wipes its keys and answers not-acceptable.
//     Unencrypted siblings of <c/> are never delivered. Re-keying is not
//     implemented (XEP-0217 fixes rekey_freq to 2^32-1): <key/> and <new/>
//     are refused, <old/> is MACed and ignored, and a direction that
//     reaches 2^32 blocks must be terminated (ErrKeyExhausted).
//   - XEP-0217: the 4-message SIGMA-R exchange with hash commitment, MODP
//     groups 14 to 18 only (Config.Groups, default 14; groups 1 to 5 are
//     never offered nor accepted), the sas28x5 short authentication string,
//     retained secrets with decoy rshashes, and the encrypted terminate and
//     acknowledgement (§6).
//   - XEP-0116: the multiple-precision integer and XML normalisation rules
//     (§8) and everything XEP-0217 shares with it. Not implemented: the
//     3-message SIGMA-I variant (answered with 501 on "dhkeys"), public-key
//     identities, the other shared secret (OSS), algorithm choices beyond
//     the fixed ones, presence and iq encryption. XEP-0187, XEP-0189 and
//     XEP-0136 are not implemented.
//
// # Conventions where the specifications are ambiguous
//
// The plain reading of the text, which the "spec" profile of the test
// vectors follows (and which differs from Gajim's):
//
//   - The AES-128 key is the 16 least significant, that is the last, bytes
//     of its HMAC-SHA256 derivation; MAC and SIGMA keys use all 32 bytes.
//   - Counter mode starts at the counter value itself (NIST SP 800-38A); the
//     counter advances by one per full or partial block, modulo 2^128, and
//     continues after the two identity blocks of the negotiation.
//   - Counters are MACed as 16 big-endian bytes, in the identity MACs (where
//     the counter comes first) and in the stanza MAC (where it comes last).
//   - K' = SHA256(K | SRS | OSS) is always hashed, even without SRS or OSS.
//   - Plaintext is padded with spaces to whole blocks (Config.NoPadding
//     turns it off); nonces are 16 bytes; "ver" is 1.0.
//   - A retained secret is replaced only after the peer's identity was
//     verified.
//
// Config.Profile selects ProfileGajim instead to talk to Gajim 0.12 to
// 0.16, the one client that implemented XEP-0217: it reproduces the
// "gajim" profile of the test vectors (the whole 32-byte HMAC as AES key,
// keystream from C+1, MPI counters in the identity MACs, "<required />"
// in the normalised forms, an unpadded SAS) and sends and accepts
// terminate forms in the clear. In the default profile a terminate in the
// clear for an encrypted session is refused (a Rejected event) and the
// session continues.
//
// # What an encrypted session protects, and what it does not
//
// It protects the content of message stanzas (every child except
// <thread/>, <amp/> and <error/>) against reading and undetected change by
// the servers and the network, with a fresh Diffie-Hellman exchange per
// session so that later key compromise does not reveal past sessions.
//
// It does not authenticate the peer by itself: without a compared SAS,
// XEP-0217 is an anonymous Diffie-Hellman exchange, and a man in the middle
// present from the first session on is never detected. Established.Verified
// and Session.Verified are true only when the user confirmed the SAS in this
// session (Session.ConfirmSAS) or the retained secret that matched continues
// a chain whose SAS was confirmed; otherwise the client must ask the user to
// compare the SAS, and keep asking in later sessions. Retained secrets only
// make an attacker who missed one session visible (Established.
// ContinuityBroken); they reset when either side loses its store.
//
// Metadata stays in the clear and unauthenticated: the sender, recipient,
// type, id and thread of every stanza, the whole negotiation, and the time
// and approximate size of messages. The negotiation itself can be dropped
// or refused by anyone on the path: Start offers an encrypted session only,
// never a plain fallback, and the client must show plainly when a message
// is not protected. Anyone able to inject a stanza with the session's
// ThreadID can end the session.
//
// Delivery must be exactly once and in order: a lost, duplicated or
// reordered stanza (carbons, archives, stream resumption resends, a second
// device) fails its MAC and terminates the session, and archived copies can
// never be decrypted. A session is bound to one resource of each party.
// Outbound.NoCopy asks servers not to copy or archive session stanzas.
//
// The "disclosure=never" and "logging=mustnot" promises are negotiated, not
// enforced: a peer in bad faith can keep anything it decrypts. Go cannot
// guarantee that secrets leave no copies in memory: this package clears the
// keys it holds, but not the AES key schedules, HMAC states and big
// integers inside the standard library and math/big.
//
// # For the client
//
// Advertise FeatureESession and FormTypeSSN in service discovery. Tag
// encrypted stanzas with an XEP-0380 <encryption/> element for
// NSStanzaEncryption with the name EMEName (Outbound.Stanza does). Store
// retained secrets encrypted at rest by implementing RetainedSecrets. Call
// Manager.TerminateAll before going offline (XEP-0217 §6).
package esession
