package e2ebench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/servertest"
)

// Load: many accounts of the test Prosody in this process, in pairs, each
// pair exchanging encrypted messages both ways (OX, OTR, Encrypted
// Sessions, OMEMO 2 and OMEMO 0.3 in turn) for a bounded time. Counted: messages, errors (failed
// sends, notices, messages that arrive with another mechanism, twice or
// not at all), latency; goroutines, open files and heap before the
// accounts start and after they stop, which must come back (no leak).
//
// BALCONY_LOAD_ACCOUNTS (default 12: a pair per mechanism, two for OX) and
// BALCONY_LOAD_SECONDS (default 2) size it; more than 20 accounts only
// with BALCONY_BENCH=1. scripts/bench.sh runs 200 accounts for 30 s.

// loadWindow is the messages one direction of a pair may have in flight:
// each user waits for a message to arrive before sending the next, a
// brisk conversation rather than a flood.
const loadWindow = 1

// loadLeakSlack is how much heap may remain after the accounts stop:
// caches filled once per process (TLS, the parser's name tables, key
// parsing), not per account.
const loadLeakSlack = 8 << 20

// registerMany registers accounts name0..name(n-1) on srv, a few at a time
// (each registration is a prosodyctl process).
func registerMany(t *testing.T, srv *servertest.Server, name string, n int) []servertest.Account {
	t.Helper()
	accts := make([]servertest.Account, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			accts[i], errs[i] = addUser(srv, fmt.Sprintf("%s%d", name, i))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return accts
}

// addUser is servertest.Server.AddUser without a testing.TB, for use from
// several goroutines.
func addUser(srv *servertest.Server, local string) (servertest.Account, error) {
	pass := strconv.FormatUint(uint64(time.Now().UnixNano()), 36) + local
	script := servertest.Script(srv.Kind + "-harness.sh")
	if out, err := exec.Command(script, "adduser", srv.Dir, local, pass, srv.Domain).CombinedOutput(); err != nil {
		return servertest.Account{}, fmt.Errorf("registering %s: %v\n%s", local, err, out)
	}
	j, err := jid.New(local, srv.Domain, "")
	return servertest.Account{JID: j, Password: pass}, err
}

// loadStats are counted by every pair.
type loadStats struct {
	sent, received, errors atomic.Int64
	cpu, srvCPU            time.Duration // this process's and the server's, during the load
	mu                     sync.Mutex
	lat                    Latencies
	firstErr               []string
}

func (s *loadStats) fail(format string, args ...any) {
	s.errors.Add(1)
	s.mu.Lock()
	if len(s.firstErr) < 10 {
		s.firstErr = append(s.firstErr, fmt.Sprintf(format, args...))
	}
	s.mu.Unlock()
}

// direction runs one direction of a pair until stop: from sends, to's
// events are read by recv (one reader per client).
type loadDir struct {
	p        *pair
	from, to *endpoint
	tag      string
	tokens   chan struct{}
	mu       sync.Mutex
	sentAt   map[int]time.Time
}

func (d *loadDir) send(ctx context.Context, stop <-chan struct{}, st *loadStats) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-d.tokens:
		}
		d.mu.Lock()
		d.sentAt[i] = time.Now()
		d.mu.Unlock()
		out := &client.Outgoing{To: d.to.c.JID(), Body: d.tag + strconv.Itoa(i) + " " + bodyPad}
		if _, err := d.from.c.Send(ctx, out, d.p.m.ns); err != nil {
			st.fail("%s: send: %v", d.tag, err)
			d.mu.Lock()
			delete(d.sentAt, i)
			d.mu.Unlock()
			d.tokens <- struct{}{}
			continue
		}
		st.sent.Add(1)
	}
}

