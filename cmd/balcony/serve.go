package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/pgstore"
)

var serveCommand = &command{
	name:    "serve",
	summary: "run every account of a store, as a service",
	usage: `Usage: balcony serve [flags]
       balcony serve add JID [--server HOST:PORT] [--direct-tls] [--resource RES] [--password-env V | --password-file F]
       balcony serve list
       balcony serve keygen FILE

Runs every account of a store in one process, each as balcony listen
would: its events are written as JSON lines tagged with "account", and
its control socket takes balcony send, otr and esession for it.

Without --store the accounts are those of the configuration, each in its
SQLite store in the data directory. With --store (a PostgreSQL connection
string) they are the accounts of that database, and several serve
processes, on any hosts, share them: each account is served by exactly
one process at a time, holding the account's lock in the database; when a
process dies or loses the database, another takes its accounts over and
catches up from the server's archive where the first stopped. Every
process connects an account as the same full JID (--resource), so the
XMPP server ends the session of a former holder when the next binds, and
a process connects (or reconnects) an account only after the database
confirmed it still holds the lock: never are two sessions of an account
bound at once, whatever the timing.

Flags:
  --store URL         PostgreSQL connection string (default $BALCONY_STORE),
                      e.g. postgres://balcony@db.example.org/balcony?sslmode=verify-full
  --key-file F        the key protecting the accounts' secrets (default
                      $BALCONY_KEY_FILE; required with --store; make one with
                      balcony serve keygen). Without it SQLite stores are opened
                      with their passphrase (see below) or unencrypted.
  --events DEST       where events go: "stdout" (default) or unix:PATH, a socket
                      every connected process of this user reads all lines from
  --ca-file F         certificate authorities for the accounts' servers
  --resource RES      resource of PostgreSQL accounts with none set (default
                      balcony-serve; the same on every process: the server
                      then replaces a former holder's session when the next
                      binds)
  --lock-check DUR    how often a process checks its database connection
                      (default 1s; the same on every process)
  --poll DUR          how often a process looks for accounts nobody serves
                      (default 1s)
  --settle DUR        how far live messages may overtake each other
                      (default 5s; see the README)
  --verbose           log each account's connections on standard error
` + secretFlagsUsage + `
An account is taken over within --poll + 4 x --lock-check + the time to
connect after the database released the lock of its former process: at
once when that process died, within about 3 x --lock-check rounded up to
whole seconds when it was cut off. Each message is written at least once;
only the message being written when a process was killed or fenced (or, if
it noticed its loss late, what its replaced session had received) can be
written twice, with the same "stanza_id".
`,
	run: runServe,
}

// serveOptions are the timing options of balcony serve.
type serveOptions struct {
	lockCheck, poll, settle, saveTimeout time.Duration
	resource, caFile                     string
}

// server is one balcony serve process: where its accounts come from and
// where their events go. Everything else is per account.
type server struct {
	e         *env
	src       accountSource
	sink      *eventSink
	opts      serveOptions
	clientLog *slog.Logger
}

func (sv *server) logf(format string, args ...any) {
	fmt.Fprintf(sv.e.stderr, "balcony: serve: "+format+"\n", args...)
}

