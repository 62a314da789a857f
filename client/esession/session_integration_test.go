package esession_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/xmltree"
)

// TestIntegrationPassword: a SIGMA-R session (the 4-message exchange)
// with a password both users entered (XEP-0116 "other shared secret");
// with different passwords the negotiation fails on both sides and
// nothing is sent in a session.
func TestIntegrationPassword(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{Secrets: &engine.MemorySecrets{}})
	b, be := connectES(t, srv, bob, "phone", esession.Config{Secrets: &engine.MemorySecrets{}})
	ctx := context.Background()

	info, err := ae.Start(ctx, b.JID(), &esession.StartOptions{Password: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b, securityEvent(esession.KindRequest))
	if _, err := be.Accept(ctx, a.JID(), &esession.AcceptOptions{Password: []byte("correct horse")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{a, b} {
		est := clienttest.WaitFor(t, c, securityEvent(esession.KindEstablished))
		if !strings.Contains(est.Text, "password you share") || len(est.Fingerprint) != 5 {
			t.Fatalf("%s: %+v", c.JID(), est)
		}
	}
	got, err := ae.WaitFor(ctx, b.JID(), info.Thread, func(i esession.Info) bool { return i.State == "active" })
	if err != nil || !got.Password || got.ThreeMessage {
		t.Fatalf("session %+v, %v", got, err)
	}
	exchange(t, a, b, "with a password", got.SAS, got.Thread, false)
	ae.End(ctx, b.JID())
	clienttest.WaitFor(t, a, securityEvent(esession.KindTerminated))

	// Different passwords: the negotiation fails; nobody is established.
	if _, err := ae.Start(ctx, b.JID(), &esession.StartOptions{Password: []byte("correct horse")}); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b, securityEvent(esession.KindRequest))
	if _, err := be.Accept(ctx, a.JID(), &esession.AcceptOptions{Password: []byte("battery staple")}); err != nil {
		t.Fatal(err)
	}
	// Bob, the responder, cannot tell before alice checks his identity
	// (message 4 of XEP-0217): his session ends on her error.
	seen := until(t, b, func(ev client.Event) bool {
		se, ok := ev.(*client.SecurityEvent)
		return ok && (se.Kind == esession.KindFailed || se.Kind == esession.KindTerminated)
	})
	if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: "no"}, nsES); err == nil {
		t.Fatalf("bob sent in a session with another password: %v", kinds(seen))
	}
	seen = until(t, a, func(ev client.Event) bool {
		se, ok := ev.(*client.SecurityEvent)
		return ok && (se.Kind == esession.KindFailed || se.Kind == esession.KindTerminated)
	})
	if slices.Contains(kinds(seen), esession.KindEstablished) {
		t.Fatalf("alice established with another password: %v", kinds(seen))
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "no"}, nsES); err == nil {
		t.Fatal("sent without an established session")
	}
}

