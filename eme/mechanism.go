package eme

// Namespaces of the encryption mechanisms Balcony knows. The first six are
// the table of XEP-0380 §3.2, in its order; ESession is not listed there.
const (
	// OTR is Off-the-Record Messaging in XMPP (XEP-0364).
	OTR = "urn:xmpp:otr:0"
	// LegacyOpenPGP is Current Jabber OpenPGP Usage (XEP-0027).
	LegacyOpenPGP = "jabber:x:encrypted"
	// OX is OpenPGP for XMPP (XEP-0373, XEP-0374).
	OX = "urn:xmpp:openpgp:0"
	// OMEMO0 is OMEMO version 0.3 and earlier, "axolotl" (XEP-0384 0.3.0).
	OMEMO0 = "eu.siacs.conversations.axolotl"
	// OMEMO1 is OMEMO versions 0.4.0 to 0.7.x (XEP-0384 0.4.0).
	OMEMO1 = "urn:xmpp:omemo:1"
	// OMEMO2 is OMEMO versions 0.8.0 and later (XEP-0384).
	OMEMO2 = "urn:xmpp:omemo:2"
	// ESession is Stanza Encryption (XEP-0200) as negotiated by Encrypted
	// Sessions (XEP-0218 and the specifications it lists). XEP-0380 does
	// not list it, so its tags carry a 'name'.
	ESession = "http://www.xmpp.org/extensions/xep-0200.html#ns"
)

// Ranks order mechanisms for downgrade protection; see Mechanism.Rank.
const (
	RankPlaintext = 0 // no encryption, or a mechanism Balcony cannot judge
	RankLegacy    = 1 // Legacy OpenPGP
	RankSession   = 2 // OTR, Encrypted Sessions
	RankModern    = 3 // OpenPGP for XMPP, OMEMO 0.3
	RankRatchet   = 4 // OMEMO 1, OMEMO 2
)

// A Mechanism describes an encryption mechanism that Balcony knows.
type Mechanism struct {
	// Namespace identifies the mechanism in <encryption namespace='…'/>.
	Namespace string
	// Name is Balcony's display name, the name of XEP-0380 §3.2 for listed
	// mechanisms. A receiver uses it, never a remote 'name' (XEP-0380 §4).
	Name string
	// Short is the identifier used in policies and on the command line.
	Short string
	// Spec is the specification that defines the mechanism.
	Spec string
	// Listed reports whether XEP-0380 §3.2 lists the mechanism; tags for
	// listed mechanisms carry no 'name'.
	Listed bool
	// Rank orders mechanisms for Policy: a policy that requires a mechanism
	// accepts it and any mechanism of equal or higher rank.
	//
	// The ranking is a judgement, made on three properties in this order:
	// whether the sender and the whole payload are authenticated, whether
	// the cryptographic parameters meet today's recommendations (at least
	// 112-bit security), and whether the mechanism gives forward secrecy.
	//
	//   1 Legacy OpenPGP (XEP-0027, Obsolete): encrypts the body only, with
	//     no binding of signature to message and no replay protection.
	//   2 OTR and Encrypted Sessions: forward secrecy and authenticated
	//     sessions, but OTR's 1536-bit group, DSA-1024 and SHA-1 MACs fall
	//     below 112-bit security, and Encrypted Sessions rest on Deferred
	//     specifications with negotiable, ageing parameters.
	//   3 OpenPGP for XMPP: modern keys, a signed and encrypted payload
	//     bound to its recipients and time, but no forward secrecy.
	//     OMEMO 0.3: a double ratchet with forward secrecy, but only the
	//     body is encrypted and every other element travels in the clear.
	//   4 OMEMO 1 and OMEMO 2 (XEP-0384 0.4.0 and later): a double ratchet
	//     with forward secrecy, encrypting a Stanza Content Encryption
	//     (XEP-0420) envelope that protects every element, not only the
	//     body.
	Rank int
}

var mechanisms = [...]Mechanism{
	{Namespace: OTR, Name: "OTR", Short: "otr", Spec: "XEP-0364", Listed: true, Rank: RankSession},
	{Namespace: LegacyOpenPGP, Name: "Legacy OpenPGP", Short: "legacy-openpgp", Spec: "XEP-0027", Listed: true, Rank: RankLegacy},
	{Namespace: OX, Name: "OpenPGP for XMPP", Short: "ox", Spec: "XEP-0373", Listed: true, Rank: RankModern},
	{Namespace: OMEMO0, Name: "OMEMO", Short: "omemo", Spec: "XEP-0384 0.3.0", Listed: true, Rank: RankModern},
	{Namespace: OMEMO1, Name: "OMEMO 1", Short: "omemo1", Spec: "XEP-0384 0.4.0", Listed: true, Rank: RankRatchet},
	{Namespace: OMEMO2, Name: "OMEMO 2", Short: "omemo2", Spec: "XEP-0384", Listed: true, Rank: RankRatchet},
	{Namespace: ESession, Name: "Encrypted Sessions", Short: "esession", Spec: "XEP-0200", Listed: false, Rank: RankSession},
}

// Mechanisms returns the mechanisms Balcony knows: the XEP-0380 §3.2 table
// in its order, followed by the unlisted ones. The slice is a fresh copy.
func Mechanisms() []Mechanism {
	out := make([]Mechanism, len(mechanisms))
	copy(out, mechanisms[:])
	return out
}

// Lookup returns the mechanism with the given namespace. Namespaces are
// compared exactly, as XML namespaces are.
func Lookup(namespace string) (Mechanism, bool) {
	for _, m := range mechanisms {
		if m.Namespace == namespace {
			return m, true
		}
	}
	return Mechanism{}, false
}

// lookupShort finds a mechanism by its Short identifier or its namespace.
func lookupShort(s string) (Mechanism, bool) {
	for _, m := range mechanisms {
		if m.Short == s || m.Namespace == s {
			return m, true
		}
	}
	return Mechanism{}, false
}

// rank returns the rank of a mechanism; plaintext ("") and unknown
// mechanisms rank RankPlaintext.
func rank(namespace string) int {
	m, _ := Lookup(namespace)
	return m.Rank
}

// DisplayName returns the name under which a mechanism is shown to the
// user. For a namespace Balcony knows it is Balcony's own name and
// remoteName is ignored (XEP-0380 §4: a receiver MUST NOT use the 'name'
// when it already has one). Otherwise it is SanitizeName(remoteName): a
// quoted, sanitised, length-limited string, or "" when the remote entity
// gave no usable name.
func DisplayName(namespace, remoteName string) string {
	if m, ok := Lookup(namespace); ok {
		return m.Name
	}
	return SanitizeName(remoteName)
}

// FallbackBody returns the non-encrypted <body/> text that Balcony puts in
// an outgoing message encrypted with the given mechanism, for clients that
// cannot decrypt it (XEP-0380 §4). The text is in English because the
// sender cannot know the recipient's language; receivers that understand
// the tag replace it with a localised Notice.
//
// It returns "" for OTR, whose <body/> carries the OTR message itself and
// must not be replaced. The fallback body is never the message: a receiver
// ignores it whenever Detect reports the message as encrypted.
func FallbackBody(namespace string) string {
	m, ok := Lookup(namespace)
	switch {
	case !ok:
		return "This message is encrypted."
	case m.Namespace == OTR:
		return ""
	default:
		return "This message is encrypted with " + m.Name + " (" + m.Namespace + ")."
	}
}
