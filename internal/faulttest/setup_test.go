package faulttest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/otr/otrtest"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/eme"
	engineES "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/faultproxy"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/internal/storeoutbox"
	engineomemo "github.com/balcony-im/balcony/omemo"
	engineotr "github.com/balcony-im/balcony/otr"
	engineox "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
)

// otrTestKeys are the DSA keys of the OTR engine's libotr test file.
var otrTestKeys = otrtest.Keys

// peer is one client with its store (outbox, keys), its proxy and the
// events it received.
type peer struct {
	c     *client.Client
	proxy *faultproxy.Proxy
	st    *store.Store
	ox    *ox.Mechanism
	otr   *otr.Mechanism
	es    *esession.Mechanism
	omemo *omemo.Device
	col   *collector
	// logPath is the client's debug log.
	logPath string
}

// logTail returns the last n lines of the client's debug log.
func (p *peer) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// options of a peer.
type options struct {
	ox, otr, es, omemo bool
	otrKey             int // index into otrTestKeys
	// otrManual: Balcony's default OTR policy (conversations start when
	// asked), instead of "always" with automatic starts.
	otrManual bool
	// st: the store to use (a process that starts again on the store of
	// one that ended); a new one when nil.
	st *store.Store
}

// quick makes a client notice trouble soon and reconnect at once.
func quick(cfg *client.Config) {
	cfg.Reconnect = true
	cfg.MinBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 500 * time.Millisecond
	cfg.KeepAlive = 2 * time.Second
	cfg.ProbeTimeout = 3 * time.Second
	cfg.AckAfter = 200 * time.Millisecond
}

