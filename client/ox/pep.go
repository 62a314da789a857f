package ox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/trust"
	"github.com/balcony-im/balcony/xmltree"
)

// Node configurations of XEP-0373. Required fields are checked after
// publishing; optional ones are applied where the server accepts them.
var (
	// Public keys: readable by anyone, including entities without a
	// presence subscription (§4.1, §4.2).
	oxPublicRequired = client.NodeOptions{"access_model": "open"}
	// Notification-only nodes (§4.5) that do not push the last item on
	// every presence (§6.2).
	oxPublicOptional = client.NodeOptions{"deliver_payloads": "false", "send_last_published_item": "on_sub"}
	// The secret-key backup: only the owner, kept (§5.3, XEP-0223).
	oxSecretRequired = client.NodeOptions{"access_model": "whitelist", "persist_items": "true"}
	oxSecretOptional = client.NodeOptions{"send_last_published_item": "never"}
)

// stanzaCondition reports whether err is a stanza error with the given
// defined condition.
func stanzaCondition(err error, cond string) bool {
	var se *client.StanzaError
	return errors.As(err, &se) && se.Condition == cond
}

// publishNode publishes one item so that the node has the required
// options (checked: keys are never left with another access model
// silently) and the optional ones where the server takes them.
func (x *Mechanism) publishNode(ctx context.Context, node, id string, payload *xmltree.Element, required, optional client.NodeOptions) error {
	return x.h.Publish(ctx, node, id, payload, required, optional)
}

// Publish announces the account's active key (XEP-0373 §4): first the
// public key to its data node urn:xmpp:openpgp:0:public-keys:<FPR> (item id
// the publication time), then the metadata list: the current list is
// fetched and the key merged into it, so other devices' entries are kept
// (this device's retired keys are taken out).
// Both nodes get access_model=open through publish-options; a node with
// another configuration is reconfigured (precondition-not-met), and the
// configuration is read back, so Publish fails rather than leave the keys
// readable by fewer entities than intended.
func (x *Mechanism) Publish(ctx context.Context) error {
	own, _, _ := x.snapshot()
	if len(own) == 0 {
		return ErrNoOwnKey
	}
	k := own[0]
	data, err := k.Public().MarshalPublic(true)
	if err != nil {
		return err
	}
	now := x.now().UTC().Truncate(time.Second)
	el := engine.PubKey{Data: data}.Element()
	if err := x.publishNode(ctx, engine.PublicKeyNode(k.Fingerprint()), engine.FormatTime(now), el, oxPublicRequired, oxPublicOptional); err != nil {
		return err
	}
	return x.announce(ctx, k.Fingerprint(), now)
}

// announce merges fpr into the account's metadata list and publishes it.
// Entries of this device's retired keys (own keys that are no longer
// active, such as one replaced by a new key) are taken out; every other
// entry is kept. A device that still uses a retired key announces it again
// when it sees the list change.
func (x *Mechanism) announce(ctx context.Context, fpr string, date time.Time) error {
	cur, err := x.fetchList(ctx, x.self())
	if err != nil {
		return err
	}
	_, pub, _ := x.snapshot()
	retired := map[string]bool{}
	for _, k := range pub {
		if k.Fingerprint() != fpr {
			retired[k.Fingerprint()] = true
		}
	}
	keep := cur.Keys[:0:0]
	for _, m := range cur.Keys {
		if !retired[m.Fingerprint] {
			keep = append(keep, m)
		}
	}
	merged := engine.Merge(keep, engine.KeyMetadata{Fingerprint: fpr, Date: date})
	el := engine.PublicKeysList{Keys: merged}.Element()
	return x.publishNode(ctx, engine.NodePublicKeys, "current", el, oxPublicRequired, oxPublicOptional)
}

// ErrActiveKey is returned by Withdraw for the account's active key,
// which the account's own devices would announce again at once.
var ErrActiveKey = errors.New("client: this is the active OpenPGP key of this device")

// ErrNotAnnounced is returned by Withdraw for a key the account's key
// list does not hold.
var ErrNotAnnounced = errors.New("client: the OpenPGP key is not announced")

