package e2ebench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/xmltree"
)

// The end-to-end table: two clients in this process exchange messages
// through a real server, one pair of accounts per mechanism, and every
// mechanism is measured in each round, one after the other in a rotating
// order, so that machine load weighs on all of them alike. Throughput is
// measured with a window of messages in flight (sent as fast as the
// window allows), latency with one message at a time, from the call of
// Send to the MessageEvent on the receiving client. Encrypted figures are
// reported as ratios to plaintext measured in the same run.

// bodyPad makes a message of ordinary chat length (about 100 bytes).
const bodyPad = "the quick brown fox jumps over the lazy dog, then walks home in the rain"

// burstResult is one measured burst.
type burstResult struct {
	elapsed time.Duration // first Send to last event
	cpu     time.Duration // process CPU time (user+system) meanwhile
	srvCPU  time.Duration // the server's CPU time meanwhile
	lat     Latencies     // Send to event, per message
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// burst sends n messages from p.a to p.b with at most window of them
// unreceived at a time and waits for all of them. tag tells this burst's
// messages from earlier ones.
func burst(tb testing.TB, p *pair, srvPID int, tag string, n, window int) burstResult {
	tb.Helper()
	sent := make([]time.Time, n)
	recv := make([]time.Time, n)
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	done := make(chan error, 1)
	prefix := "e2e " + tag + " "
	go func() {
		got := 0
		timer := time.NewTimer(60 * time.Second)
		defer timer.Stop()
		for got < n {
			select {
			case ev, ok := <-p.b.c.Events():
				if !ok {
					done <- fmt.Errorf("%s: event channel closed", p.m.name)
					return
				}
				switch ev := ev.(type) {
				case *client.MessageEvent:
					rest, ok := strings.CutPrefix(ev.Body, prefix)
					if !ok {
						continue
					}
					i, err := strconv.Atoi(rest[:strings.IndexByte(rest, ' ')])
					if err != nil || i < 0 || i >= n || !recv[i].IsZero() {
						done <- fmt.Errorf("%s: unexpected message %q", p.m.name, ev.Body)
						return
					}
					if ev.Security.Mechanism != p.m.ns {
						done <- fmt.Errorf("%s: message arrived with mechanism %q", p.m.name, ev.Security.Mechanism)
						return
					}
					recv[i] = time.Now()
					got++
					tokens <- struct{}{}
				case *client.NoticeEvent:
					done <- fmt.Errorf("%s: notice %s: %s", p.m.name, ev.Reason, ev.Text)
					return
				}
			case <-timer.C:
				done <- fmt.Errorf("%s: %d of %d messages arrived in 60 s", p.m.name, got, n)
				return
			}
		}
		done <- nil
	}()
	ctx := context.Background()
	cpu0, srv0 := cpuTime(), serverCPU(srvPID)
	start := time.Now()
	for i := range n {
		select {
		case <-tokens:
		case err := <-done:
			tb.Fatal(err)
		}
		sent[i] = time.Now()
		out := &client.Outgoing{To: p.b.c.JID(), Body: prefix + strconv.Itoa(i) + " " + bodyPad}
		if p.m.noStore {
			out.Payload = []*xmltree.Element{xmltree.New(client.NSHints, "no-permanent-store")}
		}
		if _, err := p.a.c.Send(ctx, out, p.m.ns); err != nil {
			tb.Fatalf("%s: send: %v", p.m.name, err)
		}
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	r := burstResult{elapsed: time.Since(start), cpu: cpuTime() - cpu0, srvCPU: serverCPU(srvPID) - srv0, lat: make(Latencies, n)}
	for i := range n {
		r.lat[i] = recv[i].Sub(sent[i])
	}
	return r
}

// serverPID reads the server's process id from the pid file its harness
// writes (0 if there is none).
func serverPID(srv *servertest.Server) int {
	for _, name := range []string{"prosody.pid", "ejabberd.pid"} {
		data, err := os.ReadFile(filepath.Join(srv.Dir, name))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			return pid
		}
	}
	return 0
}

// serverCPU is the CPU time the server has used (0 if unknown).
func serverCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, err := ProcCPU(pid)
	if err != nil {
		return 0
	}
	return d
}

// tally accumulates one mechanism's bursts over the rounds.
type tally struct {
	msgs    int
	elapsed time.Duration
	cpu     time.Duration
	srvCPU  time.Duration
	lat     Latencies
}

func (t *tally) rate() float64 { return float64(t.msgs) / t.elapsed.Seconds() }

// e2eRun is a server with one ready pair per measurable mechanism.
type e2eRun struct {
	srvPID  int // 0 if unknown
	pairs   []*pair
	tallies map[string]*tally
	rounds  int
}

