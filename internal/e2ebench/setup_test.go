package e2ebench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/balcony-im/balcony/otr/otrtest"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/eme"
	esengine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/servertest"
	omemoengine "github.com/balcony-im/balcony/omemo"
	otrengine "github.com/balcony-im/balcony/otr"
	oxengine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
)

// otrKeys are the DSA keys of the OTR engine's libotr test file.
var otrKeys = otrtest.Keys

// otrKey returns test key i (modulo the number of keys in the file).
func otrKey(tb testing.TB, i int) *otrengine.PrivateKey {
	tb.Helper()
	keys, err := otrKeys()
	if err != nil {
		tb.Fatal(err)
	}
	return keys[i%len(keys)]
}

// newStore creates an unencrypted store in a temporary directory, closed
// when the test ends.
func newStore(tb testing.TB) *store.Store {
	tb.Helper()
	st, err := store.Create(tb.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// endpoint is one connected client with its mechanism's handle.
type endpoint struct {
	c   *client.Client
	st  *store.Store // nil for a mechanism without a store
	ox  *ox.Mechanism
	otr *otr.Mechanism
	es  *esession.Mechanism
	om  *omemo.Device
}

// mechanism is a row of the end-to-end table: how to equip a client and
// how to make a pair ready to exchange messages.
type mechanism struct {
	name string // row name, metric prefix
	ns   string // the namespace passed to Send ("" for plaintext)
	// register equips a fresh client before it connects (nil: nothing);
	// i distinguishes the accounts of one run.
	register func(tb testing.TB, e *endpoint, i int) func(*client.Client)
	// ready makes the pair able to exchange messages (publication,
	// AKE, negotiation); nil: nothing to do.
	ready func(tb testing.TB, a, b *endpoint)
	// noStore sends plaintext with a XEP-0334 no-permanent-store hint,
	// as OTR and Encrypted Sessions do: the server does not archive it.
	noStore bool
	// ref is the plaintext row to compare with: the one the server
	// treats alike (archived or not).
	ref string
}

// mechanisms are the rows, plaintext first (the reference).
var mechanisms = []mechanism{
	{name: "plain"},
	{name: "plainns", noStore: true},
	{name: "ox", ns: eme.OX, register: registerOX, ready: readyOX, ref: "plain"},
	{name: "otr", ns: eme.OTR, register: registerOTR, ready: readyOTR, ref: "plainns"},
	{name: "esession", ns: esengine.NSStanzaEncryption, register: registerES, ready: readyES, ref: "plainns"},
	// OMEMO (XEP-0384) asks for a store hint, as OX does: the server
	// archives it for the account's other devices.
	{name: "omemo", ns: eme.OMEMO2, register: registerOMEMO(omemoengine.V2), ready: readyOMEMO, ref: "plain"},
	{name: "omemo03", ns: eme.OMEMO0, register: registerOMEMO(omemoengine.V03), ready: readyOMEMO, ref: "plain"},
}

func registerOX(tb testing.TB, e *endpoint, _ int) func(*client.Client) {
	st := newStore(tb)
	e.st = st
	return func(c *client.Client) {
		k, err := oxengine.GenerateKey(c.JID(), oxengine.EdDSA25519, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if err := ox.StoreKey(context.Background(), st, k, true); err != nil {
			tb.Fatal(err)
		}
		if e.ox, err = ox.New(ox.Config{Store: st}); err != nil {
			tb.Fatal(err)
		}
		if err := c.Register(e.ox); err != nil {
			tb.Fatal(err)
		}
	}
}

func readyOX(tb testing.TB, a, b *endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range []*endpoint{a, b} {
		if err := e.ox.Publish(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}

// registerOMEMO equips a client with an OMEMO device speaking only
// generation g, in a store of its own.
func registerOMEMO(g omemoengine.Generation) func(tb testing.TB, e *endpoint, _ int) func(*client.Client) {
	return func(tb testing.TB, e *endpoint, _ int) func(*client.Client) {
		st := newStore(tb)
		e.st = st
		return func(c *client.Client) {
			var err error
			if e.om, err = omemo.New(omemo.Config{Store: st, Generations: []omemoengine.Generation{g}}); err != nil {
				tb.Fatal(err)
			}
			for _, m := range e.om.Mechanisms() {
				if err := c.Register(m); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

// readyOMEMO announces both devices (device list and bundle) and opens
// the session as a conversation does: a's first message builds it from
// b's bundle, and b completes it (XEP-0384 §7) before anything else is
// sent. A contact's devices are trusted blindly until one is verified
// (the default), as in client/omemo's own tests. Both sides building a
// session at the same moment is left out: it breaks (see
// docs/BENCHMARKS.md, "Load").
func readyOMEMO(tb testing.TB, a, b *endpoint) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, e := range []*endpoint{a, b} {
		if err := e.om.Publish(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	ns := a.om.Mechanisms()[0].Namespace()
	if _, err := a.c.Send(ctx, &client.Outgoing{To: b.c.JID(), Body: "ready"}, ns); err != nil {
		tb.Fatal(err)
	}
	clienttest.WaitFor(tb, b.c, func(ev *client.MessageEvent) bool {
		return ev.Body == "ready" && ev.Security.Mechanism == ns
	})
}

func registerOTR(tb testing.TB, e *endpoint, i int) func(*client.Client) {
	st := newStore(tb)
	e.st = st
	return func(c *client.Client) {
		tag, err := st.OTRInstanceTag(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		e.otr, err = otr.New(otr.Config{Key: otrKey(tb, i), InstanceTag: tag, Store: st, Policy: otr.DefaultPolicy})
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.Register(e.otr); err != nil {
			tb.Fatal(err)
		}
	}
}

func readyOTR(tb testing.TB, a, b *endpoint) {
	if err := a.otr.Start(context.Background(), b.c.JID()); err != nil {
		tb.Fatal(err)
	}
	for _, x := range [][2]*endpoint{{a, b}, {b, a}} {
		peer := x[1].c.JID()
		clienttest.WaitFor(tb, x[0].c, func(e *client.SecurityEvent) bool {
			return e.Mechanism == eme.OTR && e.Kind == "otr-private" && e.Peer.Equal(peer)
		})
	}
}

func registerES(tb testing.TB, e *endpoint, _ int) func(*client.Client) {
	return func(c *client.Client) {
		var err error
		e.es, err = esession.New(esession.Config{Secrets: &esengine.MemorySecrets{}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.Register(e.es); err != nil {
			tb.Fatal(err)
		}
	}
}

func readyES(tb testing.TB, a, b *endpoint) {
	// No presence subscription: the request goes to b's full JID and b
	// accepts it as a user would.
	ctx := context.Background()
	if _, err := a.es.Start(ctx, b.c.JID(), nil); err != nil {
		tb.Fatal(err)
	}
	clienttest.WaitFor(tb, b.c, func(ev *client.SecurityEvent) bool { return ev.Kind == esession.KindRequest })
	if _, err := b.es.Accept(ctx, a.c.JID(), nil); err != nil {
		tb.Fatal(err)
	}
	for _, e := range []*endpoint{a, b} {
		clienttest.WaitFor(tb, e.c, func(ev *client.SecurityEvent) bool {
			return ev.Kind == esession.KindEstablished && ev.Mechanism == esengine.NSStanzaEncryption
		})
	}
}

// pair is a sender and a receiver ready to exchange messages with one
// mechanism.
type pair struct {
	m    mechanism
	a, b *endpoint
}

// connectPair registers two accounts on srv and connects them, equipped
// for m. n distinguishes the accounts of one server.
func connectPair(tb testing.TB, srv *servertest.Server, m mechanism, n int) *pair {
	tb.Helper()
	var accts [2]servertest.Account
	for i := range accts {
		accts[i] = srv.AddUser(tb, fmt.Sprintf("%s%d%c", m.name, n, 'a'+i), "")
	}
	return connectAccounts(tb, srv, m, n, accts)
}

// connectAccounts connects two registered accounts, equipped for m, and
// makes them ready.
func connectAccounts(tb testing.TB, srv *servertest.Server, m mechanism, n int, accts [2]servertest.Account) *pair {
	tb.Helper()
	p := &pair{m: m, a: &endpoint{}, b: &endpoint{}}
	for i, e := range []*endpoint{p.a, p.b} {
		var reg func(*client.Client)
		if m.register != nil {
			reg = m.register(tb, e, 2*n+i)
		}
		e.c = clienttest.ConnectTo(tb, srv, accts[i], "bench", reg)
	}
	if m.ready != nil {
		m.ready(tb, p.a, p.b)
	}
	return p
}
