package omemopeer

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/servertest"
)

//go:embed xmpppeer.py
var xmppScript []byte

// Generations as the peer names them.
const (
	Gen03 = "03" // eu.siacs.conversations.axolotl
	Gen2  = "2"  // urn:xmpp:omemo:2
)

// CallTimeout bounds how long one request to an XMPP peer may take (a
// request that waits for the server, such as publishing, answers as soon
// as the IQ results are in).
const CallTimeout = 90 * time.Second

// XMPPOptions configures StartXMPP. The zero value is a device speaking
// both generations, trusting blindly, published.
type XMPPOptions struct {
	// Gens lists the generations the device speaks, Gen03 and/or Gen2
	// (default both).
	Gens []string
	// Resource is the resource to ask for at bind time ("" lets the
	// server choose).
	Resource string
	// Manual turns blind trust off: new devices are undecided, and sending
	// to them fails until Trust decides.
	Manual bool
	// NoPublish leaves the peer connected but without its OMEMO set-up:
	// call Publish.
	NoPublish bool
}

// XMPPPeer is a running python-omemo XMPP client (xmpppeer.py): python-omemo's
// SessionManager with the oldmemo and twomemo backends over slixmpp, logged
// in to a real server. Requests answer when their effect is done;
// what the peer receives arrives as Events, read with Next.
//
// Methods other than Next and TryNext must not be called concurrently.
type XMPPPeer struct {
	// JID is the full JID the server bound; Bare is its bare form.
	JID, Bare string
	// DeviceID is the OMEMO device id (0 until Publish).
	DeviceID uint32
	// Carbons reports whether the server accepted XEP-0280 carbons.
	Carbons bool

	t       testing.TB
	cmd     *exec.Cmd
	in      io.WriteCloser
	answers chan []byte
	done    chan struct{} // closed when stdout ends

	mu      sync.Mutex
	events  []Event
	arrived chan struct{} // closed and replaced when an event arrives
	stderr  bytes.Buffer
}

// Event is what the peer pushes: Kind is "message", "empty",
// "sent_empty", "not_for_us", "duplicate", "decrypt_error", "devicelist", "plain" or
// "message_error" (see xmpppeer.py).
type Event struct {
	Kind   string `json:"event"`
	Gen    string `json:"gen"`
	From   string `json:"from"`
	To     string `json:"to"`
	ID     string `json:"id"`
	Type   string `json:"type"`
	Carbon string `json:"carbon"` // "", "received", "sent"
	// SID is the sender's device id.
	SID uint32 `json:"sid"`
	// PreKey reports that our key in the message was a key exchange.
	PreKey      bool                 `json:"prekey"`
	Body        string               `json:"body"`
	Fingerprint string               `json:"fingerprint"`
	Trust       string               `json:"trust"`
	Keys        map[string][]KeyInfo `json:"keys"`
	Warnings    []string             `json:"warnings"`
	Envelope    *Envelope            `json:"envelope"`
	Error       string               `json:"error"`
	Condition   string               `json:"condition"`
	// JID and Devices are a device list notification's.
	JID     string   `json:"jid"`
	Devices []uint32 `json:"devices"`
}

// KeyInfo is one <key/> of a message: its recipient device and whether
// it carries a key exchange.
type KeyInfo struct {
	RID    uint32 `json:"rid"`
	PreKey bool   `json:"prekey"`
}

// Envelope is what the peer read from an OMEMO 2 message's XEP-0420
// envelope: the affixes and the names of the content's children.
type Envelope struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	Time    string   `json:"time"`
	RPad    int      `json:"rpad"` // length, -1 when absent
	Content []string `json:"content"`
}

// Sent is the result of Send and SendEmpty.
type Sent struct {
	ID string `json:"id"`
	// Keys are the devices the message was encrypted for, by bare JID.
	Keys map[string][]KeyInfo `json:"keys"`
	// Errors are devices python-omemo could not encrypt for.
	Errors []string `json:"errors"`
}

// Device is one device as the peer knows it.
type Device struct {
	DeviceID    uint32   `json:"device_id"`
	Gens        []string `json:"gens"`
	IdentityKey []byte   `json:"identity_key"` // Ed25519
	Fingerprint string   `json:"fingerprint"`
	Trust       string   `json:"trust"`
}

// Identity is the peer's own device and identity key.
type Identity struct {
	DeviceID    uint32 `json:"device_id"`
	IdentityKey []byte `json:"identity_key"` // Ed25519
	Fingerprint string `json:"fingerprint"`  // eight groups of eight hex digits
}

