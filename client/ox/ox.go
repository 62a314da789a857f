package ox

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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
	fetched map[string]fetchRecord // bare JID -> last fetch of its key list
	locks   [64]sync.Mutex         // serialise fetches, by hash of the bare JID
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
		fetched: map[string]fetchRecord{},
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
// message. An OX message is sealed with the keys known when it leaves,
// not with the state of a live session, so it may wait in the outbox.
func (x *Mechanism) Needs() client.Needs {
	return client.Needs{FallbackBody: true, Hints: []string{"store"}, Deferrable: true, Replayable: true}
}

func (x *Mechanism) self() jid.JID { return x.h.Self().Bare() }

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

	payload := make([]*xmltree.Element, 0, 1+len(out.Payload))
	if out.Body != "" {
		payload = append(payload, xmltree.New(client.NSClient, "body").AppendText(xmlText(out.Body)))
	}
	for _, e := range out.Payload {
		payload = append(payload, sendable(e))
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
	st.Append(engine.Element{Data: msg}.Element())
	return client.Sealed{Stanzas: []*xmltree.Element{st}}, nil
}

// sendable returns e as the pipeline would send it unencrypted (xmltree's
// writer), which is what the content element carries: characters XML
// cannot carry become U+FFFD, and attributes in namespaces other than none
// and xml are left out, as are namespace declarations among the
// attributes. e is returned itself when nothing changes, otherwise a copy.
func sendable(e *xmltree.Element) *xmltree.Element {
	if e == nil {
		return nil
	}
	var c *xmltree.Element // the copy, once something changed
	change := func() {
		if c == nil {
			c = &xmltree.Element{Name: e.Name, Attr: slices.Clone(e.Attr), Children: slices.Clone(e.Children)}
		}
	}
	if s := xmlText(e.Name.Space); s != e.Name.Space {
		change()
		c.Name.Space = s
	}
	kept := 0
	for _, a := range e.Attr {
		v := xmlText(a.Value)
		switch a.Name.Space {
		case "":
			if a.Name.Local != "" && a.Name.Local != "xmlns" {
				break
			}
			fallthrough
		default:
			change()
			continue
		case "xml", nsXML:
		}
		if v != a.Value {
			change()
		}
		if c != nil {
			c.Attr[kept] = xml.Attr{Name: a.Name, Value: v}
		}
		kept++
	}
	if c != nil {
		c.Attr = c.Attr[:kept]
	}
	for i, n := range e.Children {
		var m xmltree.Node
		switch n := n.(type) {
		case *xmltree.Element:
			if s := sendable(n); s != n {
				m = s
			}
		case xmltree.CharData:
			if s := xmlText(string(n)); s != string(n) {
				m = xmltree.CharData(s)
			}
		}
		if m != nil {
			change()
			c.Children[i] = m
		}
	}
	if c == nil {
		return e
	}
	return c
}

const nsXML = "http://www.w3.org/XML/1998/namespace"

// xmlText returns s with every character XML cannot carry (XML 1.0 §2.2),
// and every byte that is not UTF-8, replaced by U+FFFD.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 {
			return r
		}
		return utf8.RuneError
	}, s)
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

// Kinds of the OX mechanism's security events.
const (
	// KindNewKey: a contact announced its first OpenPGP key, trusted
	// blindly (or as the store decides).
	KindNewKey client.SecurityKind = "ox-new-key"
	// KindKeyChanged: a contact announced another key; it is undecided
	// until the user decides (Hint: verify).
	KindKeyChanged client.SecurityKind = "ox-key-changed"
)
