package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// boundSessions reads a Prosody log written at debug level and returns,
// for every account whose bare JID starts with prefix, the binds of a
// session while another session of the account was bound (a hibernating
// stream management session counts as bound until the server destroys
// it), and the number of binds seen. Prosody runs one event loop and
// logs in order, so this is the server's own account of the sessions,
// not a matter of when the test read anything.
func boundSessions(r io.Reader, prefix string) (overlaps []string, binds int, err error) {
	bound := map[string]int{}   // bare JID -> sessions bound now
	last := map[string]string{} // bare JID -> the line of its last bind
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		// "Dec 06 12:00:00 c2s55aa0c1e7f80\tdebug\tResource bound: a@b/r"
		fields := strings.SplitN(sc.Text(), "\t", 3)
		if len(fields) != 3 {
			continue
		}
		msg := fields[2]
		var full string
		var delta int
		if s, ok := strings.CutPrefix(msg, "Resource bound: "); ok {
			full, delta = s, 1
		} else if s, ok := strings.CutPrefix(msg, "Unbinding resource for "); ok {
			full, delta = strings.Fields(s)[0], -1
		} else {
			continue
		}
		bare, _, _ := strings.Cut(full, "/")
		if !strings.HasPrefix(bare, prefix) {
			continue
		}
		if delta > 0 {
			binds++
			if bound[bare] > 0 {
				overlaps = append(overlaps, fmt.Sprintf("a second session of %s: %q while %q was bound", bare, sc.Text(), last[bare]))
			}
			last[bare] = sc.Text()
		}
		bound[bare] += delta
	}
	return overlaps, binds, sc.Err()
}

// cutXMPP cuts every TCP connection of process pid to the XMPP server at
// addr (ss -K: the kernel aborts the socket and resets the peer), as a
// network failure would, and returns how many it cut.
func cutXMPP(t *testing.T, pid int, addr string) int {
	t.Helper()
	_, port, _ := strings.Cut(addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	// The sockets the process has open...
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	// ...that are connected to the server's port.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	var locals []int
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || !inodes[f[9]] || f[3] != "01" { // 01: established
			continue
		}
		_, rport, _ := strings.Cut(f[2], ":")
		_, lport, _ := strings.Cut(f[1], ":")
		rp, _ := strconv.ParseInt(rport, 16, 32)
		lp, _ := strconv.ParseInt(lport, 16, 32)
		if int(rp) == p {
			locals = append(locals, int(lp))
		}
	}
	for _, lp := range locals {
		out, err := exec.Command("ss", "-K", "-tn", "src", fmt.Sprintf("127.0.0.1:%d", lp), "dst", "127.0.0.1:"+port).CombinedOutput()
		if err != nil {
			t.Fatalf("ss -K: %v\n%s", err, out)
		}
	}
	return len(locals)
}

// reconnectedBeforeRejoin reads a serve process's standard error (with
// --verbose) from offset and returns the lines where one of its clients
// connected or resumed a stream before the process joined again as a
// new host: after its lock connection was lost, no client of the old
// host may reach the XMPP server again.
func reconnectedBeforeRejoin(t *testing.T, stderr string, offset int64) []string {
	t.Helper()
	var bad []string
	for _, l := range strings.Split(string(readFrom(t, stderr, offset)), "\n") {
		if strings.Contains(l, "joining again") {
			break
		}
		if strings.Contains(l, "msg=connected") || strings.Contains(l, `msg="stream resumed"`) {
			bad = append(bad, l)
		}
	}
	return bad
}

// readFrom returns a file from offset on.
func readFrom(t *testing.T, name string, offset int64) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b[offset:]
}

// fileSize is the size of a file, the offset of what is written next.
func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// The reading of Prosody's log finds a bind while another session of the
// account is bound, and none when the former was unbound first (as
// Prosody does when it replaces a session of the same full JID) or only
// hibernated.
func TestBoundSessions(t *testing.T) {
	const log = "Dec 06 12:00:00 c2s1\tdebug\tResource bound: svc01@localhost/balcony-serve\n" +
		"Dec 06 12:00:00 c2s2\tdebug\tResource bound: other@localhost/x\n" +
		"Dec 06 12:00:01 c2s1\tdebug\tResource unbind prevented by module\n" +
		"Dec 06 12:00:02 c2s1\tdebug\tUnbinding resource for svc01@localhost/balcony-serve (svc01@localhost): Replaced by new connection\n" +
		"Dec 06 12:00:02 c2s3\tdebug\tResource bound: svc01@localhost/balcony-serve\n" +
		"Dec 06 12:00:03 c2s4\tdebug\tResource bound: svc01@localhost/elsewhere\n"
	overlaps, binds, err := boundSessions(strings.NewReader(log), "svc")
	if err != nil || binds != 3 || len(overlaps) != 1 || !strings.Contains(overlaps[0], "c2s4") || !strings.Contains(overlaps[0], "c2s3") {
		t.Fatalf("binds %d, overlaps %q, %v", binds, overlaps, err)
	}
}
