package faulttest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/internal/storeoutbox"
)

// TestOutboxAcrossRestart: messages written while the server cannot be
// reached (in the clear, with OX, with OMEMO) wait in the store's outbox, survive the end of the process (a
// new client on the same store), and leave in order, once each, when the
// connection is back; the outbox is empty afterwards.
func TestOutboxAcrossRestart(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		aliceAcct := srv.AddUser(t, "alice", "")
		alice := newPeer(t, srv, aliceAcct, options{ox: true, omemo: true})
		bob := newPeer(t, srv, srv.AddUser(t, "bob", ""), options{ox: true, omemo: true})
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		// Alice learns bob's OX key and OMEMO device while online.
		for _, mech := range []string{eme.OX, eme.OMEMO2} {
			if _, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID().Bare(), Body: "hello " + mech}, mech); err != nil {
				t.Fatal(err)
			}
			bob.col.wait(t, "hello", has(func(m *client.MessageEvent) bool { return m.Body == "hello "+mech }))
		}

		alice.proxy.Refuse(true)
		alice.proxy.Cut()
		alice.col.wait(t, "alice disconnected", has(func(e *client.ConnectionEvent) bool { return e.State == client.Disconnected }))
		var ids []string
		for _, m := range []struct{ body, mech string }{{"one", ""}, {"two", eme.OX}, {"three", ""}, {"four", eme.OMEMO2}} {
			sent, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID().Bare(), Body: m.body, Receipt: true}, m.mech)
			if err != nil || !sent.Queued {
				t.Fatalf("%s while offline: %+v, %v", m.body, sent, err)
			}
			ids = append(ids, sent.ID)
		}
		// OTR cannot wait: refused with a reason, nothing queued.
		if _, err := alice.c.Send(ctx, &client.Outgoing{To: bob.c.JID(), Body: "private"}, eme.OTR); err == nil {
			t.Fatal("an OTR message without a connection was accepted")
		}
		if err := alice.c.Close(); err != nil {
			t.Logf("closing offline: %v", err)
		}
		queued, err := storeoutbox.Store{S: alice.st}.Queued(ctx)
		if err != nil || len(queued) != 4 || queued[1].Mechanism != eme.OX || queued[1].ID != ids[1] || !queued[2].Receipt || queued[3].Mechanism != eme.OMEMO2 {
			t.Fatalf("outbox after the process ended: %+v, %v", queued, err)
		}

		// A new process on the same store, the server reachable again.
		alice.proxy.Refuse(false)
		cfg := client.Config{JID: alice.c.JID(), Password: aliceAcct.Password, Addr: alice.proxy.Addr(), CAFile: srv.CAFile,
			Outbox: storeoutbox.Store{S: alice.st}}
		quick(&cfg)
		again, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { again.Close() })
		if err := again.Register(alice.ox); err != nil {
			t.Fatal(err)
		}
		for _, m := range alice.omemo.Mechanisms() {
			if err := again.Register(m); err != nil {
				t.Fatal(err)
			}
		}
		col := collect(again)
		if err := again.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		bob.col.wait(t, "the queued messages", has(func(m *client.MessageEvent) bool { return m.Body == "four" }))
		var got []string
		for _, ev := range bob.col.snapshot() {
			if m, ok := ev.(*client.MessageEvent); ok && m.Body != "" && !strings.HasPrefix(m.Body, "hello ") {
				got = append(got, m.Body+"/"+m.Security.Mechanism)
			}
		}
		if want := []string{"one/", "two/" + eme.OX, "three/", "four/" + eme.OMEMO2}; !slices.Equal(got, want) {
			t.Fatalf("bob got %v, want %v", got, want)
		}
		// The sender learns each was delivered, and the outbox is empty
		// once the server has them.
		for _, id := range ids {
			col.wait(t, "delivered "+id, has(func(f *client.FateEvent) bool { return f.ID == id && f.Fate == client.FateDelivered }))
		}
		// Close waits for the removals from the outbox.
		if err := again.Close(); err != nil {
			t.Fatal(err)
		}
		if q, err := (storeoutbox.Store{S: alice.st}).Queued(ctx); err != nil || len(q) != 0 {
			t.Fatalf("outbox not emptied: %+v, %v", q, err)
		}
	})
}
