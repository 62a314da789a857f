package ox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// Store is the part of the account's store that the OX mechanism uses:
// own key pairs, contacts' keys with their trust decisions. *store.Store
// implements it.
type Store interface {
	OwnKeys(ctx context.Context, m trust.Mechanism) ([]trust.OwnKey, error)
	OwnKeySecret(ctx context.Context, m trust.Mechanism, fingerprint string) ([]byte, error)
	AddOwnKey(ctx context.Context, k trust.OwnKey, secret []byte) error
	ListKeys(ctx context.Context, contact string, m trust.Mechanism) ([]trust.ContactKey, error)
	RecordSeenKey(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, data []byte) (trust.Seen, error)
	SetAnnouncedKeys(ctx context.Context, contact string, m trust.Mechanism, fingerprints []string) error
	SetKeyPublished(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, published time.Time) error
}

var (
	_ client.Mechanism    = (*Mechanism)(nil)
	_ client.Availability = (*Mechanism)(nil)
)

// Config configures the OX mechanism.
type Config struct {
	// Store holds the own keys and the contacts' keys and trust. Required.
	Store Store

	// BlindTrust makes messages signed by a key trusted on first use
	// (trust.Blind) count as verified. By default only keys the user
	// verified (trust.Verified) and one's own keys do; messages signed by a
	// blindly trusted key are shown as "unverified", without a warning.
	BlindTrust bool

	// Rand is the source of randomness (padding, session keys, backup
	// codes); nil means crypto/rand.
	Rand io.Reader

	// Now is the clock; nil means the client's clock.
	Now func() time.Time

	// MaxClockSkew is how far a <time/> stamp may be from the reference time
	// before a warning is shown; zero means ox.DefaultMaxClockSkew.
	MaxClockSkew time.Duration

	// Refresh is how long a contact's key list fetched over PEP is used
	// before sending fetches it again (notifications keep it current while
	// connected). Zero means 10 minutes.
	Refresh time.Duration

	// FetchTimeout bounds the PEP round trips made while opening a message
	// or handling a notification. Zero means 20 seconds.
	FetchTimeout time.Duration
}

// Errors of the OX mechanism that callers branch on.
var (
	// ErrNoOwnKey means the account has no OX key pair; generate or
	// restore one first.
	ErrNoOwnKey = errors.New("client: this account has no OpenPGP key")
	// ErrNoContactKey means a contact announces no OpenPGP key that may
	// be used: none is published, or every one is marked untrusted,
	// expired or revoked.
	ErrNoContactKey = errors.New("client: no usable OpenPGP key announced")
	// ErrNoBackup means the account's server holds no secret-key backup.
	ErrNoBackup = errors.New("client: no OpenPGP secret-key backup on the server")
)

// minRefetch is the shortest interval between two on-demand fetches of one
// contact's key list (a message signed by an unknown key triggers one).
const minRefetch = time.Minute

// OX is the OpenPGP for XMPP mechanism (XEP-0373 v0.7 and its IM profile
// XEP-0374) for the message pipeline, plus key announcement and discovery
// over PEP and the secret-key backup. See the package documentation,
// section "OpenPGP for XMPP".
//
// OX is safe for concurrent use: Open may run on several goroutines at
// once (bulk archive decryption), and Seal, Publish, Discover, Backup and
// Restore may be called from any goroutine.
type Mechanism struct {
	h     client.Host // set by Attach
	st    Store
	cfg   Config
	pgp   *engine.Config
	cache *engine.KeyCache

	mu      sync.Mutex
	own     []*engine.Key // secret keys, the active one first
	ownPub  []*engine.Key // their public halves, same order
	opener  *engine.Opener
	fetched map[string]time.Time // bare JID -> last fetch of its key list
	locks   [64]sync.Mutex       // serialise fetches, by hash of the bare JID
}