// clock is a test clock the mechanism reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestIntegrationRekeyUnderLoad: both sides send messages at the same
// time while keys are exchanged: by the agreed rekey_freq (every few
// stanzas), on demand (Rekey), and after inactivity (Tick on a test
// clock). Every message arrives, in order, and the session stays up.
func TestIntegrationRekeyUnderLoad(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	clk := &clock{t: time.Now()}
	cfg := esession.Config{RekeyFreq: 7, IdleTimeout: 10 * time.Minute, TickInterval: -1, Now: clk.now, AcceptPolicy: esession.AcceptSubscribed}
	a, ae := connectES(t, srv, alice, "laptop", cfg)
	b, be := connectES(t, srv, bob, "phone", cfg)
	clienttest.Subscribe(t, a, b)
	_, _, info := establish(t, a, ae, b)
	if info.RekeyFreq != 7 {
		t.Fatalf("rekey_freq %d", info.RekeyFreq)
	}
	ctx := context.Background()
	if _, err := ae.Rekey(ctx, b.JID()); err == nil {
		t.Fatal("a key exchange before rekey_freq stanzas")
	}

	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		es := ae
		if from == b {
			es = be
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := from.Send(ctx, &client.Outgoing{To: to.JID(), Body: fmt.Sprintf("%s %d", from.JID().Localpart(), i)}, nsES); err != nil {
					errs <- fmt.Errorf("%s message %d: %w", from.JID(), i, err)
					return
				}
				if i%20 == 19 {
					// On demand, whenever the agreed frequency allows it.
					if _, err := es.Rekey(ctx, to.JID()); err != nil && !strings.Contains(err.Error(), "fewer stanzas") {
						errs <- err
						return
					}
				}
			}
		}()
	}
	receive := func(c *client.Client, from string) {
		defer wg.Done()
		next := 0
		deadline := time.After(60 * time.Second)
		for next < n {
			select {
			case ev := <-c.Events():
				switch ev := ev.(type) {
				case *client.MessageEvent:
					if ev.Body == "" {
						continue
					}
					if want := fmt.Sprintf("%s %d", from, next); ev.Body != want || !ev.Security.Authenticated {
						errs <- fmt.Errorf("%s got %q (%+v), want %q", c.JID(), ev.Body, ev.Security, want)
						return
					}
					next++
				case *client.NoticeEvent:
					errs <- fmt.Errorf("%s: notice %s", c.JID(), ev.Text)
					return
				case *client.SecurityEvent:
					if ev.Kind == esession.KindTerminated || ev.Kind == esession.KindFailed {
						errs <- fmt.Errorf("%s: %s", c.JID(), ev.Text)
						return
					}
				}
			case <-deadline:
				errs <- fmt.Errorf("%s received %d of %d messages from %s", c.JID(), next, n, from)
				return
			}
		}
	}
	wg.Add(2)
	go receive(b, "alice")
	go receive(a, "bob")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	exchange(t, a, b, "after the load", info.SAS, info.Thread, false)
	for _, es := range []*esession.Mechanism{ae, be} {
		if st := es.Status(); st[len(st)-1].State != "active" {
			t.Fatalf("session after the load: %+v", st[len(st)-1])
		}
	}
}

// TestIntegrationRekeyIdle: past the idle timeout (on a test clock), a
// session that may re-key does (KindRekeyed) and goes on; one that may
// not yet (fewer stanzas than rekey_freq since its last key exchange)
// ends, at both sides (XEP-0200 §12.4).
func TestIntegrationRekeyIdle(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	clk := &clock{t: time.Now()}
	cfg := esession.Config{RekeyFreq: 1, IdleTimeout: 10 * time.Minute, TickInterval: -1, Now: clk.now, AcceptPolicy: esession.AcceptSubscribed}
	a, ae := connectES(t, srv, alice, "laptop", cfg)
	b, be := connectES(t, srv, bob, "phone", cfg)
	clienttest.Subscribe(t, a, b)
	_, _, info := establish(t, a, ae, b)
	ctx := context.Background()
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "one"}, nsES); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "one" })

	// Bob has received a stanza since the last key exchange: he may.
	clk.add(11 * time.Minute)
	be.Tick(ctx)
	if ev := clienttest.WaitFor(t, b, securityEvent(esession.KindRekeyed)); !strings.Contains(ev.Text, "idle") {
		t.Fatalf("rekey event %+v", ev)
	}
	exchange(t, a, b, "after the idle re-key", info.SAS, info.Thread, false)

	// Alice's last stanza carried her key exchange: idle again, she may
	// not re-key, and the session ends.
	for i := 0; ; i++ {
		_, err := ae.Rekey(ctx, b.JID())
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrRekeyTooSoon) || i == 5 {
			t.Fatal(err)
		}
		// A stanza of alice's carried a key exchange meanwhile (with
		// rekey_freq 1, stanzas do as soon as one was exchanged): one
		// more from bob allows hers.
		body := fmt.Sprintf("more %d", i)
		if _, err := b.Send(ctx, &client.Outgoing{To: a.JID(), Body: body}, nsES); err != nil {
			t.Fatal(err)
		}
		clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body == body })
	}
	clk.add(11 * time.Minute)
	ae.Tick(ctx)
	if ev := clienttest.WaitFor(t, a, securityEvent(esession.KindTerminated)); !strings.Contains(ev.Text, "inactive") {
		t.Fatalf("alice: %+v", ev)
	}
	clienttest.WaitFor(t, b, securityEvent(esession.KindTerminated))
}

