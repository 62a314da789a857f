// Command testprogress turns the event stream of `go test -json` (see
// `go doc test2json`) into short progress lines for scripts/test.sh: one
// line per package as soon as it finishes (in the order packages finish,
// not the order go test prints them in), the full output of every failed
// test and of every failed package, a heartbeat line with the elapsed time
// and the packages still running when nothing was printed for a while, and a
// closing count "tests: N passed, N failed, N skipped", preceded by a recap
// of every failed test with its own messages.
//
// Usage: go test -json ./... 2>&1 | testprogress [-heartbeat 30s] [-trim MODULE/]
//
// Lines that are not JSON events (go command messages) are copied through.
// The exit status is 1 when a test or package failed and 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // build-output and build-fail events
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// progress is the state of a run. Its methods are safe for concurrent use
// (events and heartbeats arrive on different goroutines).
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	trim    string // prefix left out of package names in heartbeats
	start   time.Time
	printed time.Time // when the last line was printed
	running map[string]bool
	output  map[string][]string // buffered output by package and test
	pkgs    struct{ ok, failed, noTests int }
	tests   struct{ passed, failed, skipped int }
	// recap holds, per failed test, its own messages (t.Error and t.Log
	// lines), printed again before the closing lines: the end of a long
	// log is often all a reader sees.
	recap []string
}

// recapLines is how many of a failed test's messages the recap keeps (the
// last ones), and recapWidth how much of each.
const (
	recapLines = 8
	recapWidth = 300
)

// testMessage matches the first line of a message of the testing package:
// indented, then file:line.
var testMessage = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)

func newProgress(w io.Writer, now time.Time) *progress {
	return &progress{w: w, start: now, printed: now, running: map[string]bool{}, output: map[string][]string{}}
}

func key(pkg, test string) string { return pkg + "\x00" + test }