// New returns the OX mechanism with the account's own keys loaded from
// cfg.Store; plug it into a client with Client.Register, before Connect so
// that its features are in the first presence. Once registered it is
// enabled only when the account has a key, subscribes to contacts' key
// lists (the urn:xmpp:openpgp:0:public-keys+notify feature) and, with a
// key, advertises urn:xmpp:openpgp:im:0.
func New(cfg Config) (*Mechanism, error) {
	if cfg.Store == nil {
		return nil, errors.New("client: OX needs a store")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Minute
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 20 * time.Second
	}
	x := &Mechanism{
		st: cfg.Store, cfg: cfg, cache: engine.NewKeyCache(0),
		fetched: map[string]time.Time{},
	}
	x.pgp = &engine.Config{Rand: cfg.Rand, Now: x.now, MaxClockSkew: cfg.MaxClockSkew}
	keys, err := x.storedKeys(context.Background())
	if err != nil {
		return nil, err
	}
	if err := x.setKeys(keys); err != nil {
		return nil, err
	}
	return x, nil
}

// Attach implements client.Attacher.
func (x *Mechanism) Attach(h client.Host) error {
	x.mu.Lock()
	x.h = h
	haveKey := len(x.own) > 0
	x.mu.Unlock()
	h.HandlePEP(engine.NodePublicKeys, x.onMetadata)
	h.SetEnabled(haveKey)
	if haveKey {
		h.AddFeature(engine.NSIM)
	}
	return nil
}

func (x *Mechanism) now() time.Time {
	if x.cfg.Now != nil {
		return x.cfg.Now()
	}
	if x.h != nil {
		return x.h.Now()
	}
	return time.Now()
}

// log is the host's logger (a discarding one before Attach).
func (x *Mechanism) log() *slog.Logger {
	if x.h != nil {
		return x.h.Logger()
	}
	return slog.New(slog.DiscardHandler)
}

// Namespace implements Mechanism.
func (x *Mechanism) Namespace() string { return eme.OX }

// Needs implements Mechanism: XEP-0374 §3.2 asks for a fallback body and a
// store hint (and the EME tag, which every mechanism gets) on every OX
// message.
func (x *Mechanism) Needs() client.Needs {
	return client.Needs{FallbackBody: true, Hints: []string{"store"}}
}

// storedKeys reads the account's OX key pairs from the store, the active
// one first.
func (x *Mechanism) storedKeys(ctx context.Context) ([]*engine.Key, error) {
	recs, err := x.st.OwnKeys(ctx, trust.OX)
	if err != nil {
		return nil, err
	}
	var keys []*engine.Key
	for _, r := range recs {
		secret, err := x.st.OwnKeySecret(ctx, trust.OX, r.Fingerprint)
		if err != nil {
			return nil, err
		}
		parsed, err := engine.ParseKeys(secret)
		clear(secret)
		if err != nil {
			return nil, fmt.Errorf("client: own OpenPGP key %s: %w", r.Fingerprint, err)
		}
		var k *engine.Key
		for _, p := range parsed {
			if p.Fingerprint() == r.Fingerprint {
				k = p
			}
		}
		if k == nil || !k.Secret() || k.Locked() {
			return nil, fmt.Errorf("client: own OpenPGP key %s: %w", r.Fingerprint, engine.ErrNotSecret)
		}
		if r.Active {
			keys = append([]*engine.Key{k}, keys...)
		} else {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (x *Mechanism) setKeys(keys []*engine.Key) error {
	o, err := engine.NewOpener(keys, x.pgp)
	if err != nil {
		return err
	}
	pub := make([]*engine.Key, len(keys))
	for i, k := range keys {
		pub[i] = k.Public()
	}
	x.mu.Lock()
	x.own, x.ownPub, x.opener = keys, pub, o
	x.mu.Unlock()
	return nil
}

// LoadKeys reloads the account's own keys from the store (after a key was
// generated, imported or restored, possibly by another process) and
// enables the mechanism if there is one.
func (x *Mechanism) LoadKeys(ctx context.Context) error {
	keys, err := x.storedKeys(ctx)
	if err != nil {
		return err
	}
	if err := x.setKeys(keys); err != nil {
		return err
	}
	if x.h != nil {
		x.h.SetEnabled(len(keys) > 0)
		if len(keys) > 0 {
			x.h.AddFeature(engine.NSIM)
		}
	}
	return nil
}

// Keys returns the public halves of the account's own keys, the active
// (signing and announced) one first.
func (x *Mechanism) Keys() []*engine.Key {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]*engine.Key(nil), x.ownPub...)
}

func (x *Mechanism) snapshot() (own, ownPub []*engine.Key, o *engine.Opener) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.own, x.ownPub, x.opener
}

func (x *Mechanism) self() jid.JID { return x.h.Self().Bare() }

