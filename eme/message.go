package eme

import (
	"fmt"
	"strings"

	"golang.org/x/text/language"
)

// A Message is a user-facing text of the library as data: what happened
// (ID, for programs to branch on) and the values it names (Args: an
// address, a fingerprint, a condition). Text renders it in the supported
// language closest to the user's; the library never writes English into
// an event by itself.
type Message struct {
	ID   MessageID
	Args []string
}

// Msg returns the message id with args.
func Msg(id MessageID, args ...string) Message { return Message{ID: id, Args: args} }

// Text returns the message in the supported language closest to lang,
// English if none is close (see Languages). Every argument is cleaned
// like a remote name (no control or bidirectional formatting characters,
// bounded length), because arguments often come from the network. An
// unknown ID yields its name, so that nothing is ever silently dropped.
func (m Message) Text(lang language.Tag) string {
	f, ok := messageFormat(m.ID, lang)
	if !ok {
		return string(m.ID)
	}
	args := make([]any, len(m.Args))
	for i, a := range m.Args {
		args[i] = clean(a, maxDetailRunes, false)
	}
	return fmt.Sprintf(f, args...)
}

// String returns the English text.
func (m Message) String() string { return m.Text(language.English) }

// Texts renders msgs in lang and joins them with spaces: a message and
// the notes that follow it.
func Texts(lang language.Tag, msgs ...Message) string {
	parts := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if t := m.Text(lang); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " ")
}

// A MessageID names one entry of the catalogue. The string is stable and
// meant for programs (logs, JSON output, tests), never for display.
type MessageID string

// messageFormat returns the format string of id in the language closest
// to lang.
func messageFormat(id MessageID, lang language.Tag) (string, bool) {
	_, matcher := notices()
	_, i, _ := matcher.Match(lang)
	if f, ok := messageCatalogue[supported[i]][id]; ok {
		return f, true
	}
	f, ok := messageCatalogue[language.English][id]
	return f, ok
}

// The catalogue: one format per message and language. Formats take the
// message's Args as %s verbs in order; a translation may reorder them
// with explicit indexes (%[2]s).
var messageCatalogue = map[language.Tag]map[MessageID]string{
	language.English: messagesEnglish,
	language.German:  messagesGerman,
	language.French:  messagesFrench,
	language.Spanish: messagesSpanish,
	language.Russian: messagesRussian,
}

// Messages of the pipeline and the incoming policy.
const (
	// A message arrived with weaker protection than the policy for its
	// sender requires (DowngradeError.Message). Args, in order: the
	// mechanism used (not for "clear"), the policy's name, the mechanism
	// required (not for "encryption").
	MsgPolicyClearNeedsEncryption MessageID = "policy-clear-needs-encryption"
	MsgPolicyClearNeedsMechanism  MessageID = "policy-clear-needs-mechanism"
	MsgPolicyWeakNeedsEncryption  MessageID = "policy-weak-needs-encryption"
	MsgPolicyWeakNeedsMechanism   MessageID = "policy-weak-needs-mechanism"
	// The policy check failed otherwise. Args: the error.
	MsgPolicyCheckFailed MessageID = "policy-check-failed"
)