// Withdraw removes an own key from the account's announced key list
// (XEP-0373 §4.4, the metadata node) and deletes its data node, so that
// contacts stop encrypting to it: typically an old key whose secret part
// was lost with a device or a store. The key may be unknown to this
// device. The active key of this device cannot be withdrawn (its devices
// would announce it again); replace it first (balcony ox keygen --force).
func (x *Mechanism) Withdraw(ctx context.Context, fingerprint string) error {
	fpr, err := trust.NormalizeFingerprint(trust.OX, fingerprint)
	if err != nil {
		return err
	}
	if own, _, _ := x.snapshot(); len(own) > 0 && own[0].Fingerprint() == fpr {
		return fmt.Errorf("%w: %s", ErrActiveKey, fpr)
	}
	cur, err := x.fetchList(ctx, x.self())
	if err != nil {
		return err
	}
	keep := cur.Keys[:0:0]
	for _, m := range cur.Keys {
		if m.Fingerprint != fpr {
			keep = append(keep, m)
		}
	}
	if len(keep) == len(cur.Keys) {
		return fmt.Errorf("%w: %s", ErrNotAnnounced, fpr)
	}
	el := engine.PublicKeysList{Keys: keep}.Element()
	if err := x.publishNode(ctx, engine.NodePublicKeys, "current", el, oxPublicRequired, oxPublicOptional); err != nil {
		return err
	}
	// The list no longer names the key; its data node is only clutter now,
	// and a server that refuses to delete it changes nothing for contacts.
	if err := x.h.DeleteNode(ctx, engine.PublicKeyNode(fpr)); err != nil && !stanzaCondition(err, "item-not-found") {
		x.log().Info("deleting the data node of a withdrawn OpenPGP key failed", "fingerprint", fpr, "err", err)
	}
	return nil
}

// fetchList fetches owner's metadata list; a missing node is an empty list.
func (x *Mechanism) fetchList(ctx context.Context, owner jid.JID) (*engine.PublicKeysList, error) {
	items, err := x.h.FetchItems(ctx, owner, engine.NodePublicKeys, 1)
	switch {
	case stanzaCondition(err, "item-not-found"):
		return &engine.PublicKeysList{}, nil
	case stanzaCondition(err, "forbidden"):
		// Prosody answers so for a node that does not exist, too.
		return nil, fmt.Errorf("%w: the key list of %s is not readable (not published, or only for contacts): %w", ErrNoContactKey, owner, err)
	case err != nil:
		return nil, fmt.Errorf("client: fetching the OpenPGP key list of %s: %w", owner, err)
	}
	if len(items) == 0 || items[len(items)-1].Payload == nil {
		return &engine.PublicKeysList{}, nil
	}
	l, err := engine.ParsePublicKeysList(items[len(items)-1].Payload)
	if err != nil {
		return nil, fmt.Errorf("client: the OpenPGP key list of %s: %w", owner, err)
	}
	return l, nil
}

// fetchKey fetches an announced key from its data node and checks that it
// is the announced key and belongs to owner. It returns the key data as
// published.
func (x *Mechanism) fetchKey(ctx context.Context, owner jid.JID, m engine.KeyMetadata) ([]byte, *engine.Key, error) {
	node := m.Node
	if node == "" {
		node = engine.PublicKeyNode(m.Fingerprint)
	}
	items, err := x.h.FetchItems(ctx, owner, node, 1)
	if err != nil {
		return nil, nil, err
	}
	if len(items) == 0 || items[len(items)-1].Payload == nil {
		return nil, nil, errors.New("empty data node")
	}
	pub, err := engine.ParsePubKey(items[len(items)-1].Payload)
	if err != nil {
		return nil, nil, err
	}
	keys, err := x.cache.Parse(pub.Data)
	if err != nil {
		return nil, nil, err
	}
	k, err := engine.SelectAnnounced(keys, m.Fingerprint, owner, x.now())
	if err != nil {
		return nil, nil, err
	}
	return pub.Data, k, nil
}

// MaxKeys is the largest number of keys of one contact that OX fetches and
// uses; further entries of a key list are ignored (and reported).
const MaxKeys = 32

// oxRefresh is the outcome of reading a key list.
type oxRefresh struct {
	list     *engine.PublicKeysList
	listed   []string // announced fingerprints now recorded, own keys excluded
	events   []*client.SecurityEvent
	problems []error
}

