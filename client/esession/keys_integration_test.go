package esession_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/trust"
)

// newStore creates an account store (SQLite, encrypted at rest) for a
// test.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Create(t.TempDir(), store.Options{Passphrase: []byte("test"), KDF: &store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The store implements the storage the glue declares.
var (
	_ esession.Store        = (*store.Store)(nil)
	_ esession.OfflineStore = (*store.Store)(nil)
)

// until reads c's events until one matches pred and returns every event
// read, in order, failing the test after 20 s.
func until(t *testing.T, c *client.Client, pred func(client.Event) bool) []client.Event {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	var seen []client.Event
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("event channel closed")
			}
			seen = append(seen, ev)
			if pred(ev) {
				return seen
			}
		case <-timer.C:
			t.Fatalf("event not seen; saw %d others: %s", len(seen), describe(seen))
		}
	}
}

func describe(evs []client.Event) string {
	var parts []string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case *client.SecurityEvent:
			parts = append(parts, string(ev.Kind)+": "+ev.Text)
		case *client.MessageEvent:
			parts = append(parts, "message: "+ev.Body)
		case *client.NoticeEvent:
			parts = append(parts, "notice: "+ev.Text)
		case *client.ErrorEvent:
			parts = append(parts, "error: "+ev.Condition+" "+ev.Text)
		default:
			parts = append(parts, fmt.Sprintf("%T", ev))
		}
	}
	return strings.Join(parts, "\n")
}

// isKind matches a security event of the mechanism of the given kind.
func isKind(kind client.SecurityKind) func(client.Event) bool {
	return func(ev client.Event) bool {
		se, ok := ev.(*client.SecurityEvent)
		return ok && se.Kind == kind && se.Mechanism == nsES
	}
}

// kinds lists the kinds of the mechanism's security events among evs.
func kinds(evs []client.Event) []client.SecurityKind {
	var out []client.SecurityKind
	for _, ev := range evs {
		if se, ok := ev.(*client.SecurityEvent); ok && se.Mechanism == nsES {
			out = append(out, se.Kind)
		}
	}
	return out
}

// keyed is an account with a store and an Encrypted Sessions key.
type keyed struct {
	c  *client.Client
	es *esession.Mechanism
	st *store.Store
	fp string
}

// connectKeyed connects an account whose mechanism keeps its keys in st,
// making a key when it has none.
func connectKeyed(t *testing.T, srv *prosodytest.Server, acct prosodytest.Account, resource string, st *store.Store, cfg esession.Config) keyed {
	t.Helper()
	return connectKeyedTo(t, srv.Server(), acct, resource, st, cfg)
}

// connectKeyedTo is connectKeyed for any test server (servertest.Each).
func connectKeyedTo(t *testing.T, srv *servertest.Server, acct servertest.Account, resource string, st *store.Store, cfg esession.Config) keyed {
	t.Helper()
	cfg.Store = st
	c, es := connectESTo(t, srv, acct, resource, cfg)
	if es.Key() == "" {
		if _, err := es.GenerateKey(context.Background(), 2048); err != nil {
			t.Fatal(err)
		}
	}
	return keyed{c, es, st, es.Key()}
}

// publish publishes k's key and checks what it says.
func (k keyed) publish(t *testing.T) {
	t.Helper()
	fp, err := k.es.PublishKey(context.Background())
	if err != nil || fp != k.es.Key() {
		t.Fatalf("PublishKey: %q, %v (key %q)", fp, err, k.es.Key())
	}
}

// exchangeKeyed sends a message each way in a session in which both
// identified with their keys: each message shows its sender's key.
func exchangeKeyed(t *testing.T, a, b keyed, text, thread string, verified bool) {
	t.Helper()
	for _, pair := range [][2]keyed{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		body := text + " from " + from.c.JID().Localpart()
		if _, err := from.c.Send(context.Background(), &client.Outgoing{To: to.c.JID().Bare(), Body: body}, nsES); err != nil {
			t.Fatal(err)
		}
		m := clienttest.WaitFor(t, to.c, func(m *client.MessageEvent) bool { return m.Body != "" })
		if m.Body != body || m.Thread != thread || m.Security.Fingerprint != from.fp || m.Security.Verified != verified || len(m.Security.Warnings) > 0 {
			t.Fatalf("%s got %q on %q: %+v", to.c.JID(), m.Body, m.Thread, m.Security)
		}
	}
}