// receive handles one event addressed to this direction; it reports
// whether the event was one of its messages.
func (d *loadDir) receive(ev client.Event, st *loadStats) bool {
	m, ok := ev.(*client.MessageEvent)
	if !ok {
		return false
	}
	rest, ok := strings.CutPrefix(m.Body, d.tag)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, ' '))])
	d.mu.Lock()
	at, known := d.sentAt[i]
	delete(d.sentAt, i)
	d.mu.Unlock()
	switch {
	case err != nil || !known:
		st.fail("%s: unexpected or repeated message %q", d.tag, m.Body)
	case m.Security.Mechanism != d.p.m.ns:
		st.fail("%s: arrived with mechanism %q", d.tag, m.Security.Mechanism)
	default:
		st.received.Add(1)
		st.mu.Lock()
		st.lat = append(st.lat, time.Since(at))
		st.mu.Unlock()
	}
	select {
	case d.tokens <- struct{}{}:
	default:
	}
	return true
}

func (d *loadDir) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sentAt)
}

// readEvents reads e's events, handing messages to in, until done.
func readEvents(e *endpoint, in *loadDir, st *loadStats, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case ev, ok := <-e.c.Events():
			if !ok {
				return
			}
			if n, ok := ev.(*client.NoticeEvent); ok {
				st.fail("%s: notice %s: %s", in.tag, n.Reason, n.Text)
				continue
			}
			in.receive(ev, st)
		}
	}
}

// resources are what must come back after the accounts stop.
type resources struct {
	goroutines, fds int
	heap            uint64
}

func measureResources(t *testing.T) resources {
	t.Helper()
	fds, err := OpenFDs()
	if err != nil {
		t.Fatal(err)
	}
	return resources{goroutines: runtime.NumGoroutine(), fds: fds, heap: HeapAfterGC()}
}

// runLoad connects the accounts in pairs, runs the load for the given
// time and waits for what is in flight; it returns the load's duration
// and the resources in use with every account connected.
func runLoad(t *testing.T, srv *servertest.Server, accts []servertest.Account, seconds int, st *loadStats) (time.Duration, resources) {
	start := time.Now()
	var rows []mechanism
	for _, m := range mechanisms {
		if m.ns != "" {
			rows = append(rows, m)
		}
	}
	var pairs []*pair
	for i := 0; i+1 < len(accts); i += 2 {
		m := rows[(i/2)%len(rows)]
		pairs = append(pairs, connectAccounts(t, srv, m, i/2, [2]servertest.Account{accts[i], accts[i+1]}))
	}
	t.Logf("%d pairs connected and ready in %v", len(pairs), time.Since(start).Round(time.Millisecond))
	during := measureResources(t)

	ctx := context.Background()
	stop, done := make(chan struct{}), make(chan struct{})
	var senders, readers sync.WaitGroup
	var dirs []*loadDir
	for k, p := range pairs {
		ab := &loadDir{p: p, from: p.a, to: p.b, tag: fmt.Sprintf("load p%d ab ", k), tokens: make(chan struct{}, loadWindow), sentAt: map[int]time.Time{}}
		ba := &loadDir{p: p, from: p.b, to: p.a, tag: fmt.Sprintf("load p%d ba ", k), tokens: make(chan struct{}, loadWindow), sentAt: map[int]time.Time{}}
		for _, d := range []*loadDir{ab, ba} {
			for range loadWindow {
				d.tokens <- struct{}{}
			}
			dirs = append(dirs, d)
			senders.Add(1)
			go func() { defer senders.Done(); d.send(ctx, stop, st) }()
		}
		readers.Add(2)
		go func() { defer readers.Done(); readEvents(p.b, ab, st, done) }()
		go func() { defer readers.Done(); readEvents(p.a, ba, st, done) }()
	}
	srvPID := serverPID(srv)
	cpu0, srv0 := cpuTime(), serverCPU(srvPID)
	load := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second) // the load's duration, not a wait for an event
	close(stop)
	senders.Wait()
	elapsed := time.Since(load)
	st.cpu, st.srvCPU = cpuTime()-cpu0, serverCPU(srvPID)-srv0
	// Whatever is in flight arrives (bounded).
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := 0
		for _, d := range dirs {
			n += d.pending()
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			st.fail("%d messages never arrived", n)
			break
		}
		time.Sleep(50 * time.Millisecond) // polling counters the readers update
	}
	close(done)
	readers.Wait()
	// Every account stops (the subtest's cleanups close the stores).
	for _, p := range pairs {
		for _, e := range []*endpoint{p.a, p.b} {
			e.c.Close()
			for range e.c.Events() {
			}
		}
	}
	return elapsed, during
}