// AvailableXMPP reports whether python-omemo, both backends and slixmpp
// import.
func AvailableXMPP() error {
	out, err := exec.Command(Python, "-c", "import omemo, oldmemo, twomemo, xmlschema, slixmpp").CombinedOutput()
	if err != nil {
		return fmt.Errorf("python-omemo or slixmpp is not usable with %s (apt-get install -y python3-omemo python3-oldmemo python3-twomemo python3-xmlschema python3-slixmpp): %v: %s", Python, err, out)
	}
	return nil
}

// StartXMPP starts an XMPP peer logged in to srv as acct and, unless
// opts.NoPublish, publishes its OMEMO device. It skips the test when the
// Python packages are missing, unless BALCONY_REQUIRE_INTEROP=1; it is
// stopped (by its process id, if quitting does not end it) when the test
// ends, and its stderr is logged if the test failed.
func StartXMPP(t testing.TB, srv *servertest.Server, acct servertest.Account, opts XMPPOptions) *XMPPPeer {
	t.Helper()
	requireInterop(t, AvailableXMPP())
	dir := t.TempDir()
	for name, data := range map[string][]byte{"peer.py": peerScript, "xmpppeer.py": xmppScript} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &XMPPPeer{t: t, answers: make(chan []byte), done: make(chan struct{}), arrived: make(chan struct{})}
	p.cmd = exec.Command(Python, filepath.Join(dir, "xmpppeer.py"))
	p.cmd.Dir = dir
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(out)
	t.Cleanup(p.stop)

	j := acct.JID
	if opts.Resource != "" {
		if j, err = j.WithResource(opts.Resource); err != nil {
			t.Fatal(err)
		}
	}
	gens := opts.Gens
	if len(gens) == 0 {
		gens = []string{Gen2, Gen03}
	}
	var r struct {
		JID     string `json:"jid"`
		Carbons bool   `json:"carbons"`
	}
	req := map[string]any{"op": "connect", "addr": srv.Addr, "ca": srv.CAFile, "jid": j.String(),
		"password": acct.Password, "gens": gens, "blind": !opts.Manual}
	if err := p.call(req, &r); err != nil {
		t.Fatalf("xmpp peer %s: %v", j, err)
	}
	p.JID, p.Carbons = r.JID, r.Carbons
	p.Bare, _, _ = strings.Cut(r.JID, "/")
	if !opts.NoPublish {
		if err := p.Publish(); err != nil {
			t.Fatalf("xmpp peer %s: %v", p.JID, err)
		}
	}
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// read sorts the peer's output lines into answers and events.
func (p *XMPPPeer) read(out io.Reader) {
	defer close(p.done)
	r := bufio.NewReaderSize(out, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err == nil && ev.Kind != "" {
			p.mu.Lock()
			p.events = append(p.events, ev)
			close(p.arrived)
			p.arrived = make(chan struct{})
			p.mu.Unlock()
			continue
		}
		select {
		case p.answers <- line:
		case <-time.After(CallTimeout):
			return // nobody waits for it: the test is over
		}
	}
}

// stop asks the peer to quit and, if it does not, kills it by its pid.
func (p *XMPPPeer) stop() {
	quit := make(chan error, 1)
	go func() { quit <- p.call(map[string]any{"op": "quit"}, nil) }()
	select {
	case <-quit:
	case <-time.After(15 * time.Second):
	}
	p.in.Close()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
	}
	if p.t.Failed() {
		p.mu.Lock()
		p.t.Logf("xmpp peer %s: stderr:\n%s", p.JID, p.stderr.String())
		for _, ev := range p.events {
			p.t.Logf("xmpp peer %s: event not read: %+v", p.JID, ev)
		}
		p.mu.Unlock()
	}
}

// call sends one request and decodes its answer into v.
func (p *XMPPPeer) call(req map[string]any, v any) error {
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("xmpp peer: %w", err)
	}
	var ans []byte
	select {
	case ans = <-p.answers:
	case <-p.done:
		return fmt.Errorf("xmpp peer: exited during %s", req["op"])
	case <-time.After(CallTimeout):
		return fmt.Errorf("xmpp peer: no answer to %s in %v", req["op"], CallTimeout)
	}
	op, err := decodeAnswer("xmpp peer", ans, v)
	if op != req["op"] {
		return fmt.Errorf("xmpp peer: answer to %q for request %q (%v)", op, req["op"], err)
	}
	return err
}

