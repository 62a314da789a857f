// Package eme implements Explicit Message Encryption, XEP-0380 version 0.4.0
// (status Deferred): the <encryption xmlns='urn:xmpp:eme:0'/> element that
// names the mechanism a message was encrypted with, the table of mechanisms
// Balcony knows, detection of encrypted messages whatever their mechanism,
// per-contact downgrade policies and localised notices for messages that
// cannot be read.
//
// # What a tag does and does not protect
//
// An EME tag is unauthenticated metadata: anyone on the path, or the sender,
// can add, remove or change it. It exists to help users (to say "this was
// encrypted with OTR and could not be decrypted" instead of showing a
// ciphertext blob or nothing, XEP-0380 §1 and §4) and it never decides
// security. Only a mechanism that decrypts and verifies a payload decides
// what a message says and who sent it; policies such as "require OX" are
// checked against the mechanism that actually protected a message, never
// against the tag.
//
// # Outgoing messages
//
// After a mechanism has sealed a message, the client adds NewTag(namespace)
// and, when FallbackBody(namespace) is not empty, a <body/> with that text
// for clients that do not implement the mechanism (XEP-0380 §4). A 'name' is
// sent only for mechanisms that XEP-0380 §3.2 does not list, such as
// Encrypted Sessions. Before sending, Policy.CheckOutgoing refuses to send in
// the clear or with a weaker mechanism than the contact's policy requires.
//
// # Incoming messages
//
// Detect (or DetectTokens) classifies every incoming <message>: tagged or
// not, it finds the payloads of known mechanisms among the direct children
// of the message (<openpgp/>, <x xmlns='jabber:x:encrypted'/>, OMEMO
// <encrypted/> in all three namespaces, the XEP-0200 <c/>, and OTR messages
// carried in the <body/>), and reports a tag that disagrees with the payload
// instead of guessing. For carbons (XEP-0280) and archived messages
// (XEP-0313) the caller unwraps the <forwarded/> element and calls Detect on
// the inner <message/>; elements nested below the direct children of the
// message are never looked at.
//
// When the message is encrypted and cannot be opened, the client delivers a
// Notice instead of the body. A Notice is its own event type, never a
// message: its text comes only from Balcony's catalogues (English, German,
// French, Spanish and Russian), and anything a remote entity controls (an
// unknown namespace, a 'name' attribute) appears only quoted, sanitised and
// length-limited. XEP-0380 §6 warns that a sender may try to imitate such
// notices, so the client must render notices with a marker that no message
// body can produce.
//
// The same catalogues hold every other text the library shows a user (a
// session started, a key changed, a warning on a message): a Message is
// that text as data, an ID for programs and the values it names, and
// Message.Text renders it in the closest supported language. What the
// user can do about an event is a Hint (an Action on a mechanism and a
// peer), never a command line: the application turns it into its own
// command or button and Hint.Text into a sentence.
//
// # Client pipeline
//
// For each incoming message (carbons and archived messages unwrapped,
// type='error' bounces handled apart):
//
//  1. d, err := Detect(raw). An error still means a message arrived: deliver
//     Notice{Reason: ReasonUnreadable, Detail: err.Error()} rather than
//     dropping it.
//  2. If d.Mechanism is enabled, open the message with it (OTR gets the body
//     whatever d.OTR says, including queries and key exchanges). On success
//     deliver the plaintext, marked if Policy.CheckIncoming(mechanism)
//     fails; on failure deliver d.Notice with the engine's reason.
//  3. If d.Encrypted and the mechanism is not enabled, deliver
//     d.Notice(ReasonNotEnabled), whose Hint says to enable it (the
//     application renders the hint with its own command), or
//     d.Notice(ReasonNotSupported) for mechanisms Balcony lacks.
//  4. If d.Control and the mechanism is not enabled, an OTR query or key
//     exchange becomes d.Notice(ReasonSessionRequested); an empty OMEMO
//     message or ESession re-key has no content to show.
//  5. Otherwise the message is plaintext: remove an OTR whitespace tag
//     (d.OTR == OTRWhitespaceTag) and mark it if Policy.CheckIncoming("")
//     fails.
//
// With a Disagreement (other than TagWithoutPayload) d.Mechanism is empty
// and d.Payloads lists what the message carries; a client may try a payload of an enabled mechanism (only
// authenticated decryption counts) but must show the disagreement.
//
// For each outgoing message: seal it with the chosen mechanism, call
// Policy.CheckOutgoing and refuse to send on error, then add NewTag and, if
// not empty, FallbackBody, plus the hints the mechanism asks for. Tag only
// messages that carry a body: a tagged message without one (an empty OMEMO
// message, a chat state) makes other clients report a message that never
// existed.
//
// # Service discovery
//
// Entities that implement XEP-0380 advertise the disco feature
// "urn:xmpp:eme:0" (XEP-0380 §3.3); Feature holds it for the client's disco
// and entity capabilities.
package eme // import "github.com/balcony-im/balcony/eme"
