package esession

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the public-key identity of XEP-0116 over XMPP: this
// account's signing key (kept in the Store, published over PEP as an
// XEP-0189 <pubkey/>), the contacts' keys discovered over PEP or
// presented in a negotiation, and their associations with JIDs in the
// trust store shared with the other mechanisms (XEP-0116 §10.4).

// Store is what the mechanism keeps in the account's store: its own
// signing key (mechanism trust.ESession; Public is the normalised
// <KeyValue/>, the secret a PKCS #8 key) and the contacts' keys with the
// user's trust decisions (Data is the normalised <KeyValue/>, the
// fingerprint its base64 SHA-256). Implementations must be safe for
// concurrent use.
type Store interface {
	OwnKeys(ctx context.Context, m trust.Mechanism) ([]trust.OwnKey, error)
	OwnKeySecret(ctx context.Context, m trust.Mechanism, fingerprint string) ([]byte, error)
	AddOwnKey(ctx context.Context, k trust.OwnKey, secret []byte) error
	ListKeys(ctx context.Context, contact string, m trust.Mechanism) ([]trust.ContactKey, error)
	RecordSeenKey(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, data []byte) (trust.Seen, error)
	SetTrust(ctx context.Context, contact string, m trust.Mechanism, fingerprint string, t trust.State) error
	ContactsWithKey(ctx context.Context, m trust.Mechanism, fingerprint string) ([]string, error)
}

// storeTimeout bounds one store operation made while a stanza is handled.
const storeTimeout = 10 * time.Second

// DefaultKeyBits is the size of the RSA keys GenerateKey makes.
const DefaultKeyBits = 3072

// keyValidity is how long a published XEP-0189 key is announced as valid.
const keyValidity = 2 * 365 * 24 * time.Hour

// Fingerprint returns the fingerprint of key as the trust store records
// it: the base64 SHA-256 of its normalised <KeyValue/>.
func Fingerprint(key *engine.PublicKey) string {
	fp := key.Fingerprint()
	return base64.StdEncoding.EncodeToString(fp[:])
}

// keyData returns the normalised <KeyValue/> of key, as stored.
func keyData(key *engine.PublicKey) []byte { return key.KeyValue().Marshal("") }

// parseKeyData reads a stored <KeyValue/>.
func parseKeyData(data []byte) (*engine.PublicKey, error) {
	el, err := xmltree.Parse(data, &xmltree.Limits{MaxDepth: 4, MaxNodes: 16, MaxBytes: 16 << 10})
	if err != nil {
		return nil, err
	}
	return engine.ParseKeyValue(el)
}

// keyAssociations is the engine's view of the trust store: the keys of
// a contact that the user has not rejected, verified when the user
// verified them, and the contacts a key is associated with.
type keyAssociations struct{ st Store }

var _ engine.KeyAssociations = keyAssociations{}

func (k keyAssociations) KeysFor(peer string) ([]engine.KnownKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	list, err := k.st.ListKeys(ctx, peer, trust.ESession)
	if err != nil {
		return nil, err
	}
	var out []engine.KnownKey
	for _, ck := range list {
		// A key the user rejected is known too (it is no change when
		// presented again), never verified; a session that presents it
		// ends (checkKeys).
		if ck.Data == nil {
			continue
		}
		key, err := parseKeyData(ck.Data)
		if err != nil {
			continue
		}
		out = append(out, engine.KnownKey{Key: key, Verified: ck.Trust == trust.Verified})
	}
	return out, nil
}

func (k keyAssociations) JIDsFor(fingerprint [32]byte) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return k.st.ContactsWithKey(ctx, trust.ESession, base64.StdEncoding.EncodeToString(fingerprint[:]))
}

// loadKey reads the active signing key from the Store, or nil.
func (e *Mechanism) loadKey(ctx context.Context) (*engine.PrivateKey, error) {
	keys, err := e.cfg.Store.OwnKeys(ctx, trust.ESession)
	if err != nil {
		return nil, fmt.Errorf("client: reading the Encrypted Sessions key: %w", err)
	}
	for _, k := range keys {
		if !k.Active {
			continue
		}
		der, err := e.cfg.Store.OwnKeySecret(ctx, trust.ESession, k.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("client: reading the Encrypted Sessions key: %w", err)
		}
		pk, err := x509.ParsePKCS8PrivateKey(der)
		clear(der)
		rk, ok := pk.(*rsa.PrivateKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("client: the Encrypted Sessions key %s is not a usable RSA key", k.Fingerprint)
		}
		return &engine.PrivateKey{RSA: rk}, nil
	}
	return nil, nil
}

