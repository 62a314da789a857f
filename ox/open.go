package ox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"
)

// MaxPlaintext is the largest decrypted content element [Opener.Open]
// accepts, after any decompression.
const MaxPlaintext = 1 << 20

// ErrMalformed means the data is not an OpenPGP message at all, or an
// unencrypted one that cannot be parsed.
var ErrMalformed = errors.New("ox: not a valid OpenPGP message")

// An Opener decrypts and verifies OX messages with the secret keys of one
// account. It holds no per-message state: an Opener is safe for concurrent
// use by any number of goroutines, which is how the client decrypts a MAM
// archive on all cores. Pair it with a [KeyCache] so that sender keys are
// parsed once.
type Opener struct {
	own  []*Key
	ring openpgp.EntityList
	cfg  Config
}

// NewOpener returns an Opener that decrypts with own, the account's secret
// keys (current and retired ones, so old archived messages stay readable).
// Every key must hold unlocked secret key material. With no keys, only <sign/>
// elements can be opened.
func NewOpener(own []*Key, cfg *Config) (*Opener, error) {
	o := &Opener{}
	if cfg != nil {
		o.cfg = *cfg
	}
	for _, k := range own {
		if !k.Secret() || k.Locked() {
			return nil, &KeyError{k.fpr, ErrNotSecret}
		}
		o.own = append(o.own, k)
		o.ring = append(o.ring, k.entity)
	}
	return o, nil
}

// OpenParams describes the stanza an <openpgp/> element arrived in.
type OpenParams struct {
	// From is the outer 'from' of the message. Its bare JID is the sender:
	// the signing key must carry the user ID "xmpp:<bare JID>". For a carbon
	// or a MAM result it is the 'from' of the forwarded message (one's own
	// JID for one's own sent messages).
	From jid.JID

	// To is the outer 'to' of the message, which at least one <to/> must
	// name (compared as bare JIDs, RFC 7622 normalised). For a carbon or MAM
	// result it is the 'to' of the forwarded message (the contact, for one's
	// own sent messages); in a MUC, the room's bare JID.
	To jid.JID

	// SenderKeys are the keys currently announced for the sender's bare JID
	// (for one's own messages, one's own public keys). Only a signature by one
	// of them can verify. Trust decisions are left to the caller, who can look
	// at Opened.Signer.
	SenderKeys []*Key

	// Require is the content element kind the profile requires, or zero to
	// accept any. The IM profile requires Signcrypt (XEP-0374 §3.1).
	Require Kind

	// Time is the reference time for key validity and the plausibility of the
	// <time/> stamp: the server's delay or MAM time stamp for stored and
	// archived messages. Zero means now.
	Time time.Time
}

// Opened is the result of opening a message. It is returned whenever the
// content could be decrypted and parsed, even if checks failed: the client
// shows such content flagged as untrusted, or a notice, but never as verified.
type Opened struct {
	// Content is the parsed content element.
	Content *Content

	// Encrypted and Signed describe the OpenPGP message itself.
	Encrypted, Signed bool

	// Verified is true only if the message is signed, the signature is valid
	// and made by a non-revoked, unexpired key among OpenParams.SenderKeys
	// that carries the user ID "xmpp:<sender bare JID>", a <to/> names
	// OpenParams.To, and the kind matches both the OpenPGP message and
	// OpenParams.Require, and every time stamp is within the tolerance (one
	// outside it is reported in Problems as a [*TimeError]). In short:
	// Verified is true exactly when Signer is set and Problems is empty.
	Verified bool

	// Signer is the sender key whose signature verified, even if a later
	// check failed; nil if there was no valid signature by a sender key.
	Signer *Key

	// SignerKeyID is the OpenPGP key ID that made the signature, or zero if
	// the message is unsigned. It names unknown signers too.
	SignerKeyID uint64

	// DecryptedWith is the own key that decrypted the message, or nil.
	DecryptedWith *Key

	// Skew is Content.Time minus the reference time.
	Skew time.Duration

	// Problems lists every failed check, as *SignerError, *KindError,
	// *RecipientError or *TimeError values.
	Problems []error
}

