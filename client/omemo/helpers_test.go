package omemo_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/servertest"
	engine "github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/store"
)

const wait = 30 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// dev is one Balcony device of an account: a client with the OMEMO glue
// registered and its own store, whose events are collected.
type dev struct {
	t    testing.TB
	c    *client.Client
	d    *omemo.Device
	st   *store.Store
	bare jid.JID

	mu      sync.Mutex
	events  []client.Event
	arrived chan struct{}
	done    chan struct{}
}

type devOptions struct {
	resource string
	st       *store.Store // nil: a new store
	cfg      omemo.Config
	// noPublish leaves the device unannounced.
	noPublish bool
	// wrap, if set, stands between the device and its store.
	wrap func(omemo.Store) omemo.Store
}

// connect logs acct in with a new (or the given) store and the OMEMO
// mechanisms registered, and announces the device.
func connect(t testing.TB, srv *servertest.Server, acct servertest.Account, o devOptions) *dev {
	t.Helper()
	st := o.st
	if st == nil {
		var err error
		if st, err = store.Create(t.TempDir(), store.Options{Unencrypted: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
	}
	cfg := o.cfg
	cfg.Store = st
	if o.wrap != nil {
		cfg.Store = o.wrap(st)
	}
	d, err := omemo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := clienttest.ConnectTo(t, srv, acct, o.resource, func(c *client.Client) {
		for _, m := range d.Mechanisms() {
			if err := c.Register(m); err != nil {
				t.Fatal(err)
			}
		}
	}, func(cfg *client.Config) {
		if os.Getenv("OMEMO_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	v := &dev{t: t, c: c, d: d, st: st, bare: acct.JID.Bare(), arrived: make(chan struct{}), done: make(chan struct{})}
	go v.collect()
	if !o.noPublish {
		if err := d.Publish(ctxT(t)); err != nil {
			t.Fatalf("publishing %s's OMEMO device: %v", acct.JID, err)
		}
	}
	return v
}

func (v *dev) collect() {
	defer close(v.done)
	for ev := range v.c.Events() {
		v.mu.Lock()
		v.events = append(v.events, ev)
		close(v.arrived)
		v.arrived = make(chan struct{})
		v.mu.Unlock()
	}
}

// next removes and returns the first event of type E that pred accepts
// (nil: any), waiting for it; other events stay queued.
func next[E client.Event](t testing.TB, v *dev, pred func(E) bool) E {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		i := slices.IndexFunc(v.events, func(ev client.Event) bool {
			e, ok := ev.(E)
			return ok && (pred == nil || pred(e))
		})
		arrived := v.arrived
		if i >= 0 {
			ev := v.events[i].(E)
			v.events = slices.Delete(v.events, i, i+1)
			v.mu.Unlock()
			return ev
		}
		v.mu.Unlock()
		select {
		case <-arrived:
		case <-v.done:
			var zero E
			t.Fatalf("%s: events ended waiting for %T", v.c.JID(), zero)
		case <-deadline.C:
			var zero E
			v.mu.Lock()
			defer v.mu.Unlock()
			t.Fatalf("%s: no %T in %v; queued: %s", v.c.JID(), zero, wait, describe(v.events))
		}
	}
}

// pending returns the queued events of type E that pred accepts, without
// removing them.
func pending[E client.Event](v *dev, pred func(E) bool) []E {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []E
	for _, ev := range v.events {
		if e, ok := ev.(E); ok && (pred == nil || pred(e)) {
			out = append(out, e)
		}
	}
	return out
}

func describe(evs []client.Event) string {
	s := ""
	for _, ev := range evs {
		switch e := ev.(type) {
		case *client.MessageEvent:
			s += fmt.Sprintf("[message %s %q %s] ", e.From, e.Body, e.Security.State())
		case *client.NoticeEvent:
			s += fmt.Sprintf("[notice %s %v %s] ", e.From, e.Reason, e.Text)
		case *client.SecurityEvent:
			s += fmt.Sprintf("[security %s %s %s] ", e.Peer, e.Kind, e.Text)
		default:
			s += fmt.Sprintf("[%T] ", ev)
		}
	}
	return s
}

// message waits for the next message from bare with body.
func (v *dev) message(t testing.TB, from jid.JID, body string) *client.MessageEvent {
	t.Helper()
	ev := next(t, v, func(e client.Event) bool {
		switch e := e.(type) {
		case *client.MessageEvent:
			return e.Body != "" && e.From.Bare().Equal(from.Bare())
		case *client.NoticeEvent:
			return e.From.Bare().Equal(from.Bare())
		}
		return false
	})
	m, ok := ev.(*client.MessageEvent)
	if !ok {
		t.Fatalf("%s: waiting for %q from %s got %s", v.c.JID(), body, from, describe([]client.Event{ev}))
	}
	if m.Body != body {
		t.Fatalf("%s: got %q from %s, want %q", v.c.JID(), m.Body, from, body)
	}
	return m
}

// notice waits for the next notice (or message, which fails the test)
// from bare.
func (v *dev) notice(t testing.TB, from jid.JID) *client.NoticeEvent {
	t.Helper()
	ev := next(t, v, func(e client.Event) bool {
		switch e := e.(type) {
		case *client.MessageEvent:
			return e.Body != "" && e.From.Bare().Equal(from.Bare())
		case *client.NoticeEvent:
			return e.From.Bare().Equal(from.Bare())
		}
		return false
	})
	n, ok := ev.(*client.NoticeEvent)
	if !ok {
		t.Fatalf("%s: waiting for a notice from %s got %s", v.c.JID(), from, describe([]client.Event{ev}))
	}
	return n
}

// send sends body to to with generation g.
func (v *dev) send(t testing.TB, to jid.JID, g engine.Generation, body string) client.Sent {
	t.Helper()
	s, err := v.c.Send(ctxT(t), &client.Outgoing{To: to, Body: body}, g.Namespace())
	if err != nil {
		t.Fatalf("%s sending %q with %v: %v", v.c.JID(), body, g, err)
	}
	return s
}

// noMessages fails the test if messages or notices are queued.
func (v *dev) noMessages(t testing.TB) {
	t.Helper()
	if evs := pending(v, func(e client.Event) bool {
		switch e.(type) {
		case *client.MessageEvent, *client.NoticeEvent:
			return true
		}
		return false
	}); len(evs) > 0 {
		t.Errorf("%s: unexpected %s", v.c.JID(), describe(evs))
	}
}

var gens = []engine.Generation{engine.V2, engine.V03}

func mechName(g engine.Generation) string { return eme.DisplayName(g.Namespace(), "") }