// keyLock serialises fetches of one contact's keys. The locks are a fixed
// set shared by hash, so that senders without number cost no memory.
func (x *Mechanism) keyLock(bare string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(bare))
	return &x.locks[h.Sum32()%uint32(len(x.locks))]
}

// maxFetched bounds the remembered fetch times; older ones are forgotten
// first (a forgotten one only allows an earlier fetch).
const maxFetched = 4096

func (x *Mechanism) lastFetch(bare string) time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.fetched[bare]
}

func (x *Mechanism) markFetched(bare string) {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.fetched) >= maxFetched {
		for k, t := range x.fetched {
			if now.Sub(t) >= minRefetch {
				delete(x.fetched, k)
			}
		}
		if len(x.fetched) >= maxFetched {
			clear(x.fetched)
		}
	}
	x.fetched[bare] = now
}

// keyInfo is what the store says about one of a sender's keys.
type keyInfo struct {
	trust     trust.State
	announced bool
	own       bool // one of this device's own key pairs
}

// senderKeys are the parsed keys of one bare JID with their trust.
type senderKeys struct {
	keys []*engine.Key
	info map[string]keyInfo
}

// loadKeys reads the keys recorded for bare (and, for one's own JID, this
// device's key pairs) and parses them through the key cache.
func (x *Mechanism) loadKeys(ctx context.Context, bare jid.JID) (*senderKeys, error) {
	recs, err := x.st.ListKeys(ctx, bare.String(), trust.OX)
	if err != nil {
		return nil, err
	}
	sk := &senderKeys{info: make(map[string]keyInfo, len(recs)+1)}
	if bare.Equal(x.self()) {
		_, pub, _ := x.snapshot()
		for _, k := range pub {
			sk.keys = append(sk.keys, k)
			sk.info[k.Fingerprint()] = keyInfo{trust: trust.Verified, announced: true, own: true}
		}
	}
	for _, r := range recs {
		if len(r.Data) == 0 {
			continue
		}
		if _, dup := sk.info[r.Fingerprint]; dup {
			continue
		}
		keys, err := x.cache.Parse(r.Data)
		if err != nil {
			x.log().Warn("stored OpenPGP key does not parse", "contact", r.Contact, "fingerprint", r.Fingerprint, "err", err)
			continue
		}
		for _, k := range keys {
			if k.Fingerprint() == r.Fingerprint {
				sk.keys = append(sk.keys, k.Public())
				sk.info[r.Fingerprint] = keyInfo{trust: r.Trust, announced: r.Announced}
				break
			}
		}
	}
	return sk, nil
}

// keySource supplies sender keys to Open: from the store for live messages,
// from a memo for bulk archive decryption.
type keySource interface {
	// keys returns the sender's keys, fetching them over PEP if none is
	// known yet.
	keys(ctx context.Context, from jid.JID) (*senderKeys, error)
	// refetch fetches the sender's key list again (a message was signed by
	// a key not known yet) and reports whether anything was fetched.
	refetch(ctx context.Context, from jid.JID) (*senderKeys, bool)
}

// liveKeys reads the store for every message, so that trust decisions made
// meanwhile (by another process, too) apply at once.
type liveKeys struct{ x *Mechanism }

func (l liveKeys) keys(ctx context.Context, from jid.JID) (*senderKeys, error) {
	return l.x.keysFetching(ctx, from)
}

func (l liveKeys) refetch(ctx context.Context, from jid.JID) (*senderKeys, bool) {
	return l.x.refetchKeys(ctx, from)
}

// keysFetching returns the keys of bare, fetching the key list over PEP
// first when nothing usable is known and it was not fetched recently.
func (x *Mechanism) keysFetching(ctx context.Context, bare jid.JID) (*senderKeys, error) {
	bare = bare.Bare()
	sk, err := x.loadKeys(ctx, bare)
	if err != nil {
		return nil, err
	}
	if sk.knowsAnnounced() || x.now().Sub(x.lastFetch(bare.String())) < minRefetch {
		return sk, nil
	}
	l := x.keyLock(bare.String())
	l.Lock()
	defer l.Unlock()
	if x.now().Sub(x.lastFetch(bare.String())) >= minRefetch {
		fctx, cancel := context.WithTimeout(ctx, x.cfg.FetchTimeout)
		res, err := x.refresh(fctx, bare, nil, false)
		cancel()
		if err != nil {
			x.log().Info("fetching OpenPGP keys failed", "contact", bare.String(), "err", err)
		} else {
			x.emitAll(res.events)
		}
	}
	return x.loadKeys(ctx, bare)
}