// line handles one input line.
func (p *progress) line(s string) {
	var e event
	if !strings.HasPrefix(s, "{") || json.Unmarshal([]byte(s), &e) != nil || e.Action == "" {
		p.mu.Lock()
		fmt.Fprintln(p.w, s)
		p.printed = time.Now()
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pkg := e.Package
	if pkg == "" {
		pkg = e.ImportPath
	}
	k := key(pkg, e.Test)
	switch e.Action {
	case "start":
		p.running[pkg] = true
	case "output", "build-output":
		p.output[k] = append(p.output[k], e.Output)
	case "build-fail":
		p.flush(k)
	case "pass", "skip", "fail":
		if e.Test != "" {
			p.testDone(k, e)
			return
		}
		p.packageDone(pkg, e)
	}
}

func (p *progress) testDone(k string, e event) {
	switch e.Action {
	case "pass":
		p.tests.passed++
	case "skip":
		p.tests.skipped++
	case "fail":
		p.tests.failed++
		p.keepRecap(e)
		p.flush(k)
		p.printed = time.Now()
	}
	delete(p.output, k)
}

func (p *progress) packageDone(pkg string, e event) {
	delete(p.running, pkg)
	p.printed = time.Now()
	noTests := e.Action == "skip" || slices.ContainsFunc(p.output[key(pkg, "")], func(s string) bool {
		return strings.Contains(s, "[no test files]")
	})
	switch {
	case e.Action == "fail":
		p.pkgs.failed++
		// Whatever was not printed yet: build errors, a panic, a
		// timeout, the output of tests that never ended; but not go
		// test's own closing lines, replaced by ours.
		p.output[key(pkg, "")] = slices.DeleteFunc(p.output[key(pkg, "")], func(s string) bool {
			return s == "FAIL\n" || strings.HasPrefix(s, "FAIL\t"+pkg+"\t") || strings.HasPrefix(s, "FAIL\t"+pkg+" ")
		})
		for k := range p.output {
			if strings.HasPrefix(k, pkg+"\x00") {
				p.flush(k)
			}
		}
		fmt.Fprintf(p.w, "FAIL  %s (%.1fs)\n", pkg, e.Elapsed)
	case noTests:
		p.pkgs.noTests++
	default:
		p.pkgs.ok++
		fmt.Fprintf(p.w, "ok    %s (%.1fs)\n", pkg, e.Elapsed)
	}
	for k := range p.output {
		if strings.HasPrefix(k, pkg+"\x00") {
			delete(p.output, k)
		}
	}
}

// keepRecap remembers the messages of the failed test e, except those of
// its subtests (which have their own entry) and of helpers printing server
// logs.
func (p *progress) keepRecap(e event) {
	var msgs []string
	for _, s := range p.output[key(e.Package, e.Test)] {
		s = strings.TrimRight(s, "\n")
		if !testMessage.MatchString(s) || strings.Contains(s, "harness.go:") {
			continue
		}
		s = strings.TrimSpace(s)
		if len(s) > recapWidth {
			s = s[:recapWidth] + "..."
		}
		msgs = append(msgs, "    "+s)
	}
	if len(msgs) > recapLines {
		msgs = append([]string{fmt.Sprintf("    (%d earlier messages)", len(msgs)-recapLines)}, msgs[len(msgs)-recapLines:]...)
	}
	p.recap = append(p.recap, fmt.Sprintf("--- FAIL: %s %s", strings.TrimPrefix(e.Package, p.trim), e.Test))
	p.recap = append(p.recap, msgs...)
}

// flush prints and forgets the buffered output of k.
func (p *progress) flush(k string) {
	for _, s := range p.output[k] {
		fmt.Fprint(p.w, s)
		if !strings.HasSuffix(s, "\n") {
			fmt.Fprintln(p.w)
		}
	}
	delete(p.output, k)
}

// heartbeat prints a line when nothing was printed during the last
// interval.
func (p *progress) heartbeat(now time.Time, interval time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.printed) < interval {
		return
	}
	p.printed = now
	names := make([]string, 0, len(p.running))
	for name := range p.running {
		names = append(names, strings.TrimPrefix(name, p.trim))
	}
	slices.Sort(names)
	done := p.pkgs.ok + p.pkgs.failed + p.pkgs.noTests
	msg := fmt.Sprintf("   ... %s: %d packages done", now.Sub(p.start).Round(time.Second), done)
	if len(names) > 0 {
		msg += ", running: " + strings.Join(names, " ")
	} else {
		msg += ", building"
	}
	fmt.Fprintln(p.w, msg)
}

// summary prints the closing lines and reports whether everything passed.
func (p *progress) summary(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.recap) > 0 {
		fmt.Fprintln(p.w, "failed tests and their messages:")
		for _, s := range p.recap {
			fmt.Fprintln(p.w, s)
		}
	}
	fmt.Fprintf(p.w, "packages: %d ok, %d failed, %d without tests, in %s\n",
		p.pkgs.ok, p.pkgs.failed, p.pkgs.noTests, now.Sub(p.start).Round(time.Second))
	fmt.Fprintf(p.w, "tests: %d passed, %d failed, %d skipped\n", p.tests.passed, p.tests.failed, p.tests.skipped)
	return p.pkgs.failed == 0 && p.tests.failed == 0
}

func run(r io.Reader, w io.Writer, interval time.Duration, trim string) bool {
	p := newProgress(w, time.Now())
	p.trim = trim
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval / 10)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				p.heartbeat(now, interval)
			case <-stop:
				return
			}
		}
	})
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		p.line(sc.Text())
	}
	close(stop)
	wg.Wait()
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testprogress: reading the test events: %v\n", err)
		return false
	}
	return p.summary(time.Now())
}

func main() {
	interval := flag.Duration("heartbeat", 30*time.Second, "print a line when nothing was printed for this long")
	trim := flag.String("trim", "", "leave this prefix (the module path and a slash) out of package names in heartbeats")
	flag.Parse()
	if *interval <= 0 || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go test -json ./... 2>&1 | testprogress [-heartbeat 30s] [-trim MODULE/]")
		os.Exit(2)
	}
	if !run(os.Stdin, os.Stdout, *interval, *trim) {
		os.Exit(1)
	}
}