// ErrKeyInUse reports a new signing key while sessions are live: it is
// used from the next start, or once the sessions ended.
var ErrKeyInUse = errors.New("client: Encrypted Sessions are live; the new key is used once they have ended")

// Key returns the fingerprint of this account's signing key, or "".
func (e *Mechanism) Key() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.key == nil {
		return ""
	}
	return Fingerprint(e.key.Public())
}

// GenerateKey makes a new RSA signing key of bits bits (DefaultKeyBits
// when 0), stores it in the Store as the active trust.ESession key and
// uses it for the sessions that start from now on. With sessions live it
// fails with ErrKeyInUse after storing the key. It returns the key's
// fingerprint; publish it with PublishKey.
func (e *Mechanism) GenerateKey(ctx context.Context, bits int) (string, error) {
	if e.cfg.Store == nil {
		return "", errors.New("client: Encrypted Sessions have no key store")
	}
	if bits == 0 {
		bits = DefaultKeyBits
	}
	if bits < 2048 || bits > 8192 {
		return "", fmt.Errorf("client: RSA keys of %d bits are not allowed (2048 to 8192)", bits)
	}
	r := e.cfg.Rand
	if r == nil {
		r = randReader()
	}
	rk, err := rsa.GenerateKey(r, bits)
	if err != nil {
		return "", fmt.Errorf("client: generating the key: %w", err)
	}
	key := &engine.PrivateKey{RSA: rk}
	der, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		return "", err
	}
	defer clear(der)
	fp := Fingerprint(key.Public())
	err = e.cfg.Store.AddOwnKey(ctx, trust.OwnKey{Mechanism: trust.ESession, Fingerprint: fp,
		Public: keyData(key.Public()), Created: e.clock(), Active: true}, der)
	if err != nil {
		return "", fmt.Errorf("client: storing the key: %w", err)
	}
	return fp, e.UseKey(key)
}

// UseKey makes key this account's signing key for the sessions that
// start from now on; it fails with ErrKeyInUse while sessions are live.
func (e *Mechanism) UseKey(key *engine.PrivateKey) error {
	for _, s := range e.m().Sessions() {
		if s.State() != engine.StateEnded {
			return ErrKeyInUse
		}
	}
	m, err := e.newManager(key)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.key = key
	e.mu.Unlock()
	e.mgr.Store(m)
	return nil
}

// PublishKey publishes this account's public key over PEP (XEP-0189,
// node engine.NSPubKey, open to everyone, one item named by its
// fingerprint): contacts discover it before a session (FetchKey) and can
// use the SIGMA-I exchange or identify this account by fingerprint.
func (e *Mechanism) PublishKey(ctx context.Context) (string, error) {
	e.mu.Lock()
	key := e.key
	e.mu.Unlock()
	if key == nil {
		return "", errors.New("client: no Encrypted Sessions key to publish")
	}
	now := e.clock()
	pk := &engine.PEPKey{Key: key.Public(), JID: e.h.Self().Bare().String(), Begin: now.Add(-time.Minute), End: now.Add(keyValidity)}
	el, err := pk.Element()
	if err != nil {
		return "", err
	}
	fp := Fingerprint(key.Public())
	err = e.h.Publish(ctx, engine.NSPubKey, "current", el,
		client.NodeOptions{"access_model": "open"}, client.NodeOptions{"max_items": "1"})
	if err != nil {
		return "", fmt.Errorf("client: publishing the Encrypted Sessions key: %w", err)
	}
	return fp, nil
}

// FetchKey reads the public key the contact published over PEP
// (XEP-0189) and records it in the trust store: a changed key, or one
// known for another contact, is reported (KindKeyChanged,
// KindKeyOtherJID) before anything of a session with it can be shown. It
// returns the fingerprint, or "" when the contact published none.
func (e *Mechanism) FetchKey(ctx context.Context, peer jid.JID) (string, error) {
	if e.cfg.Store == nil {
		return "", errors.New("client: Encrypted Sessions have no key store")
	}
	items, err := e.h.FetchItems(ctx, peer.Bare(), engine.NSPubKey, 1)
	if err != nil {
		if se, ok := errors.AsType[*client.StanzaError](err); ok && se.Condition == "item-not-found" {
			return "", nil
		}
		return "", fmt.Errorf("client: fetching the Encrypted Sessions key of %s: %w", peer.Bare(), err)
	}
	for _, it := range items {
		if it.Payload == nil {
			continue
		}
		fp, evs, err := e.recordPEPKey(ctx, peer.Bare(), it.Payload)
		e.emitAll(peer.Bare(), evs)
		return fp, err
	}
	return "", nil
}