// refresh reads owner's key list (list, or fetched when nil), fetches the
// keys not known yet (all keys with all set), records them with their
// trust and which ones are announced, and returns security events for new
// keys.
func (x *Mechanism) refresh(ctx context.Context, owner jid.JID, list *engine.PublicKeysList, all bool) (*oxRefresh, error) {
	owner = owner.Bare()
	x.markFetched(owner.String())
	if list == nil {
		var err error
		if list, err = x.fetchList(ctx, owner); err != nil {
			x.fetchFailedWith(owner.String(), err)
			return nil, err
		}
	}
	res := &oxRefresh{list: list, problems: slices.Clone(list.Problems)}
	recs, err := x.st.ListKeys(ctx, owner.String(), trust.OX)
	if err != nil {
		return nil, err
	}
	known := map[string]trust.ContactKey{}
	for _, r := range recs {
		known[r.Fingerprint] = r
	}
	own := map[string]bool{}
	if owner.Equal(x.self()) {
		_, pub, _ := x.snapshot()
		for _, k := range pub {
			own[k.Fingerprint()] = true
		}
	}
	for i, m := range list.Keys {
		if own[m.Fingerprint] {
			continue
		}
		if i >= MaxKeys {
			res.problems = append(res.problems, &engine.KeyError{Fingerprint: m.Fingerprint,
				Err: fmt.Errorf("more than %d keys announced; ignored", MaxKeys)})
			continue
		}
		// A key whose data is stored is fetched again only when it is
		// announced with a newer date than that data's (a renewed expiry,
		// new subkeys: XEP-0373 §4.2), or when asked to (all).
		if r, ok := known[m.Fingerprint]; ok && len(r.Data) > 0 && !all && !m.Date.After(r.Published) {
			res.listed = append(res.listed, m.Fingerprint)
			continue
		}
		data, _, err := x.fetchKey(ctx, owner, m)
		if err != nil {
			res.problems = append(res.problems, &engine.KeyError{Fingerprint: m.Fingerprint, Err: err})
			if r, ok := known[m.Fingerprint]; ok && len(r.Data) > 0 {
				res.listed = append(res.listed, m.Fingerprint)
			}
			continue
		}
		seen, err := x.st.RecordSeenKey(ctx, owner.String(), trust.OX, m.Fingerprint, data)
		if err != nil {
			return nil, err
		}
		if !m.Date.IsZero() {
			if err := x.st.SetKeyPublished(ctx, owner.String(), trust.OX, m.Fingerprint, m.Date); err != nil {
				return nil, err
			}
		}
		res.listed = append(res.listed, m.Fingerprint)
		switch {
		case seen.Change != nil:
			res.events = append(res.events, &client.SecurityEvent{
				Peer: owner, Mechanism: eme.OX, Kind: KindKeyChanged, Fingerprint: m.Fingerprint,
				Message: eme.Msg(eme.MsgOXNewKey, owner.String(), seen.Key.Trust.String(), joinFingerprints(seen.Change.Previous)),
				Hint:    eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OX, Peer: owner.String()},
			})
		case seen.New:
			res.events = append(res.events, &client.SecurityEvent{
				Peer: owner, Mechanism: eme.OX, Kind: KindNewKey, Fingerprint: m.Fingerprint,
				Message: eme.Msg(eme.MsgOXKeyAnnounced, owner.String(), seen.Key.Trust.String()),
			})
		}
	}
	if err := x.st.SetAnnouncedKeys(ctx, owner.String(), trust.OX, res.listed); err != nil {
		return nil, err
	}
	for _, p := range res.problems {
		x.log().Info("problem in an OpenPGP key announcement", "contact", owner.String(), "err", p)
	}
	return res, nil
}

func joinFingerprints(f []string) string {
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, ", ")
}