func newE2ERun(tb testing.TB, srv *servertest.Server) *e2eRun {
	tb.Helper()
	r := &e2eRun{tallies: map[string]*tally{}, srvPID: serverPID(srv)}
	only := os.Getenv("BALCONY_E2E_ONLY")
	for i, m := range mechanisms {
		if only != "" && !slices.Contains(strings.Split(only, ","), m.name) {
			continue
		}
		r.pairs = append(r.pairs, connectPair(tb, srv, m, i))
		r.tallies[m.name] = &tally{}
	}
	return r
}

// round measures every pair once, starting with a different one each
// round: a throughput burst of n messages (window in flight), then lat
// messages one at a time.
func (r *e2eRun) round(tb testing.TB, n, window, lat int) {
	tb.Helper()
	for k := range r.pairs {
		p := r.pairs[(r.rounds+k)%len(r.pairs)]
		t := r.tallies[p.m.name]
		b := burst(tb, p, r.srvPID, fmt.Sprintf("r%dt", r.rounds), n, window)
		t.msgs += n
		t.elapsed += b.elapsed
		t.cpu += b.cpu
		t.srvCPU += b.srvCPU
		l := burst(tb, p, r.srvPID, fmt.Sprintf("r%dl", r.rounds), lat, 1)
		t.lat = append(t.lat, l.lat...)
	}
	r.rounds++
}

// report gives the figures as benchmark metrics.
func (r *e2eRun) report(b *testing.B) {
	for _, m := range mechanisms {
		t := r.tallies[m.name]
		if t == nil || t.msgs == 0 {
			continue
		}
		b.ReportMetric(t.rate(), m.name+"-msg/s")
		b.ReportMetric(float64(t.cpu.Microseconds())/float64(t.msgs), m.name+"-cpu-µs/msg")
		if r.srvPID != 0 {
			b.ReportMetric(float64(t.srvCPU.Microseconds())/float64(t.msgs), m.name+"-srvcpu-µs/msg")
		}
		b.ReportMetric(float64(t.lat.Percentile(50).Microseconds()), m.name+"-p50-µs")
		b.ReportMetric(float64(t.lat.Percentile(99).Microseconds()), m.name+"-p99-µs")
		// Each encrypted row against both plaintext rows: the one the
		// server treats alike (ref: archived or not) is the fair one.
		for _, ref := range []string{"plain", "plainns"} {
			rt := r.tallies[ref]
			if m.ref == "" || rt == nil || rt.msgs == 0 {
				continue
			}
			b.ReportMetric(t.rate()/rt.rate(), m.name+"-x-"+ref)
			if ref == m.ref {
				b.ReportMetric(t.rate()/rt.rate(), m.name+"-x-ref")
			}
			b.ReportMetric(float64(t.lat.Percentile(50))/float64(rt.lat.Percentile(50)), m.name+"-p50-x-"+ref)
		}
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEndToEnd is the end-to-end table, against Prosody and
// ejabberd. Each iteration is one round over all mechanisms; run it with
// -benchtime Nx (scripts/bench.sh does), since each invocation starts a
// server. BALCONY_E2E_MSGS (default 200) sets the burst size,
// BALCONY_E2E_WINDOW (32) the messages in flight, BALCONY_E2E_LAT (40)
// the one-at-a-time messages per round.
func BenchmarkEndToEnd(b *testing.B) {
	n, window, lat := envInt("BALCONY_E2E_MSGS", 200), envInt("BALCONY_E2E_WINDOW", 32), envInt("BALCONY_E2E_LAT", 40)
	for _, kind := range []string{servertest.Prosody, servertest.Ejabberd} {
		b.Run(kind, func(b *testing.B) {
			var srv *servertest.Server
			if kind == servertest.Prosody {
				srv = servertest.StartProsody(b)
			} else {
				srv = servertest.StartEjabberd(b, servertest.EjabberdOptions{})
			}
			r := newE2ERun(b, srv)
			r.round(b, 20, window, 5) // warm-up: key fetches, first allocations
			for _, t := range r.tallies {
				*t = tally{}
			}
			for b.Loop() {
				r.round(b, n, window, lat)
			}
			r.report(b)
		})
	}
}

// TestEndToEndSmoke runs one short round of the end-to-end benchmark
// through Prosody, so that the normal test run checks that every row
// delivers its messages with the mechanism it names.
func TestEndToEndSmoke(t *testing.T) {
	srv := servertest.StartProsody(t)
	r := newE2ERun(t, srv)
	r.round(t, 10, 4, 3)
	for _, m := range mechanisms {
		tl := r.tallies[m.name]
		if tl == nil || tl.msgs != 10 || len(tl.lat) != 3 || tl.elapsed <= 0 {
			t.Errorf("%s: tally %+v", m.name, tl)
		}
	}
}
