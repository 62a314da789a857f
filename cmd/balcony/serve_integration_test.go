package main

import (
	"bufio"
	"context"
	"crypto/rand"
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
	name string
	cmd  *exec.Cmd
	done chan struct{} // its output ended
}

// buildBalcony builds the command into a temporary directory: the test
// runs real processes, killed with SIGKILL.
func buildBalcony(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "balcony")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startServe(t *testing.T, bin, name string, env []string, args []string, lines chan<- serveLine) *serveHost {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), append(env, "BALCONY_DATA_DIR="+filepath.Join(dir, "data"), "BALCONY_CONFIG_DIR="+filepath.Join(dir, "config"))...)
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
	h := &serveHost{name: name, cmd: cmd, done: make(chan struct{})}
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
	holder map[string]string // account -> host serving it
	got    map[string]map[string][]serveLine
	killed map[string]bool
	// killedAt is when A was killed.
	killedAt time.Time
	taken    map[string]time.Time // account -> when the survivor connected it after the kill
	lastOf   map[string]map[string]string
	overlap  []string
	fenced   int // accounts stopped because their process lost the database
}

func (s *serveState) apply(l serveLine) {
	t := s.t
	switch {
	case l.Type == "garbage":
		t.Errorf("%s wrote a line that is not JSON: %q", l.host, l.Text)
	case l.Type == "status" && l.Kind == "connected":
		if h := s.holder[l.Account]; h != "" && h != l.host && !s.killed[h] {
			s.overlap = append(s.overlap, fmt.Sprintf("%s connected %s while %s served it", l.host, l.Account, h))
		}
		s.holder[l.Account] = l.host
		if !s.killedAt.IsZero() && l.at.After(s.killedAt) && s.taken[l.Account].IsZero() {
			s.taken[l.Account] = l.at
		}
	case l.Type == "status" && (l.Kind == "stopped" || l.Kind == "fenced"):
		if l.Kind == "fenced" {
			s.fenced++
		}
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

func (s *serveState) held(host string) int {
	n := 0
	for _, h := range s.holder {
		if h == host {
			n++
		}
	}
	return n
}

// TestServeHandover runs two balcony serve processes sharing 20 accounts
// in a real PostgreSQL, against a real Prosody; a sender writes to every
// account while one process is killed with SIGKILL. Every account is
// served by one process at a time, the survivor takes the dead one's
// accounts over, and every message is written once across both
// processes' output: none lost, and none twice but the one a killed
// process was writing (same stanza-id, documented).
func TestServeHandover(t *testing.T) {
	pgURL := pgtest.Start(t)
	srv := prosodytest.Start(t)
	bin := buildBalcony(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := store.GenerateKeyFile(keyFile, rand.Reader); err != nil {
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
	lines := make(chan serveLine, 4096)
	args := []string{"--store", pgURL, "--key-file", keyFile, "--ca-file", srv.CAFile,
		"--lock-check", "250ms", "--poll", "250ms", "--settle", "5s", "--verbose"}
	hosts := map[string]*serveHost{}
	for _, name := range []string{"A", "B"} {
		hosts[name] = startServe(t, bin, name, nil, args, lines)
	}
	st := &serveState{t: t, holder: map[string]string{}, got: map[string]map[string][]serveLine{},
		killed: map[string]bool{}, taken: map[string]time.Time{}, lastOf: map[string]map[string]string{}}
	// until reads output until cond holds, failing after d.
	until := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.After(d)
		for !cond() {
			select {
			case l := <-lines:
				st.apply(l)
			case <-deadline:
				t.Fatalf("%s: not within %s (held: A %d, B %d)", what, d, st.held("A"), st.held("B"))
			}
		}
	}
	until("both processes serve half the accounts", 90*time.Second, func() bool {
		return st.held("A") == n/2 && st.held("B") == n/2
	})

	// The sender writes a round of messages to every account every 100ms.
	sender := srv.AddUser(t, "sender", "")
	sc, err := client.New(client.Config{JID: sender.JID, Password: sender.Password, Addr: srv.Addr, CAFile: srv.CAFile, DisableCarbons: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
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
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for r := 1; ; r++ {
			for _, a := range accounts {
				if _, err := sc.Send(ctx, &client.Outgoing{To: a, Body: fmt.Sprintf("%s #%d", a, r)}, ""); err != nil {
					t.Errorf("sending round %d to %s: %v", r, a, err)
					return
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
	until("messages flowing", 30*time.Second, func() bool { return sentRounds() >= 20 })

	// Kill A; B must take its accounts.
	victim := hosts["A"]
	var fromA []string
	for a, h := range st.holder {
		if h == "A" {
			fromA = append(fromA, a)
		}
	}
	killed := time.Now()
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	<-victim.done
	// Lines A wrote before it died are still in the channel: read them
	// first, so that the kill is applied after them.
	st.killed["A"], st.killedAt = true, killed
	until("B serves every account", 60*time.Second, func() bool { return st.held("B") == n })
	after := sentRounds()
	until("two more seconds of messages", 30*time.Second, func() bool { return sentRounds() >= after+20 })
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

	for _, o := range st.overlap {
		t.Error(o)
	}
	var lost, dup, explained, received int
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
				// The one allowed: A was writing it when it was killed,
				// it was A's last line for the account, and both copies
				// have the same stanza-id.
				if len(copies) == 2 && copies[0].host == "A" && st.lastOf[a.String()]["A"] == body && copies[1].host == "B" &&
					copies[0].StanzaID != "" && copies[0].StanzaID == copies[1].StanzaID {
					explained++
					continue
				}
				var desc []string
				for _, c := range copies {
					desc = append(desc, fmt.Sprintf("%s at %s stanza-id %q catch-up %v", c.host, c.at.Format("15:04:05.000"), c.StanzaID, c.CatchUp))
				}
				t.Errorf("written %d times: %s (%s; A's last line: %q)", len(copies), body, strings.Join(desc, ", "), st.lastOf[a.String()]["A"])
			}
		}
	}
	var takeover []time.Duration
	for _, a := range fromA {
		if at, ok := st.taken[a]; ok {
			takeover = append(takeover, at.Sub(killed))
		} else {
			t.Errorf("%s was not taken over", a)
		}
	}
	slices.Sort(takeover)
	if len(takeover) > 0 {
		t.Logf("takeover of %d accounts after SIGKILL: min %v, median %v, max %v (--lock-check 250ms, --poll 250ms: fence delay 1s)",
			len(takeover), takeover[0].Round(time.Millisecond), takeover[len(takeover)/2].Round(time.Millisecond), takeover[len(takeover)-1].Round(time.Millisecond))
	}
	if st.fenced > 0 {
		t.Logf("%d accounts were fenced (their process lost its database connection, or found it too slow)", st.fenced)
	}
	t.Logf("messages: sent %d (%d rounds x %d accounts), written %d, lost %d, duplicated %d (of which %d in flight at the kill)",
		total*n, total, n, received, lost, dup, explained)
	if testing.Verbose() {
		var b strings.Builder
		for _, a := range fromA {
			fmt.Fprintf(&b, " %s", strings.TrimSuffix(a, "@"+srv.Domain))
		}
		t.Logf("accounts taken over:%s", b.String())
	}
}