// SignerError reports a signature that cannot be attributed to the sender.
// It wraps ErrNotSigned, ErrUnknownSigner, ErrBadSignature, ErrUserID,
// ErrKeyExpired or ErrKeyRevoked.
type SignerError struct {
	KeyID       uint64 // the signing key ID, if the message was signed
	Fingerprint string // the sender key, if it was found
	Err         error
}

func (e *SignerError) Error() string {
	switch {
	case e.Fingerprint != "":
		return fmt.Sprintf("ox: signer %s: %s", e.Fingerprint, errText(e.Err))
	case e.KeyID != 0:
		return fmt.Sprintf("ox: signer key ID %016X: %s", e.KeyID, errText(e.Err))
	}
	return e.Err.Error()
}

func (e *SignerError) Unwrap() error { return e.Err }

// KindError reports a content element of the wrong kind, or an OpenPGP message
// whose signing or encryption does not match its kind (XEP-0373 §3.1).
type KindError struct {
	Want      Kind // the required kind, or zero
	Got       Kind
	Signed    bool // whether the OpenPGP message was signed
	Encrypted bool // whether it was encrypted
}

func (e *KindError) Error() string {
	if e.Want != 0 && e.Want != e.Got {
		return fmt.Sprintf("ox: <%s/> required, got <%s/>", e.Want, e.Got)
	}
	var want []string
	if e.Got.signed() != e.Signed {
		want = append(want, map[bool]string{true: "must be signed", false: "must not be signed"}[e.Got.signed()])
	}
	if e.Got.encrypted() != e.Encrypted {
		want = append(want, map[bool]string{true: "must be encrypted", false: "must not be encrypted"}[e.Got.encrypted()])
	}
	return fmt.Sprintf("ox: <%s/> %s", e.Got, strings.Join(want, " and "))
}

func (e *KindError) Unwrap() error { return ErrKind }

// RecipientError reports that no <to/> names the outer 'to' (XEP-0373 §3.2),
// as happens with a message forwarded to someone it was not written for.
type RecipientError struct {
	To    []jid.JID // the <to/> addresses
	Outer jid.JID   // the outer 'to', bare
}

func (e *RecipientError) Error() string {
	names := make([]string, len(e.To))
	for i, j := range e.To {
		names[i] = j.String()
	}
	if len(names) == 0 {
		return fmt.Sprintf("ox: no <to/> element; message sent to %s", e.Outer)
	}
	return fmt.Sprintf("ox: message addressed to %s, not %s", strings.Join(names, ", "), e.Outer)
}

func (e *RecipientError) Unwrap() error { return ErrRecipient }

// TimeError reports a time stamp further from the reference time than the
// tolerance: the <time/> stamp, or the creation time of the signature.
type TimeError struct {
	Stamp     time.Time
	Reference time.Time
	Signature bool // the stamp is the signature's creation time
}

func (e *TimeError) Error() string {
	what := "<time/> stamp"
	if e.Signature {
		what = "signature time"
	}
	d := e.Stamp.Sub(e.Reference)
	dir := "ahead of"
	if d < 0 {
		d, dir = -d, "behind"
	}
	return fmt.Sprintf("ox: %s %s is %s %s", what, FormatTime(e.Stamp), d.Round(time.Second), dir+" the reference time")
}

func (e *TimeError) Unwrap() error { return ErrTime }

// openRing is the key ring handed to go-crypto for one message. Decryption
// looks keys up by ID in the own keys only, and signature verification by ID
// and usage in the sender keys only, so an own key can never stand in for the
// sender's and vice versa.
type openRing struct {
	own, sender  openpgp.EntityList
	asked, found int
}

func (r *openRing) KeysById(id uint64) []openpgp.Key {
	r.asked++
	keys := r.own.KeysById(id)
	if len(keys) > 0 {
		r.found++
	}
	return keys
}

func (r *openRing) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	return r.sender.KeysByIdUsage(id, usage)
}

func (r *openRing) DecryptionKeys() []openpgp.Key {
	r.asked++
	keys := r.own.DecryptionKeys()
	if len(keys) > 0 {
		r.found++
	}
	return keys
}

