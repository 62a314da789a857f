package ox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/xmltree"
)

// oxDevice is one connected device of an account with its own store.
type oxDevice struct {
	c   *client.Client
	x   *ox.Mechanism
	st  *store.Store
	key *engine.Key // nil for a device without a key
}

// oxConnect connects a device of acct with the OX mechanism. With withKey
// it first generates a key pair into a fresh store; st may be an existing
// store instead (nil for a fresh one).
func oxConnect(t *testing.T, srv *prosodytest.Server, acct prosodytest.Account, resource string, withKey bool, st *store.Store, cfg ox.Config) *oxDevice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st == nil {
		var err error
		if st, err = store.Create(t.TempDir(), store.Options{Unencrypted: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	}
	d := &oxDevice{st: st}
	if withKey {
		k, err := engine.GenerateKey(acct.JID, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ox.StoreKey(ctx, st, k, true); err != nil {
			t.Fatal(err)
		}
		d.key = k
	}
	j, err := acct.JID.WithResource(resource)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{JID: j, Password: acct.Password, Addr: srv.Addr, CAFile: srv.CAFile, Logger: clienttest.Logger(t, j.String())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cfg.Store = st
	if d.x, err = ox.New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(d.x); err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", j, err)
	}
	d.c = c
	return d
}

func (d *oxDevice) publish(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.x.Publish(ctx); err != nil {
		t.Fatal(err)
	}
}

func (d *oxDevice) send(t *testing.T, to jid.JID, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.c.Send(ctx, &client.Outgoing{To: to, Body: body}, eme.OX); err != nil {
		t.Fatalf("sending %q: %v", body, err)
	}
}

func waitBody(t *testing.T, c *client.Client, body string) *client.MessageEvent {
	t.Helper()
	return clienttest.WaitFor(t, c, func(m *client.MessageEvent) bool { return m.Body == body })
}

// fetchList reads owner's OX key list as another account (reader) sees it.
func fetchList(t *testing.T, reader *client.Client, owner jid.JID) *engine.PublicKeysList {
	t.Helper()
	items, err := reader.FetchItems(context.Background(), owner, engine.NodePublicKeys, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Payload == nil {
		t.Fatalf("key list items %+v", items)
	}
	l, err := engine.ParsePublicKeysList(items[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestIntegrationOX runs the OX scenarios against each server (ejabberd
// without carbons included), each scenario with its own accounts.
func TestIntegrationOX(t *testing.T) {
	clienttest.EachServer(t, integrationOX, servertest.WithoutCarbons)
}

func integrationOX(t *testing.T, srv *prosodytest.Server) {
	n := 0
	users := func(names ...string) []prosodytest.Account {
		n++
		var out []prosodytest.Account
		for _, name := range names {
			out = append(out, srv.AddUser(t, fmt.Sprintf("%s%d", name, n), ""))
		}
		return out
	}
	ctx := context.Background()

	t.Run("publication is open to everyone", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", false, nil, ox.Config{})
		alice.publish(t)
		for _, node := range []string{engine.NodePublicKeys, engine.PublicKeyNode(alice.key.Fingerprint())} {
			cfg, err := alice.c.NodeConfig(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			if cfg["pubsub#access_model"] != "open" {
				t.Errorf("%s: access model %q", node, cfg["pubsub#access_model"])
			}
		}
		// Bob has no presence subscription: he can read both nodes only
		// because they are open.
		l := fetchList(t, bob.c, u[0].JID)
		if len(l.Keys) != 1 || l.Keys[0].Fingerprint != alice.key.Fingerprint() || l.Keys[0].Date.IsZero() || len(l.Problems) != 0 {
			t.Fatalf("key list %+v", l)
		}
		items, err := bob.c.FetchItems(ctx, u[0].JID, engine.PublicKeyNode(alice.key.Fingerprint()), 1)
		if err != nil || len(items) != 1 {
			t.Fatalf("data node: %v %+v", err, items)
		}
		if _, err := engine.ParseTime(items[0].ID); err != nil {
			t.Errorf("data item id %q is not a XEP-0082 time", items[0].ID)
		}
		d, err := bob.x.Discover(ctx, u[0].JID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Keys) != 1 || d.Keys[0].Fingerprint != alice.key.Fingerprint() || !d.Keys[0].Announced || d.Keys[0].Trust != store.Blind {
			t.Fatalf("discovery %+v", d)
		}
	})

	t.Run("merge keeps other devices", func(t *testing.T) {
		u := users("alice")
		a1 := oxConnect(t, srv, u[0], "one", true, nil, ox.Config{})
		a2 := oxConnect(t, srv, u[0], "two", true, nil, ox.Config{})
		a1.publish(t)
		a2.publish(t)
		a1.publish(t) // again: must not drop a2's entry
		l := fetchList(t, a1.c, u[0].JID)
		if !l.Contains(a1.key.Fingerprint()) || !l.Contains(a2.key.Fingerprint()) || len(l.Keys) != 2 {
			t.Fatalf("key list after three publications: %+v", l.Keys)
		}
		// a1 replaces its key: the retired key leaves the list, a2's stays.
		k, err := engine.GenerateKey(u[0].JID, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ox.StoreKey(ctx, a1.st, k, true); err != nil {
			t.Fatal(err)
		}
		if err := a1.x.LoadKeys(ctx); err != nil {
			t.Fatal(err)
		}
		a1.publish(t)
		l = fetchList(t, a2.c, u[0].JID)
		if !l.Contains(k.Fingerprint()) || !l.Contains(a2.key.Fingerprint()) || l.Contains(a1.key.Fingerprint()) || len(l.Keys) != 2 {
			t.Fatalf("key list after replacing a key: %+v", l.Keys)
		}
	})

	t.Run("stale notification does not overwrite a newer list", func(t *testing.T) {
		// A device reading a notification older than the list must not
		// announce its key again from it: its merge reads the list, then
		// writes it, and another device's publication in between is lost
		// (seen once: a retired key back in the list, the new one gone).
		u := users("alice")
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		a1 := oxConnect(t, srv, u[0], "one", true, nil, ox.Config{})
		a2 := oxConnect(t, srv, u[0], "two", true, nil, ox.Config{Now: clock})
		a1.publish(t)
		a2.publish(t)
		before := fetchList(t, a1.c, u[0].JID)
		if !before.Contains(a1.key.Fingerprint()) || !before.Contains(a2.key.Fingerprint()) {
			t.Fatalf("key list %+v", before.Keys)
		}
		// a2's clock moves on: an announcement from now on carries a new
		// date, which shows whether a2 announced again.
		mu.Lock()
		now = now.Add(time.Hour)
		mu.Unlock()
		stale := engine.PublicKeysList{Keys: []engine.KeyMetadata{{Fingerprint: a1.key.Fingerprint(), Date: time.Now().UTC().Truncate(time.Second)}}}.Element()
		ox.OnMetadataForTest(a2.x, &client.PEPEvent{From: u[0].JID, Node: engine.NodePublicKeys, Items: []client.PubSubItem{{ID: "current", Payload: stale}}})
		after := fetchList(t, a1.c, u[0].JID)
		if len(after.Keys) != len(before.Keys) {
			t.Fatalf("key list changed: %+v, was %+v", after.Keys, before.Keys)
		}
		for i, k := range after.Keys {
			if k != before.Keys[i] {
				t.Fatalf("a stale notification made a device announce again: %+v, was %+v", after.Keys, before.Keys)
			}
		}
	})

	t.Run("notification without payload is fetched", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		clienttest.Subscribe(t, alice.c, bob.c)
		// The server learns bob's +notify interest from his caps
		// asynchronously: publish until a notification arrives.
		var ev *client.PEPEvent
		var secEvents []*client.SecurityEvent
		for try := 0; ev == nil; try++ {
			if try == 5 {
				t.Fatal("no notification of alice's key list")
			}
			alice.publish(t)
			ev = waitPEP(bob.c, u[0].JID, 3*time.Second, &secEvents)
		}
		if len(ev.Items) == 0 || ev.Items[0].Payload != nil {
			t.Fatalf("notification %+v: the node should be notification-only", ev)
		}
		// The handler ran before the event was emitted: it fetched the list
		// and the key.
		keys, err := bob.st.ListKeys(ctx, u[0].JID.String(), store.OX)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].Fingerprint != alice.key.Fingerprint() || !keys[0].Announced || len(keys[0].Data) == 0 {
			t.Fatalf("bob's record of alice's keys: %+v", keys)
		}
		// The handler emitted its security event before the notification.
		if len(secEvents) != 1 || secEvents[0].Kind != ox.KindNewKey || secEvents[0].Fingerprint != alice.key.Fingerprint() || secEvents[0].Mechanism != eme.OX {
			t.Fatalf("security events %+v", secEvents)
		}
	})

	t.Run("own key announced again after removal", func(t *testing.T) {
		u := users("alice")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		other := oxConnect(t, srv, u[0], "other", false, nil, ox.Config{})
		alice.publish(t)
		// Another client overwrites the list without alice's key.
		stranger, err := engine.GenerateKey(u[0].JID, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		list := engine.PublicKeysList{Keys: []engine.KeyMetadata{{Fingerprint: stranger.Fingerprint(), Date: time.Now()}}}
		if err := other.c.Publish(ctx, engine.NodePublicKeys, "current", list.Element(), client.NodeOptions{"access_model": "open"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			clienttest.WaitFor(t, alice.c, func(e *client.PEPEvent) bool { return e.Node == engine.NodePublicKeys })
			l := fetchList(t, other.c, u[0].JID)
			if l.Contains(alice.key.Fingerprint()) {
				if !l.Contains(stranger.Fingerprint()) {
					t.Fatalf("re-announcing dropped the other entry: %+v", l.Keys)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("own key not announced again")
			}
		}
	})

	t.Run("messages both ways with trust", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		alice.publish(t)
		bob.publish(t)
		alice.send(t, bob.c.JID(), "hello bob")
		m := waitBody(t, bob.c, "hello bob")
		if m.Security.Mechanism != eme.OX || m.Security.Verified || m.Security.Trust != "blind" || m.Security.Fingerprint != alice.key.Fingerprint() || len(m.Security.Warnings) != 0 {
			t.Fatalf("first message: %+v", m.Security)
		}
		if err := bob.st.SetTrust(ctx, u[0].JID.String(), store.OX, alice.key.Fingerprint(), store.Verified); err != nil {
			t.Fatal(err)
		}
		alice.send(t, bob.c.JID(), "verified now")
		if m := waitBody(t, bob.c, "verified now"); !m.Security.Verified || m.Security.State() != "verified" {
			t.Fatalf("after verification: %+v", m.Security)
		}
		bob.send(t, u[0].JID, "hi alice")
		if r := waitBody(t, alice.c, "hi alice"); r.Security.Mechanism != eme.OX || r.Security.Fingerprint != bob.key.Fingerprint() {
			t.Fatalf("reply: %+v", r.Security)
		}
		if !bob.x.Usable(ctx, u[0].JID) || bob.c.Pipeline().Best(ctx, u[0].JID) != "" {
			t.Fatal("usable / default policy")
		}
	})

	t.Run("other own device reads carbons and the archive", func(t *testing.T) {
		u := users("alice", "bob")
		a1 := oxConnect(t, srv, u[0], "one", true, nil, ox.Config{})
		a2 := oxConnect(t, srv, u[0], "two", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		a1.publish(t)
		a2.publish(t)
		bob.publish(t)
		// a1 learns a2's key from the notification of a2's publication;
		// make sure that happened before sending.
		if d, err := a1.x.Discover(ctx, u[0].JID); err != nil || len(d.Keys) != 1 || d.Keys[0].Fingerprint != a2.key.Fingerprint() {
			t.Fatalf("a1's view of the other device: %+v %v", d, err)
		}

		a1.send(t, u[1].JID, "sent from one")
		waitBody(t, bob.c, "sent from one")
		bob.send(t, a1.c.JID(), "to one")
		waitBody(t, a1.c, "to one")
		if srv.Server().Carbons {
			sent := waitBody(t, a2.c, "sent from one")
			if sent.Origin.Carbon != client.CarbonSent || !sent.To.Bare().Equal(u[1].JID) || sent.Security.Fingerprint != a1.key.Fingerprint() {
				t.Fatalf("sent carbon %+v", sent)
			}
			got := waitBody(t, a2.c, "to one")
			if got.Origin.Carbon != client.CarbonReceived || got.Security.Fingerprint != bob.key.Fingerprint() {
				t.Fatalf("received carbon %+v", got)
			}
		}

		// The archive copies stay readable: the pipeline's History and the
		// bulk decryption with two workers give the same.
		hist := clienttest.History(t, a2.c, u[1].JID, client.HistoryOptions{Workers: 1})
		bulk := clienttest.History(t, a2.c, u[1].JID, client.HistoryOptions{Workers: 2})
		for name, evs := range map[string][]client.Event{"History": hist, "History with 2 workers": bulk} {
			var bodies []string
			for _, ev := range evs {
				m, ok := ev.(*client.MessageEvent)
				if !ok {
					t.Fatalf("%s: %#v", name, ev)
				}
				if !m.Origin.Archived || m.Security.Mechanism != eme.OX {
					t.Errorf("%s: %+v", name, m)
				}
				bodies = append(bodies, m.Body)
			}
			if strings.Join(bodies, "|") != "sent from one|to one" {
				t.Errorf("%s: bodies %q", name, bodies)
			}
		}
		var last []string
		if err := a2.c.History(ctx, u[1].JID, client.HistoryOptions{Limit: 1, Workers: 1}, func(ev client.Event) error {
			last = append(last, ev.(*client.MessageEvent).Body)
			return nil
		}); err != nil || len(last) != 1 || last[0] != "to one" {
			t.Fatalf("last message: %q %v", last, err)
		}
	})

	t.Run("backup and restore on a fresh device", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		// A second, older key of the account: the backup holds both.
		old, err := engine.GenerateKey(u[0].JID, engine.EdDSA25519, &engine.Config{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := ox.StoreKey(ctx, alice.st, old, false); err != nil {
			t.Fatal(err)
		}
		if err := alice.x.LoadKeys(ctx); err != nil {
			t.Fatal(err)
		}
		alice.publish(t)
		bob.publish(t)
		code, err := alice.x.Backup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !engine.ValidBackupCode(code) {
			t.Fatalf("code %q", code)
		}
		cfg, err := alice.c.NodeConfig(ctx, engine.NodeSecretKey)
		if err != nil {
			t.Fatal(err)
		}
		if cfg["pubsub#access_model"] != "whitelist" || cfg["pubsub#persist_items"] != "1" && cfg["pubsub#persist_items"] != "true" {
			t.Fatalf("secret-key node configuration %v", cfg)
		}
		if _, err := bob.c.FetchItems(ctx, u[0].JID, engine.NodeSecretKey, 1); err == nil {
			t.Fatal("bob read alice's secret-key node")
		}
		bob.send(t, u[0].JID, "before restore")
		waitBody(t, alice.c, "before restore")

		fresh := oxConnect(t, srv, u[0], "fresh", false, nil, ox.Config{})
		if _, err := fresh.x.Restore(ctx, "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA"); !errors.Is(err, engine.ErrDecrypt) {
			t.Fatalf("wrong code: %v", err)
		}
		res, err := fresh.x.Restore(ctx, strings.ToLower(strings.ReplaceAll(code, "-", " ")))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Added) != 2 || res.Active != alice.key.Fingerprint() {
			t.Fatalf("restore %+v", res)
		}
		if keys := fresh.x.Keys(); len(keys) != 2 || keys[0].Fingerprint() != alice.key.Fingerprint() {
			t.Fatalf("keys after restore %v", keys)
		}
		var hist []string
		if err := fresh.c.History(ctx, u[1].JID, client.HistoryOptions{Workers: 2}, func(ev client.Event) error {
			if m, ok := ev.(*client.MessageEvent); ok {
				hist = append(hist, m.Body)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 || hist[0] != "before restore" {
			t.Fatalf("history on the restored device: %q", hist)
		}
		bob.send(t, fresh.c.JID(), "after restore")
		if m := waitBody(t, fresh.c, "after restore"); m.Security.Fingerprint != bob.key.Fingerprint() {
			t.Fatalf("after restore %+v", m)
		}
	})

	t.Run("receipts and chat states inside the payload", func(t *testing.T) {
		// Gajim puts receipt requests, receipts, markers and chat states
		// inside the OX payload: they count like outer ones.
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		alice.publish(t)
		bob.publish(t)
		const nsReceipts, nsStates = "urn:xmpp:receipts", "http://jabber.org/protocol/chatstates"
		sent, err := alice.c.Send(ctx, &client.Outgoing{To: u[1].JID, Body: "receipt inside",
			Payload: []*xmltree.Element{xmltree.New(nsReceipts, "request")}}, eme.OX)
		if err != nil {
			t.Fatal(err)
		}
		waitBody(t, bob.c, "receipt inside")
		if r := clienttest.WaitFor(t, alice.c, func(r *client.ReceiptEvent) bool { return true }); r.ID != sent.ID || !r.From.Bare().Equal(u[1].JID) {
			t.Fatalf("receipt %+v for %s", r, sent.ID)
		}
		// A body-less OX message carrying a receipt is a receipt.
		if _, err := bob.c.Send(ctx, &client.Outgoing{To: u[0].JID,
			Payload: []*xmltree.Element{xmltree.New(nsReceipts, "received", "id", "m-42")}}, eme.OX); err != nil {
			t.Fatal(err)
		}
		ev := clienttest.WaitFor(t, alice.c, func(ev client.Event) bool {
			switch ev.(type) {
			case *client.ReceiptEvent, *client.MessageEvent, *client.NoticeEvent:
				return true
			}
			return false
		})
		if r, ok := ev.(*client.ReceiptEvent); !ok || r.ID != "m-42" {
			t.Fatalf("encrypted receipt arrived as %#v", ev)
		}
		// A chat state inside is delivered as an outer one is: a message
		// event without text, carrying the state.
		if _, err := bob.c.Send(ctx, &client.Outgoing{To: u[0].JID,
			Payload: []*xmltree.Element{xmltree.New(nsStates, "composing")}}, eme.OX); err != nil {
			t.Fatal(err)
		}
		m := clienttest.WaitFor(t, alice.c, func(m *client.MessageEvent) bool { return true })
		if m.Body != "" || len(m.Payload) != 1 || m.Payload[0].Name.Local != "composing" || m.Security.Mechanism != eme.OX {
			t.Fatalf("chat state: %+v", m)
		}
	})

	t.Run("key announced again with a new date is fetched again", func(t *testing.T) {
		// A renewed key keeps its fingerprint and gets a new date in the
		// key list (XEP-0373 §4.2): its data must be fetched again, or
		// signatures by it look expired and sending to it fails.
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		bob.publish(t)
		fpr := alice.key.Fingerprint()
		data, err := alice.key.Public().MarshalPublic(true)
		if err != nil {
			t.Fatal(err)
		}
		owner := u[0].JID.String()
		if _, err := bob.st.RecordSeenKey(ctx, owner, store.OX, fpr, data); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := bob.st.SetKeyPublished(ctx, owner, store.OX, fpr, old); err != nil {
			t.Fatal(err)
		}
		if err := bob.st.SetAnnouncedKeys(ctx, owner, store.OX, []string{fpr}); err != nil {
			t.Fatal(err)
		}
		alice.publish(t) // the same key, announced now
		bob.send(t, u[0].JID, "after the renewal")
		waitBody(t, alice.c, "after the renewal")
		keys, err := bob.st.ListKeys(ctx, owner, store.OX)
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys %+v, %v", keys, err)
		}
		if !keys[0].Published.After(old) || !keys[0].Announced {
			t.Fatalf("the key announced with a new date was not fetched again: %+v", keys[0])
		}
	})

	t.Run("forged messages", func(t *testing.T) {
		u := users("alice", "bob", "carol")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		alice.publish(t)
		bob.publish(t)
		send := func(content engine.Content, signer *engine.Key, id string) {
			t.Helper()
			var msg []byte
			var err error
			if signer == nil {
				msg = ox.SealUnsignedForTest(t, content, bob.key)
			} else if msg, err = engine.Seal(content, signer, []*engine.Key{bob.key.Public()}, nil); err != nil {
				t.Fatal(err)
			}
			st := xmltree.New(client.NSClient, "message", "to", bob.c.JID().String(), "type", "chat", "id", id)
			st.Append(engine.Element{Data: msg}.Element())
			st.Append(xmltree.New(eme.NS, "encryption", "namespace", eme.OX))
			if err := alice.c.SendElement(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		// XEP-0373 §3.2: signed by a key alice never announced (same user
		// ID), or not signed at all: notices, never messages.
		rogue, err := engine.GenerateKey(u[0].JID, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		send(engine.Content{Kind: engine.Signcrypt, To: []jid.JID{u[1].JID}, Time: time.Now(), Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText("rogue key")}}, rogue, "f1")
		send(engine.Content{Kind: engine.Signcrypt, To: []jid.JID{u[1].JID}, Time: time.Now(), Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText("no signature")}}, nil, "f0")
		for _, id := range []string{"f1", "f0"} {
			ev := clienttest.WaitFor(t, bob.c, func(ev client.Event) bool {
				switch ev := ev.(type) {
				case *client.NoticeEvent:
					return ev.ID == id
				case *client.MessageEvent:
					return ev.ID == id
				}
				return false
			})
			n, ok := ev.(*client.NoticeEvent)
			if !ok {
				t.Fatalf("forgery %s delivered as %#v", id, ev)
			}
			if n.Reason != eme.ReasonVerificationFailed || strings.Contains(n.Text, "rogue key") || strings.Contains(n.Text, "no signature") {
				t.Fatalf("notice %+v", n)
			}
		}
		// Written for carol, delivered to bob.
		send(engine.Content{Kind: engine.Signcrypt, To: []jid.JID{u[2].JID}, Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText("for carol")}}, alice.key, "f2")
		n := clienttest.WaitFor(t, bob.c, func(n *client.NoticeEvent) bool { return n.ID == "f2" })
		if n.Reason != eme.ReasonVerificationFailed || strings.Contains(n.Text, "for carol") {
			t.Fatalf("notice %+v", n)
		}
	})

	t.Run("key change", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		alice.publish(t)
		bob.publish(t)
		if _, err := bob.x.Discover(ctx, u[0].JID); err != nil {
			t.Fatal(err)
		}
		// Alice's second device with a key of its own.
		a2 := oxConnect(t, srv, u[0], "new", true, nil, ox.Config{})
		a2.publish(t)
		d, err := bob.x.Discover(ctx, u[0].JID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Events) != 1 || d.Events[0].Kind != ox.KindKeyChanged || d.Events[0].Fingerprint != a2.key.Fingerprint() {
			t.Fatalf("events %+v", d.Events)
		}
		trust := map[string]store.TrustState{}
		for _, k := range d.Keys {
			trust[k.Fingerprint] = k.Trust
		}
		if trust[alice.key.Fingerprint()] != store.Blind || trust[a2.key.Fingerprint()] != store.Undecided {
			t.Fatalf("trust %v", trust)
		}
		changes, err := bob.st.PendingKeyChanges(ctx)
		if err != nil || len(changes) != 1 {
			t.Fatalf("pending changes %+v %v", changes, err)
		}
		// The undecided key's messages carry a warning; bob still encrypts
		// to both keys (announced and not untrusted), so both devices read.
		a2.send(t, bob.c.JID(), "from the new device")
		if m := waitBody(t, bob.c, "from the new device"); m.Security.Verified || m.Security.Trust != "undecided" || len(m.Security.Warnings) == 0 {
			t.Fatalf("message signed by the new key: %+v", m.Security)
		}
		bob.send(t, u[0].JID, "to every device")
		waitBody(t, alice.c, "to every device")
		waitBody(t, a2.c, "to every device")
	})

	t.Run("force OX refuses plaintext", func(t *testing.T) {
		u := users("alice", "bob")
		alice := oxConnect(t, srv, u[0], "a", true, nil, ox.Config{})
		bob := oxConnect(t, srv, u[1], "b", true, nil, ox.Config{})
		alice.publish(t)
		bob.publish(t)
		pol, _ := eme.ParsePolicy("require:ox")
		bob.c.Pipeline().SetPolicy(u[0].JID, pol)
		if _, err := bob.c.Send(ctx, &client.Outgoing{To: u[0].JID, Body: "clear"}, ""); !errors.Is(err, eme.ErrDowngrade) {
			t.Fatalf("plaintext to a contact with require:ox: %v", err)
		}
		if bob.c.Pipeline().Best(ctx, u[0].JID) != eme.OX {
			t.Fatal("Best does not choose OX")
		}
		if _, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID(), Body: "in the clear"}, ""); err != nil {
			t.Fatal(err)
		}
		if m := waitBody(t, bob.c, "in the clear"); len(m.Security.Warnings) == 0 {
			t.Fatalf("plaintext from a require:ox contact without warning: %+v", m.Security)
		}
		alice.send(t, bob.c.JID(), "protected")
		if m := waitBody(t, bob.c, "protected"); m.Security.State() != "unverified" {
			t.Fatalf("OX message under require:ox: %+v", m.Security)
		}
	})
}

// waitPEP waits up to d for a notification of owner's OX key list and
// collects the security events seen meanwhile.
func waitPEP(c *client.Client, owner jid.JID, d time.Duration, sec *[]*client.SecurityEvent) *client.PEPEvent {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return nil
			}
			switch e := ev.(type) {
			case *client.SecurityEvent:
				*sec = append(*sec, e)
			case *client.PEPEvent:
				if e.Node == engine.NodePublicKeys && e.From.Equal(owner) {
					return e
				}
			}
		case <-timer.C:
			return nil
		}
	}
}