// Messages of the OTR mechanism (XEP-0364).
const (
	MsgOTRInvalidKeyExchange  MessageID = "otr-invalid-key-exchange"
	MsgOTRAvailable           MessageID = "otr-available"
	MsgOTRSentInClear         MessageID = "otr-sent-in-clear"
	MsgOTRUnsupportedVersion  MessageID = "otr-unsupported-version"
	MsgOTRKeyUntrusted        MessageID = "otr-key-untrusted"
	MsgOTRNewKey              MessageID = "otr-new-key"
	MsgOTRStartedVerified     MessageID = "otr-started-verified"
	MsgOTRStartedUnverified   MessageID = "otr-started-unverified"
	MsgOTRRefreshedVerified   MessageID = "otr-refreshed-verified"
	MsgOTRRefreshedUnverified MessageID = "otr-refreshed-unverified"
	MsgOTRPeerEnded           MessageID = "otr-peer-ended"
	MsgOTRPeerError           MessageID = "otr-peer-error"
	MsgOTRSMPRequest          MessageID = "otr-smp-request"
	MsgOTRSMPQuestion         MessageID = "otr-smp-question"
	MsgOTRSMPSucceeded        MessageID = "otr-smp-succeeded"
	MsgOTRSMPRecordFailed     MessageID = "otr-smp-record-failed"
	MsgOTRSMPFailed           MessageID = "otr-smp-failed"
	MsgOTRSMPCheated          MessageID = "otr-smp-cheated"
	MsgOTRSMPAborted          MessageID = "otr-smp-aborted"
	MsgOTRPeerOffline         MessageID = "otr-peer-offline"
	MsgOTRPeerUnavailable     MessageID = "otr-peer-unavailable"
	MsgOTRConnectionLost      MessageID = "otr-connection-lost"
	// Notes on notices: why an OTR message could not be read.
	MsgOTRCopyCarbon        MessageID = "otr-copy-carbon"
	MsgOTRCopyArchive       MessageID = "otr-copy-archive"
	MsgOTRTaggedNotOTR      MessageID = "otr-tagged-not-otr"
	MsgOTRTaggedPlaintext   MessageID = "otr-tagged-plaintext"
	MsgOTRNoConversation    MessageID = "otr-no-conversation"
	MsgOTRStaleConversation MessageID = "otr-stale-conversation"
	MsgOTRSentToBare        MessageID = "otr-sent-to-bare"
	MsgOTRRestarting        MessageID = "otr-restarting"
	MsgOTRPeerTold          MessageID = "otr-peer-told"
	MsgOTROtherInstance     MessageID = "otr-other-instance"
)

// Messages of OpenPGP for XMPP (XEP-0373, XEP-0374).
const (
	MsgOXKeyNotAnnounced MessageID = "ox-key-not-announced"
	MsgOXKeyUntrusted    MessageID = "ox-key-untrusted"
	MsgOXKeyUndecided    MessageID = "ox-key-undecided"
	MsgOXStampSkewed     MessageID = "ox-stamp-skewed"
	MsgOXSignatureSkewed MessageID = "ox-signature-skewed"
	MsgOXCheckFailed     MessageID = "ox-check-failed"
	MsgOXNewKey          MessageID = "ox-new-key"
	MsgOXKeyAnnounced    MessageID = "ox-key-announced"
	// Notes on notices: why an OX message could not be read.
	MsgOXGroupChat        MessageID = "ox-group-chat"
	MsgOXNoValidSignature MessageID = "ox-no-valid-signature"
)

