// Package libotrpeer runs libotr 4.1 (the reference C implementation of
// Off-the-Record Messaging protocol version 3, a final specification; see
// Protocol-v3.html) as a real peer in Balcony's interoperability tests.
//
// Build compiles a small C program of ours, libotrpeer.c, against the
// system's libotr once per test binary. Start runs it as a child process
// and returns a Peer whose methods map one to one onto libotr calls:
// otrl_message_sending (Send, StartAKE), otrl_message_receiving (Receive),
// otrl_message_initiate_smp[_q], otrl_message_respond_smp,
// otrl_message_abort_smp, otrl_message_disconnect (End) and
// otrl_message_symkey. Each method returns everything libotr did in that
// call: the messages it wants transmitted (Output.Net), the plaintext it
// delivers (Output.Messages), the TLVs it saw and the callbacks it made
// (Output.Events). Nothing is asynchronous: the helper answers each request
// with its output lines and then a single OK or ERR line, and the Go side
// reads up to that line, so no test ever sleeps or polls.
//
// # Line protocol
//
// One request per line on the helper's stdin; fields that may hold
// arbitrary bytes are standard padded base64, with "=" for the empty value
// and "-" for an absent one:
//
//	INIT account protocol buddy     names for this side and the remote side
//	KEYLOAD path | KEYGEN path      read / generate the account's DSA key
//	INSTAG [path]                   our instance tag (read from or written to path)
//	POLICY n | MMS n                OTRL_POLICY_* bits / max_message_size (0 = no fragments)
//	SEND text | QUERY               otrl_message_sending (QUERY sends "?OTR?")
//	RECV msg                        otrl_message_receiving
//	SMP secret | SMPQ q secret      otrl_message_initiate_smp[_q]
//	SMPRESP secret | SMPABORT       otrl_message_respond_smp / abort_smp
//	END                             otrl_message_disconnect (best instance)
//	FPR | STATE | SYMKEY use data | TRUST 0|1 | POLL | VERSION | QUIT
//
// Output lines: NET msg (transmit; one per fragment), MSG text ENC|PLAIN
// (deliver), TLV type data, EVT kind ... (callbacks), FPR/STATE/INSTAG/
// SYMKEY/VERSION results, then OK or ERR text.
//
// If gcc, pkg-config or libotr's development files are missing, Build and
// Start skip the test, unless BALCONY_REQUIRE_INTEROP=1 is set (as in CI),
// in which case they fail it.
//
// A Peer is not safe for concurrent use.
package libotrpeer

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed libotrpeer.c
var source []byte

// EnvRequire names the environment variable that turns a missing libotr
// tool chain from a skipped test into a failed one when set to "1".
const EnvRequire = "BALCONY_REQUIRE_INTEROP"

// EnvCFLAGS names an environment variable with extra gcc flags for the
// helper, e.g. "-fsanitize=address,undefined -g" to check the C side.
const EnvCFLAGS = "BALCONY_LIBOTRPEER_CFLAGS"

// Policy is a set of libotr OTRL_POLICY_* bits (proto.h).
type Policy uint32

// libotr's policy bits and presets (proto.h).
const (
	PolicyAllowV2            Policy = 0x02
	PolicyAllowV3            Policy = 0x04
	PolicyRequireEncryption  Policy = 0x08
	PolicySendWhitespaceTag  Policy = 0x10
	PolicyWhitespaceStartAKE Policy = 0x20
	PolicyErrorStartAKE      Policy = 0x40

	PolicyNever         Policy = 0
	PolicyManual               = PolicyAllowV2 | PolicyAllowV3
	PolicyOpportunistic        = PolicyManual | PolicySendWhitespaceTag | PolicyWhitespaceStartAKE | PolicyErrorStartAKE
	PolicyAlways               = PolicyManual | PolicyRequireEncryption | PolicyWhitespaceStartAKE | PolicyErrorStartAKE
)

// Default names used when Options leaves them empty.
const (
	DefaultAccount  = "libotr@example.org"
	DefaultProtocol = "xmpp"
	DefaultBuddy    = "balcony@example.org"
)