// onMetadata handles a notification of a key list (ours or a contact's):
// XEP-0373 §4.5 notifications may carry only an item id, and then the list
// is fetched. When our own list lacks our active key, it is announced
// again (§6.3).
func (x *Mechanism) onMetadata(ev *client.PEPEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), x.cfg.FetchTimeout)
	defer cancel()
	var list *engine.PublicKeysList
	if n := len(ev.Items); n > 0 && ev.Items[n-1].Payload != nil {
		if l, err := engine.ParsePublicKeysList(ev.Items[n-1].Payload); err == nil {
			list = l
		}
	}
	// Messages from the contact wait for the list (keysFetching and
	// refetchKeys take the same lock): one signed by a key announced in it
	// must not be judged against the list before it.
	l := x.keyLock(ev.From.Bare().String())
	l.Lock()
	res, err := x.refresh(ctx, ev.From, list, false)
	l.Unlock()
	if err != nil {
		x.log().Info("reading a notified OpenPGP key list failed", "contact", ev.From.String(), "err", err)
		return
	}
	x.emitAll(res.events)
	if !ev.From.Bare().Equal(x.self()) {
		return
	}
	own, _, _ := x.snapshot()
	if len(own) == 0 || res.list.Contains(own[0].Fingerprint()) {
		return
	}
	// The notification may be older than the list: another device of the
	// account may have published since, with our key in it. Announcing
	// again from a stale notification would publish over that newer list
	// (PEP has no compare-and-swap: our merge reads the list, then writes
	// it, and a device publishing in between is overwritten): the list
	// is read again, and the key announced only if it is still missing.
	cur, err := x.fetchList(ctx, x.self())
	if err != nil {
		x.log().Info("reading our OpenPGP key list failed", "err", err)
		return
	}
	if cur.Contains(own[0].Fingerprint()) {
		return
	}
	x.log().Info("own OpenPGP key missing from the key list: announcing it again")
	if err := x.Publish(ctx); err != nil {
		x.log().Warn("announcing the OpenPGP key again failed", "err", err)
	}
}

// KeyInfo describes one of a contact's OpenPGP keys as Discover found it.
type KeyInfo struct {
	Fingerprint string
	Trust       trust.State
	Announced   bool
	Created     time.Time
	Algorithm   string
}

// Discovery is the result of Discover.
type Discovery struct {
	Contact jid.JID
	Keys    []KeyInfo
	// Events are the key changes found (new keys, changed keys); they are
	// also emitted on the client's event channel.
	Events []*client.SecurityEvent
	// Problems are announced keys that could not be used (not published,
	// not parseable, without the right user ID, expired) and entries of
	// the list that had to be repaired.
	Problems []error
}

// Discover fetches contact's key list and every announced key (XEP-0373
// §4.3), records them with their trust, and returns what is known about
// the contact's keys. A contact without a key list has no keys; a server
// without PEP gives an error.
func (x *Mechanism) Discover(ctx context.Context, contact jid.JID) (*Discovery, error) {
	contact = contact.Bare()
	l := x.keyLock(contact.String())
	l.Lock()
	res, err := x.refresh(ctx, contact, nil, true)
	l.Unlock()
	if err != nil {
		return nil, err
	}
	x.emitAll(res.events)
	d := &Discovery{Contact: contact, Events: res.events, Problems: res.problems}
	sk, err := x.loadKeys(ctx, contact)
	if err != nil {
		return nil, err
	}
	for _, k := range sk.keys {
		i := sk.info[k.Fingerprint()]
		if i.own {
			continue
		}
		d.Keys = append(d.Keys, KeyInfo{Fingerprint: k.Fingerprint(), Trust: i.trust, Announced: i.announced,
			Created: k.Created(), Algorithm: k.Algorithm()})
	}
	return d, nil
}

// Backup makes a secret-key backup (XEP-0373 §5): a new backup code, all of
// the account's secret keys sealed with it, published to the
// urn:xmpp:openpgp:0:secret-key node with access_model=whitelist and
// persist_items=true (the node is created or reconfigured as needed, and
// the configuration is checked afterwards). It returns the code, which
// Balcony does not keep: the user must write it down.
func (x *Mechanism) Backup(ctx context.Context) (string, error) {
	own, _, _ := x.snapshot()
	if len(own) == 0 {
		return "", ErrNoOwnKey
	}
	code, err := engine.NewBackupCode(x.cfg.Rand)
	if err != nil {
		return "", err
	}
	data, err := engine.SealBackup(own, code, x.pgp)
	if err != nil {
		return "", err
	}
	el := engine.SecretKey{Data: data}.Element()
	if err := x.publishNode(ctx, engine.NodeSecretKey, "current", el, oxSecretRequired, oxSecretOptional); err != nil {
		var ce *client.NodeConfigError
		if errors.As(err, &ce) {
			// The backup went out, but not to a whitelist node: never
			// leave it readable by others.
			if derr := x.h.DeleteNode(ctx, engine.NodeSecretKey); derr != nil {
				return "", errors.Join(err, fmt.Errorf("client: deleting the misconfigured secret-key node: %w", derr))
			}
		}
		return "", err
	}
	return code, nil
}