var maxDecompressed = int64(MaxPlaintext)

// Open decrypts and verifies the binary OpenPGP message msg (the content of
// an <openpgp/> element, see [Element]) and parses the content element.
//
// It returns an error only when there is no content to show: [ErrNoKey],
// [ErrDecrypt] (opaque, for every decryption or integrity failure, including
// an encrypted plaintext larger than [MaxPlaintext]), [ErrMalformed],
// [ErrTooLarge] (an unencrypted message) or a [*ParseError]. Every failed receiver
// check of XEP-0373 §3.2 is instead listed in Opened.Problems and leaves
// Opened.Verified false.
func (o *Opener) Open(msg []byte, p OpenParams) (*Opened, error) {
	ref := p.Time
	if ref.IsZero() {
		ref = o.cfg.now()
	}
	skew := o.cfg.skew()
	ring := &openRing{own: o.ring}
	for _, k := range p.SenderKeys {
		if k != nil {
			ring.sender = append(ring.sender, k.entity)
		}
	}
	pc := &packet.Config{
		Time:                       func() time.Time { return ref },
		MaxDecompressedMessageSize: &maxDecompressed,
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(msg), ring, nil, pc)
	if err != nil {
		switch {
		case ring.found == 0 && (ring.asked > 0 || errors.Is(err, pgperrors.ErrKeyIncorrect)):
			return nil, ErrNoKey
		case ring.asked > 0:
			return nil, ErrDecrypt
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	body, err := readLimited(md.UnverifiedBody, len(msg), MaxPlaintext)
	defer clear(body)
	if err != nil {
		switch {
		case md.IsEncrypted:
			// Even an oversized plaintext is reported opaquely: it is found
			// before the integrity check, so a distinct error would tell an
			// attacker something about a tampered ciphertext.
			return nil, ErrDecrypt
		case errors.Is(err, ErrTooLarge) || errors.Is(err, pgperrors.ErrMessageTooLarge):
			return nil, ErrTooLarge
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c, err := ParseContent(body)
	if err != nil {
		return nil, err
	}

	op := &Opened{Content: c, Encrypted: md.IsEncrypted, Signed: md.IsSigned}
	if md.IsEncrypted {
		op.DecryptedWith = findKey(o.own, md.DecryptedWith.Entity)
	}
	// An unsigned <signcrypt/> or <sign/> is reported below as unsigned; the
	// other contradictions between kind and message are reported here.
	if md.IsSigned && !c.Kind.signed() || md.IsEncrypted != c.Kind.encrypted() {
		op.Problems = append(op.Problems, &KindError{Got: c.Kind, Signed: md.IsSigned, Encrypted: md.IsEncrypted})
	}
	if p.Require != 0 && c.Kind != p.Require {
		op.Problems = append(op.Problems, &KindError{Want: p.Require, Got: c.Kind, Signed: md.IsSigned, Encrypted: md.IsEncrypted})
	}

	// The signature (XEP-0373 §3.2).
	switch {
	case !md.IsSigned:
		if c.Kind.signed() {
			op.Problems = append(op.Problems, &SignerError{Err: ErrNotSigned})
		}
	case md.SignedBy == nil:
		op.SignerKeyID = md.SignedByKeyId
		op.Problems = append(op.Problems, &SignerError{KeyID: md.SignedByKeyId, Err: ErrUnknownSigner})
	default:
		sk := findKey(p.SenderKeys, md.SignedBy.Entity)
		op.SignerKeyID = md.SignedBy.PublicKey.KeyId
		if !signatureValid(md.SignatureError) || md.Signature == nil || sk == nil {
			op.Problems = append(op.Problems, &SignerError{KeyID: op.SignerKeyID, Err: ErrBadSignature})
			break
		}
		op.Signer = sk
		if prob := checkSigner(sk, md.SignedBy, md.Signature, p.From, ref, skew); prob != nil {
			op.Problems = append(op.Problems, prob)
		}
	}

	// The recipient: required for the signed kinds; <crypt/> is unsigned, so
	// its <to/> would prove nothing (XEP-0373 §3.1).
	if c.Kind.signed() && !addressedTo(c.To, p.To) {
		op.Problems = append(op.Problems, &RecipientError{To: c.To, Outer: p.To.Bare()})
	}

	op.Skew = c.Time.Sub(ref)
	timeOK := op.Skew <= skew && op.Skew >= -skew
	if !timeOK {
		op.Problems = append(op.Problems, &TimeError{Stamp: c.Time, Reference: ref})
	}
	if op.Signer != nil && md.Signature.CreationTime.Sub(ref) > skew {
		op.Problems = append(op.Problems, &TimeError{Stamp: md.Signature.CreationTime, Reference: ref, Signature: true})
	}

	// Verified means every check passed; a time stamp outside the
	// tolerance (a replay, or a post-dated message) is a failed check too.
	op.Verified = op.Signer != nil && len(op.Problems) == 0
	return op, nil
}

// readLimited reads r to its end, expecting about size bytes, and fails with
// ErrTooLarge beyond max. Reading to the end is what makes go-crypto check
// the signature and the integrity of the message.
func readLimited(r io.Reader, size, max int) ([]byte, error) {
	buf := make([]byte, 0, min(size, max)+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > max {
				return buf, ErrTooLarge
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > max {
				return buf, ErrTooLarge
			}
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// signatureValid reports whether go-crypto's verdict means the signature is
// cryptographically valid. Its expiry and revocation verdicts come after the
// signature checked out and are evaluated by checkSigner instead, with clock
// skew tolerance and at the reference time.
func signatureValid(err error) bool {
	return err == nil ||
		errors.Is(err, pgperrors.ErrKeyExpired) ||
		errors.Is(err, pgperrors.ErrSignatureExpired) ||
		errors.Is(err, pgperrors.ErrKeyRevoked)
}

// checkSigner checks that the key that made a valid signature may speak for
// the sender at the time of the message.
func checkSigner(k *Key, used *openpgp.Key, sig *packet.Signature, from jid.JID, ref time.Time, skew time.Duration) error {
	// A signature a little in the future (the sender's clock is ahead, or the
	// key was made moments ago) is judged at its own creation time.
	t := ref
	if d := sig.CreationTime.Sub(ref); d > 0 {
		t = ref.Add(min(d, skew))
	}
	fail := func(err error) error { return &SignerError{KeyID: used.PublicKey.KeyId, Fingerprint: k.fpr, Err: err} }
	if err := k.validAt(t); err != nil {
		return fail(err)
	}
	if used.PublicKey != k.entity.PrimaryKey {
		bind := used.SelfSignature
		switch {
		case used.Revoked(t):
			return fail(ErrKeyRevoked)
		case bind == nil:
			return fail(ErrBadSignature)
		case used.PublicKey.KeyExpired(bind, t), bind.SigExpired(t),
			bind.EmbeddedSignature != nil && bind.EmbeddedSignature.SigExpired(t):
			return fail(ErrKeyExpired)
		}
	}
	if sig.SigLifetimeSecs != nil && *sig.SigLifetimeSecs != 0 &&
		ref.After(sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs)*time.Second)) {
		return fail(errSigExpired)
	}
	if err := k.uidValidAt(from, t); err != nil {
		return fail(err)
	}
	return nil
}

// errSigExpired reports an expired message signature; it is a kind of
// ErrKeyExpired for callers.
var errSigExpired = fmt.Errorf("signature expired: %w", ErrKeyExpired)

func findKey(keys []*Key, e *openpgp.Entity) *Key {
	for _, k := range keys {
		if k != nil && k.entity == e {
			return k
		}
	}
	return nil
}

// addressedTo reports whether one of the <to/> addresses is outer, comparing
// bare JIDs: <to/> should hold bare JIDs, while the outer 'to' of a message
// usually is a full JID.
func addressedTo(to []jid.JID, outer jid.JID) bool {
	want := outer.Bare()
	for _, j := range to {
		if j.Bare().Equal(want) {
			return true
		}
	}
	return false
}