// TestIntegrationSIGMAIKeysOverPEP: two clients publish their keys over
// PEP (XEP-0189); a SIGMA-I session (XEP-0116 §4.2) finds the contact's
// key there, reports it as new before the session, and records the
// association both ways; once the keys are verified a session is
// verified without a SAS. A changed key, a key known for another JID and
// a rejected key are reported before anything of the session is shown.
func TestIntegrationSIGMAIKeysOverPEP(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	ast, bst := newStore(t), newStore(t)
	a := connectKeyed(t, srv, alice, "laptop", ast, esession.Config{})
	b := connectKeyed(t, srv, bob, "phone", bst, esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a.c, b.c)
	ctx := context.Background()

	// Without a key of its own, SIGMA-I is refused at once.
	cc, plain := connectES(t, srv, srv.AddUser(t, "carol", ""), "x", esession.Config{Store: newStore(t)})
	if _, err := plain.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); !errors.Is(err, esession.ErrNoKey) {
		t.Fatalf("SIGMA-I without a key: %v", err)
	}

	// Each learns the other's key from its PEP notification (XEP-0163),
	// reported as new.
	for _, x := range []struct{ pub, sub keyed }{{b, a}, {a, b}} {
		x.pub.publish(t)
		ev := clienttest.WaitFor(t, x.sub.c, func(se *client.SecurityEvent) bool { return se.Kind == esession.KindKeyNew })
		if ev.Fingerprint != x.pub.fp || !ev.Peer.Equal(x.pub.c.JID().Bare()) || ev.Hint.Peer == "" {
			t.Fatalf("new key event %+v", ev)
		}
	}
	info, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := until(t, a.c, isKind(esession.KindEstablished))
	if k := kinds(seen); !slices.Equal(k, []client.SecurityKind{esession.KindEstablished}) {
		t.Fatalf("alice's events %v:\n%s", k, describe(seen))
	}
	est := seen[len(seen)-1].(*client.SecurityEvent)
	if est.Fingerprint != b.fp || !strings.Contains(est.Text, "NOT verified") || !strings.Contains(est.Text, b.fp) {
		t.Fatalf("alice's established event %+v", est)
	}
	until(t, b.c, isKind(esession.KindEstablished))
	got, err := a.es.WaitFor(ctx, b.c.JID(), info.Thread, func(i esession.Info) bool { return i.State == "active" })
	if err != nil || !got.ThreeMessage || got.SAS != "" || got.PeerKey != b.fp || got.Verified {
		t.Fatalf("alice's session %+v, %v", got, err)
	}
	for _, x := range []struct {
		st   *store.Store
		peer string
		fp   string
	}{{ast, "bob@localhost", b.fp}, {bst, "alice@localhost", a.fp}} {
		keys, err := x.st.ListKeys(ctx, x.peer, trust.ESession)
		if err != nil || len(keys) != 1 || keys[0].Fingerprint != x.fp || keys[0].Trust != trust.Undecided || len(keys[0].Data) == 0 {
			t.Fatalf("keys of %s: %+v, %v", x.peer, keys, err)
		}
	}
	exchangeKeyed(t, a, b, "sigma-i", info.Thread, false)
	if _, err := a.es.End(ctx, b.c.JID()); err != nil {
		t.Fatal(err)
	}
	until(t, a.c, isKind(esession.KindTerminated))

	// Both verify the other's key (compared out of band): the next
	// session is verified at once, without a SAS.
	if err := ast.SetTrust(ctx, "bob@localhost", trust.ESession, b.fp, trust.Verified); err != nil {
		t.Fatal(err)
	}
	if err := bst.SetTrust(ctx, "alice@localhost", trust.ESession, a.fp, trust.Verified); err != nil {
		t.Fatal(err)
	}
	if _, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); err != nil {
		t.Fatal(err)
	}
	seen = until(t, a.c, isKind(esession.KindVerified))
	if k := kinds(seen); !slices.Equal(k, []client.SecurityKind{esession.KindEstablished, esession.KindVerified}) {
		t.Fatalf("alice's events %v:\n%s", k, describe(seen))
	}
	until(t, b.c, isKind(esession.KindVerified))
	in, _ := a.es.SAS(b.c.JID())
	exchangeKeyed(t, a, b, "verified by key", in.Thread, true)
	a.es.End(ctx, b.c.JID())
	until(t, a.c, isKind(esession.KindTerminated))

	// Bob's key changes (a new device): alice is told before the session,
	// and the session is not verified.
	b.es.TerminateAll(ctx)
	newFP, err := b.es.GenerateKey(ctx, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.es.PublishKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); err != nil {
		t.Fatal(err)
	}
	seen = until(t, a.c, isKind(esession.KindEstablished))
	ki := slices.Index(kinds(seen), esession.KindKeyChanged)
	if ki < 0 || ki > slices.Index(kinds(seen), esession.KindEstablished) {
		t.Fatalf("no key change before the session: %v\n%s", kinds(seen), describe(seen))
	}
	for _, ev := range seen {
		if se, ok := ev.(*client.SecurityEvent); ok && se.Kind == esession.KindKeyChanged && (se.Fingerprint != newFP || se.Hint.Peer == "") {
			t.Fatalf("key change event %+v", se)
		}
	}
	if in, _ := a.es.SAS(b.c.JID()); in.Verified || in.PeerKey != newFP {
		t.Fatalf("session with the changed key: %+v", in)
	}
	if pending, err := ast.PendingKeyChanges(ctx); err != nil || len(pending) != 1 || pending[0].Fingerprint != newFP {
		t.Fatalf("pending key changes %+v, %v", pending, err)
	}
	a.es.End(ctx, b.c.JID())
	until(t, a.c, isKind(esession.KindTerminated))

	// Alice's store associates bob's new key with dave too: a session with
	// bob reports it (XEP-0116 §10.4).
	if _, err := ast.RecordSeenKey(ctx, "dave@localhost", trust.ESession, newFP, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); err != nil {
		t.Fatal(err)
	}
	seen = until(t, a.c, isKind(esession.KindEstablished))
	if !slices.Contains(kinds(seen), esession.KindKeyOtherJID) || !strings.Contains(describe(seen), "dave@localhost") {
		t.Fatalf("no alert for the key of another JID: %v\n%s", kinds(seen), describe(seen))
	}
	a.es.End(ctx, b.c.JID())
	until(t, a.c, isKind(esession.KindTerminated))

	// Alice rejects bob's new key: a session in which bob presents it ends
	// before anything is shown, with the reason.
	if err := ast.SetTrust(ctx, "bob@localhost", trust.ESession, newFP, trust.Untrusted); err != nil {
		t.Fatal(err)
	}
	if _, err := a.es.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); err != nil {
		t.Fatal(err)
	}
	seen = until(t, a.c, isKind(esession.KindTerminated))
	k := kinds(seen)
	if !slices.Contains(k, esession.KindKeyUntrusted) || slices.Contains(k, esession.KindEstablished) ||
		slices.Index(k, esession.KindKeyUntrusted) > slices.Index(k, esession.KindTerminated) {
		t.Fatalf("rejected key: %v\n%s", k, describe(seen))
	}
	if _, err := a.c.Send(ctx, &client.Outgoing{To: b.c.JID(), Body: "no"}, nsES); !errors.Is(err, esession.ErrNoSession) {
		t.Fatalf("a session with a rejected key can send: %v", err)
	}

	// Carol never published her key: bob learns it in the session, where
	// it is reported as new before the session is established.
	if _, err := plain.GenerateKey(ctx, 2048); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Start(ctx, b.c.JID(), &esession.StartOptions{ThreeMessage: true}); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b.c, securityEvent(esession.KindRequest))
	if _, err := b.es.Accept(ctx, cc.JID(), nil); err != nil {
		t.Fatal(err)
	}
	seen = until(t, b.c, isKind(esession.KindEstablished))
	if k := kinds(seen); !slices.Equal(k, []client.SecurityKind{esession.KindKeyNew, esession.KindEstablished}) {
		t.Fatalf("bob's events with carol %v:\n%s", k, describe(seen))
	}
	if ev := seen[0].(*client.SecurityEvent); ev.Fingerprint != plain.Key() || !ev.Peer.Equal(cc.JID()) {
		t.Fatalf("new key event %+v", ev)
	}
}