func runServe(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "add":
			return runServeAdd(ctx, e, args[1:])
		case "list":
			return runServeList(ctx, e, args[1:])
		case "keygen":
			if len(args) != 2 {
				return &usageError{msg: "serve keygen needs a file name", hint: "balcony serve keygen /etc/balcony/key"}
			}
			return store.GenerateKeyFile(args[1], rand.Reader)
		}
	}
	fs := newFlags("serve")
	var so secretOptions
	so.add(fs)
	dsn := fs.String("store", os.Getenv("BALCONY_STORE"), "")
	keyFile := fs.String("key-file", os.Getenv("BALCONY_KEY_FILE"), "")
	events := fs.String("events", "stdout", "")
	opts := serveOptions{}
	fs.StringVar(&opts.caFile, "ca-file", "", "")
	fs.StringVar(&opts.resource, "resource", "balcony-serve", "")
	fs.DurationVar(&opts.lockCheck, "lock-check", time.Second, "")
	fs.DurationVar(&opts.poll, "poll", time.Second, "")
	fs.DurationVar(&opts.settle, "settle", 5*time.Second, "")
	verbose := fs.Bool("verbose", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return &usageError{msg: "serve takes no arguments", hint: "run: balcony help serve"}
	}
	if opts.lockCheck < 10*time.Millisecond || opts.poll <= 0 || opts.settle <= 0 {
		return &usageError{msg: "--lock-check must be at least 10ms, --poll and --settle positive"}
	}
	sv := &server{e: e, opts: opts, clientLog: slog.New(slog.DiscardHandler)}
	if *verbose {
		sv.clientLog = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var w io.Writer = e.stdout
	if path, ok := strings.CutPrefix(*events, "unix:"); ok {
		sw, err := listenEvents(path)
		if err != nil {
			return err
		}
		defer sw.Close()
		w = sw
	} else if *events != "stdout" {
		return &usageError{msg: "--events must be stdout or unix:PATH"}
	}
	sv.sink = &eventSink{w: w}
	var key []byte
	if *keyFile != "" {
		k, err := store.ReadKeyFile(*keyFile)
		if err != nil {
			return err
		}
		key = k
		defer clear(key)
	}
	if *dsn == "" {
		cfg, err := loadConfig()
		if err != nil {
			return err
		}
		sv.src = &sqliteSource{e: e, cfg: cfg, so: &so, key: key}
		// A local store has no other host: nothing to wait for.
		sv.opts.saveTimeout = 10 * time.Second
		return sv.serveLocal(ctx)
	}
	if opts.resource == "" {
		// The XMPP server ends the session of a former host when the next
		// binds the same full JID: that needs a fixed resource.
		return &usageError{msg: "--resource must not be empty with --store"}
	}
	if key == nil {
		return withHint(errors.New("a PostgreSQL store needs the key file that protects its accounts"), "pass --key-file FILE or set BALCONY_KEY_FILE (make one with: balcony serve keygen FILE)")
	}
	pg, err := pgstore.Open(ctx, *dsn, &pgstore.Config{LockCheckInterval: opts.lockCheck})
	if err != nil {
		return err
	}
	defer pg.Close()
	sv.src = &pgSource{pg: pg, key: key, opts: &sv.opts}
	// A write still in flight when the host learns of its loss must not
	// land after another host started: it gives up within an interval.
	sv.opts.saveTimeout = opts.lockCheck
	return sv.serveShared(ctx, pg)
}

// serveLocal runs every configured account (SQLite stores) until ctx
// ends. The control socket's lock keeps a second process from serving
// an account at the same time.
func (sv *server) serveLocal(ctx context.Context) error {
	jids, err := sv.src.accounts(ctx)
	if err != nil {
		return err
	}
	if len(jids) == 0 {
		return &usageError{msg: "no account configured", hint: "add one with: balcony account add you@example.org"}
	}
	ended := make(chan string, len(jids))
	running := map[string]*served{}
	for _, j := range jids {
		running[j] = sv.startAccount(ctx, j, nil, nil, 0, ended)
	}
	sv.logf("serving %d accounts", len(jids))
	for len(running) > 0 {
		select {
		case <-ctx.Done():
			for _, a := range running {
				a.stop()
			}
			return nil
		case j := <-ended:
			running[j].stop()
			delete(running, j)
		}
	}
	return errors.New("every account stopped")
}