// ---------------------------------------------------------------------------
// Building the helper

// The helper is compiled once per test binary and kept in memory; each
// test gets its own copy, and its own copies of the keys, in its t.TempDir,
// so that nothing is left behind when the tests end.
var toolchain struct {
	once    sync.Once
	binary  []byte // the compiled helper
	missing string // why libotr cannot be used here, or ""
	err     error  // a real failure (the C code does not compile, ...)

	mu    sync.Mutex
	tests map[testing.TB]*testFiles // each running test's copies
	keys  map[string][]byte         // generated keys by account and protocol
}

// testFiles are one test's copies, in its t.TempDir.
type testFiles struct {
	bin  string
	keys map[string]string // key files by account and protocol
}

// Build compiles the helper once per test binary and returns the path of
// tb's copy of the executable, in a directory removed when tb ends. It
// skips tb (or fails it when BALCONY_REQUIRE_INTEROP=1) if gcc, pkg-config
// or libotr are not installed.
func Build(tb testing.TB) string {
	tb.Helper()
	toolchain.once.Do(func() {
		toolchain.binary, toolchain.missing, toolchain.err = build()
	})
	if toolchain.missing != "" {
		unavailable(tb, toolchain.missing)
		return ""
	}
	if toolchain.err != nil {
		tb.Fatalf("libotrpeer: %v", toolchain.err)
		return ""
	}
	toolchain.mu.Lock()
	defer toolchain.mu.Unlock()
	if files, ok := toolchain.tests[tb]; ok {
		return files.bin
	}
	path := filepath.Join(tb.TempDir(), "libotrpeer")
	if err := writeExecutable(path, toolchain.binary); err != nil {
		tb.Fatalf("libotrpeer: %v", err)
		return ""
	}
	if toolchain.tests == nil {
		toolchain.tests = map[testing.TB]*testFiles{}
	}
	toolchain.tests[tb] = &testFiles{bin: path, keys: map[string]string{}}
	tb.Cleanup(func() {
		toolchain.mu.Lock()
		delete(toolchain.tests, tb)
		toolchain.mu.Unlock()
	})
	return path
}

// writeExecutable writes an executable file while holding syscall.ForkLock
// for reading: a child process forked meanwhile (by a parallel test) would
// inherit the file open for writing until it execs, and running the file
// would then fail with "text file busy" (ETXTBSY; go.dev/issue/22315).
func writeExecutable(path string, data []byte) error {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// unavailable skips tb, or fails it when interop tests are required.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv(EnvRequire) == "1" {
		tb.Fatalf("libotrpeer: libotr interop required (%s=1) but unavailable: %s", EnvRequire, why)
		return
	}
	tb.Skipf("libotrpeer: skipping libotr interop test: %s (install gcc, pkg-config and libotr5-dev; set %s=1 to make this a failure)", why, EnvRequire)
}

// probe reports why the tool chain cannot build the helper, or returns
// the compiler flags for libotr.
func probe() (flags []string, missing string) {
	for _, tool := range []string{"gcc", "pkg-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, tool + " not found in PATH"
		}
	}
	ver, err := exec.Command("pkg-config", "--modversion", "libotr").Output()
	if err != nil {
		return nil, "pkg-config does not know libotr"
	}
	if !strings.HasPrefix(strings.TrimSpace(string(ver)), "4.") {
		return nil, fmt.Sprintf("libotr %s found, 4.x needed", strings.TrimSpace(string(ver)))
	}
	out, err := exec.Command("pkg-config", "--cflags", "--libs", "libotr").Output()
	if err != nil {
		return nil, "pkg-config --cflags --libs libotr failed"
	}
	// libotr.pc does not list libgcrypt, which the helper calls directly.
	return append(strings.Fields(string(out)), "-lgcrypt"), ""
}