// knowsAnnounced reports whether an announced key of the sender is known
// (for one's own JID, a key of another device).
func (s *senderKeys) knowsAnnounced() bool {
	for _, k := range s.keys {
		i := s.info[k.Fingerprint()]
		if !i.own && i.announced {
			return true
		}
	}
	return false
}

func (x *Mechanism) refetchKeys(ctx context.Context, bare jid.JID) (*senderKeys, bool) {
	bare = bare.Bare()
	l := x.keyLock(bare.String())
	l.Lock()
	defer l.Unlock()
	if x.now().Sub(x.lastFetch(bare.String())) < minRefetch {
		return nil, false
	}
	fctx, cancel := context.WithTimeout(ctx, x.cfg.FetchTimeout)
	res, err := x.refresh(fctx, bare, nil, false)
	cancel()
	if err != nil {
		x.log().Info("fetching OpenPGP keys failed", "contact", bare.String(), "err", err)
		return nil, false
	}
	x.emitAll(res.events)
	sk, err := x.loadKeys(ctx, bare)
	if err != nil {
		return nil, false
	}
	return sk, true
}

func (x *Mechanism) emitAll(evs []*client.SecurityEvent) {
	for _, e := range evs {
		x.h.Emit(e)
	}
}

// Usable implements Availability: the account has a key and the contact
// has announced a key that is not marked untrusted. It does not use the
// network.
func (x *Mechanism) Usable(ctx context.Context, to jid.JID) bool {
	own, _, _ := x.snapshot()
	if len(own) == 0 {
		return false
	}
	sk, err := x.loadKeys(ctx, to.Bare())
	if err != nil {
		return false
	}
	for _, k := range sk.keys {
		i := sk.info[k.Fingerprint()]
		if !i.own && i.announced && i.trust != trust.Untrusted && k.CanEncrypt(x.now()) == nil {
			return true
		}
	}
	return false
}

