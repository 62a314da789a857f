package e2ebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/servertest"
)

// Memory and start-up per account: the balcony command, built from this
// module, runs "listen" for an account of the test Prosody, with an
// encrypted store and the default Argon2id cost (3 passes, 64 MiB), as a
// user runs it. Start-up is the time from starting the process to its
// "listening as" line (store unlock, connection, login, the mechanisms'
// start); idle memory is its resident set once it has settled.

// listenerBudgetRSS is the resident memory an idle listener may use.
const listenerBudgetRSS = 30 << 20

// EnvBench turns on the measurements that take minutes or build the
// command (per-account memory, load) when set to "1"; scripts/bench.sh
// sets it.
const EnvBench = "BALCONY_BENCH"

func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvBench) != "1" {
		t.Skipf("set %s=1 (scripts/bench.sh does) to run this measurement", EnvBench)
	}
}

// buildBalcony builds cmd/balcony into a temporary directory.
func buildBalcony(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "balcony")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/balcony")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building balcony: %v\n%s", err, out)
	}
	return bin
}

// listener is a running "balcony listen".
type listener struct {
	cmd     *exec.Cmd
	startup time.Duration
}

// startListener starts "balcony listen" for account a and waits for its
// "listening as" line.
func startListener(t *testing.T, bin string, env []string, a servertest.Account) *listener {
	t.Helper()
	cmd := exec.Command(bin, "-a", a.JID.String(), "listen", "--password-env", "BENCH_PASS", "--timeout", "300s")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &listener{cmd: cmd}
	t.Cleanup(l.stop)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening as") {
				ready <- nil
				io.Copy(io.Discard, stderr)
				return
			}
			lines = append(lines, sc.Text())
		}
		ready <- fmt.Errorf("listener ended before listening: %s", strings.Join(lines, "\n"))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("listener not listening after 120 s")
	}
	l.startup = time.Since(start)
	return l
}

// stop ends the listener with SIGTERM, as a user's Ctrl-C would.
func (l *listener) stop() {
	if l.cmd.ProcessState != nil {
		return
	}
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.cmd.Wait()
}

// settledRSS samples the process's resident memory until it has not
// changed by more than 1% over a second (at most 15 s) and returns it
// with the peak (VmHWM).
func settledRSS(t *testing.T, pid int) (rss, peak uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r, err := ProcStatus(pid, "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		if last != 0 && (r*100 >= last*99 && r*100 <= last*101 || time.Now().After(deadline)) {
			p, err := ProcStatus(pid, "VmHWM")
			if err != nil {
				t.Fatal(err)
			}
			return r, p
		}
		last = r
		<-tick.C
	}
}

func TestListenerMemoryAndStartup(t *testing.T) {
	requireBench(t)
	bin := buildBalcony(t)
	srv := servertest.StartProsody(t)
	acct := srv.AddUser(t, "listener", "")
	dir := t.TempDir()
	env := append(os.Environ(),
		"BALCONY_CONFIG_DIR="+filepath.Join(dir, "config"),
		"BALCONY_DATA_DIR="+filepath.Join(dir, "data"),
		"BALCONY_PASSPHRASE=bench passphrase",
		"BENCH_PASS="+acct.Password,
		"BALCONY_STORE_KDF=", // the default cost
		"GOMEMLIMIT=", "GOGC=",
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	add := exec.CommandContext(ctx, bin, "account", "add", acct.JID.String(), "--server", srv.Addr, "--ca-file", srv.CAFile, "--password-env", "BENCH_PASS")
	add.Env = env
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("account add: %v\n%s", err, out)
	}
	for _, run := range []string{"first start", "second start"} {
		l := startListener(t, bin, env, acct)
		rss, peak := settledRSS(t, l.cmd.Process.Pid)
		t.Logf("%s: listening after %v; idle RSS %.1f MiB (budget %d MiB), peak %.1f MiB",
			run, l.startup.Round(time.Millisecond), float64(rss)/(1<<20), listenerBudgetRSS>>20, float64(peak)/(1<<20))
		fmt.Printf("listener %s startup-ms %d rss-mib %.1f peak-mib %.1f\n", strings.ReplaceAll(run, " ", "-"), l.startup.Milliseconds(), float64(rss)/(1<<20), float64(peak)/(1<<20))
		if rss > listenerBudgetRSS {
			t.Errorf("%s: idle listener holds %.1f MiB, budget %d MiB", run, float64(rss)/(1<<20), listenerBudgetRSS>>20)
		}
		l.stop()
	}
}