// Messages of Encrypted Sessions (XEP-0218 family).
const (
	MsgESCopyIgnored          MessageID = "esession-copy-ignored"
	MsgESMalformed            MessageID = "esession-malformed"
	MsgESClearOnThread        MessageID = "esession-clear-on-thread"
	MsgESClearWithNegotiation MessageID = "esession-clear-with-negotiation"
	MsgESStripped             MessageID = "esession-stripped"
	MsgESPeerOffline          MessageID = "esession-peer-offline"
	MsgESRequest              MessageID = "esession-request"
	MsgESRequestClear         MessageID = "esession-request-clear"
	MsgESRequestUnsubscribed  MessageID = "esession-request-unsubscribed"
	MsgESRequestDelayed       MessageID = "esession-request-delayed"
	MsgESRequestProblem       MessageID = "esession-request-problem"
	MsgESEstablishedClear     MessageID = "esession-established-clear"
	MsgESEstablished          MessageID = "esession-established"
	MsgESChainVerified        MessageID = "esession-chain-verified"
	MsgESChainUnconfirmed     MessageID = "esession-chain-unconfirmed"
	MsgESUnauthenticated      MessageID = "esession-unauthenticated"
	MsgESInOrder              MessageID = "esession-in-order"
	MsgESContinuityBroken     MessageID = "esession-continuity-broken"
	MsgESVerifiedByChain      MessageID = "esession-verified-by-chain"
	MsgESSecretNotStored      MessageID = "esession-secret-not-stored"
	MsgESDeclined             MessageID = "esession-declined"
	MsgESReasonGiven          MessageID = "esession-reason-given"
	MsgESFailedUnavailable    MessageID = "esession-failed-unavailable"
	MsgESFailedRefused        MessageID = "esession-failed-refused"
	MsgESFailedFields         MessageID = "esession-failed-fields"
	MsgESFailed               MessageID = "esession-failed"
	MsgESErrorText            MessageID = "esession-error-text"
	MsgESTerminatedAuth       MessageID = "esession-terminated-authentication"
	MsgESTerminatedError      MessageID = "esession-terminated-error"
	MsgESTerminatedByPeer     MessageID = "esession-terminated-by-peer"
	MsgESTerminated           MessageID = "esession-terminated"
	MsgESRejected             MessageID = "esession-rejected"
	MsgESMoved                MessageID = "esession-moved"
	MsgESRenegotiationRefused MessageID = "esession-renegotiation-refused"
	MsgESConnectionLost       MessageID = "esession-connection-lost"
	MsgESConfirmed            MessageID = "esession-confirmed"
	// Public keys, session life, logging and offline sessions.
	MsgESAdopted         MessageID = "esession-adopted"
	MsgESMovedHandover   MessageID = "esession-moved-handover"
	MsgESRenegotiated    MessageID = "esession-renegotiated"
	MsgESRekeyed         MessageID = "esession-rekeyed"
	MsgESRekeyedIdle     MessageID = "esession-rekeyed-idle"
	MsgESLoggingMay      MessageID = "esession-logging-may"
	MsgESLoggingMustNot  MessageID = "esession-logging-mustnot"
	MsgESPeerKey         MessageID = "esession-peer-key"
	MsgESKeyVerified     MessageID = "esession-key-verified"
	MsgESKeyUnverified   MessageID = "esession-key-unverified"
	MsgESVerifiedByKey   MessageID = "esession-verified-by-key"
	MsgESPasswordUsed    MessageID = "esession-password-used"
	MsgESOfflineRead     MessageID = "esession-offline-read"
	MsgESOfflineStarted  MessageID = "esession-offline-started"
	MsgESKeyPublished    MessageID = "esession-key-published"
	MsgESKeyNew          MessageID = "esession-key-new"
	MsgESKeyChanged      MessageID = "esession-key-changed"
	MsgESKeyOtherJID     MessageID = "esession-key-other-jid"
	MsgESKeyMissing      MessageID = "esession-key-missing"
	MsgESKeyUntrusted    MessageID = "esession-key-untrusted"
	MsgESArchiveNone     MessageID = "esession-archive-none"
	MsgESArchiveOff      MessageID = "esession-archive-off"
	MsgESArchiveExcluded MessageID = "esession-archive-excluded"
	MsgESArchiveUnknown  MessageID = "esession-archive-unknown"
	MsgESArchiveRestored MessageID = "esession-archive-restored"
	MsgESOfflineEnded    MessageID = "esession-offline-ended"
	// Notes on notices: why an Encrypted Session message could not be read.
	MsgESCopyArchived MessageID = "esession-copy-archived"
	MsgESCopyCarbon   MessageID = "esession-copy-carbon"
	MsgESEnded        MessageID = "esession-ended"
)

// Messages of the OMEMO mechanism (XEP-0384). Warnings on messages:
const (
	// Args: the device id, its fingerprint.
	MsgOMEMODeviceUntrusted MessageID = "omemo-device-untrusted"
	MsgOMEMODeviceUndecided MessageID = "omemo-device-undecided"
	// Args: the device id, the sender's bare JID.
	MsgOMEMODeviceNotListed MessageID = "omemo-device-not-listed"
	// Args: the stamp, the difference.
	MsgOMEMOStampSkewed MessageID = "omemo-stamp-skewed"
)

// Security events of the OMEMO mechanism.
const (
	// Args: the owner's bare JID, the device id, its fingerprint, its
	// trust state.
	MsgOMEMODeviceSeen MessageID = "omemo-device-seen"
	MsgOMEMONewDevice  MessageID = "omemo-new-device"
	// Args: the device id, the owner's bare JID, the new fingerprint,
	// its trust state, the previous fingerprint.
	MsgOMEMOKeyChanged MessageID = "omemo-key-changed"
	// Args: the device id, the owner's bare JID, its fingerprint.
	MsgOMEMONotEncryptedTo MessageID = "omemo-not-encrypted-to"
)