// Seal implements Mechanism: the body and out.Payload become the <payload/>
// of a <signcrypt/> element addressed (<to/>) to the recipient's bare JID,
// signed with the account's active key and encrypted to every key the
// contact announces that is not marked untrusted, and to every key of the
// account (this device's and the other devices' announced ones), so that
// carbons, other devices and the archive can read it (XEP-0374 §4.1,
// XEP-0373 §3.1). The thread stays outside; the pipeline adds the fallback
// body, the store hint and the EME tag.
func (x *Mechanism) Seal(ctx context.Context, out *client.Outgoing) (client.Sealed, error) {
	own, ownPub, _ := x.snapshot()
	if len(own) == 0 {
		return client.Sealed{}, ErrNoOwnKey
	}
	to := out.To.Bare()
	now := x.now()
	recips, err := x.recipientKeys(ctx, to, now)
	if err != nil && !(to.Equal(x.self()) && errors.Is(err, ErrNoContactKey)) {
		return client.Sealed{}, err
	}
	var mine []*engine.Key
	if !to.Equal(x.self()) {
		if mine, err = x.recipientKeys(ctx, x.self(), now); err != nil && !errors.Is(err, ErrNoContactKey) {
			return client.Sealed{}, err
		}
	}
	// XEP-0374 §4.1: the contact's keys and all of one's own. An own key
	// that cannot encrypt any more (a retired, expired one) is left out.
	all, unusable := engine.Recipients(now, recips, ownPub, mine)
	for _, err := range unusable {
		x.log().Info("not encrypting to an unusable own OpenPGP key", "err", err)
	}

	payload := make([]byte, 0, 64+len(out.Body))
	if out.Body != "" {
		var b strings.Builder
		if err := xml.EscapeText(&b, []byte(out.Body)); err != nil {
			return client.Sealed{}, err
		}
		payload = append(payload, "<body>"...)
		payload = append(payload, b.String()...)
		payload = append(payload, "</body>"...)
	}
	for _, e := range out.Payload {
		payload = append(payload, e.Marshal(client.NSClient)...)
	}
	content := engine.Content{Kind: engine.Signcrypt, To: []jid.JID{to}, Payload: payload}
	msg, err := engine.Seal(content, own[0], all, x.pgp)
	if err != nil {
		return client.Sealed{}, fmt.Errorf("client: OX: %w", err)
	}
	st := xmltree.New(client.NSClient, "message", "to", out.To.String(), "type", out.Type, "id", out.ID)
	if out.Thread != "" {
		st.Append(xmltree.New(client.NSClient, "thread").AppendText(out.Thread))
	}
	el, err := xmltree.Parse(engine.Element{Data: msg}.Marshal(), nil)
	if err != nil {
		return client.Sealed{}, err
	}
	st.Append(el)
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// recipientKeys returns the keys to encrypt to for bare: every key it
// announces that is not untrusted and can encrypt now (an expired or
// revoked key is never used). The key list is fetched over PEP when it was
// not fetched for a while; a failed fetch falls back to the stored keys.
// For one's own JID it returns the other devices' keys.
func (x *Mechanism) recipientKeys(ctx context.Context, bare jid.JID, now time.Time) ([]*engine.Key, error) {
	if now.Sub(x.lastFetch(bare.String())) >= x.cfg.Refresh {
		l := x.keyLock(bare.String())
		l.Lock()
		if now.Sub(x.lastFetch(bare.String())) >= x.cfg.Refresh {
			res, err := x.refresh(ctx, bare, nil, false)
			if err != nil {
				x.log().Info("fetching OpenPGP keys failed", "contact", bare.String(), "err", err)
			} else {
				x.emitAll(res.events)
			}
		}
		l.Unlock()
	}
	sk, err := x.loadKeys(ctx, bare)
	if err != nil {
		return nil, err
	}
	var cands []*engine.Key
	for _, k := range sk.keys {
		i := sk.info[k.Fingerprint()]
		if !i.own && i.announced && i.trust != trust.Untrusted {
			cands = append(cands, k)
		}
	}
	out, unusable := engine.Recipients(now, cands)
	for _, err := range unusable {
		x.log().Info("not encrypting to an unusable OpenPGP key", "contact", bare.String(), "err", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w by %s", ErrNoContactKey, bare)
	}
	return out, nil
}

// Open implements Mechanism. It decrypts with the account's keys and
// verifies the signature with the keys the sender announces (fetched over
// PEP on demand, and fetched again once when the signer is unknown). The
// recipient check uses in.To, the outer 'to' of the message (for sent
// carbons and archived own messages, the 'to' of the forwarded message).
//
// A message that is not addressed to in.To, or is not a <signcrypt/> as the
// IM profile requires, is refused with eme.ReasonVerificationFailed; one
// not encrypted to this account's keys gives eme.ReasonNoKey; one that
// cannot be decrypted gives eme.ReasonVerificationFailed; one that does not
// parse gives eme.ReasonMalformed. Otherwise the content is delivered, and
// it counts as verified only if every check passed and the signing key is
// one's own or verified by the user (or blindly trusted, with
// Config.BlindTrust); any failed check is a warning.
func (x *Mechanism) Open(ctx context.Context, in *client.Incoming) (*client.Opened, error) {
	return x.open(ctx, in, liveKeys{x})
}

func (x *Mechanism) open(ctx context.Context, in *client.Incoming, src keySource) (*client.Opened, error) {
	if in.Stanza.AttrValue("type") == "groupchat" {
		// The sender of a group chat message is a room occupant whose real
		// JID, and so whose keys, Balcony does not track yet.
		return nil, &client.OpenError{Reason: eme.ReasonNotSupported, Notes: []eme.Message{eme.Msg(eme.MsgOXGroupChat)}}
	}
	el := in.Stanza.Child(engine.NS, "openpgp")
	if el == nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Detail: "no <openpgp/> element"}
	}
	data, err := openpgpData(el)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	_, _, opener := x.snapshot()
	if opener == nil {
		return nil, &client.OpenError{Reason: eme.ReasonNoKey, Err: ErrNoOwnKey}
	}
	from := in.From.Bare()
	sk, err := src.keys(ctx, from)
	if err != nil {
		return nil, err
	}
	params := engine.OpenParams{From: in.From, To: in.To, SenderKeys: sk.keys, Require: engine.Signcrypt, Time: in.Time}
	op, err := opener.Open(data, params)
	if err != nil {
		return nil, openErr(err)
	}
	if op.Signer == nil && op.SignerKeyID != 0 {
		// Signed by a key we do not know: perhaps a new one.
		if sk2, ok := src.refetch(ctx, from); ok {
			params.SenderKeys = sk2.keys
			if op2, err := opener.Open(data, params); err == nil {
				op, sk = op2, sk2
			}
		}
	}
	res, err := x.result(in, op, sk)
	if err != nil {
		return nil, err
	}
	if !in.Origin.Copy() && op.Signer != nil && !sk.info[op.Signer.Fingerprint()].own {
		if _, err := x.st.RecordSeenKey(ctx, from.String(), trust.OX, op.Signer.Fingerprint(), nil); err != nil {
			x.log().Warn("recording OpenPGP key use failed", "err", err)
		}
	}
	return res, nil
}