// build compiles the helper in a temporary directory, removed before it
// returns, and returns the executable's contents.
func build() (binary []byte, missing string, err error) {
	flags, missing := probe()
	if missing != "" {
		return nil, missing, nil
	}
	pruneStale(os.TempDir(), 24*time.Hour)
	dir, err := os.MkdirTemp("", stalePrefix)
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "libotrpeer.c")
	if err := os.WriteFile(src, source, 0o600); err != nil {
		return nil, "", err
	}
	bin := filepath.Join(dir, "libotrpeer")
	args := []string{"-O2", "-Wall", "-o", bin, src}
	args = append(args, strings.Fields(os.Getenv(EnvCFLAGS))...)
	args = append(args, flags...)
	cmd := exec.Command("gcc", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("libotr/")) && bytes.Contains(out, []byte("No such file")) {
			return nil, "libotr headers not found: " + firstLine(out), nil
		}
		return nil, "", fmt.Errorf("compiling the helper: %v\n%s", err, out)
	}
	binary, err = os.ReadFile(bin)
	return binary, "", err
}

const stalePrefix = "balcony-libotrpeer-"

// pruneStale removes build directories that earlier test runs left in dir
// (a test binary killed while compiling, or older versions of this package
// that kept the helper there) and that have not been touched for age.
func pruneStale(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stalePrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// KeyFile returns a libotr private key file, in a directory removed when
// tb ends, holding a DSA key for account and protocol. The key is
// generated by libotr once per test binary and shared by every caller
// asking for the same account; within one test, the same file is
// returned.
func KeyFile(tb testing.TB, account, protocol string) string {
	tb.Helper()
	bin := Build(tb)
	if bin == "" {
		return ""
	}
	id := account + "\x00" + protocol
	toolchain.mu.Lock()
	defer toolchain.mu.Unlock()
	files := toolchain.tests[tb]
	if path, ok := files.keys[id]; ok {
		return path
	}
	path := filepath.Join(filepath.Dir(bin), fmt.Sprintf("key%d.priv", len(files.keys)+1))
	if key, ok := toolchain.keys[id]; ok {
		if err := os.WriteFile(path, key, 0o600); err != nil {
			tb.Fatalf("libotrpeer: %v", err)
			return ""
		}
		files.keys[id] = path
		return path
	}
	if out, err := exec.Command(bin, "-genkey", path, account, protocol).CombinedOutput(); err != nil {
		tb.Fatalf("libotrpeer: generating a key for %s: %v\n%s", account, err, out)
		return ""
	}
	key, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("libotrpeer: %v", err)
		return ""
	}
	if toolchain.keys == nil {
		toolchain.keys = map[string][]byte{}
	}
	toolchain.keys[id] = key
	files.keys[id] = path
	return path
}

// ---------------------------------------------------------------------------
// Running a peer

// Options configures a libotr peer. The zero value is usable.
type Options struct {
	// Account and Protocol name this side (the libotr account); Buddy
	// names the remote side. Defaults: DefaultAccount, DefaultProtocol,
	// DefaultBuddy.
	Account, Protocol, Buddy string

	// KeyFile is a libotr private key file with a key for Account and
	// Protocol; "" uses KeyFile(tb, Account, Protocol).
	KeyFile string

	// InstanceTagFile, if set, is read for our instance tag, or written
	// with a new one if it does not exist; "" makes a fresh tag.
	InstanceTagFile string

	// Policy is libotr's policy; 0 means PolicyOpportunistic, libotr's
	// default (use SetPolicy for PolicyNever).
	Policy Policy

	// FragmentSize is libotr's max_message_size; 0 disables fragmentation.
	FragmentSize int

	// Timeout bounds each request as a safety net only (default 30s).
	Timeout time.Duration

	// Log logs every request and output line with tb.Logf.
	Log bool
}

// Peer is a running libotr helper process.
type Peer struct {
	tb      testing.TB
	opts    Options
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	stderr  *syncBuffer
	closed  bool
	timeout time.Duration
}

