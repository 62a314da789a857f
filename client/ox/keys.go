package ox

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/trust"
)

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

// fetchRecord is the last fetch of a key list: when it began, and why it
// failed (nil while under way or when it succeeded).
type fetchRecord struct {
	at  time.Time
	err error
}

func (x *Mechanism) lastFetch(bare string) time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.fetched[bare].at
}

func (x *Mechanism) markFetched(bare string) {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.fetched) >= maxFetched {
		for k, r := range x.fetched {
			if now.Sub(r.at) >= minRefetch {
				delete(x.fetched, k)
			}
		}
		if len(x.fetched) >= maxFetched {
			clear(x.fetched)
		}
	}
	x.fetched[bare] = fetchRecord{at: now}
}

// fetchFailedWith records why the fetch of bare's key list begun by
// markFetched failed.
func (x *Mechanism) fetchFailedWith(bare string, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r, ok := x.fetched[bare]; ok {
		r.err = err
		x.fetched[bare] = r
	}
}

// fetchFailed returns why the last fetch of bare's key list failed, when
// it began less than minRefetch ago (no other fetch is made before: a
// message refused for want of the sender's key is then judged without
// the list).
func (x *Mechanism) fetchFailed(bare string) error {
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.fetched[bare]
	if now.Sub(r.at) >= minRefetch {
		return nil
	}
	return r.err
}

// keyInfo is what the store says about one of a sender's keys.
type keyInfo struct {
	trust     trust.State
	announced bool
	own       bool      // one of this device's own key pairs
	lastSeen  time.Time // as recorded in the store (zero: never)
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
				sk.info[r.Fingerprint] = keyInfo{trust: r.Trust, announced: r.Announced, lastSeen: r.LastSeen}
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
	// a key not among prev) and reports whether the keys changed.
	refetch(ctx context.Context, from jid.JID, prev *senderKeys) (*senderKeys, bool)
	// settled returns the sender's keys once no fetch of them is in
	// progress.
	settled(ctx context.Context, from jid.JID) (*senderKeys, error)
}

// liveKeys reads the store for every message, so that trust decisions made
// meanwhile (by another process, too) apply at once.
type liveKeys struct{ x *Mechanism }

func (l liveKeys) keys(ctx context.Context, from jid.JID) (*senderKeys, error) {
	return l.x.keysFetching(ctx, from)
}

func (l liveKeys) refetch(ctx context.Context, from jid.JID, prev *senderKeys) (*senderKeys, bool) {
	return l.x.refetchKeys(ctx, from, prev)
}

func (l liveKeys) settled(ctx context.Context, from jid.JID) (*senderKeys, error) {
	l.x.waitFetch(from.Bare())
	return l.x.loadKeys(ctx, from.Bare())
}

// waitFetch returns once no fetch of bare's keys is in progress.
func (x *Mechanism) waitFetch(bare jid.JID) {
	l := x.keyLock(bare.String())
	l.Lock()
	//lint:ignore SA2001 waiting for the holder is the point
	l.Unlock()
}

// keysFetching returns the keys of bare, fetching the key list over PEP
// first when nothing usable is known and it was not fetched recently. A
// fetch in progress (a notified key list being read, another message's
// fetch) is waited for: its result is what the message needs.
func (x *Mechanism) keysFetching(ctx context.Context, bare jid.JID) (*senderKeys, error) {
	bare = bare.Bare()
	sk, err := x.loadKeys(ctx, bare)
	if err != nil {
		return nil, err
	}
	if sk.knowsAnnounced() {
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

// refetchKeys fetches bare's key list again for a message signed by a key
// not among prev, the keys it was opened with. When a fetch ran meanwhile
// (a notified key list read while the message was being opened), its
// result is used instead; otherwise a fetch is made unless one was made
// less than minRefetch ago. It reports whether the keys changed.
func (x *Mechanism) refetchKeys(ctx context.Context, bare jid.JID, prev *senderKeys) (*senderKeys, bool) {
	bare = bare.Bare()
	l := x.keyLock(bare.String())
	l.Lock()
	defer l.Unlock()
	if x.now().Sub(x.lastFetch(bare.String())) < minRefetch {
		sk, err := x.loadKeys(ctx, bare)
		if err != nil || sameKeys(sk, prev) {
			return nil, false
		}
		return sk, true
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

// sameKeys reports whether a and b hold the same keys with the same
// announcement.
func sameKeys(a, b *senderKeys) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.keys) != len(b.keys) {
		return false
	}
	for _, k := range a.keys {
		fp := k.Fingerprint()
		ia, ok := a.info[fp]
		ib, ok2 := b.info[fp]
		if !ok || !ok2 || ia.announced != ib.announced {
			return false
		}
	}
	return true
}