// serveShared runs the accounts of a PostgreSQL store that this process
// gets the lock of, until ctx ends. When the database connection holding
// the locks is lost, it stops every account at once and joins again.
func (sv *server) serveShared(ctx context.Context, pg *pgstore.Store) error {
	for {
		h, err := pg.NewHost(ctx, sv.opts.lockCheck)
		if err == nil {
			err = sv.hold(ctx, h)
			h.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		sv.logf("%v; joining again", err)
		t := time.NewTimer(sv.opts.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// hold serves accounts under the host connection h until ctx ends or h
// is lost. Every --poll it counts the live hosts and takes free accounts
// up to its share (the number of accounts divided by the hosts, rounded
// up), or hands one over when it holds more than its share.
func (sv *server) hold(ctx context.Context, h *pgstore.Host) error {
	fence := newFence()
	running := &holding{m: map[string]*served{}}
	ended := make(chan string)
	// Fencing does not wait for the loop below (which may be stopping an
	// account it hands over): the moment the connection is found lost,
	// nothing more of these accounts is written, since another host may
	// take them after its fence delay.
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		select {
		case <-h.Lost():
			sv.sink.fence(fence, running.names())
		case <-quit:
		}
	}()
	stopAll := func() {
		for _, a := range running.m {
			a.cancel()
		}
		for _, a := range running.m {
			<-a.done
		}
	}
	t := time.NewTicker(sv.opts.poll)
	defer t.Stop()
	for {
		if err := sv.balance(ctx, h, running, fence, ended); err != nil {
			if errors.Is(err, pgstore.ErrHostLost) {
				<-fence.done()
				stopAll()
				return err
			}
			sv.logf("%v", err)
		}
		select {
		case <-ctx.Done():
			stopAll()
			return nil
		case <-h.Lost():
			<-fence.done()
			stopAll()
			return pgstore.ErrHostLost
		case j := <-ended:
			<-running.m[j].done
			running.del(j)
			if err := h.Unlock(ctx, j); err != nil {
				sv.logf("%v", err)
			}
		case <-t.C:
		}
	}
}

// holding is the accounts a host serves: changed by hold's loop only,
// read by its fencing watcher too.
type holding struct {
	mu sync.Mutex
	m  map[string]*served
}

func (r *holding) add(j string, a *served) {
	r.mu.Lock()
	r.m[j] = a
	r.mu.Unlock()
}

func (r *holding) del(j string) {
	r.mu.Lock()
	delete(r.m, j)
	r.mu.Unlock()
}

func (r *holding) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var jids []string
	for j := range r.m {
		jids = append(jids, j)
	}
	return jids
}

// balance takes free accounts up to this host's share, or gives one up
// when it holds more.
func (sv *server) balance(ctx context.Context, h *pgstore.Host, running *holding, fence *hostFence, ended chan<- string) error {
	jids, err := sv.src.accounts(ctx)
	if err != nil {
		return err
	}
	hosts, err := h.Hosts(ctx)
	if err != nil {
		return err
	}
	share := int(math.Ceil(float64(len(jids)) / float64(hosts)))
	if len(running.m) > share {
		// Hand over one account per round (the last in byte order), so
		// that hosts which just started get theirs without a stampede.
		mine := running.names()
		sort.Strings(mine)
		j := mine[len(mine)-1]
		running.m[j].stop()
		running.del(j)
		return h.Unlock(ctx, j)
	}
	if len(running.m) >= share {
		return nil
	}
	busy, err := h.Served(ctx)
	if err != nil {
		return err
	}
	// Free accounts in random order, so that hosts starting together do
	// not all try the same ones first.
	mrand.Shuffle(len(jids), func(i, k int) { jids[i], jids[k] = jids[k], jids[i] })
	for _, j := range jids {
		if len(running.m) >= share {
			break
		}
		if busy[j] || running.m[j] != nil {
			continue
		}
		got, err := h.TryLock(ctx, j)
		if err != nil {
			return err
		}
		if got {
			holds := func(ctx context.Context) error { return h.Holds(ctx, j) }
			running.add(j, sv.startAccount(ctx, j, fence, holds, h.FenceDelay(), ended))
		}
	}
	return nil
}

// accountSource is where balcony serve finds its accounts and opens their
// stores.
type accountSource interface {
	accounts(ctx context.Context) ([]string, error)
	open(ctx context.Context, j string) (*accountConfig, store.AccountStore, error)
}

// sqliteSource is the configured accounts and their SQLite stores.
type sqliteSource struct {
	e   *env
	cfg *config
	so  *secretOptions
	key []byte
}

func (s *sqliteSource) accounts(context.Context) ([]string, error) {
	var jids []string
	for _, a := range s.cfg.Accounts {
		jids = append(jids, a.JID)
	}
	return jids, nil
}

func (s *sqliteSource) open(_ context.Context, j string) (*accountConfig, store.AccountStore, error) {
	a, err := s.cfg.account(j)
	if err != nil {
		return nil, nil, err
	}
	if s.key == nil {
		st, err := openStore(s.e, a, s.so)
		return a, st, err
	}
	dir, err := storeDir(a)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(dir, store.Options{Key: s.key})
	if err != nil {
		return nil, nil, storeError(err, a, dir)
	}
	if err := claimStore(st, a, dir); err != nil {
		st.Close()
		return nil, nil, err
	}
	return a, st, nil
}

// pgSource is the accounts of a PostgreSQL store.
type pgSource struct {
	pg   *pgstore.Store
	key  []byte
	opts *serveOptions
}

func (s *pgSource) accounts(ctx context.Context) ([]string, error) { return s.pg.Accounts(ctx) }

func (s *pgSource) open(ctx context.Context, j string) (*accountConfig, store.AccountStore, error) {
	st, err := s.pg.Open(ctx, j, store.Options{Key: s.key})
	if err != nil {
		return nil, nil, err
	}
	a := &accountConfig{JID: st.JID(), CAFile: s.opts.caFile, Resource: s.opts.resource}
	rec, err := st.Account(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		st.Close()
		return nil, nil, err
	default:
		a.Server, a.DirectTLS = rec.Server, rec.DirectTLS
		if rec.Resource != "" {
			a.Resource = rec.Resource
		}
	}
	return a, st, nil
}