// Start builds the helper if needed, starts a peer and configures it from
// opts. The process is stopped and reaped when the test ends (or by Close).
func Start(tb testing.TB, opts Options) *Peer {
	tb.Helper()
	bin := Build(tb)
	if bin == "" {
		return nil
	}
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	if opts.Protocol == "" {
		opts.Protocol = DefaultProtocol
	}
	if opts.Buddy == "" {
		opts.Buddy = DefaultBuddy
	}
	for _, name := range []string{opts.Account, opts.Protocol, opts.Buddy} {
		if strings.ContainsAny(name, " \t\r\n") {
			tb.Fatalf("libotrpeer: names must not contain white space: %q", name)
		}
	}
	if opts.Policy == 0 {
		opts.Policy = PolicyOpportunistic
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	keyFile := opts.KeyFile
	if keyFile == "" {
		keyFile = KeyFile(tb, opts.Account, opts.Protocol)
	}

	p := &Peer{tb: tb, opts: opts, stderr: new(syncBuffer), timeout: opts.Timeout}
	p.cmd = exec.Command(bin)
	p.cmd.Stderr = p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		tb.Fatalf("libotrpeer: %v", err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("libotrpeer: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("libotrpeer: starting the helper: %v", err)
	}
	p.lines = make(chan string, 64)
	go readLines(stdout, p.lines)
	tb.Cleanup(p.Close)

	p.must("INIT", opts.Account, opts.Protocol, opts.Buddy)
	p.must("KEYLOAD", enc([]byte(keyFile)))
	if opts.InstanceTagFile != "" {
		p.must("INSTAG", enc([]byte(opts.InstanceTagFile)))
	} else {
		p.must("INSTAG")
	}
	p.SetPolicy(opts.Policy)
	p.SetFragmentSize(opts.FragmentSize)
	return p
}

func readLines(r io.Reader, lines chan<- string) {
	defer close(lines)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			lines <- strings.TrimRight(line, "\r\n")
		}
		if err != nil {
			return
		}
	}
}

// Close stops the helper and waits for it to exit. It is safe to call
// more than once; Start registers it with tb.Cleanup.
func (p *Peer) Close() {
	if p == nil || p.closed {
		return
	}
	p.closed = true
	p.stdin.Close() // the helper exits at end of input
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	killed := false
	for drained := false; !drained; {
		select {
		case _, ok := <-p.lines:
			drained = !ok
		case <-deadline.C:
			if !killed {
				p.cmd.Process.Kill()
				killed = true
			}
		}
	}
	p.cmd.Wait()
}

// RequestError is the helper's ERR answer to a request.
type RequestError struct {
	Request string
	Text    string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("libotrpeer: %s: %s", e.Request, e.Text)
}

// Do sends one raw request (arguments already encoded) and returns its
// output; an ERR answer is returned as a *RequestError. A helper that dies
// or does not answer within the timeout fails the test.
func (p *Peer) Do(verb string, args ...string) (Output, error) {
	p.tb.Helper()
	if p.closed {
		p.tb.Fatalf("libotrpeer: %s on a closed peer", verb)
	}
	req := strings.Join(append([]string{verb}, args...), " ")
	if p.opts.Log {
		p.tb.Logf("libotrpeer %s <- %s", p.opts.Account, abbreviate(req))
	}
	if _, err := io.WriteString(p.stdin, req+"\n"); err != nil {
		p.tb.Fatalf("libotrpeer: writing %s: %v%s", verb, err, p.stderrText())
	}
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	var out Output
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.tb.Fatalf("libotrpeer: helper exited during %s%s", verb, p.stderrText())
				return out, errors.New("libotrpeer: helper exited")
			}
			if p.opts.Log {
				p.tb.Logf("libotrpeer %s -> %s", p.opts.Account, abbreviate(line))
			}
			if line == "OK" {
				return out, nil
			}
			if text, ok := strings.CutPrefix(line, "ERR "); ok {
				return out, &RequestError{Request: verb, Text: text}
			}
			if err := out.parse(line); err != nil {
				p.tb.Fatalf("libotrpeer: %v", err)
			}
		case <-timer.C:
			p.tb.Fatalf("libotrpeer: no answer to %s within %v%s", verb, p.timeout, p.stderrText())
			return out, errors.New("libotrpeer: timeout")
		}
	}
}