// openErr maps the engine's errors to notices.
func openErr(err error) error {
	var pe *engine.ParseError
	switch {
	case errors.Is(err, engine.ErrNoKey):
		return &client.OpenError{Reason: eme.ReasonNoKey, Err: err}
	case errors.Is(err, engine.ErrDecrypt):
		return &client.OpenError{Reason: eme.ReasonVerificationFailed, Err: err}
	case errors.As(err, &pe), errors.Is(err, engine.ErrMalformed), errors.Is(err, engine.ErrTooLarge):
		return &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	return &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
}

// result turns an opened content element into what the pipeline delivers,
// or refuses it.
//
// XEP-0373 §3.2: the content must carry a valid signature by a key of the
// sender's JID. A <signcrypt/> without a signature, with a bad one, or
// signed by a key the sender never announced is a forgery as far as the
// receiver can tell: it is refused (a notice, never a message). A message
// signed by a key of the sender that is no longer announced (an archived
// message after a key change) is shown with a warning, but it does not
// count as OX for the incoming policy (Security.Authenticated is false).
// Verified means that every check passed and the user trusts the key.
func (x *Mechanism) result(in *client.Incoming, op *engine.Opened, sk *senderKeys) (*client.Opened, error) {
	sec := client.Security{Mechanism: eme.OX}
	for _, p := range op.Problems {
		var re *engine.RecipientError
		var ke *engine.KindError
		switch {
		case errors.As(p, &re):
			// A message written for someone else and forwarded to us
			// (surreptitious forwarding, XEP-0373 §3.1): never shown.
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: re.Error()}
		case errors.As(p, &ke):
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: ke.Error() + " (the IM profile requires <signcrypt/>)"}
		case op.Signer == nil:
			// Not signed, signed by an unknown key or a bad signature: the
			// engine found no valid signature by a key of the sender.
			return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Detail: strings.TrimPrefix(p.Error(), "ox: ")}
		default:
			sec.Warnings = append(sec.Warnings, problemWarning(p))
		}
	}
	if op.Signer == nil {
		return nil, &client.OpenError{Reason: eme.ReasonVerificationFailed, Notes: []eme.Message{eme.Msg(eme.MsgOXNoValidSignature)}}
	}
	from := in.From.Bare()
	fpr := op.Signer.Fingerprint()
	info := sk.info[fpr]
	sec.Fingerprint = fpr
	sec.Trust = info.trust.String()
	sec.Authenticated = info.own || info.announced
	verified := op.Verified
	switch {
	case info.own:
	case !info.announced:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyNotAnnounced, fpr, from.String()))
	case info.trust == trust.Verified:
	case info.trust == trust.Blind:
		verified = verified && x.cfg.BlindTrust
	case info.trust == trust.Untrusted:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyUntrusted, fpr))
	default:
		verified = false
		sec.Warnings = append(sec.Warnings, client.Warn(eme.MsgOXKeyUndecided, fpr))
	}
	// Verified means every check passed: a warning of any kind (a replayed
	// or post-dated <time/> stamp too) leaves the message unverified.
	sec.Verified = verified && len(sec.Warnings) == 0

	outer := in.Stanza.Elements()
	oc := make([]engine.Child, len(outer))
	for i, e := range outer {
		oc[i] = engine.Child{Name: e.Name}
	}
	children, err := engine.EffectiveChildren(op.Content.Payload, oc)
	if err != nil {
		return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
	}
	res := &client.Opened{Security: sec}
	hasBody := false
	for _, c := range children {
		if !c.Protected {
			// Unencrypted siblings are not authenticated: anyone on the path
			// could add a correction or a reply reference to a verified
			// message. Only the protected children are delivered
			// (XEP-0374 §5: the payload takes the place of the stanza's
			// children).
			continue
		}
		if c.Name.Space == client.NSClient && c.Name.Local == "body" && !hasBody {
			if text, ok := simpleText(c.XML); ok {
				res.Body, hasBody = text, true
				continue
			}
		}
		e, err := xmltree.Parse(c.XML, nil)
		if err != nil {
			return nil, &client.OpenError{Reason: eme.ReasonMalformed, Err: err}
		}
		if e.Name.Space == client.NSClient && e.Name.Local == "body" && !hasBody {
			res.Body, hasBody = e.Text(), true
			continue
		}
		res.Payload = append(res.Payload, e)
	}
	return res, nil
}