// Notes on notices: why an OMEMO message could not be read.
const (
	MsgOMEMOGroupChat MessageID = "omemo-group-chat"
	// Args: this device's id.
	MsgOMEMONotForDevice MessageID = "omemo-not-for-device"
	MsgOMEMOOwnMessage   MessageID = "omemo-own-message"
	MsgOMEMOAlreadyRead  MessageID = "omemo-already-read"
	// Args: the sender's device id, the sender's bare JID.
	MsgOMEMOSessionRebuilt MessageID = "omemo-session-rebuilt"
	MsgOMEMOSessionBroken  MessageID = "omemo-session-broken"
	// Args: the address in the envelope, the address expected.
	MsgOMEMOEnvelopeFrom MessageID = "omemo-envelope-from"
	MsgOMEMOEnvelopeTo   MessageID = "omemo-envelope-to"
)

// messagesEnglish is the reference catalogue; every other language has
// exactly these IDs with the same arguments.
var messagesEnglish = map[MessageID]string{
	MsgPolicyClearNeedsEncryption: "This message was received in the clear, but the policy for this contact (%s) requires encryption.",
	MsgPolicyClearNeedsMechanism:  "This message was received in the clear, but the policy for this contact (%s) requires %s or a mechanism at least as strong.",
	MsgPolicyWeakNeedsEncryption:  "This message was received with %s, but the policy for this contact (%s) requires encryption.",
	MsgPolicyWeakNeedsMechanism:   "This message was received with %s, but the policy for this contact (%s) requires %s or a mechanism at least as strong.",
	MsgPolicyCheckFailed:          "The policy for this contact flagged this message: %s",

	MsgOTRInvalidKeyExchange:  "An invalid OTR key exchange message from %s was ignored.",
	MsgOTRAvailable:           "%s can talk privately with OTR.",
	MsgOTRSentInClear:         "This message was sent in the clear, outside the private OTR conversation with %s.",
	MsgOTRUnsupportedVersion:  "%s asked for a private conversation with an OTR version Balcony does not support.",
	MsgOTRKeyUntrusted:        "The contact's OTR key %s is marked untrusted.",
	MsgOTRNewKey:              "%s uses a new OTR key; verify it before trusting this conversation.",
	MsgOTRStartedVerified:     "Private conversation with %s started; their fingerprint is verified.",
	MsgOTRStartedUnverified:   "Private conversation with %s started; their fingerprint is unverified.",
	MsgOTRRefreshedVerified:   "Private conversation with %s refreshed; their fingerprint is verified.",
	MsgOTRRefreshedUnverified: "Private conversation with %s refreshed; their fingerprint is unverified.",
	MsgOTRPeerEnded:           "%s ended the private conversation; nothing more is sent to them with OTR until you end it too or start a new one.",
	MsgOTRPeerError:           "%s's OTR software reported an error: %s",
	MsgOTRSMPRequest:          "%s wants to verify this conversation with a secret you share.",
	MsgOTRSMPQuestion:         "%s wants to verify this conversation and asks: %s",
	MsgOTRSMPSucceeded:        "Verification succeeded: %s knows the shared secret; their fingerprint is now verified.",
	MsgOTRSMPRecordFailed:     "Verification succeeded, but recording it failed: %s",
	MsgOTRSMPFailed:           "Verification with %s failed: the secrets differ (or someone is in the middle).",
	MsgOTRSMPCheated:          "Verification with %s failed: an invalid SMP message was received and the exchange aborted.",
	MsgOTRSMPAborted:          "%s aborted the verification.",
	MsgOTRPeerOffline:         "%s went offline; the private conversation ended.",
	MsgOTRPeerUnavailable:     "%s is not available (%s); the private conversation ended.",
	MsgOTRConnectionLost:      "Our connection ended; the private conversation with %s ended.",
	MsgOTRCopyCarbon:          "It is a copy for another of your devices; OTR messages can be read only by the device they were sent to.",
	MsgOTRCopyArchive:         "It is an archived copy; OTR messages can be read only once, live, by the device they were sent to.",
	MsgOTRTaggedNotOTR:        "It is tagged as OTR, but its body is not an OTR message.",
	MsgOTRTaggedPlaintext:     "It is tagged as OTR, but its body is plaintext.",
	MsgOTRNoConversation:      "There is no private conversation with %s.",
	MsgOTRStaleConversation:   "The private conversation with %s is out of date (their client may have restarted).",
	MsgOTRSentToBare:          "It was sent to your bare JID and was probably meant for another of your devices.",
	MsgOTRRestarting:          "A new private conversation is being started.",
	MsgOTRPeerTold:            "The contact was told that it could not be read.",
	MsgOTROtherInstance:       "It was meant for another OTR instance of this account.",

	MsgOXKeyNotAnnounced:  "Signed by key %s, which %s no longer announces.",
	MsgOXKeyUntrusted:     "Signed by key %s, which you marked untrusted.",
	MsgOXKeyUndecided:     "Signed by key %s, which you have not decided to trust yet.",
	MsgOXStampSkewed:      "The time stamp inside the message (%s) is %s away from when it arrived.",
	MsgOXSignatureSkewed:  "The signature time (%s) is %s away from when the message arrived.",
	MsgOXCheckFailed:      "A check of this message failed: %s",
	MsgOXNewKey:           "%s announced a new OpenPGP key (trust: %s); keys seen before: %s.",
	MsgOXKeyAnnounced:     "%s announced an OpenPGP key (trust: %s).",
	MsgOXGroupChat:        "OpenPGP for XMPP in group chats is not supported yet.",
	MsgOXNoValidSignature: "It has no valid signature by a key of the sender.",

	MsgESCopyIgnored:          "A copy of an Encrypted Session negotiation message made for another of your devices was ignored: a session belongs to one device.",
	MsgESMalformed:            "A malformed Encrypted Session negotiation message from %s was ignored: %s",
	MsgESClearOnThread:        "Sent in the clear on the thread of the Encrypted Session with %s: this message is not protected.",
	MsgESClearWithNegotiation: "Sent in the clear with an Encrypted Session negotiation: this message is not protected.",
	MsgESStripped:             "An unencrypted <%s/> sent with this message was discarded (anything outside the encryption can be forged).",
	MsgESPeerOffline:          "%s went offline. The Encrypted Session is kept, as the contact may come back; a message sent meanwhile may be lost, which ends the session when the contact reads the next one.",
	MsgESRequest:              "%s asks for an Encrypted Session. Accept or decline it; nothing is answered until you do.",
	MsgESRequestClear:         "%s asks for a stanza session WITHOUT end-to-end encryption. Accept or decline it; nothing is answered until you do.",
	MsgESRequestUnsubscribed:  "The sender has no presence subscription to you: answering at all reveals that you are online.",
	MsgESRequestDelayed:       "The request was stored while you were offline and may be stale: consider starting a new session instead.",
	MsgESRequestProblem:       "It cannot be accepted as offered (%s): accepting sends an error.",
	MsgESEstablishedClear:     "A stanza session WITHOUT end-to-end encryption was established with %s.",
	MsgESEstablished:          "Encrypted Session established with %s (XEP-0200, Deferred).",
	MsgESChainVerified:        "It continues a chain of sessions whose short authentication string you confirmed.",
	MsgESChainUnconfirmed:     "It continues an earlier session, but no short authentication string of that chain was ever confirmed: compare it with the contact over a channel you trust (voice, in person) and confirm it if it matches.",
	MsgESUnauthenticated:      "It is NOT authenticated: compare the short authentication string with the contact over a channel you trust (voice, in person) and confirm it if it matches.",
	MsgESInOrder:              "Messages must arrive exactly once and in order: a lost, repeated or reordered message ends the session.",
	MsgESContinuityBroken:     "None of the secrets retained from earlier Encrypted Sessions with %s matched: the contact uses another client or lost its data, or someone is in the middle. Compare the short authentication string before trusting this session.",
	MsgESVerifiedByChain:      "The Encrypted Session with %s is verified through the secret retained from a confirmed session.",
	MsgESSecretNotStored:      "The secret retained from this session could not be stored (%s): the next session will not recognise this one.",
	MsgESDeclined:             "%s declined the Encrypted Session.",
	MsgESReasonGiven:          "Reason given: %s",
	MsgESFailedUnavailable:    "The Encrypted Session with %s failed: the contact is offline or does not support Encrypted Sessions (service-unavailable).",
	MsgESFailedRefused:        "The Encrypted Session with %s failed: the contact refused the negotiation or a message of the session (%s).",
	MsgESFailedFields:         "Fields: %s.",
	MsgESFailed:               "The Encrypted Session with %s failed: %s.",
	MsgESErrorText:            "The error says: %s",
	MsgESTerminatedAuth:       "The Encrypted Session with %s was ended because a stanza failed authentication (%s): it was altered, lost, repeated or reordered on the way. Its keys are wiped; start a new session.",
	MsgESTerminatedError:      "The Encrypted Session with %s ended: %s (%s).",
	MsgESTerminatedByPeer:     "%s ended the Encrypted Session (%s). Its keys are wiped.",
	MsgESTerminated:           "The Encrypted Session with %s ended (%s). Its keys are wiped.",
	MsgESRejected:             "An Encrypted Session stanza from %s was ignored: %s.",
	MsgESMoved:                "The stanza session continues with %s.",
	MsgESRenegotiationRefused: "A renegotiation of the session with %s was refused.",
	MsgESConnectionLost:       "The connection was lost: the Encrypted Session with %s ended and its keys are wiped. Start a new one once connected.",
	MsgESConfirmed:            "You confirmed the short authentication string of the Encrypted Session with %s: this session is verified, and so are later sessions that continue it.",
	MsgESCopyArchived:         "An archived copy of an Encrypted Session message can never be decrypted.",
	MsgESCopyCarbon:           "A copy of an Encrypted Session message made for another of your devices can never be decrypted: a session belongs to one device.",
	MsgESEnded:                "The Encrypted Session with %s has been ended; start a new one.",
	MsgESAdopted:              "The Encrypted Session with %s was handed over from another of your resources and continues here, with its keys.",
	MsgESMovedHandover:        "%s agreed that the Encrypted Session continues with %s: hand the session over to that resource before the contact writes again.",
	MsgESRenegotiated:         "The session with %s was renegotiated.",
	MsgESRekeyed:              "New keys were exchanged in the Encrypted Session with %s.",
	MsgESRekeyedIdle:          "The Encrypted Session with %s had been idle: new keys were exchanged.",
	MsgESLoggingMay:           "Logging: may (either side may keep a history of this session).",
	MsgESLoggingMustNot:       "Logging: mustnot (neither side may store anything of this session; Balcony keeps it out of its own history and asks the server not to store it).",
	MsgESPeerKey:              "The contact identified with the public key %s.",
	MsgESKeyVerified:          "You verified that key: the session is authenticated.",
	MsgESKeyUnverified:        "That key is NOT verified: compare its fingerprint with the contact over a channel you trust and mark it verified if it matches.",
	MsgESVerifiedByKey:        "The Encrypted Session with %s is verified: the contact signed with a key you verified.",
	MsgESPasswordUsed:         "The password you share with the contact went into the session key: only someone who knows it could complete the negotiation.",
	MsgESOfflineRead:          "It was started while you were offline (XEP-0187): you can only read it.",
	MsgESOfflineStarted:       "Offline Encrypted Session started with %s (XEP-0187): your messages wait on the server until the contact comes back.",
	MsgESKeyPublished:         "%s published an Encrypted Sessions key %s; verify it before trusting sessions with it.",
	MsgESKeyNew:               "%s identified with a key seen for the first time (%s); verify it before trusting this session.",
	MsgESKeyChanged:           "%s uses another Encrypted Sessions key than before: %s (trust: %s). It may be a new device or a reinstall, or someone in the middle: verify it before trusting the session.",
	MsgESKeyOtherJID:          "%s presents the key %s, which is also associated with %s: whoever holds it could pose as another contact.",
	MsgESKeyMissing:           "%s identified without a public key, although keys are known for this contact: the session is not authenticated by a key.",
	MsgESKeyUntrusted:         "%s presented the key %s, which you marked untrusted: the session was ended and nothing of it is shown.",
	MsgESArchiveNone:          "Your server offers no message archive (XEP-0313): nothing of the session with %s is archived there.",
	MsgESArchiveOff:           "Your server's archive does not store messages with %s.",
	MsgESArchiveExcluded:      "Your server archived messages with %s: the contact was put on the archive's \"never\" list while the session lasts.",
	MsgESArchiveUnknown:       "The archiving preferences of your server could not be checked for %s (%s); the session's messages still ask not to be stored.",
	MsgESOfflineEnded:         "%s came online: the offline Encrypted Session with the contact was ended; start an online one to go on.",
	MsgESArchiveRestored:      "The archive's exception for %s was taken back: its messages are archived again as your preferences say.",

	MsgOMEMODeviceUntrusted: "Sent by the device %s (fingerprint %s), which you marked untrusted.",
	MsgOMEMODeviceUndecided: "Sent by the device %s (fingerprint %s), which you have not decided to trust yet.",
	MsgOMEMODeviceNotListed: "Sent by the device %s, which %s does not list among its OMEMO devices.",
	MsgOMEMOStampSkewed:     "The time stamp inside the message (%s) is %s away from when it arrived.",
	MsgOMEMODeviceSeen:      "%s uses the OMEMO device %s with the fingerprint %s (trust: %s).",
	MsgOMEMONewDevice:       "%s has a new OMEMO device %s with the fingerprint %s (trust: %s); compare the fingerprint with the contact before you rely on it.",
	MsgOMEMOKeyChanged:      "The OMEMO device %s of %s has a new identity key with the fingerprint %s (trust: %s) instead of %s: the device was set up again, or someone is trying to read your messages.",
	MsgOMEMONotEncryptedTo:  "Not encrypted for the OMEMO device %s of %s (fingerprint %s), which you have not decided to trust: it cannot read this message.",
	MsgOMEMOGroupChat:       "OMEMO in group chats is not supported yet.",
	MsgOMEMONotForDevice:    "It was not encrypted for this device (%s).",
	MsgOMEMOOwnMessage:      "It was sent by this device: OMEMO never encrypts a message for the device that sends it.",
	MsgOMEMOAlreadyRead:     "It was decrypted on this device before, and OMEMO deletes the key of a message once it is used (forward secrecy).",
	MsgOMEMOSessionRebuilt:  "There was no usable session with the device %s of %s; a new one was started, so ask the contact to send the message again.",
	MsgOMEMOSessionBroken:   "The session with the device %s of %s may be broken; if this happens again, replace it.",
	MsgOMEMOEnvelopeFrom:    "Its encrypted envelope names %s as the sender, not %s.",
	MsgOMEMOEnvelopeTo:      "Its encrypted envelope names %s as the recipient, not %s.",
}

