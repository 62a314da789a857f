// Package clienttest has helpers for the integration tests of the client
// and its mechanisms: connecting a client to a test server, waiting for
// events, presence subscriptions.
package clienttest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/internal/servertest"
	"mellium.im/xmpp/jid"
)

// Connect logs an account of srv in with STARTTLS and the server's private
// CA, with the configuration changed by mod, and closes the client when
// the test ends.
func Connect(t testing.TB, srv *prosodytest.Server, acct prosodytest.Account, resource string, mod ...func(*client.Config)) *client.Client {
	t.Helper()
	return ConnectWith(t, srv, acct, resource, nil, mod...)
}

// ConnectWith is Connect with mechanisms registered (by register, on the
// new client) before the client connects, so that their features are in
// the first presence.
func ConnectWith(t testing.TB, srv *prosodytest.Server, acct prosodytest.Account, resource string, register func(*client.Client), mod ...func(*client.Config)) *client.Client {
	t.Helper()
	return ConnectTo(t, srv.Server(), acct, resource, register, mod...)
}

// ConnectTo is ConnectWith for any test server (Prosody or ejabberd, see
// servertest.Each).
func ConnectTo(t testing.TB, srv *servertest.Server, acct servertest.Account, resource string, register func(*client.Client), mod ...func(*client.Config)) *client.Client {
	t.Helper()
	j := acct.JID
	if resource != "" {
		var err error
		j, err = j.WithResource(resource)
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := client.Config{JID: j, Password: acct.Password, Addr: srv.Addr, CAFile: srv.CAFile, Logger: Logger(t, j.String())}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		c.Close()
		t.Fatalf("connect %s: %v", j, err)
	}
	t.Cleanup(func() { c.Close() })
	if resource != "" && c.JID().Resourcepart() != resource {
		t.Fatalf("bound %s, asked for resource %s", c.JID(), resource)
	}
	return c
}

// EachServer runs f as a subtest against every test server, a fresh one
// per subtest (see servertest.Each for the names and variants).
func EachServer(t *testing.T, f func(t *testing.T, srv *prosodytest.Server), variants ...servertest.Variant) {
	t.Helper()
	servertest.Each(t, func(t *testing.T, s *servertest.Server) { f(t, prosodytest.From(s)) }, variants...)
}

// WaitFor returns the first event of type E matching pred (nil: any),
// failing the test after 15 s.
func WaitFor[E client.Event](t testing.TB, c *client.Client, pred func(E) bool) E {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("event channel closed")
			}
			if e, ok := ev.(E); ok && (pred == nil || pred(e)) {
				return e
			}
		case <-timer.C:
			var zero E
			t.Fatalf("timed out waiting for %T", zero)
			return zero
		}
	}
}

// Subscribe makes a and b mutually subscribed to each other's presence and
// waits until each sees the other online. Servers differ in the order in
// which they deliver a "subscribed" and the contact's presence (ejabberd
// often sends the presence first), so both are awaited in any order.
func Subscribe(t testing.TB, a, b *client.Client) {
	t.Helper()
	ctx := context.Background()
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		if err := from.Subscribe(ctx, to.JID().Bare()); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, to, func(s *client.SubscriptionEvent) bool {
			return s.Type == "subscribe" && s.From.Bare().Equal(from.JID().Bare())
		})
		if err := to.ApproveSubscription(ctx, from.JID().Bare()); err != nil {
			t.Fatal(err)
		}
		waitAll(t, from,
			func(ev client.Event) bool {
				s, ok := ev.(*client.SubscriptionEvent)
				return ok && s.Type == "subscribed"
			},
			func(ev client.Event) bool {
				p, ok := ev.(*client.PresenceEvent)
				return ok && p.Available && p.From.Equal(to.JID())
			})
	}
	// The roster push may come after the presence.
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		c, contact := pair[0], pair[1].JID()
		if !c.Subscribed(contact) {
			WaitFor(t, c, func(*client.RosterEvent) bool { return c.Subscribed(contact) })
		}
	}
}

// waitAll reads c's events until each of preds matched one, in any order,
// failing the test after 15 s.
func waitAll(t testing.TB, c *client.Client, preds ...func(client.Event) bool) {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	left := slices.Clone(preds)
	for len(left) > 0 {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("event channel closed")
			}
			left = slices.DeleteFunc(left, func(p func(client.Event) bool) bool { return p(ev) })
		case <-timer.C:
			t.Fatalf("timed out: %d of %d awaited events did not arrive", len(left), len(preds))
		}
	}
}

// History reads the archived conversation with with through c.History and
// returns the events, failing the test on an error.
func History(t testing.TB, c *client.Client, with jid.JID, opts client.HistoryOptions) []client.Event {
	t.Helper()
	var out []client.Event
	if err := c.History(context.Background(), with, opts, func(ev client.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
