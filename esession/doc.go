// Package esession implements Encrypted Sessions for XMPP along the
// XEP-0218 roadmap (Deferred): XEP-0201 message threads (Active), XEP-0155
// stanza session negotiation (Draft), XEP-0200 stanza encryption
// (Deferred), XEP-0217 simplified negotiation and XEP-0116 encrypted
// session negotiation (Deferred), with the add-ons XEP-0189 public keys,
// XEP-0187 offline sessions (Deferred) and the XEP-0136 OTR preferences
// (Deprecated).
//
// It is an engine: it does no I/O and starts no goroutines. It works on
// the module's one XML type, *xmltree.Element: the client passes each
// received stanza's tree to Manager.Receive (as an Inbound, which
// ParseStanza or ParseMessage reads from the tree) and sends the Outbound
// stanzas the returned Result holds (Outbound.Stanza builds each one's
// tree); user actions (Manager.Start, Session.Accept, Session.Decline,
// Session.Seal, Session.Terminate, Session.ConfirmSAS, Session.Rekey ...)
// return what to send in the same way, and Manager.Tick, which the client
// calls now and then, does what time calls for. Decrypted content is
// parsed with xmltree.Parse and delivered as elements (Message.Content).
// Randomness and the clock are injectable (Config.Rand, Config.Now).
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
//   - XEP-0201: NewThreadID (128 random bits, URL-safe), a ThreadID per
//     session echoed in every reply, and Threads for plain chats: an
//     unknown or missing ThreadID starts a new conversation.
//   - XEP-0155: request, accept, decline with a reason, the 503, 501 and
//     406 errors listing the fields concerned, complete and cancel,
//     renegotiation of "logging" (inside <c/> in encrypted sessions),
//     temporary presence sharing (the optional "presence" field,
//     Config.SharePresence, agreed in Params.SharePresence),
//     moving to another resource both ways (an encrypted session moves
//     with Session.Handover and Manager.Adopt), terminate and its
//     acknowledgement, and unavailable presence (Manager.PeerUnavailable,
//     §9.4: kept by default, or terminated explicitly). A session binds to
//     the resource that answers the request. Nothing is answered
//     automatically to a peer without a presence subscription (§10.1).
//   - XEP-0200: AES in counter mode, HMAC-SHA256, no compression; message,
//     presence and iq stanzas as negotiated (Session.SealStanza). Any MAC
//     failure, malformed <c/> or malformed decrypted content terminates the
//     session, wipes its keys and answers not-acceptable. Unencrypted
//     siblings of <c/> are never delivered. Key exchanges (§9): <key/> and
//     <new/> with receiving key sets and a grace window
//     (Config.RekeyGrace), started by the agreed rekey_freq, at 2^31 blocks,
//     by the user (Session.Rekey) or after inactivity (Tick,
//     Config.IdleTimeout, which terminates a session that may not re-key).
//     <old/> is MACed and ignored; old MAC keys are never published.
//   - XEP-0217: the 4-message SIGMA-R exchange with hash commitment, MODP
//     groups 14 to 18 only (Config.Groups, default 14; groups 1 to 5 are
//     never offered nor accepted), the sas28x5 short authentication string,
//     retained secrets with decoy rshashes and a lifetime (90 days by
//     default), and the encrypted terminate and acknowledgement (§6).
//   - XEP-0116: algorithm negotiation of aes128-ctr, aes192-ctr and
//     aes256-ctr (Config.Ciphers), sha256, compression none, the stanza
//     kinds and rekey_freq; public-key identities (Config.Key): RSA (MUST)
//     and DSA (SHOULD) <KeyValue/> elements, rsa-sha256 and dsa-sha256
//     signatures of the SIGMA MACs, the key, hash (fingerprint) and none
//     methods, identities hidden in ID; key associations (Config.Keys, a
//     KeyAlert before anything of the session is shown); the 3-message
//     SIGMA-I variant (StartOptions.ThreeMessage); the other shared secret
//     (Config.OtherSecrets). Not implemented, on purpose: twofish and
//     serpent (no constant-time implementation in Go's standard library or
//     golang.org/x/crypto), the "none" cipher (it would look encrypted and
//     is not), whirlpool (no Go implementation; sha1 and md5 are broken),
//     lzw and zlib compression (NOT RECOMMENDED: compressing before
//     encrypting leaks the plaintext through lengths), MODP groups below 14,
//     the extended search of retained secrets of other JIDs (§6.3), and
//     X.509 or OpenPGP trust in keys: keys are trusted when the user
//     verified them.
//   - XEP-0189: the <pubkey/> payload of our keys and a contact's (PEPKey),
//     in the schema's <rsakey/> form for RSA keys (the <key/> form of the
//     XEP's later examples for DSA keys); both forms are read. Revocations
//     and attestations are not implemented.
//   - XEP-0187: signed offline options (Manager.PublishOffline), the
//     sender's offline session with its first messages
//     (Manager.StartOffline), the publisher's checks when it comes back
//     (nonce, expiry, replayed d or N_B, the sender's identity), the
//     publisher reading only; the secrets go to an OfflineStore, encrypted
//     at rest by the client. The AMP match-resource rule the XEP leaves
//     undefined ("??????") is the client's.
//   - XEP-0136: the OTR preference (Config.OTR) decides the logging values
//     offered and answered, both tables of §9.1; the agreed value is
//     Params.Logging.
//
// Config.Profile selects ProfileGajim to talk to Gajim 0.12 to 0.16, the
// one client that implemented XEP-0217: it reproduces the "gajim" profile
// of the test vectors (the whole 32-byte HMAC as AES key, keystream from
// C+1, MPI counters in the identity MACs, "<required />" in the
// normalised forms, an unpadded SAS) and sends and accepts terminate forms
// in the clear; it knows nothing beyond XEP-0217. In the default profile a
// terminate in the clear for an encrypted session is refused (a Rejected
// event) and the session continues.
//
// The formulas are checked against known-answer vectors that a second,
// independent program derives from the specification text in Python
// (testdata/esession_vectors.py): XEP-0217 in both profiles, SIGMA-I, the
// 4-message exchange with public keys, a retained secret and an other
// shared secret, a key exchange, fingerprints and XEP-0189 prints.
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
//   - A key exchange's K = d^x mod p is used unhashed (as an MPI) as the
//     HMAC key; a side re-keys as soon as the agreed rekey_freq allows,
//     counting the stanzas it sent and received since the last exchange;
//     the receiver does not enforce the count, which the two sides see
//     differently while stanzas cross.
//   - A <fingerprint/> holds the base64 SHA-256 of the normalised
//     <KeyValue/>; a dsa-sha256 SignatureValue is r|s, each the size of q.
//   - Both parties sign with the one negotiated algorithm: peers whose keys
//     are of different types cannot both identify by key.
//   - The offline options' "signs" values sign the normalised form without
//     "signs"; an offline session carries a ThreadID.
//
// # What an encrypted session protects, and what it does not
//
// It protects the content of the stanzas it carries (every child except
// <thread/>, <amp/> and <error/>; messages, and presence and iq when
// negotiated) against reading and undetected change by the servers and the
// network, with a fresh Diffie-Hellman exchange per session, and per key
// exchange within it, so that later key compromise does not reveal past
// traffic. Offline sessions (XEP-0187) are weaker: the publisher's
// exponents wait on disk until it returns, the options' expiry bounds the
// window, and the sender's identity is not hidden.
//
// It does not authenticate the peer by itself: without a compared SAS or a
// verified public key, XEP-0217 is an anonymous Diffie-Hellman exchange,
// and a man in the middle present from the first session on is never
// detected. Established.Verified and Session.Verified are true only when
// the user confirmed the SAS in this session (Session.ConfirmSAS), the
// retained secret that matched continues a chain whose SAS was confirmed,
// or the peer signed with a key the user verified for it; otherwise the
// client must ask the user to compare the SAS, and keep asking in later
// sessions. Retained secrets only make an attacker who missed one session
// visible (Established.ContinuityBroken); they reset when either side
// loses its store. An unknown or changed key is reported (KeyAlert), not
// trusted. A password (other shared secret) authenticates both sides if
// nobody else knows it.
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
// retained secrets and offline secrets encrypted at rest by implementing
// RetainedSecrets and OfflineStore; record the keys KeyAlert reports in
// the trust store that KeyAssociations reads. Call Manager.PeerUnavailable
// on a peer resource's unavailable presence, Manager.Tick every few
// seconds, and Manager.TerminateAll before going offline (XEP-0217 §6).
package esession
