package esession_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/esession"
	engine "github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/prosodytest"
)

// TestIntegrationOfflineSession: alice publishes signed offline options
// when she goes offline (XEP-0187); bob, who holds her key, starts an
// offline session and sends two messages while she is away; when she
// connects she reads both, in order, from her server's offline storage,
// with her secrets from her store; her coming back ends bob's offline
// session. Options past their expiry are refused without reading
// anything.
func TestIntegrationOfflineSession(t *testing.T) {
	srv := prosodytest.Start(t)
	alice, bob := srv.AddUser(t, "alice", ""), srv.AddUser(t, "bob", "")
	ast, bst := newStore(t), newStore(t)
	acfg := esession.Config{Offline: ast, OfflineLifetime: time.Hour, AcceptPolicy: esession.AcceptSubscribed}
	a := connectKeyed(t, srv, alice, "laptop", ast, acfg)
	b := connectKeyed(t, srv, bob, "phone", bst, esession.Config{AcceptPolicy: esession.AcceptSubscribed})
	clienttest.Subscribe(t, a.c, b.c)
	for _, x := range []struct{ pub, sub keyed }{{a, b}, {b, a}} {
		x.pub.publish(t)
		clienttest.WaitFor(t, x.sub.c, func(se *client.SecurityEvent) bool { return se.Kind == esession.KindKeyNew })
	}
	ctx := context.Background()
	if _, err := b.es.StartOffline(ctx, a.c.JID(), "no"); !errors.Is(err, esession.ErrPeerOnline) {
		t.Fatalf("offline session with a contact online: %v", err)
	}

	// Alice goes offline: Close publishes her offline options first.
	if err := a.c.Close(); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b.c, func(p *client.PresenceEvent) bool { return !p.Available && p.From.Equal(a.c.JID()) })
	info, err := b.es.StartOffline(ctx, a.c.JID().Bare(), "while you were away")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "active" || !info.Offline || info.Peer != "alice@localhost" || info.PeerKey != a.fp {
		t.Fatalf("bob's offline session %+v", info)
	}
	clienttest.WaitFor(t, b.c, securityEvent(esession.KindOffline))
	if _, err := b.c.Send(ctx, &client.Outgoing{To: a.c.JID().Bare(), Body: "and this too"}, nsES); err != nil {
		t.Fatal(err)
	}

	// Alice is back (her keys and secrets are in her store): she reads.
	a2 := connectKeyed(t, srv, alice, "laptop", ast, acfg)
	if a2.fp != a.fp {
		t.Fatalf("key %q after reconnecting, %q before", a2.fp, a.fp)
	}
	seen := until(t, a2.c, func(ev client.Event) bool {
		m, ok := ev.(*client.MessageEvent)
		return ok && m.Body == "and this too"
	})
	var bodies []string
	for _, ev := range seen {
		if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" {
			bodies = append(bodies, m.Body)
			if !m.Security.Authenticated || m.Security.Fingerprint != b.fp || !m.Origin.Delayed {
				t.Fatalf("offline message %q: %+v %+v", m.Body, m.Security, m.Origin)
			}
		}
	}
	if !slices.Equal(bodies, []string{"while you were away", "and this too"}) {
		t.Fatalf("alice read %q:\n%s", bodies, describe(seen))
	}
	k := kinds(seen)
	if ei := slices.Index(k, esession.KindEstablished); ei < 0 {
		t.Fatalf("no established event: %v", k)
	}
	for _, ev := range seen {
		if se, ok := ev.(*client.SecurityEvent); ok && se.Kind == esession.KindEstablished && !strings.Contains(se.Text, "offline") {
			t.Fatalf("established event %s", se.Text)
		}
	}
	// Bob sees her come back: his offline session ends, and so does hers.
	clienttest.WaitFor(t, b.c, securityEvent(esession.KindTerminated))
	clienttest.WaitFor(t, a2.c, securityEvent(esession.KindTerminated))
	if err := a2.es.WithdrawOffline(ctx); err != nil {
		t.Fatal(err)
	}
	if items, err := b.c.FetchItems(ctx, a.c.JID().Bare(), engine.NSOffline, 1); err == nil && len(items) > 0 {
		t.Fatalf("options still published after coming back: %d items", len(items))
	}

	// Alice goes offline again; she comes back after her options expired
	// (her clock two hours on): bob's offline session is refused and
	// nothing of it is shown.
	if err := a2.c.Close(); err != nil {
		t.Fatal(err)
	}
	clienttest.WaitFor(t, b.c, func(p *client.PresenceEvent) bool { return !p.Available && p.From.Equal(a.c.JID()) })
	if _, err := b.es.StartOffline(ctx, a.c.JID().Bare(), "too late"); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	a3cfg := acfg
	a3cfg.Now = later
	a3 := connectKeyed(t, srv, alice, "laptop", ast, a3cfg)
	seen = until(t, a3.c, func(ev client.Event) bool {
		switch ev := ev.(type) {
		case *client.NoticeEvent:
			return true
		case *client.SecurityEvent:
			return ev.Kind == esession.KindIgnored
		}
		return false
	})
	if strings.Contains(describe(seen), "too late") || !strings.Contains(describe(seen), "expired") {
		t.Fatalf("expired offline session:\n%s", describe(seen))
	}
}
