package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/pgtest"
	"github.com/balcony-im/balcony/internal/prosodytest"
	"github.com/balcony-im/balcony/store"
)

// serveLine is a line of balcony serve's output, as the test reads it.
type serveLine struct {
	host                            string
	at                              time.Time
	Account, Type, Kind, Text, Body string
	StanzaID                        string `json:"stanza_id"`
	CatchUp                         bool   `json:"catch_up"`
}

// serveHost is a running balcony serve process.
type serveHost struct {
	name   string
	env    []string // its data and configuration directories
	stderr string   // the file of its standard error
	cmd    *exec.Cmd
	done   chan struct{} // its output ended
}

// buildServeBinary builds the command into a temporary directory (with the
// race detector when the test has it): the test runs real processes,
// killed with SIGKILL.
func buildServeBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "balcony")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startServe(t *testing.T, bin, name string, env []string, args []string, lines chan<- serveLine) *serveHost {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	env = append(env, "BALCONY_DATA_DIR="+filepath.Join(dir, "data"), "BALCONY_CONFIG_DIR="+filepath.Join(dir, "config"))
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &serveHost{name: name, env: env, stderr: stderr.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			l := serveLine{host: name, at: time.Now()}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Type, l.Text = "garbage", sc.Text()
			}
			lines <- l
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		stderr.Close()
		if t.Failed() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("%s stderr:\n%s", name, b)
		}
	})
	return h
}

// serveState follows both processes' output.
type serveState struct {
	t      *testing.T
	holder map[string]string // account -> process serving it
	killed map[string]bool
	got    map[string]map[string][]serveLine // account -> body -> copies
	lastOf map[string]map[string]string      // account -> process -> last body written
	// inflight are the messages a process may have written without
	// recording them: its last one for the account before it was fenced
	// or killed.
	inflight map[string]map[string]bool
	// since is the time of the last fault; connected and fenced record,
	// per account, when it was served again and fenced after it.
	since     time.Time
	connected map[string]time.Time
	fencedAt  map[string]time.Time
	stoppedAt map[string]time.Time
	early     int
	// expectFence is set while a fault is being made; fences outside
	// are counted in spurious (a process found its database too slow).
	expectFence bool
	spurious    int
	// history is every status line of an account, for failures.
	history map[string][]string
}

func (s *serveState) apply(l serveLine) {
	t := s.t
	if l.Type == "status" {
		s.history[l.Account] = append(s.history[l.Account], fmt.Sprintf("%s %s %s", l.at.Format("15:04:05.000"), l.host, l.Kind))
	}
	switch {
	case l.Type == "garbage":
		t.Errorf("%s wrote a line that is not JSON: %q", l.host, l.Text)
	case l.Type == "status" && l.Kind == "connected":
		// The same full JID on every host: the server replaces the
		// session of a former host when the next binds.
		if l.Text != l.Account+"/balcony-serve" {
			t.Errorf("%s connected %s as %q", l.host, l.Account, l.Text)
		}
		if h := s.holder[l.Account]; h != "" && h != l.host && !s.killed[h] {
			// Seen by the test before the former host's "stopped" line:
			// not a fault (the server ended that session when this one
			// bound, see boundSessions), counted for the report.
			s.early++
		}
		s.holder[l.Account] = l.host
		if l.at.After(s.since) && s.connected[l.Account].IsZero() {
			s.connected[l.Account] = l.at
		}
	case l.Type == "status" && l.Kind == "fenced":
		if !s.expectFence {
			s.spurious++
		}
		s.fencedAt[l.Account] = l.at
		s.inflightOf(l.Account, l.host)
	case l.Type == "status" && l.Kind == "stopped":
		// Its XMPP session ended: another may serve it.
		s.stoppedAt[l.Account] = l.at
		if s.holder[l.Account] == l.host {
			delete(s.holder, l.Account)
		}
	case l.Type == "message":
		if s.got[l.Account] == nil {
			s.got[l.Account] = map[string][]serveLine{}
			s.lastOf[l.Account] = map[string]string{}
		}
		s.got[l.Account][l.Body] = append(s.got[l.Account][l.Body], l)
		s.lastOf[l.Account][l.host] = l.Body
	}
}