// Publish sets up the device the first time (device id, keys, bundle and
// device list published with an open access model) and re-checks and
// republishes them afterwards. It returns when the server confirmed.
func (p *XMPPPeer) Publish() error {
	var r struct {
		DeviceID uint32 `json:"device_id"`
	}
	if err := p.call(map[string]any{"op": "publish"}, &r); err != nil {
		return err
	}
	p.DeviceID = r.DeviceID
	return nil
}

// Devices fetches jid's device list (gen "": every generation the peer
// speaks) and the bundles of devices it does not know yet.
func (p *XMPPPeer) Devices(jid, gen string) ([]Device, error) {
	var r struct {
		Devices []Device `json:"devices"`
	}
	return r.Devices, p.call(map[string]any{"op": "devices", "jid": jid, "gen": gen}, &r)
}

// Subscribe subscribes to jid's device list node(s) (XEP-0060 §6.1);
// updates arrive as "devicelist" events. It returns the subscription state
// by generation.
func (p *XMPPPeer) Subscribe(jid, gen string) (map[string]string, error) {
	var r struct {
		Subs map[string]string `json:"subscriptions"`
	}
	return r.Subs, p.call(map[string]any{"op": "subscribe", "jid": jid, "gen": gen}, &r)
}

// Send encrypts body with generation gen for every device of to's account
// and our other devices, and sends it to to (a bare or full JID).
func (p *XMPPPeer) Send(to, gen, body string) (*Sent, error) {
	r := new(Sent)
	return r, p.call(map[string]any{"op": "send", "to": to, "gen": gen, "body": body}, r)
}

// SendEmpty sends an empty OMEMO message (key transport, heartbeat) to
// every device of to's account and our other devices with a session.
func (p *XMPPPeer) SendEmpty(to, gen string) (*Sent, error) {
	r := new(Sent)
	return r, p.call(map[string]any{"op": "send_empty", "to": to, "gen": gen}, r)
}

// Trust sets the trust in an identity key (Ed25519) of jid: "trusted",
// "distrusted", "undecided" or "blind".
func (p *XMPPPeer) Trust(jid string, identityKey []byte, level string) error {
	return p.call(map[string]any{"op": "trust", "jid": jid, "identity_key": identityKey, "level": level}, nil)
}

// Identity returns the peer's device id, identity key and fingerprint.
func (p *XMPPPeer) Identity() (*Identity, error) {
	r := new(Identity)
	return r, p.call(map[string]any{"op": "fingerprint"}, r)
}

// NodeConfig returns the configuration of one of the peer's own PEP nodes
// as its owner sees it (field var to value).
func (p *XMPPPeer) NodeConfig(node string) (map[string]string, error) {
	var r struct {
		Config map[string]string `json:"config"`
	}
	return r.Config, p.call(map[string]any{"op": "node_config", "node": node}, &r)
}

// ErrNoEvent is returned by Next when no matching event came in time, and
// by TryNext when none is queued.
var ErrNoEvent = errors.New("xmpp peer: no such event")

// Next removes and returns the first event of the given kind ("" any)
// that match accepts (nil: any), waiting up to timeout for it. Other
// events stay queued.
func (p *XMPPPeer) Next(kind string, match func(Event) bool, timeout time.Duration) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ev, ok := p.take(kind, match)
		arrived := p.arrived
		p.mu.Unlock()
		if ok {
			return ev, nil
		}
		select {
		case <-arrived:
		case <-p.done:
			p.mu.Lock()
			ev, ok := p.take(kind, match)
			p.mu.Unlock()
			if ok {
				return ev, nil
			}
			return Event{}, fmt.Errorf("%w: peer exited waiting for %q", ErrNoEvent, kind)
		case <-deadline.C:
			return Event{}, fmt.Errorf("%w: no %q event in %v", ErrNoEvent, kind, timeout)
		}
	}
}

// TryNext is Next without waiting: what has already arrived.
func (p *XMPPPeer) TryNext(kind string, match func(Event) bool) (Event, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev, ok := p.take(kind, match); ok {
		return ev, nil
	}
	return Event{}, fmt.Errorf("%w: no %q event queued", ErrNoEvent, kind)
}

func (p *XMPPPeer) take(kind string, match func(Event) bool) (Event, bool) {
	i := slices.IndexFunc(p.events, func(ev Event) bool {
		return (kind == "" || ev.Kind == kind) && (match == nil || match(ev))
	})
	if i < 0 {
		return Event{}, false
	}
	ev := p.events[i]
	p.events = slices.Delete(p.events, i, i+1)
	return ev, true
}
