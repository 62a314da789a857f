package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The tests below run this test binary again as child processes: TestMain
// sees childEnv and calls runChild instead of the tests.
const (
	childEnv   = "BALCONY_STORE_TEST_CHILD"
	childDir   = "BALCONY_STORE_TEST_DIR"
	childStart = "BALCONY_STORE_TEST_START"
	childName  = "BALCONY_STORE_TEST_NAME"
	childCount = "BALCONY_STORE_TEST_COUNT"
)

func runChild(role string) int {
	var err error
	switch role {
	case "crash-writer":
		err = crashWriter()
	case "concurrent-writer":
		err = concurrentWriter()
	default:
		err = fmt.Errorf("unknown child role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// Deterministic contents of the crash writer's records, so the parent can
// tell a complete record from a half-written one.
func crashBody(i int) string {
	return fmt.Sprintf("body %d ", i) + strings.Repeat(strconv.Itoa(i%10), 3000)
}
func crashKeyFpr(i int) string  { return fmt.Sprintf("%040X", i) }
func crashKeyData(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 2000+i%512) }
func crashOwnFpr(i int) string  { return fmt.Sprintf("%040X", i+1<<40) }
func crashSecret(i int) []byte {
	return []byte(fmt.Sprintf("dsa secret %d %s", i, strings.Repeat("s", 700)))
}
func crashSRS(i int) []byte { return []byte(fmt.Sprintf("srs-%d-%s", i, strings.Repeat("r", 32))) }

const (
	crashLogPeer = "log@example.org"
	crashKeyPeer = "keys@example.org"
	crashSRSPeer = "srs@example.org"
)

// crashWriter writes multi-row changes in a loop, printing a line after
// each commit, until it is killed.
func crashWriter() error {
	start, err := strconv.Atoi(os.Getenv(childStart))
	if err != nil {
		return err
	}
	s, err := openOrCreate(os.Getenv(childDir), testOptions(testPass))
	if err != nil {
		return err
	}
	ctx := context.Background()
	var prev []byte
	rs, err := s.RetainedSecrets(ctx, crashSRSPeer)
	if err != nil {
		return err
	}
	if len(rs) > 1 {
		return fmt.Errorf("%d retained secrets", len(rs))
	}
	if len(rs) == 1 {
		prev = rs[0].Value
	}
	for i := start; ; i++ {
		if _, err := s.LogMessage(ctx, LogEntry{StanzaID: fmt.Sprint("m", i), Peer: crashLogPeer,
			Direction: Incoming, Mechanism: OX, Body: crashBody(i)}); err != nil {
			return err
		}
		fmt.Println("log", i)
		if _, err := s.RecordSeenKey(ctx, crashKeyPeer, OX, crashKeyFpr(i), crashKeyData(i)); err != nil {
			return err
		}
		fmt.Println("key", i)
		if err := s.AddOwnKey(ctx, OwnKey{Mechanism: OTR, Fingerprint: crashOwnFpr(i), Public: []byte("pub"), Active: true},
			crashSecret(i)); err != nil {
			return err
		}
		fmt.Println("own", i)
		if err := s.ReplaceRetainedSecret(ctx, crashSRSPeer, prev, RetainedSecret{Value: crashSRS(i), Verified: i%2 == 0}); err != nil {
			return err
		}
		prev = crashSRS(i)
		fmt.Println("srs", i)
		if err := s.SetAnnouncedKeys(ctx, crashKeyPeer, OX, []string{crashKeyFpr(i), crashKeyFpr(i - 1)}); err != nil {
			return err
		}
		fmt.Println("ann", i)
	}
}

func skipWithoutProcesses(t *testing.T) {
	switch runtime.GOOS {
	case "js", "wasip1", "ios", "android":
		t.Skipf("cannot run child processes on %s", runtime.GOOS)
	}
}

// TestCrashSafety kills a writing child process with SIGKILL in the middle
// of its writes, several times, and checks that the database is intact,
// that every change the child reported as committed is there and that no
// change is there only in part.
func TestCrashSafety(t *testing.T) {
	skipWithoutProcesses(t)
	dir := t.TempDir()
	committed := map[string][]int{}
	// Kill after this many committed lines in each round; the first
	// round is killed while still opening and creating the store.
	for round, after := range []int{0, 7, 40, 93, 151} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"=crash-writer", childDir+"="+dir,
			childStart+"="+strconv.Itoa(round*100000))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := 0
		killed := false
		if after == 0 {
			cmd.Process.Kill()
			killed = true
		}
		for sc.Scan() {
			// Lines still in the pipe after the kill were committed too.
			op, num, ok := strings.Cut(sc.Text(), " ")
			i, err := strconv.Atoi(num)
			if !ok || err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			committed[op] = append(committed[op], i)
			lines++
			if lines == after && !killed {
				cmd.Process.Kill()
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended by itself: %v\n%s", round, err, stderr.String())
		}
		t.Logf("round %d: killed after %d commits", round, lines)
	}
	if len(committed["log"]) < 50 {
		t.Fatalf("only %d messages committed: test too weak", len(committed["log"]))
	}

	s := openDir(t, dir, testOptions(testPass))
	must(t, s.Check(ctx)) // integrity_check, foreign keys, every sealed value

	// Messages: every committed one present; every present one complete.
	var msgs []LogEntry
	for before := int64(0); ; {
		page, err := s.Messages(ctx, crashLogPeer, before, MaxPage)
		must(t, err)
		if len(page) == 0 {
			break
		}
		msgs = append(msgs, page...)
		before = page[0].ID
	}
	have := map[int]bool{}
	for _, m := range msgs {
		i, err := strconv.Atoi(strings.TrimPrefix(m.StanzaID, "m"))
		if err != nil || m.Body != crashBody(i) || m.Mechanism != OX {
			t.Fatalf("message %q incomplete: %d bytes", m.StanzaID, len(m.Body))
		}
		have[i] = true
	}
	for _, i := range committed["log"] {
		if !have[i] {
			t.Errorf("committed message %d lost", i)
		}
	}

	// Contact keys: each with its data and exactly one history entry.
	keys, err := s.ListKeys(ctx, crashKeyPeer, OX)
	must(t, err)
	evs, err := s.KeyEvents(ctx, crashKeyPeer, OX)
	must(t, err)
	events := map[string]int{}
	firsts := 0
	for _, e := range evs {
		events[e.Fingerprint]++
		if e.Kind == FirstKey {
			firsts++
		}
	}
	if firsts != 1 || len(evs) != len(keys) {
		t.Errorf("%d keys, %d events, %d first-key events", len(keys), len(evs), firsts)
	}
	have = map[int]bool{}
	var announced []int
	for _, k := range keys {
		i, err := strconv.ParseInt(k.Fingerprint, 16, 64)
		if err != nil || !bytes.Equal(k.Data, crashKeyData(int(i))) || events[k.Fingerprint] != 1 {
			t.Fatalf("key %s incomplete: %d bytes of data, %d events", k.Fingerprint, len(k.Data), events[k.Fingerprint])
		}
		have[int(i)] = true
		if k.Announced {
			announced = append(announced, int(i))
		}
	}
	for _, i := range committed["key"] {
		if !have[i] {
			t.Errorf("committed key %d lost", i)
		}
	}
	// SetAnnouncedKeys marks two consecutive keys (or one, for the first
	// key of a round): never a mixture of two calls.
	slices.Sort(announced)
	if len(announced) == 0 || len(announced) > 2 || (len(announced) == 2 && announced[1] != announced[0]+1) {
		t.Errorf("announced keys %v", announced)
	}

	// Own keys: every secret complete, exactly one active, the newest.
	own, err := s.OwnKeys(ctx, OTR)
	must(t, err)
	ownHave := map[int]bool{}
	newest, active := -1, -1
	for _, k := range own {
		i64, err := strconv.ParseInt(k.Fingerprint, 16, 64)
		i := int(i64 - 1<<40)
		sec, serr := s.OwnKeySecret(ctx, OTR, k.Fingerprint)
		if err != nil || serr != nil || !bytes.Equal(sec, crashSecret(i)) {
			t.Fatalf("own key %s incomplete: %v %v", k.Fingerprint, err, serr)
		}
		ownHave[i] = true
		newest = max(newest, i)
		if k.Active {
			if active >= 0 {
				t.Errorf("two active own keys")
			}
			active = i
		}
	}
	if active != newest {
		t.Errorf("active own key %d, newest %d", active, newest)
	}
	for _, i := range committed["own"] {
		if !ownHave[i] {
			t.Errorf("committed own key %d lost", i)
		}
	}

	// Retained secret: one chain, at the last committed value or at one
	// committed just before the kill, with the matching verified flag.
	rs, err := s.RetainedSecrets(ctx, crashSRSPeer)
	must(t, err)
	if len(rs) != 1 {
		t.Fatalf("%d retained secrets, want 1", len(rs))
	}
	var j int
	if _, err := fmt.Sscanf(string(rs[0].Value), "srs-%d-", &j); err != nil || !bytes.Equal(rs[0].Value, crashSRS(j)) {
		t.Fatalf("retained secret %q incomplete", rs[0].Value)
	}
	// The child replaces secret j only after committing own key j.
	if last := slices.Max(committed["srs"]); j < last || (j != last && !ownHave[j]) {
		t.Errorf("retained secret %d, last committed %d", j, last)
	}
	if rs[0].Verified != (j%2 == 0) {
		t.Errorf("retained secret %d: verified %v", j, rs[0].Verified)
	}
}

// concurrentWriter waits for a line on stdin, so that both children start
// together, then opens the store (creating it if it does not exist yet)
// and writes.
func concurrentWriter() error {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	name := os.Getenv(childName)
	n, err := strconv.Atoi(os.Getenv(childCount))
	if err != nil {
		return err
	}
	s, err := openOrCreate(os.Getenv(childDir), testOptions(testPass))
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	tag, err := s.OTRInstanceTag(ctx)
	if err != nil {
		return err
	}
	fmt.Println("tag", tag)
	for i := range n {
		if _, err := s.LogMessage(ctx, LogEntry{StanzaID: fmt.Sprint(name, i), Peer: "shared@example.org",
			Direction: Outgoing, Body: fmt.Sprint(name, " ", i)}); err != nil {
			return err
		}
		fpr := fmt.Sprintf("%02X%038X", name[0], i)
		if _, err := s.RecordSeenKey(ctx, "shared@example.org", OX, fpr, []byte(name)); err != nil {
			return err
		}
		if err := s.SetSetting(ctx, "last-"+name, strconv.Itoa(i)); err != nil {
			return err
		}
	}
	return s.Close()
}

// TestTwoProcesses runs two child processes that create the same store at
// the same moment and then write to it concurrently.
func TestTwoProcesses(t *testing.T) {
	skipWithoutProcesses(t)
	dir := t.TempDir()
	const n = 60
	names := []string{"A", "B"}
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout bytes.Buffer
		stderr bytes.Buffer
	}
	children := make([]*child, len(names))
	for i, name := range names {
		c := &child{cmd: exec.Command(os.Args[0])}
		c.cmd.Env = append(os.Environ(), childEnv+"=concurrent-writer", childDir+"="+dir,
			childName+"="+name, childCount+"="+strconv.Itoa(n))
		c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children[i] = c
	}
	for _, c := range children {
		io.WriteString(c.stdin, "go\n")
		c.stdin.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(children))
	for i, c := range children {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.cmd.Wait() }()
	}
	wg.Wait()
	var tags []string
	for i, c := range children {
		if errs[i] != nil {
			t.Fatalf("child %s: %v\n%s", names[i], errs[i], c.stderr.String())
		}
		tags = append(tags, strings.TrimSpace(c.stdout.String()))
	}
	if tags[0] != tags[1] || !strings.HasPrefix(tags[0], "tag ") {
		t.Errorf("instance tags differ: %q", tags)
	}

	s := openDir(t, dir, testOptions(testPass))
	must(t, s.Check(ctx))
	msgs, err := s.Messages(ctx, "shared@example.org", 0, MaxPage)
	must(t, err)
	count := map[string]int{}
	for _, m := range msgs {
		name, _, _ := strings.Cut(m.Body, " ")
		count[name]++
		if m.StanzaID != strings.ReplaceAll(m.Body, " ", "") {
			t.Errorf("message %q with body %q", m.StanzaID, m.Body)
		}
	}
	if count["A"] != n || count["B"] != n {
		t.Errorf("messages per writer %v, want %d each", count, n)
	}
	keys, err := s.ListKeys(ctx, "shared@example.org", OX)
	must(t, err)
	evs, err := s.KeyEvents(ctx, "shared@example.org", OX)
	must(t, err)
	kinds := map[EventKind]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if len(keys) != 2*n || kinds[FirstKey] != 1 || kinds[KeyChanged] != 2*n-1 {
		t.Errorf("%d keys, events %v", len(keys), kinds)
	}
	for _, name := range names {
		if v, err := s.Setting(ctx, "last-"+name); err != nil || v != strconv.Itoa(n-1) {
			t.Errorf("setting last-%s = %q, %v", name, v, err)
		}
	}
	pending, err := s.PendingKeyChanges(ctx)
	if err != nil || len(pending) != 2*n-1 {
		t.Errorf("%d pending changes, %v", len(pending), err)
	}
}