// RestoreResult lists what Restore did with the keys of a backup.
type RestoreResult struct {
	// Added are the fingerprints of keys stored as new own keys.
	Added []string
	// Existing are keys the account already had.
	Existing []string
	// Active is the fingerprint of the active key afterwards.
	Active string
	// Problems are keys of the backup that cannot be used to sign for
	// this account (another address, expired, revoked); they are stored
	// anyway so that messages encrypted to them stay readable.
	Problems []error
}

// Restore fetches the secret-key backup from the account's PEP service,
// opens it with code (used verbatim when it has the form of a backup code;
// otherwise normalised as a user may type it, see ox.NormalizeBackupCode),
// and stores every key in it as an own key. If the account has no active
// key, the newest key that is valid for the account becomes active. The
// mechanism is reloaded and enabled.
func (x *Mechanism) Restore(ctx context.Context, code string) (*RestoreResult, error) {
	if !engine.ValidBackupCode(code) {
		norm, err := engine.NormalizeBackupCode(code)
		if err != nil {
			return nil, err
		}
		code = norm
	}
	items, err := x.h.FetchItems(ctx, x.self(), engine.NodeSecretKey, 1)
	if stanzaCondition(err, "item-not-found") {
		return nil, ErrNoBackup
	}
	if err != nil {
		return nil, fmt.Errorf("client: fetching the secret-key backup: %w", err)
	}
	if len(items) == 0 || items[len(items)-1].Payload == nil {
		return nil, ErrNoBackup
	}
	data, err := engine.ParseSecretKey(items[len(items)-1].Payload)
	if err != nil {
		return nil, err
	}
	keys, err := engine.OpenBackup(data, code)
	if err != nil {
		return nil, err
	}
	recs, err := x.st.OwnKeys(ctx, trust.OX)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	res := &RestoreResult{}
	for _, r := range recs {
		have[r.Fingerprint] = true
		if r.Active {
			res.Active = r.Fingerprint
		}
	}
	now := x.now()
	// The newest usable key becomes active when there is none.
	var best *engine.Key
	for _, k := range keys {
		if k.Locked() {
			res.Problems = append(res.Problems, &engine.KeyError{Fingerprint: k.Fingerprint(), Err: errors.New("protected by a passphrase")})
			continue
		}
		err := k.ValidFor(x.self(), now)
		if err == nil {
			err = k.CanEncrypt(now)
		}
		if err != nil {
			res.Problems = append(res.Problems, err)
		} else if best == nil || k.Created().After(best.Created()) {
			best = k
		}
	}
	for _, k := range keys {
		if k.Locked() {
			continue
		}
		if have[k.Fingerprint()] {
			res.Existing = append(res.Existing, k.Fingerprint())
			continue
		}
		if err := StoreKey(ctx, x.st, k, res.Active == "" && k == best); err != nil {
			return res, err
		}
		res.Added = append(res.Added, k.Fingerprint())
		if res.Active == "" && k == best {
			res.Active = k.Fingerprint()
		}
	}
	if err := x.LoadKeys(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// StoreKey stores a secret OX key as one of the account's own keys,
// active (the signing and announced key) or not.
func StoreKey(ctx context.Context, st Store, k *engine.Key, active bool) error {
	if !k.Secret() || k.Locked() {
		return &engine.KeyError{Fingerprint: k.Fingerprint(), Err: engine.ErrNotSecret}
	}
	pub, err := k.Public().MarshalPublic(true)
	if err != nil {
		return err
	}
	secret, err := k.MarshalSecret()
	if err != nil {
		return err
	}
	defer clear(secret)
	return st.AddOwnKey(ctx, trust.OwnKey{Mechanism: trust.OX, Fingerprint: k.Fingerprint(), Public: pub,
		Created: k.Created(), Active: active}, secret)
}