// pepKey handles a notification of a contact's (or our own) key.
func (e *Mechanism) pepKey(ev *client.PEPEvent) {
	for _, it := range ev.Items {
		if it.Payload == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		_, evs, err := e.recordPEPKey(ctx, ev.From.Bare(), it.Payload)
		cancel()
		if err != nil {
			e.log().Info("an Encrypted Sessions key published over PEP was not usable", "from", ev.From.String(), "err", err)
		}
		e.emitAll(ev.From.Bare(), evs)
	}
}

// recordPEPKey checks a published <pubkey/> (for the publisher's JID and
// valid now) and records it; it returns the key's fingerprint and the
// events to show.
func (e *Mechanism) recordPEPKey(ctx context.Context, owner jid.JID, payload *xmltree.Element) (string, []*client.SecurityEvent, error) {
	pk, err := engine.ParsePEPKey(payload)
	if err != nil {
		return "", nil, err
	}
	if pk.JID != owner.String() {
		return "", nil, fmt.Errorf("client: %s published a key for %s", owner, pk.JID)
	}
	if !pk.ValidAt(e.clock()) {
		return "", nil, fmt.Errorf("client: the key %s published is not valid now (%s to %s)", owner, pk.Begin, pk.End)
	}
	fp := Fingerprint(pk.Key)
	if owner.Equal(e.h.Self().Bare()) {
		return fp, nil, nil // our own key, published by this or another client
	}
	evs, _, err := e.recordKey(ctx, owner.String(), pk.Key, false)
	return fp, evs, err
}

// recordKey records key as seen for peer (a bare JID) and returns the
// events the user must see: a new key (when announced is true, the first
// time a session shows it), a changed key, a key associated with another
// contact too; and the recorded trust state.
func (e *Mechanism) recordKey(ctx context.Context, peer string, key *engine.PublicKey, inSession bool) ([]*client.SecurityEvent, trust.State, error) {
	fp := Fingerprint(key)
	seen, err := e.cfg.Store.RecordSeenKey(ctx, peer, trust.ESession, fp, keyData(key))
	if err != nil {
		return nil, trust.Undecided, fmt.Errorf("client: recording the key of %s: %w", peer, err)
	}
	p, _ := jid.Parse(peer)
	mk := func(kind client.SecurityKind, msg eme.Message) *client.SecurityEvent {
		ev := &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: kind, Fingerprint: fp, Message: msg}
		if seen.Key.Trust != trust.Verified {
			ev.Hint = eme.Hint{Action: eme.ActionVerify, Mechanism: e.Namespace(), Peer: peer}
		}
		return ev
	}
	var out []*client.SecurityEvent
	switch {
	case seen.Change != nil:
		out = append(out, mk(KindKeyChanged, eme.Msg(eme.MsgESKeyChanged, peer, fp, seen.Key.Trust.String())))
	case seen.New && !inSession:
		out = append(out, mk(KindKeyNew, eme.Msg(eme.MsgESKeyPublished, peer, fp)))
	}
	others, err := e.cfg.Store.ContactsWithKey(ctx, trust.ESession, fp)
	if err == nil {
		others = slices.DeleteFunc(others, func(j string) bool { return j == peer })
		if len(others) > 0 {
			out = append(out, mk(KindKeyOtherJID, eme.Msg(eme.MsgESKeyOtherJID, peer, fp, joinJIDs(others))))
		}
	}
	return out, seen.Key.Trust, nil
}

func joinJIDs(list []string) string {
	out := ""
	for i, j := range list {
		if i > 0 {
			out += ", "
		}
		out += j
	}
	return out
}

