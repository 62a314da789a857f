// Package ox carries OpenPGP for XMPP, XEP-0373 version 0.7
// (Experimental), with its Instant Messaging profile XEP-0374 (Deferred):
// it is the OX mechanism of the client's message pipeline, with key
// announcement and discovery over PEP and the secret-key backup. The
// OpenPGP work itself is the engine package github.com/balcony-im/balcony/ox:
//
//	x, err := ox.New(ox.Config{Store: st})
//	err = c.Register(x)
//	err = c.Connect(ctx)
//	err = x.Publish(ctx)                            // announce the active key
//	_, err = c.Send(ctx, &client.Outgoing{To: bob, Body: "hi"}, eme.OX)
//
// New loads the account's key pairs from the store (Store; the active
// key signs and is announced, older ones still decrypt); once registered,
// the mechanism is enabled only when there is a key. It advertises urn:xmpp:openpgp:im:0 (with a key) and
// urn:xmpp:openpgp:0:public-keys+notify (XEP-0373 §4.5, XEP-0374 §2.1).
// LoadKeys picks up keys added later; StoreKey stores one.
//
// Announcement (XEP-0373 §4). Publish puts the active public key, minimal,
// on the data node urn:xmpp:openpgp:0:public-keys:<FPR> (item id: the
// publication time), then fetches the metadata node
// urn:xmpp:openpgp:0:public-keys, merges the key into the list (other
// devices' entries are kept, this device's retired keys taken out;
// fingerprints upper case, every entry dated) and publishes it. Both nodes get access_model=open through
// publish-options and, where the server accepts them, deliver_payloads=false
// and send_last_published_item=on_sub; a node configured otherwise is
// reconfigured (precondition-not-met), and the configuration is read back
// afterwards: Publish fails rather than leave the keys readable by fewer
// entities than intended. Notifications of a key list (own or a contact's)
// are handled as they arrive; one without payload, as every notification
// from a notification-only node, makes OX fetch the list. When one's own
// list lacks the active key, it is announced again (§6.3).
//
// Discovery and trust. Discover fetches a contact's list and every announced
// key from its data node (max_items=1), checks that each key is the one
// announced and has the user ID xmpp:<bare JID>, and records it with the
// store's trust rules: the first key of a contact is trusted blindly
// (trust.Blind), later keys are trust.Undecided and give a KindKeyChanged
// SecurityEvent (the first key gives KindNewKey). The same happens on
// demand: before sending when the list was not fetched for
// Config.Refresh, and when a message arrives from a sender without a
// known key or signed by an unknown one (at most once a minute per
// contact). Parsed keys are cached (ox.KeyCache).
//
// Sending (XEP-0374 §3, §4). Seal makes a <signcrypt/> element with one
// <to/> (the recipient's bare JID), the time, random padding and the body
// and Outgoing.Payload in <payload/>, signed with the active key and
// encrypted to every key the contact announces that is not marked
// untrusted and can encrypt (expired and revoked keys are left out), and to
// every own key: this device's and the other devices' announced keys, so
// that carbons, the other devices and the archive can read it. The
// pipeline adds the fallback body, <store xmlns='urn:xmpp:hints'/> and the
// EME tag. Only <signcrypt/> is ever sent.
//
// Receiving (XEP-0373 §3.2). Open decrypts with the account's keys and
// verifies with the keys announced for the sender's bare JID; the <to/>
// check uses the outer 'to' of the message, which for a sent carbon or an
// archived own message is the 'to' of the forwarded message (the contact).
// The payload's children are processed as stanza children and take
// precedence over unencrypted siblings (ox.EffectiveChildren); a <body/> in
// jabber:client or jabber:server is the text. A message not addressed to
// the outer 'to' (forwarded to someone it was not written for) or not a
// <signcrypt/> becomes a notice (eme.ReasonVerificationFailed), one not
// encrypted to this account eme.ReasonNoKey, one that cannot be decrypted
// eme.ReasonVerificationFailed, one that does not parse
// eme.ReasonMalformed. A message without a valid signature by a key of the
// sender (unsigned, a bad signature, a signer never announced for the
// sender) is a forgery as far as the receiver can tell: a notice
// (eme.ReasonVerificationFailed), never a message; when the sender's key
// list could not be fetched for it (a timeout, no connection), the notice
// says so. Everything else is delivered with Security{Mechanism: eme.OX,
// Fingerprint, Trust}: Verified only when every check passed and the
// signer is one's own key or a key the user verified (or, with
// Config.BlindTrust, trusted blindly); an undecided, untrusted or no
// longer announced key, or a <time/> stamp further than Config.MaxClockSkew
// from the reference time (the delay or archive stamp for stored messages)
// are warnings, and a message with a warning is never shown as verified.
//
// Archive. Client.History runs archived OX messages through the pipeline
// one by one; OX.History and DecryptArchive decrypt them with several
// goroutines sharing one opener, key cache and set of sender keys (each
// sender's keys read and parsed once), page by page so that memory stays
// bounded.
//
// Secret-key backup (XEP-0373 §5). Backup makes a backup code, seals all
// own secret keys with it and publishes them to
// urn:xmpp:openpgp:0:secret-key with access_model=whitelist and
// persist_items=true (checked afterwards; a node left otherwise is
// deleted). Restore fetches it, opens it with the code (verbatim when it
// has the canonical form, otherwise normalised as typed), and stores every
// key in it; the newest valid one becomes active if the account has none.
//
// Downgrades. The per-contact policy "require:ox" (eme.Policy, set with
// Pipeline.SetPolicy) makes Send refuse plaintext and weaker mechanisms for
// the contact and flags plaintext from it (XEP-0374 §2.1 asks for a way to
// force OX).
//
// Not done: OX in group chats, the <sign/> and <crypt/> elements for other
// profiles, and sending without a body (the pipeline adds the EME tag and
// the fallback body to every OX message).
package ox