// openpgpData returns the binary OpenPGP message of an <openpgp/> element.
// What Balcony and the other clients send, plain Base64 text, is decoded
// directly; anything else goes through ox.ParseElement, which also
// tolerates white space and explains what is wrong.
func openpgpData(el *xmltree.Element) ([]byte, error) {
	if len(el.Children) == 1 && len(el.Attr) == 0 {
		if text, ok := el.Children[0].(xmltree.CharData); ok {
			if data, err := base64.StdEncoding.Strict().DecodeString(string(text)); err == nil && len(data) > 0 {
				return data, nil
			}
		}
	}
	return engine.ParseElement(el.Marshal(""))
}

// simpleText returns the text of an element as ox writes payload children:
// a start tag, text escaped with &amp; &lt; &gt; and &#xD; only, the end
// tag. Anything else (child elements, other references) is left to a full
// parser.
func simpleText(b []byte) (string, bool) {
	start := startTagEnd(b)
	if start < 0 {
		return "", false
	}
	if b[start-1] == '/' {
		return "", true // an empty element
	}
	rest := b[start+1:]
	end := bytes.LastIndex(rest, []byte("</"))
	if end < 0 {
		return "", false
	}
	raw := rest[:end]
	if bytes.IndexByte(raw, '<') >= 0 {
		return "", false
	}
	if bytes.IndexByte(raw, '&') < 0 {
		return string(raw), true
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '&')
		if j < 0 {
			sb.Write(raw)
			break
		}
		sb.Write(raw[:j])
		raw = raw[j:]
		switch {
		case bytes.HasPrefix(raw, []byte("&amp;")):
			sb.WriteByte('&')
			raw = raw[5:]
		case bytes.HasPrefix(raw, []byte("&lt;")):
			sb.WriteByte('<')
			raw = raw[4:]
		case bytes.HasPrefix(raw, []byte("&gt;")):
			sb.WriteByte('>')
			raw = raw[4:]
		case bytes.HasPrefix(raw, []byte("&#xD;")):
			sb.WriteByte('\r')
			raw = raw[5:]
		default:
			return "", false
		}
	}
	return sb.String(), true
}

// startTagEnd returns the index of the '>' that ends the first start tag
// of b, outside attribute values, or -1.
func startTagEnd(b []byte) int {
	quote := byte(0)
	for i, c := range b {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}

// problemWarning is the warning for a problem the engine found in a
// message that could still be read.
func problemWarning(p error) client.Warning {
	if te, ok := errors.AsType[*engine.TimeError](p); ok {
		off := te.Stamp.Sub(te.Reference)
		if off < 0 {
			off = -off
		}
		id := eme.MsgOXStampSkewed
		if te.Signature {
			id = eme.MsgOXSignatureSkewed
		}
		return client.Warn(id, engine.FormatTime(te.Stamp), off.Round(time.Second).String())
	}
	return client.Warn(eme.MsgOXCheckFailed, strings.TrimPrefix(p.Error(), "ox: "))
}

// Kinds of the OX mechanism's security events.
const (
	// KindNewKey: a contact announced its first OpenPGP key, trusted
	// blindly (or as the store decides).
	KindNewKey client.SecurityKind = "ox-new-key"
	// KindKeyChanged: a contact announced another key; it is undecided
	// until the user decides (Hint: verify).
	KindKeyChanged client.SecurityKind = "ox-key-changed"
)