func TestLoadManyAccounts(t *testing.T) {
	accounts := envInt("BALCONY_LOAD_ACCOUNTS", 12)
	seconds := envInt("BALCONY_LOAD_SECONDS", 2)
	if accounts > 20 && os.Getenv(EnvBench) != "1" {
		t.Skipf("more than 20 accounts only with %s=1", EnvBench)
	}
	srv := servertest.StartProsody(t)
	start := time.Now()
	accts := registerMany(t, srv, "load", accounts&^1)
	t.Logf("%d accounts registered in %v", len(accts), time.Since(start).Round(time.Millisecond))

	before := measureResources(t)
	var st loadStats
	var during resources
	var elapsed time.Duration
	// The accounts live in a subtest: its cleanups (closing clients and
	// stores) have run when it returns, and nothing of it is referenced.
	t.Run("run", func(t *testing.T) {
		elapsed, during = runLoad(t, srv, accts, seconds, &st)
	})
	var after resources
	settle := time.Now().Add(20 * time.Second)
	for {
		after = measureResources(t)
		if after.goroutines <= before.goroutines+2 && after.fds <= before.fds+2 || time.Now().After(settle) {
			break
		}
		time.Sleep(200 * time.Millisecond) // goroutines that were told to stop are returning
	}

	rate := float64(st.received.Load()) / elapsed.Seconds()
	t.Logf("%d accounts, %v: %d sent, %d received (%.0f msg/s), %d errors; latency p50 %v p99 %v",
		len(accts), elapsed.Round(time.Millisecond), st.sent.Load(), st.received.Load(), rate, st.errors.Load(),
		st.lat.Percentile(50).Round(time.Microsecond), st.lat.Percentile(99).Round(time.Microsecond))
	t.Logf("CPU during the load: clients %.2f cores (%.0f µs per message), server %.2f cores (%.0f µs per message)",
		st.cpu.Seconds()/elapsed.Seconds(), float64(st.cpu.Microseconds())/float64(max(1, st.received.Load())),
		st.srvCPU.Seconds()/elapsed.Seconds(), float64(st.srvCPU.Microseconds())/float64(max(1, st.received.Load())))
	t.Logf("before: %d goroutines, %d fds, heap %.1f MiB; loaded: %d goroutines, %d fds, heap %.1f MiB; after: %d goroutines, %d fds, heap %.1f MiB",
		before.goroutines, before.fds, float64(before.heap)/(1<<20), during.goroutines, during.fds, float64(during.heap)/(1<<20),
		after.goroutines, after.fds, float64(after.heap)/(1<<20))
	fmt.Printf("load accounts %d seconds %.1f sent %d received %d msg/s %.0f errors %d p50-ms %.2f p99-ms %.2f client-cores %.2f server-cores %.2f goroutines %d/%d/%d fds %d/%d/%d heap-mib %.1f/%.1f/%.1f\n",
		len(accts), elapsed.Seconds(), st.sent.Load(), st.received.Load(), rate, st.errors.Load(),
		float64(st.lat.Percentile(50).Microseconds())/1000, float64(st.lat.Percentile(99).Microseconds())/1000,
		st.cpu.Seconds()/elapsed.Seconds(), st.srvCPU.Seconds()/elapsed.Seconds(),
		before.goroutines, during.goroutines, after.goroutines, before.fds, during.fds, after.fds,
		float64(before.heap)/(1<<20), float64(during.heap)/(1<<20), float64(after.heap)/(1<<20))
	for _, e := range st.firstErr {
		t.Error(e)
	}
	if st.errors.Load() != 0 {
		t.Errorf("%d errors", st.errors.Load())
	}
	if st.received.Load() == 0 {
		t.Error("no message arrived")
	}
	if after.goroutines > before.goroutines+2 {
		t.Errorf("goroutines: %d before, %d after", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+2 {
		t.Errorf("open files: %d before, %d after", before.fds, after.fds)
	}
	if after.heap > before.heap+loadLeakSlack {
		t.Errorf("heap: %.1f MiB before, %.1f MiB after", float64(before.heap)/(1<<20), float64(after.heap)/(1<<20))
	}
}