// newPeer connects acct (resource "r") through a new fault proxy, with an
// outbox in a fresh store and the mechanisms asked for.
func newPeer(t *testing.T, srv *servertest.Server, acct servertest.Account, o options) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := &peer{}
	var err error
	if p.proxy, err = faultproxy.New(srv.Addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.proxy.Close() })
	if p.st = o.st; p.st == nil {
		if p.st, err = store.Create(t.TempDir(), store.Options{Unencrypted: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.st.Close() })
	}
	j, err := acct.JID.WithResource("r")
	if err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{JID: j, Password: acct.Password, Addr: p.proxy.Addr(), CAFile: srv.CAFile,
		Outbox: storeoutbox.Store{S: p.st}}
	quick(&cfg)
	// Diagnostics of each client (never message content), for a run that
	// lost something: in -fault.log's directory, or the test's own (the
	// tail is printed when a message is lost).
	dir := *faultLog
	if dir == "" {
		dir = t.TempDir()
	}
	p.logPath = filepath.Join(dir, acct.JID.Localpart()+".log")
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cfg.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if p.c, err = client.New(cfg); err != nil {
		t.Fatal(err)
	}
	if o.ox {
		k, err := engineox.GenerateKey(acct.JID, engineox.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ox.StoreKey(ctx, p.st, k, true); err != nil {
			t.Fatal(err)
		}
		if p.ox, err = ox.New(ox.Config{Store: p.st}); err != nil {
			t.Fatal(err)
		}
		if err := p.c.Register(p.ox); err != nil {
			t.Fatal(err)
		}
	}
	if o.otr {
		keys, err := otrTestKeys()
		if err != nil {
			t.Fatal(err)
		}
		tag, err := p.st.OTRInstanceTag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cfg := otr.Config{Key: keys[o.otrKey], InstanceTag: tag, Store: p.st, Policy: engineotr.PolicyAlways, AutoStart: otr.AutoStartAlways}
		if o.otrManual {
			cfg.Policy, cfg.AutoStart = otr.DefaultPolicy, otr.AutoStartKnown
		}
		if p.otr, err = otr.New(cfg); err != nil {
			t.Fatal(err)
		}
		if err := p.c.Register(p.otr); err != nil {
			t.Fatal(err)
		}
	}
	if o.es {
		if p.es, err = esession.New(esession.Config{Secrets: &engineES.MemorySecrets{}, AcceptPolicy: esession.AcceptSubscribed}); err != nil {
			t.Fatal(err)
		}
		if err := p.c.Register(p.es); err != nil {
			t.Fatal(err)
		}
	}
	if o.omemo {
		if p.omemo, err = omemo.New(omemo.Config{Store: p.st, Generations: []engineomemo.Generation{engineomemo.V2}}); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.omemo.Mechanisms() {
			if err := p.c.Register(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.col = collect(p.c)
	if err := p.c.Connect(ctx); err != nil {
		p.c.Close()
		t.Fatalf("connect %s: %v", j, err)
	}
	t.Cleanup(func() { p.c.Close() })
	if o.ox {
		if err := p.ox.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if o.omemo {
		if err := p.omemo.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// subscribe makes a and b see each other's presence (OTR needs the
// peer online and its resource).
func subscribe(t *testing.T, a, b *peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pair := range [][2]*peer{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		if err := from.c.Subscribe(ctx, to.c.JID().Bare()); err != nil {
			t.Fatal(err)
		}
		to.col.wait(t, "a subscription request", has(func(s *client.SubscriptionEvent) bool {
			return s.Type == "subscribe" && s.From.Bare().Equal(from.c.JID().Bare())
		}))
		if err := to.c.ApproveSubscription(ctx, from.c.JID().Bare()); err != nil {
			t.Fatal(err)
		}
	}
	a.col.wait(t, "b online", has(func(p *client.PresenceEvent) bool { return p.Available && p.From.Equal(b.c.JID()) }))
	b.col.wait(t, "a online", has(func(p *client.PresenceEvent) bool { return p.Available && p.From.Equal(a.c.JID()) }))
}

// otrPrivate reports whether p has a private OTR conversation with to.
func (p *peer) otrPrivate(to jid.JID) bool {
	st := p.otr.Status(context.Background(), to)
	return st.State == otr.StatePrivateUnverified || st.State == otr.StatePrivateVerified
}

// collector gathers a client's events in the background.
type collector struct {
	mu     sync.Mutex
	cond   *sync.Cond
	events []client.Event
	// changed, when set (notify), gets a token at every event.
	changed chan struct{}
}

// notify makes the collector signal every event on ch (capacity 1, shared
// by several collectors to wait for any of them).
func (col *collector) notify(ch chan struct{}) {
	col.mu.Lock()
	col.changed = ch
	col.mu.Unlock()
}

func collect(c *client.Client) *collector {
	col := &collector{}
	col.cond = sync.NewCond(&col.mu)
	go func() {
		for ev := range c.Events() {
			col.mu.Lock()
			col.events = append(col.events, ev)
			col.cond.Broadcast()
			if col.changed != nil {
				select {
				case col.changed <- struct{}{}:
				default:
				}
			}
			col.mu.Unlock()
		}
	}()
	return col
}

// waitFor blocks until pred holds over the events collected, or d
// passed; it reports whether pred held.
func (col *collector) waitFor(d time.Duration, pred func(evs []client.Event) bool) bool {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		col.mu.Lock()
		col.cond.Broadcast()
		col.mu.Unlock()
	})
	defer timer.Stop()
	col.mu.Lock()
	defer col.mu.Unlock()
	for !pred(col.events) {
		if time.Now().After(deadline) {
			return false
		}
		col.cond.Wait()
	}
	return true
}

// wait is waitFor for 30 s that fails the test when pred does not hold.
func (col *collector) wait(t *testing.T, what string, pred func(evs []client.Event) bool) {
	t.Helper()
	if !col.waitFor(30*time.Second, pred) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// snapshot returns the events collected so far.
func (col *collector) snapshot() []client.Event {
	col.mu.Lock()
	defer col.mu.Unlock()
	return append([]client.Event(nil), col.events...)
}

// mark is where pred of since starts looking: the number of events
// collected so far.
func (col *collector) mark() int {
	col.mu.Lock()
	defer col.mu.Unlock()
	return len(col.events)
}

// since applies pred to the events collected after mark n only (a new
// stream, not the first one).
func since(n int, pred func([]client.Event) bool) func([]client.Event) bool {
	return func(evs []client.Event) bool { return len(evs) > n && pred(evs[n:]) }
}

func has[E client.Event](pred func(E) bool) func([]client.Event) bool {
	return func(evs []client.Event) bool {
		for _, ev := range evs {
			if e, ok := ev.(E); ok && pred(e) {
				return true
			}
		}
		return false
	}
}

// otrEvent matches an OTR security event of kind about peer.
func otrEvent(kind client.SecurityKind, peer jid.JID) func([]client.Event) bool {
	return has(func(e *client.SecurityEvent) bool {
		return e.Mechanism == eme.OTR && e.Kind == kind && e.Peer.Equal(peer)
	})
}
