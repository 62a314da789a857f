package esession

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is XEP-0187 (Offline Encrypted Sessions) over XMPP. Before
// going offline, this client publishes signed session options over PEP
// (PublishOffline; Closing does it with Config.OfflineLifetime); a
// contact who finds it offline starts a session from them and sends its
// first messages at once, encrypted (StartOffline); the server keeps them
// in offline storage, and when this client comes back they arrive with
// the key exchange, which the engine checks (the nonce of options this
// client published and has not let expire, no replayed exchange, the
// sender's signature with a key the trust store holds for it) before
// anything is read.

// OfflineStore keeps the Diffie-Hellman secrets of the offline options
// this account published, encrypted at rest, and the key exchanges
// received for them (to refuse replays). Implementations must be safe for
// concurrent use.
type OfflineStore interface {
	SaveOfflineSecrets(ctx context.Context, nonce, secrets []byte, expires time.Time) error
	OfflineSecrets(ctx context.Context, nonce []byte) ([]byte, error)
	MarkOfflineExchange(ctx context.Context, nonce, exchange []byte) (replayed bool, err error)
	DeleteOfflineSecrets(ctx context.Context, nonce []byte) error
	ExpireOfflineSecrets(ctx context.Context, before time.Time) (int, error)
}

// offlineAdapter is the engine's OfflineStore on the account's.
type offlineAdapter struct{ st OfflineStore }

var _ engine.OfflineStore = offlineAdapter{}

func (o offlineAdapter) SaveOffline(nonce, secrets []byte, expires time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return o.st.SaveOfflineSecrets(ctx, nonce, secrets, expires)
}

func (o offlineAdapter) LoadOffline(nonce []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return o.st.OfflineSecrets(ctx, nonce)
}

func (o offlineAdapter) MarkUsed(nonce, exchange []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return o.st.MarkOfflineExchange(ctx, nonce, exchange)
}

func (o offlineAdapter) DeleteOffline(nonce []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return o.st.DeleteOfflineSecrets(ctx, nonce)
}

// ErrNoOffline reports offline sessions asked for without an
// OfflineStore, or without this account's key (the options are signed).
var ErrNoOffline = errors.New("client: offline Encrypted Sessions need a key (GenerateKey) and an offline store")

// PublishOffline publishes signed offline session options valid until
// expires (XEP-0187 §3.1) in the PEP node for presence subscribers
// (engine.NSOffline, access model "presence", never pushed), and stores
// their secrets; options that expired before now are destroyed. It
// returns when they are published.
func (e *Mechanism) PublishOffline(ctx context.Context, expires time.Time) (time.Time, error) {
	if e.cfg.Offline == nil || e.Key() == "" {
		return time.Time{}, ErrNoOffline
	}
	if n, err := e.cfg.Offline.ExpireOfflineSecrets(ctx, e.clock()); err != nil {
		e.log().Warn("destroying expired offline secrets failed", "err", err)
	} else if n > 0 {
		e.log().Info("destroyed the secrets of expired offline session options", "count", n)
	}
	el, nonce, err := e.m().PublishOffline(engine.OfflineOptions{Expires: expires})
	if err != nil {
		return time.Time{}, fmt.Errorf("client: %w", err)
	}
	err = e.h.Publish(ctx, engine.NSOffline, "current", el,
		client.NodeOptions{"access_model": "presence"},
		client.NodeOptions{"max_items": "1", "send_last_published_item": "never", "deliver_notifications": "false"})
	if err != nil {
		if derr := e.cfg.Offline.DeleteOfflineSecrets(ctx, nonce); derr != nil {
			e.log().Warn("destroying unpublished offline secrets failed", "err", derr)
		}
		return time.Time{}, fmt.Errorf("client: publishing the offline session options: %w", err)
	}
	return expires.Truncate(time.Second), nil
}

// WithdrawOffline stops publishing offline session options (XEP-0187
// §3.4 step 1: when the client is back online). Their secrets stay until
// they expire, so that sessions the server still holds can be read.
func (e *Mechanism) WithdrawOffline(ctx context.Context) error {
	err := e.h.DeleteNode(ctx, engine.NSOffline)
	if se, ok := errors.AsType[*client.StanzaError](err); ok && se.Condition == "item-not-found" {
		return nil
	}
	return err
}

// ErrPeerOnline reports StartOffline with a contact that has a resource
// online: XEP-0187 §3 is for contacts who are offline; start an online
// session.
var ErrPeerOnline = errors.New("client: the contact is online; start an online session")

// StartOffline starts an XEP-0187 offline session with peer (a bare JID)
// from the options it published, checked with its key in the trust store
// (fetched over PEP first), and sends body in the same stanza, encrypted.
// The contact reads it when it comes back; send more with Client.Send in
// the session meanwhile. Stanzas of offline sessions carry no no-store
// hint: they must wait in the contact's offline storage.
func (e *Mechanism) StartOffline(ctx context.Context, peer jid.JID, body string) (Info, error) {
	peer = peer.Bare()
	if e.Key() == "" || e.cfg.Store == nil {
		return Info{}, ErrNoOffline
	}
	if len(e.h.Resources(peer)) > 0 {
		return Info{}, ErrPeerOnline
	}
	for _, s := range e.newestFirst(peer) {
		if s.Encrypted() && s.State() == engine.StateActive && !e.isEnding(s) {
			// XEP-0187 §3: not while a session is established.
			return e.info(s), fmt.Errorf("%w (%s, thread %s)", ErrExists, s.Peer(), s.Thread())
		}
	}
	if _, err := e.FetchKey(ctx, peer); err != nil {
		return Info{}, err
	}
	// §3.2: options for presence subscribers first, then those for all.
	var opts *xmltree.Element
	var ferr error
	for _, node := range []string{engine.NSOffline, engine.FeatureESession} {
		items, err := e.h.FetchItems(ctx, peer, node, 1)
		if err != nil {
			ferr = err
			continue
		}
		for _, it := range items {
			if it.Payload != nil && it.Payload.Name.Local == "x" {
				opts = it.Payload
			}
		}
		if opts != nil {
			break
		}
	}
	if opts == nil {
		if ferr == nil {
			ferr = errors.New("none published")
		}
		return Info{}, fmt.Errorf("%w: %s published no offline session options (%v)", ErrNoOfflineOptions, peer, ferr)
	}
	var content []*xmltree.Element
	if body != "" {
		content = append(content, xmltree.New(client.NSClient, "body").AppendText(body))
	}
	unlock := e.lockSend()
	s, o, err := e.m().StartOffline(peer.String(), opts, content...)
	if err != nil {
		unlock()
		return Info{}, fmt.Errorf("client: starting an offline session with %s: %w", peer, err)
	}
	err = e.send(ctx, []engine.Outbound{o})
	unlock()
	if err != nil {
		s.Close()
		return Info{}, err
	}
	p, _ := jid.Parse(s.Peer())
	e.emitAll(p, []*client.SecurityEvent{{Kind: KindOffline, Message: eme.Msg(eme.MsgESOfflineStarted, s.Peer()),
		Notes: []eme.Message{eme.Msg(eme.MsgESPeerKey, sessionFingerprint(s)), loggingNote(s.Params().Logging)}}})
	e.notify()
	return e.info(s), nil
}

// ErrNoOfflineOptions reports a contact without usable offline options.
var ErrNoOfflineOptions = errors.New("client: no offline session options")