// TestIntegrationMustNotLogging: a session agreed as logging=mustnot
// (XEP-0136 via XEP-0155) leaves nothing in either archive: the server
// archived by default, so each client put the contact on its archive's
// "never" list while the session lasted, and took it back after.
func TestIntegrationMustNotLogging(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	a, ae := connectES(t, srv, alice, "laptop", esession.Config{Logging: engine.LoggingMustNot, AcceptPolicy: esession.AcceptSubscribed})
	b, be := connectES(t, srv, bob, "phone", esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a, b)
	ctx := context.Background()
	// A plain message before: the archive works and keeps it.
	if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "archived"}, ""); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "archived" })

	ea, eb, info := establish(t, a, ae, b)
	for _, ev := range []*client.SecurityEvent{ea, eb} {
		if !strings.Contains(ev.Text, "Logging: mustnot") {
			t.Fatalf("the agreement is not told: %s", ev.Text)
		}
	}
	if info.Logging != engine.LoggingMustNot || !ae.MustNotLog(b.JID(), info.Thread) || !be.MustNotLog(a.JID(), info.Thread) {
		t.Fatalf("session %+v", info)
	}
	for _, c := range []*client.Client{a, b} {
		ev := clienttest.WaitFor(t, c, securityEvent(esession.KindLogging))
		if !strings.Contains(ev.Text, "never") {
			t.Fatalf("%s archive check: %s", c.JID(), ev.Text)
		}
	}
	if never := neverList(t, a); !slices.Contains(never, "bob@localhost") {
		t.Fatalf("alice's archive would keep the session: never %q", never)
	}
	exchange(t, a, b, "off the record", info.SAS, info.Thread, false)
	for _, x := range []struct {
		c    *client.Client
		peer *client.Client
	}{{a, b}, {b, a}} {
		var bodies []string
		for _, ev := range clienttest.History(t, x.c, x.peer.JID().Bare(), client.HistoryOptions{}) {
			switch ev := ev.(type) {
			case *client.MessageEvent:
				bodies = append(bodies, ev.Body)
			case *client.NoticeEvent:
				bodies = append(bodies, "notice: "+ev.Text)
			}
		}
		if !slices.Equal(bodies, []string{"archived"}) {
			t.Fatalf("%s's archive with %s: %q", x.c.JID(), x.peer.JID(), bodies)
		}
	}
	// The exception is taken back once the session is over.
	ae.End(ctx, b.JID())
	for _, x := range []struct {
		c    *client.Client
		peer string
	}{{a, "bob@localhost"}, {b, "alice@localhost"}} {
		clienttest.WaitFor(t, x.c, func(ev *client.SecurityEvent) bool {
			return ev.Kind == esession.KindLogging && strings.Contains(ev.Text, "taken back")
		})
		if never := neverList(t, x.c); slices.Contains(never, x.peer) {
			t.Fatalf("%s: archive never list %q", x.c.JID(), never)
		}
	}
}

// neverList reads the "never" list of the account's archive.
func neverList(t *testing.T, c *client.Client) []string {
	t.Helper()
	resp, err := c.IQ(context.Background(), xmltree.New(client.NSClient, "iq", "type", "get").Append(xmltree.New(esession.NSMAM, "prefs")))
	if err != nil {
		t.Fatal(err)
	}
	var never []string
	if n := resp.Child(esession.NSMAM, "prefs").Child(esession.NSMAM, "never"); n != nil {
		for _, j := range n.ChildrenNamed(esession.NSMAM, "jid") {
			never = append(never, j.Text())
		}
	}
	return never
}