func (p *Peer) must(verb string, args ...string) Output {
	p.tb.Helper()
	out, err := p.Do(verb, args...)
	if err != nil {
		p.tb.Fatal(err)
	}
	return out
}

func (p *Peer) stderrText() string {
	if s := p.stderr.String(); s != "" {
		return "\nhelper stderr:\n" + s
	}
	return ""
}

func abbreviate(s string) string {
	if len(s) > 160 {
		return s[:157] + "..."
	}
	return s
}

// SetPolicy sets libotr's policy (the policy callback's answer).
func (p *Peer) SetPolicy(pol Policy) {
	p.tb.Helper()
	p.must("POLICY", strconv.FormatUint(uint64(pol), 10))
}

// SetFragmentSize sets max_message_size; 0 disables fragmentation.
func (p *Peer) SetFragmentSize(n int) {
	p.tb.Helper()
	p.must("MMS", strconv.Itoa(n))
}

// Send passes a message the user typed to otrl_message_sending. Output.Net
// holds what to transmit: the data message (or its fragments), a tagged or
// plain message, or a query when encryption is required. In the FINISHED
// state libotr sends nothing and reports MsgConnectionEnded.
func (p *Peer) Send(text []byte) Output {
	p.tb.Helper()
	return p.must("SEND", enc(text))
}

// StartAKE starts an AKE the way a client's "start private conversation" does:
// it sends "?OTR?" through otrl_message_sending, which replaces it with
// libotr's default query message.
func (p *Peer) StartAKE() Output {
	p.tb.Helper()
	return p.must("QUERY")
}

// Receive passes a message from the network to otrl_message_receiving.
func (p *Peer) Receive(msg []byte) Output {
	p.tb.Helper()
	return p.must("RECV", enc(msg))
}

// StartSMP starts the Socialist Millionaires' Protocol without a question.
func (p *Peer) StartSMP(secret []byte) Output {
	p.tb.Helper()
	return p.must("SMP", enc(secret))
}

// StartSMPQuestion starts the SMP with a question for the other side.
func (p *Peer) StartSMPQuestion(question string, secret []byte) Output {
	p.tb.Helper()
	return p.must("SMPQ", enc([]byte(question)), enc(secret))
}

// RespondSMP answers the other side's SMP with our secret.
func (p *Peer) RespondSMP(secret []byte) Output {
	p.tb.Helper()
	return p.must("SMPRESP", enc(secret))
}

// AbortSMP aborts the SMP in progress.
func (p *Peer) AbortSMP() Output {
	p.tb.Helper()
	return p.must("SMPABORT")
}

// End ends the private conversation with the best instance
// (otrl_message_disconnect): libotr sends a disconnect TLV if it is
// encrypted and returns to PLAINTEXT.
func (p *Peer) End() Output {
	p.tb.Helper()
	return p.must("END")
}

// Poll calls otrl_message_poll.
func (p *Peer) Poll() Output {
	p.tb.Helper()
	return p.must("POLL")
}

// Trust marks the active fingerprint as verified or not.
func (p *Peer) Trust(trusted bool) {
	p.tb.Helper()
	v := "0"
	if trusted {
		v = "1"
	}
	p.must("TRUST", v)
}

// Fingerprints describe our key and the peer's active key as libotr sees
// them: 40 upper-case hex digits, no spaces; Peer is "" before any AKE.
type Fingerprints struct {
	Own, Peer string
	Trusted   bool // libotr's trust flag for Peer (set by a successful SMP)
}

// Fingerprint returns our fingerprint and that of the active peer key.
func (p *Peer) Fingerprint() Fingerprints {
	p.tb.Helper()
	out := p.must("FPR")
	f := out.result("FPR")
	if len(f) != 3 {
		p.tb.Fatalf("libotrpeer: bad FPR answer %q", f)
	}
	fp := Fingerprints{Own: f[0], Peer: f[1], Trusted: f[2] == "1"}
	if fp.Peer == "-" {
		fp.Peer = ""
	}
	if fp.Own == "-" {
		fp.Own = ""
	}
	return fp
}