func (s *serveState) inflightOf(account, host string) {
	if s.inflight[account] == nil {
		s.inflight[account] = map[string]bool{}
	}
	if b := s.lastOf[account][host]; b != "" {
		s.inflight[account][b] = true
	}
}

// fault starts a new fault: connected and fenced times are counted anew.
func (s *serveState) fault(at time.Time) {
	s.since = at
	s.connected = map[string]time.Time{}
	s.fencedAt = map[string]time.Time{}
	s.stoppedAt = map[string]time.Time{}
}

func (s *serveState) held(host string) []string {
	var jids []string
	for a, h := range s.holder {
		if h == host {
			jids = append(jids, a)
		}
	}
	return jids
}

// spread returns min, median and max.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v, median %v, max %v", r(ds[0]), r(ds[len(ds)/2]), r(ds[len(ds)-1]))
}

// TestServeHandover runs two balcony serve processes sharing 20 accounts
// in a real PostgreSQL, against a real Prosody, while a sender writes to
// every account. First process A's database connection is cut
// (pg_terminate_backend): A must stop its accounts before anyone serves
// them again. Then A is killed with SIGKILL: B must take its accounts
// over. Throughout, every account is served by one process at a time,
// and every message is written once across both processes' output: none
// lost, and none twice but the one a process was writing when it was
// fenced or killed (with the same stanza-id, as documented).
func TestServeHandover(t *testing.T) {
	pgURL := pgtest.Start(t)
	// At debug level Prosody logs every bind and unbind of a resource:
	// the test reads from it that no two sessions of an account were ever
	// bound at once.
	t.Setenv("PROSODY_LOG_LEVEL", "debug")
	srv := prosodytest.Start(t)
	bin := buildServeBinary(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command(bin, "serve", "keygen", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("serve keygen: %v\n%s", err, out)
	}
	if _, err := store.ReadKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var accounts []jid.JID
	for i := range n {
		a := srv.AddUser(t, fmt.Sprintf("svc%02d", i), "")
		accounts = append(accounts, a.JID.Bare())
		cmd := exec.Command(bin, "serve", "add", a.JID.Bare().String(), "--store", pgURL, "--key-file", keyFile, "--server", srv.Addr)
		cmd.Env = append(os.Environ(), "BALCONY_PASSWORD="+a.Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("serve add: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	lines := make(chan serveLine, 4096)
	// Processes built with the race detector are several times slower:
	// they check their database connection less often.
	check := 250 * time.Millisecond
	if raceBuild {
		check = time.Second
	}
	args := []string{"--store", pgURL, "--key-file", keyFile, "--ca-file", srv.CAFile,
		"--lock-check", check.String(), "--poll", "250ms", "--settle", "5s", "--verbose"}
	hosts := map[string]*serveHost{}
	for _, name := range []string{"A", "B"} {
		hosts[name] = startServe(t, bin, name, nil, args, lines)
	}
	st := &serveState{t: t, holder: map[string]string{}, killed: map[string]bool{}, got: map[string]map[string][]serveLine{},
		lastOf: map[string]map[string]string{}, inflight: map[string]map[string]bool{}, history: map[string][]string{}}
	st.fault(time.Now())
	// until reads output until cond holds, failing after d.
	until := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.After(d)
		for !cond() {
			select {
			case l := <-lines:
				st.apply(l)
			case <-deadline:
				t.Fatalf("%s: not within %s (A holds %d, B %d)", what, d, len(st.held("A")), len(st.held("B")))
			}
		}
	}
	balanced := func() bool { return len(st.held("A")) == n/2 && len(st.held("B")) == n/2 }
	until("both processes serve half the accounts", 90*time.Second, balanced)

	// The sender writes a round of messages to every account every 200ms.
	sender := srv.AddUser(t, "sender", "")
	sc, err := client.New(client.Config{JID: sender.JID, Password: sender.Password, Addr: srv.Addr, CAFile: srv.CAFile, DisableCarbons: true, Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	go func() {
		for range sc.Events() {
		}
	}()
	var (
		mu     sync.Mutex
		rounds int
		stop   = make(chan struct{})
		sent   = make(chan struct{})
	)
	go func() {
		defer close(sent)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for r := 1; ; r++ {
			for _, a := range accounts {
				// The sender's own stream may drop on this busy machine:
				// it reconnects, and the message is sent again (under the
				// same id, so that a copy the server had taken counts once).
				out := &client.Outgoing{To: a, ID: client.NewID(), Body: fmt.Sprintf("%s #%d", a, r)}
				for {
					_, err := sc.Send(ctx, out, "")
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						t.Errorf("sending round %d to %s: %v", r, a, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			mu.Lock()
			rounds = r
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	sentRounds := func() int {
		mu.Lock()
		defer mu.Unlock()
		return rounds
	}
	moreRounds := func(what string, k int) {
		t.Helper()
		r := sentRounds()
		until(what, 60*time.Second, func() bool { return sentRounds() >= r+k })
	}
	moreRounds("messages flowing", 20)

	// 1. Cut A's database connection: the server ends the backend holding
	// A's locks. A must stop every account (fenced) before any process
	// serves it again, and the accounts must be served again.
	until("balanced before the cut", 90*time.Second, balanced)
	fromA := st.held("A")
	// lockBackend is the backend holding the lock of an account.
	lockBackend := func(account string) int {
		t.Helper()
		var pid int
		if err := db.QueryRow(ctx, `SELECT l.pid FROM pg_locks l JOIN balcony.accounts a ON a.account_id = l.objid::bigint
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = x'424c4e53'::bigint AND a.jid = $1`, account).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	pid := lockBackend(fromA[0])
	cut := time.Now()
	st.fault(cut)
	st.expectFence = true
	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	until("A's accounts fenced and served again", 60*time.Second, func() bool {
		for _, a := range fromA {
			if st.fencedAt[a].IsZero() || st.connected[a].IsZero() {
				return false
			}
		}
		return true
	})
	var fencing, stopping, cutTakeover []time.Duration
	for _, a := range fromA {
		fencing = append(fencing, st.fencedAt[a].Sub(cut))
		stopping = append(stopping, st.stoppedAt[a].Sub(cut))
		cutTakeover = append(cutTakeover, st.connected[a].Sub(cut))
	}
	st.expectFence = false
	until("balanced again", 90*time.Second, balanced)
	moreRounds("messages flowing again", 20)

	// 2. A partition: A's database connection ends and, at the same
	// moment, its XMPP connections are cut, while A keeps running. Its
	// clients would reconnect (resume) by themselves: none may, since A
	// no longer holds the locks; B takes the accounts.
	until("balanced before the partition", 90*time.Second, balanced)
	fromA = st.held("A")
	pid = lockBackend(fromA[0])
	offset := fileSize(t, hosts["A"].stderr)
	cut = time.Now()
	st.fault(cut)
	st.expectFence = true
	if _, err := db.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	if k := cutXMPP(t, hosts["A"].cmd.Process.Pid, srv.Addr); k < len(fromA) {
		t.Fatalf("cut %d XMPP connections of A, which serves %d accounts", k, len(fromA))
	}
	until("A's accounts fenced and served again after the partition", 60*time.Second, func() bool {
		for _, a := range fromA {
			if st.fencedAt[a].IsZero() || st.connected[a].IsZero() {
				return false
			}
		}
		return true
	})
	var partTakeover []time.Duration
	for _, a := range fromA {
		partTakeover = append(partTakeover, st.connected[a].Sub(cut))
	}
	// A joins again once every client of its lost host has stopped.
	rejoined := time.After(60 * time.Second)
	for !strings.Contains(string(readFrom(t, hosts["A"].stderr, offset)), "joining again") {
		select {
		case l := <-lines:
			st.apply(l)
		case <-time.After(100 * time.Millisecond):
		case <-rejoined:
			t.Fatal("A did not join again within 60s of the partition")
		}
	}
	for _, l := range reconnectedBeforeRejoin(t, hosts["A"].stderr, offset) {
		t.Errorf("a client of A connected after A lost its lock connection: %s", l)
	}
	st.expectFence = false
	until("balanced after the partition", 90*time.Second, balanced)
	moreRounds("messages flowing after the partition", 20)

	// 3. Kill A; B must take its accounts.
	until("balanced before the kill", 90*time.Second, balanced)
	victim := hosts["A"]
	fromA = st.held("A")
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	<-victim.done
	st.killed["A"] = true
	st.fault(killed)
	until("B serves every account", 60*time.Second, func() bool { return len(st.held("B")) == n })
	var killTakeover []time.Duration
	for _, a := range fromA {
		if !st.connected[a].IsZero() {
			killTakeover = append(killTakeover, st.connected[a].Sub(killed))
		}
		st.inflightOf(a, "A")
	}
	moreRounds("messages after the takeover", 20)
	out, err := exec.Command(bin, "serve", "list", "--store", pgURL).CombinedOutput()
	if err != nil || strings.Count(string(out), " served\n") != n {
		t.Errorf("serve list: %v\n%s", err, out)
	}
	// The control socket of an account B took over answers on B's host,
	// though no configuration names the account there.
	status := exec.Command(bin, "-a", fromA[0], "status")
	status.Env = append(os.Environ(), hosts["B"].env...)
	if out, err := status.CombinedOutput(); err != nil || !strings.Contains(string(out), "listening as "+fromA[0]+"/balcony-serve") {
		t.Errorf("status through B's control socket: %v\n%s", err, out)
	}
	close(stop)
	<-sent
	total := sentRounds()
	complete := func() bool {
		for _, a := range accounts {
			if len(st.got[a.String()]) < total {
				return false
			}
		}
		return true
	}
	deadline := time.After(60 * time.Second)
wait:
	for !complete() {
		select {
		case l := <-lines:
			st.apply(l)
		case <-deadline:
			break wait
		}
	}
	// Anything still queued (duplicates would come last).
	for drained := false; !drained; {
		select {
		case l := <-lines:
			st.apply(l)
		case <-time.After(2 * time.Second):
			drained = true
		}
	}

	// The server's account: never two bound sessions of an account.
	plog, err := os.Open(filepath.Join(srv.Dir, "prosody.log"))
	if err != nil {
		t.Fatal(err)
	}
	overlaps, binds, err := boundSessions(plog, "svc")
	plog.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlaps {
		t.Errorf("Prosody bound %s", o)
	}
	if binds < n {
		t.Errorf("%d binds of the accounts in Prosody's log, want at least %d: is it written at debug level?", binds, n)
	}
	var lost, dup, explained, received int
	told := map[string]bool{}
	for _, a := range accounts {
		got := st.got[a.String()]
		for r := 1; r <= total; r++ {
			body := fmt.Sprintf("%s #%d", a, r)
			copies := got[body]
			received += len(copies)
			switch {
			case len(copies) == 0:
				lost++
				t.Errorf("lost: %s", body)
			case len(copies) > 1:
				dup += len(copies) - 1
				// The one allowed: a process wrote it last for the account
				// before it was fenced or killed, and the copies have the
				// same stanza-id.
				if len(copies) == 2 && st.inflight[a.String()][body] && copies[0].StanzaID != "" && copies[0].StanzaID == copies[1].StanzaID {
					explained++
					continue
				}
				var desc []string
				for _, c := range copies {
					desc = append(desc, fmt.Sprintf("%s at %s stanza-id %q catch-up %v", c.host, c.at.Format("15:04:05.000"), c.StanzaID, c.CatchUp))
				}
				t.Errorf("written %d times: %s (%s)", len(copies), body, strings.Join(desc, ", "))
				if !told[a.String()] {
					told[a.String()] = true
					t.Logf("%s: %s", a, strings.Join(st.history[a.String()], "; "))
				}
			}
		}
	}
	t.Logf("database connection of A cut: %d accounts fenced after %s, their sessions closed after %s; served again after %s",
		len(fencing), spread(fencing), spread(stopping), spread(cutTakeover))
	t.Logf("partition (A's database connection and its XMPP connections cut together): %d accounts served again after %s",
		len(partTakeover), spread(partTakeover))
	t.Logf("%d takeovers were seen connected before the former host's stopped line (the server replaced its session)", st.early)
	t.Logf("A killed (SIGKILL): %d accounts taken over by B after %s (--lock-check %v, --poll 250ms: fence delay %v)", len(killTakeover), spread(killTakeover), check, 4*check)
	if st.spurious > 0 {
		t.Logf("%d accounts were fenced outside the faults made (their process found the database too slow)", st.spurious)
	}
	t.Logf("messages: sent %d (%d rounds to %d accounts), written %d, lost %d, written twice %d (of which %d in flight at a fault)",
		total*n, total, n, received, lost, dup, explained)
}
