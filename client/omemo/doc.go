// Package omemo carries OMEMO Encryption, XEP-0384 (Experimental), in
// both generations in use, OMEMO 2 (urn:xmpp:omemo:2, with XEP-0420
// envelopes) and OMEMO 0.3 (eu.siacs.conversations.axolotl): the
// mechanisms of the client's message pipeline, the device lists and
// bundles over PEP, and the trust decisions. The cryptography is the
// engine package github.com/balcony-im/balcony/omemo:
//
//	d, err := omemo.New(omemo.Config{Store: st})
//	for _, m := range d.Mechanisms() {               // OMEMO 2, then 0.3
//		err = c.Register(m)
//	}
//	err = c.Connect(ctx)
//	err = d.Publish(ctx)                              // bundles and device lists
//	_, err = c.Send(ctx, &client.Outgoing{To: bob, Body: "hi"}, eme.OMEMO2)
//
// # One device, two mechanisms
//
// A Device is the account's OMEMO device: one device id and one identity
// key (an Ed25519 key; OMEMO 0.3 shows its Curve25519 form, so both
// generations have the same fingerprint), and per generation its own
// pre-keys and sessions. The pipeline knows a mechanism by its EME
// namespace, so each generation is a Mechanism of its own, registered
// separately; they share the Device. eme ranks OMEMO 2 above OMEMO 0.3,
// so Pipeline.Best picks OMEMO 2 for contacts that announce it.
//
// # State and storage
//
// The engine's state (device id, identity key, pre-keys, sessions) and
// what is known of each account's devices are sealed values in the
// account's store (Store.MechanismState; *store.Store encrypts them at
// rest like the other secrets). Everything one message changes (a
// session, the pre-key it consumed) is written in one transaction after
// the engine is done, before the message is sent or shown, so a crash
// loses all of it or none, and a message key is never used twice. The
// trust decisions are the store's, shared with OX, OTR and Encrypted
// Sessions: contact keys of mechanism trust.OMEMO, one per device, with
// the fingerprint of its identity key (64 lower-case hex digits).
//
// # Devices and bundles
//
// Publish announces this device (XEP-0384 §5.3): for each generation its
// bundle (OMEMO 2: item <device id> of urn:xmpp:omemo:2:bundles with
// max_items=max; 0.3: node eu.siacs.conversations.axolotl.bundles:<id>),
// then its entry in the account's device list, read first and merged so
// that the other devices' entries stay. Every node gets the open access
// model, applied and checked by Client.PublishNode (ejabberd takes
// max_items only through the node configuration). Before the first
// announcement a taken device id is replaced. When a device finds itself
// missing from its own list (a notification of its own list), it
// announces itself again; a bundle whose pre-key was consumed is
// republished in the background. RemoveDevice takes a stale device of
// the account off the lists. TurnOff takes this device off them and keeps
// it off (no announcement, nothing encrypted or sent, kept in the store,
// taken off again if another client puts it back) until TurnOn; with
// forget its keys and sessions are erased as well.
//
// Contacts' device lists arrive as PEP notifications (both nodes are
// followed with +notify) and are read on demand: before sending when not
// read for Config.Refresh, and when a message comes from a device the
// list does not name (XEP-0384 §7). Only listed devices are encrypted to
// (§5.5); a device dropped from the list keeps its key and trust record.
// Sessions are built from a bundle read just before the first message
// (§7).
//
// # Trust
//
// Blind trust before verification: a contact's device keys are trusted
// blindly (trust.Blind) until the user verifies one of them (SetTrust,
// balcony omemo trust); from then on new devices of that contact are
// undecided and are not encrypted to until the user decides (§8: no
// content to devices without a trust decision; empty messages are
// exempt). Untrusted devices are never encrypted to. A message counts as
// verified only when its sending device is verified and no check
// warned. Every device key seen for the first time is a SecurityEvent
// (KindNewDevice, with a verify hint when the contact had other keys),
// a known device id with another key is KindKeyChanged, and a device
// left out of a message is KindNotEncryptedTo; events about a received
// message are emitted before it. Fingerprints are shown as eight groups
// of eight hex digits (DisplayFingerprint) and exchanged out of band as
// xmpp:JID?omemo-sid-ID=FINGERPRINT (FormatURI, ParseURI).
//
// # Sending
//
// Seal encrypts for every trusted device of the recipient and of the
// account (so that the other devices read the message through carbons
// and the archive), never for this device. OMEMO 2 encrypts an XEP-0420
// envelope (<content/> with the body and Outgoing.Payload, random
// <rpad/>, <time/> and <from/>); OMEMO 0.3 only the body. The pipeline
// adds the fallback body, <store xmlns='urn:xmpp:hints'/> and the EME
// tag. A device whose bundle cannot be read or does not verify is left
// out and logged; a message reaching none of the recipient's devices is
// an error.
//
// # Receiving
//
// Open decrypts the key for this device. Live messages, carbons and
// archived copies are all read (each carries a key for this device); a
// pre-key consumed by an archived key exchange is kept until
// FinishCatchUp, so that another copy of the same exchange still reads
// and no pre-key is used for two sessions (the engine reuses the session
// an identical exchange built). An OMEMO 2 envelope whose <from/> or
// <to/> names someone else is refused (XEP-0420); a <time/> far from the
// arrival is a warning. Empty messages are never shown (Opened.Silent).
// After a new session and on the engine's heartbeat request (§7, a
// counter of 53), an empty message goes back. A second copy of a message
// already read is ignored (§7), or a notice when it comes from the
// archive (its key is gone: forward secrecy). A message without a usable
// session (none, or a key exchange naming a pre-key already used) makes
// a new session announced with an empty message and a notice asking the
// contact to send again; any other failure is a notice and never starts
// a session by itself (§8). ResetSession replaces sessions on the user's
// request. A message not encrypted for this device is a notice naming
// the device.
//
// Not done: group chats (a clear notice, ErrGroupChat), OMEMO 1
// (urn:xmpp:omemo:1), explicit subscriptions to the device lists of
// accounts without a presence subscription (XEP-0060 §6.1; lists are read
// on demand instead), the <opt-out/> element, and showing other devices'
// labels.
package omemo