// MsgState is libotr's message state.
type MsgState string

// libotr's message states (context.h).
const (
	Plaintext MsgState = "plaintext"
	Encrypted MsgState = "encrypted"
	Finished  MsgState = "finished"
)

// State is the state of the instance libotr would send to
// (OTRL_INSTAG_BEST).
type State struct {
	MsgState      MsgState
	OurInstance   uint32
	TheirInstance uint32 // 0 for the master context
	Version       int    // protocol version of the session, 0 if none
	SSID          []byte // the 8-byte secure session id while encrypted
	SSIDHalf      int    // 0: first half shown bold, 1: second half
	SMPExpect     int    // 1..5: the SMP message libotr expects next
}

// State returns the state of the best instance.
func (p *Peer) State() State {
	p.tb.Helper()
	out := p.must("STATE")
	f := out.result("STATE")
	if len(f) != 7 {
		p.tb.Fatalf("libotrpeer: bad STATE answer %q", f)
	}
	var s State
	var errs []error
	s.MsgState = MsgState(f[0])
	s.OurInstance = parseHex32(f[1], &errs)
	s.TheirInstance = parseHex32(f[2], &errs)
	s.Version = parseInt(f[3], &errs)
	if f[4] != "-" {
		b, err := hex.DecodeString(f[4])
		errs = append(errs, err)
		s.SSID = b
	}
	s.SSIDHalf = parseInt(f[5], &errs)
	s.SMPExpect = parseInt(f[6], &errs)
	if err := errors.Join(errs...); err != nil {
		p.tb.Fatalf("libotrpeer: bad STATE answer %q: %v", f, err)
	}
	return s
}

// InstanceTag returns our instance tag.
func (p *Peer) InstanceTag() uint32 {
	p.tb.Helper()
	f := p.must("INSTAG").result("INSTAG")
	var errs []error
	var tag uint32
	if len(f) == 1 {
		tag = parseHex32(f[0], &errs)
	}
	if len(f) != 1 || errors.Join(errs...) != nil {
		p.tb.Fatalf("libotrpeer: bad INSTAG answer %q", f)
	}
	return tag
}

// Version returns the libotr version the helper runs with.
func (p *Peer) Version() string {
	p.tb.Helper()
	f := p.must("VERSION").result("VERSION")
	if len(f) != 1 {
		p.tb.Fatalf("libotrpeer: bad VERSION answer %q", f)
	}
	return f[0]
}

// Symkey asks libotr for the current extra symmetric key and sends the
// peer a TLV 8 announcing use and usedata (otrl_message_symkey).
func (p *Peer) Symkey(use uint32, usedata []byte) ([32]byte, Output) {
	p.tb.Helper()
	out := p.must("SYMKEY", strconv.FormatUint(uint64(use), 10), enc(usedata))
	var key [32]byte
	f := out.result("SYMKEY")
	if len(f) != 1 || len(f[0]) != 64 {
		p.tb.Fatalf("libotrpeer: bad SYMKEY answer %q", f)
	}
	if _, err := hex.Decode(key[:], []byte(f[0])); err != nil {
		p.tb.Fatalf("libotrpeer: bad SYMKEY answer %q", f)
	}
	return key, out
}

// ---------------------------------------------------------------------------
// Output

// enc encodes a field for a request.
func enc(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// decField decodes an output field: "-" is absent (nil), "=" is empty.
func decField(s string, errs *[]error) []byte {
	switch s {
	case "-":
		return nil
	case "=":
		return []byte{}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		*errs = append(*errs, err)
		return nil
	}
	if len(b) == 0 {
		*errs = append(*errs, errors.New("empty value not written as ="))
	}
	return b
}

func parseHex32(s string, errs *[]error) uint32 {
	v, err := strconv.ParseUint(s, 16, 32)
	*errs = append(*errs, err)
	return uint32(v)
}

func parseInt(s string, errs *[]error) int {
	v, err := strconv.Atoi(s)
	*errs = append(*errs, err)
	return v
}

// syncBuffer collects the helper's stderr while the process runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