// An Action is something the user can do about an event: enable a
// mechanism, start or end a session, verify a key, answer a verification,
// accept a request. The library names the action; the application turns
// it into its own command, button or menu entry.
type Action int

const (
	ActionNone Action = iota
	// ActionEnable: enable the mechanism (for OpenPGP for XMPP, create or
	// restore a key).
	ActionEnable
	// ActionStartSession: start a session with Peer.
	ActionStartSession
	// ActionVerify: verify Peer's key or session (SMP, SAS, fingerprint).
	ActionVerify
	// ActionAnswer: answer Peer's verification request.
	ActionAnswer
	// ActionAccept: accept or decline Peer's session request.
	ActionAccept
	// ActionEnd: end the session with Peer.
	ActionEnd
	numActions
)

var actionNames = [...]string{"", "enable", "start-session", "verify", "answer", "accept", "end"}

func (a Action) String() string {
	if a >= 0 && a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MarshalText encodes the action by name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// A Hint is what the user can do about an event, as data: the action,
// the mechanism's namespace and the peer it concerns. The zero Hint means
// there is nothing to do.
type Hint struct {
	Action    Action `json:"action"`
	Mechanism string `json:"mechanism"`
	Peer      string `json:"peer,omitempty"`
}

// Text returns the hint as a sentence in the language closest to lang,
// with command (the application's way to do it) inserted; "" for the zero
// Hint or an empty command.
func (h Hint) Text(lang language.Tag, command string) string {
	if h.Action == ActionNone || command == "" {
		return ""
	}
	key := hintKeys[ActionEnable]
	if h.Action > 0 && h.Action < numActions {
		key = hintKeys[h.Action]
	}
	return printer(lang).Sprintf(key, clean(command, maxDetailRunes, false))
}

var hintKeys = [...]string{
	ActionEnable:       keyHintEnable,
	ActionStartSession: keyHintSession,
	ActionVerify:       keyHintVerify,
	ActionAnswer:       keyHintAnswer,
	ActionAccept:       keyHintAccept,
	ActionEnd:          keyHintEnd,
}
