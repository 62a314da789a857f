// Package omemo implements the OMEMO end-to-end encryption engine of
// XEP-0384 (OMEMO Encryption, Experimental) in both generations in use:
// OMEMO 2 (urn:xmpp:omemo:2, the current text, version 0.9, with XEP-0420
// payloads) and OMEMO 0.3 (eu.siacs.conversations.axolotl, the older
// revision most clients speak, whose wire format is libsignal's). It
// interoperates with python-omemo 1.0 (oldmemo and twomemo 1.0.3).
//
// There is no XML and no network code here: the engine takes and returns
// the bytes and fields that the <encrypted/>, bundle and device list
// elements carry, and the caller's XMPP glue (de)serialises them. It
// starts no goroutines; randomness (Config.Rand) and the clock
// (Config.Now) are injectable, and all state goes through the Store
// interface (MemoryStore is an in-memory one).
//
//	m, _ := omemo.New(omemo.Config{Generation: omemo.V2, Store: st})
//	b, _ := m.Bundle()                                  // publish it
//	msg, err := m.Encrypt(envelope, []omemo.Recipient{{Address: a, Bundle: peerBundle}})
//	d, err := m.Decrypt(&omemo.Incoming{From: a, Key: k, PreKey: kex, Payload: p})
//	if d.HeartbeatDue { m.EncryptEmpty(...) }           // and republish if d.BundleChanged
//
// # Cryptography
//
// Sessions are X3DH key agreements followed by the Double Ratchet (the
// Signal specifications, with the parameters of XEP-0384 §4 for OMEMO 2
// and libsignal's for 0.3: info strings "WhisperText", "WhisperRatchet",
// "WhisperMessageKeys", the 0x33 version byte, 0x05-prefixed Curve25519
// keys and an 8-byte truncated HMAC over sender identity || receiver
// identity || message). Ratchet messages are AES-256-CBC with PKCS#7 and
// HMAC-SHA-256 in both generations. Payloads are AES-128-GCM in 0.3 and
// AES-256-CBC with HMAC-SHA-256 in OMEMO 2. The identity key is an
// Ed25519 key: OMEMO 2 signs with Ed25519 and converts the key to X25519
// for X3DH; 0.3 publishes its Curve25519 form and signs the signed
// pre-key with XEdDSA (package xeddsa).
//
// # What is protected, and what is not
//
// Protected: the payload's confidentiality and integrity against the
// servers and anyone on the network; forward secrecy for messages whose
// keys were used and deleted; recovery from a key compromise once both
// sides have ratcheted; replays (a message key works once, so a second
// copy is reported as ErrDuplicate).
//
// Not protected: metadata (who talks to whom and when, device ids, message
// sizes in 0.3 where there is no padding, and in OMEMO 2 unless the
// caller pads the XEP-0420 envelope with <rpad/>); anything outside the
// encrypted payload (the <body> fallback, other stanza children);
// authentication of the sender beyond the identity key, whose trust the
// caller must decide (XEP-0384 §8: no content to untrusted devices); the
// stanza's recipient in 0.3 (OMEMO 2 binds it with XEP-0420's <to/>);
// deniability beyond X3DH's weak offline deniability; secrets in memory:
// Go's garbage collector may copy key material, so wiping (done for keys
// in fixed-size arrays after use) reduces but cannot rule out leftovers;
// the Store holds secrets and must keep them encrypted at rest.
//
// # Bounds
//
//   - Skipped message keys: at most MaxSkip (default 1000) derived for one
//     message, at most MaxSkippedKeys (default 1000) kept per session, the
//     oldest dropped first (XEP-0384 §4.3). A gap of more than MaxSkip on
//     an old chain is given up so the session can move on.
//   - Pre-keys: 100 one-time pre-keys, refilled to 100 when fewer than 90
//     unused remain (the bundle must hold at least 25); ids are never
//     reused while the counter has not wrapped at 2^31-1. A consumed
//     pre-key is deleted at once, or kept marked used until FinishCatchUp
//     when the message came from the archive (Incoming.Archived).
//   - Signed pre-key: rotated after 7 days, the previous one accepted for
//     7 more days.
//   - Heartbeats: Decrypted.HeartbeatDue is set after a new session and on
//     the first message of a ratchet key with counter 53 or more
//     (XEP-0384 §7).
//   - A second copy of a key exchange reuses the session it built (same
//     base key, pre-key and signed pre-key ids and identity), so reading
//     an archive never consumes a pre-key twice.
//   - Session states: a new key exchange from a device archives the
//     current session with it rather than replacing it; up to 2 earlier
//     states are kept and tried when the current one fails, and the one
//     that decrypts becomes current, so two devices that start sessions
//     with each other at the same moment converge. Older states are wiped.
package omemo