// checkKeys handles what the engine found out about the contacts' keys
// in a result: each KeyAlert's key is recorded in the trust store and the
// alert becomes a security event in its place, before the Established
// event; a session in which the contact identified with a key the user
// rejected (trust.Untrusted) is terminated before anything of it is
// shown, its messages withheld. The caller holds the send lock and has
// sent res.Out.
func (e *Mechanism) checkKeys(ctx context.Context, res *engine.Result) []*client.SecurityEvent {
	var out []*client.SecurityEvent
	states := map[*engine.Session]trust.State{}
	for _, ev := range res.Events {
		ka, ok := ev.(engine.KeyAlert)
		if !ok {
			continue
		}
		s := ka.Session
		p, _ := jid.Parse(s.Peer())
		if ka.Kind == engine.KeyMissing {
			out = append(out, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindKeyMissing,
				Message: eme.Msg(eme.MsgESKeyMissing, s.PeerBare())})
			continue
		}
		if e.cfg.Store == nil || ka.Key == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		evs, state, err := e.recordKey(sctx, s.PeerBare(), ka.Key, true)
		cancel()
		if err != nil {
			e.log().Warn("recording an Encrypted Sessions key failed", "peer", s.PeerBare(), "err", err)
			continue
		}
		states[s] = state
		fp := Fingerprint(ka.Key)
		switch ka.Kind {
		case engine.KeyNew:
			evs = append([]*client.SecurityEvent{{Peer: p, Mechanism: e.Namespace(), Kind: KindKeyNew, Fingerprint: fp,
				Message: eme.Msg(eme.MsgESKeyNew, s.PeerBare(), fp),
				Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: e.Namespace(), Peer: s.PeerBare()}}}, evs...)
		case engine.KeyOtherJID:
			evs = slices.DeleteFunc(evs, func(x *client.SecurityEvent) bool { return x.Kind == KindKeyOtherJID })
			evs = append(evs, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindKeyOtherJID, Fingerprint: fp,
				Message: eme.Msg(eme.MsgESKeyOtherJID, s.PeerBare(), fp, joinJIDs(ka.OtherJIDs))})
		}
		out = appendNew(out, evs)
	}
	var rejected []*engine.Session
	for _, ev := range res.Events {
		est, ok := ev.(engine.Established)
		if !ok || est.PeerKey == nil || e.cfg.Store == nil {
			continue
		}
		s := est.Session
		state, known := states[s]
		if !known {
			state = e.keyTrust(ctx, s.PeerBare(), Fingerprint(est.PeerKey))
		}
		if state == trust.Untrusted {
			rejected = append(rejected, s)
			p, _ := jid.Parse(s.Peer())
			out = append(out, &client.SecurityEvent{Peer: p, Mechanism: e.Namespace(), Kind: KindKeyUntrusted,
				Fingerprint: Fingerprint(est.PeerKey), Message: eme.Msg(eme.MsgESKeyUntrusted, s.PeerBare(), Fingerprint(est.PeerKey))})
		}
	}
	for _, s := range rejected {
		// The encrypted terminate; the contact's acknowledgement ends
		// the session here (KindTerminated).
		tr, err := s.Terminate()
		if err == nil {
			e.send(ctx, tr.Out)
		}
		if s.State() != engine.StateEnded {
			e.mu.Lock()
			e.extraLocked(s).ending = true
			e.mu.Unlock()
		}
		res.Events = append(res.Events, tr.Events...)
		// Nothing of the session is shown: not that it was established,
		// nor its content (an offline session carries some at once).
		res.Events = slices.DeleteFunc(res.Events, func(ev engine.Event) bool {
			switch ev := ev.(type) {
			case engine.Message:
				return ev.Session == s
			case engine.Established:
				return ev.Session == s
			}
			return false
		})
	}
	return out
}

// keyTrust returns the user's decision about the contact's key.
func (e *Mechanism) keyTrust(ctx context.Context, peer, fp string) trust.State {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	keys, err := e.cfg.Store.ListKeys(ctx, peer, trust.ESession)
	if err != nil {
		return trust.Undecided
	}
	for _, k := range keys {
		if k.Fingerprint == fp {
			return k.Trust
		}
	}
	return trust.Undecided
}

// appendNew appends the events of evs whose kind is not in out yet for
// the same fingerprint.
func appendNew(out, evs []*client.SecurityEvent) []*client.SecurityEvent {
	for _, ev := range evs {
		if !slices.ContainsFunc(out, func(x *client.SecurityEvent) bool { return x.Kind == ev.Kind && x.Fingerprint == ev.Fingerprint }) {
			out = append(out, ev)
		}
	}
	return out
}

// verifyPeerKey records that the user confirmed a session's SAS: the key
// the contact identified with in it is verified too.
func (e *Mechanism) verifyPeerKey(ctx context.Context, s *engine.Session) error {
	key := s.PeerKey()
	if key == nil || e.cfg.Store == nil {
		return nil
	}
	return e.cfg.Store.SetTrust(ctx, s.PeerBare(), trust.ESession, Fingerprint(key), trust.Verified)
}
