// Package omemopeer runs python-omemo 1.0 (the reference Python stack for
// XEP-0384, OMEMO Encryption, Experimental: oldmemo 1.0.3 for the 0.3
// generation, twomemo 1.0.3 for OMEMO 2, from Debian's python3-omemo,
// python3-oldmemo and python3-twomemo) as a real peer in Balcony's OMEMO
// interoperability tests, at two levels.
//
// Start runs peer.py, a small program of ours that drives python-omemo's
// backends as omemo.SessionManager does for one device, with Debian's
// /usr/bin/python3: an engine-level peer with no network. Requests and
// answers are JSON lines (see peer.py); the helper answers each request
// with exactly one line, so no test sleeps or polls. It knows nothing of
// Balcony's engine: byte fields are exactly what the XML elements carry.
//
// StartXMPP runs xmpppeer.py: python-omemo's SessionManager over slixmpp
// 1.8 (Debian's python3-slixmpp), a complete OMEMO client logged in to a
// real server started by internal/servertest. It publishes its device
// lists and bundles over PEP, fetches its contacts', sends and reads
// messages of either generation (carbons included) and answers key
// exchanges and heartbeats as python-omemo decides; what it receives comes
// back as Events. It is the reference Balcony's OMEMO glue is checked
// against; its own tests run it against Prosody and ejabberd.
//
// If the Python packages are missing, Start and StartXMPP skip the test,
// unless BALCONY_REQUIRE_INTEROP=1 is set (as in CI), in which case they
// fail it.
//
// A Peer is not safe for concurrent use.
package omemopeer

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed peer.py
var peerScript []byte

// Python is the interpreter Debian's python3-omemo installs into.
const Python = "/usr/bin/python3"

// PreKey is one pre-key of a bundle.
type PreKey struct {
	ID  uint32 `json:"id"`
	Key []byte `json:"key"`
}

// Bundle is a device's bundle as the XML carries it.
type Bundle struct {
	DeviceID       uint32   `json:"device_id"`
	IdentityKey    []byte   `json:"ik"`
	SignedPreKey   []byte   `json:"spk"`
	SignedPreKeyID uint32   `json:"spk_id"`
	Signature      []byte   `json:"spks"`
	PreKeys        []PreKey `json:"prekeys"`
}

// Encrypted is what the peer sends to one device.
type Encrypted struct {
	Key     []byte `json:"key"`
	PreKey  bool   `json:"prekey"`
	Payload []byte `json:"payload"`
	IV      []byte `json:"iv"`
}

// Decrypted is what the peer read.
type Decrypted struct {
	Plaintext  []byte `json:"plaintext"`
	Empty      bool   `json:"empty"`
	NewSession bool   `json:"new_session"`
}

// Peer is a running python-omemo device.
type Peer struct {
	DeviceID uint32
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
}

// Available reports whether python-omemo and both backends import.
func Available() error {
	out, err := exec.Command(Python, "-c", "import omemo, oldmemo, twomemo, xmlschema").CombinedOutput()
	if err != nil {
		return fmt.Errorf("python-omemo is not usable with %s: %v: %s", Python, err, out)
	}
	return nil
}

// Start runs a python-omemo device of generation gen ("03" or "2") for
// jid. It is stopped when the test ends.
func Start(t testing.TB, gen, jid string) *Peer {
	t.Helper()
	requireInterop(t, Available())
	script := filepath.Join(t.TempDir(), "peer.py")
	if err := os.WriteFile(script, peerScript, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Python, script)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Peer{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	t.Cleanup(func() {
		_ = p.call(map[string]any{"op": "quit"}, nil)
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("python-omemo peer: %v", err)
		}
	})
	var r struct {
		DeviceID uint32 `json:"device_id"`
	}
	if err := p.call(map[string]any{"op": "init", "gen": gen, "jid": jid}, &r); err != nil {
		t.Fatal(err)
	}
	p.DeviceID = r.DeviceID
	return p
}

// call sends one request and decodes its answer into v.
func (p *Peer) call(req map[string]any, v any) error {
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("python-omemo peer: %w", err)
	}
	ans, err := p.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("python-omemo peer: reading answer: %w", err)
	}
	_, err = decodeAnswer("python-omemo", ans, v)
	return err
}

// requireInterop skips the test when err says a peer cannot run, or fails
// it when BALCONY_REQUIRE_INTEROP=1.
func requireInterop(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("BALCONY_REQUIRE_INTEROP") == "1" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// decodeAnswer reads a peer's answer line {"ok": ..., "op": ...} into v
// and returns the op it answers.
func decodeAnswer(who string, ans []byte, v any) (op string, err error) {
	var status struct {
		OK    bool   `json:"ok"`
		Op    string `json:"op"`
		Error string `json:"error"`
		Trace string `json:"trace"`
	}
	if err := json.Unmarshal(ans, &status); err != nil {
		return "", fmt.Errorf("%s: bad answer %q: %w", who, ans, err)
	}
	if !status.OK {
		return status.Op, fmt.Errorf("%s: %s: %s\n%s", who, status.Op, status.Error, status.Trace)
	}
	if v != nil {
		return status.Op, json.Unmarshal(ans, v)
	}
	return status.Op, nil
}

// Bundle returns the peer's current bundle.
func (p *Peer) Bundle() (*Bundle, error) {
	var r struct {
		Bundle *Bundle `json:"bundle"`
	}
	return r.Bundle, p.call(map[string]any{"op": "bundle"}, &r)
}

// Encrypt encrypts plaintext (nil: an empty message) for one device;
// bundle is needed when the peer has no session with it yet.
func (p *Peer) Encrypt(jid string, device uint32, plaintext []byte, bundle *Bundle) (*Encrypted, error) {
	req := map[string]any{"op": "encrypt", "jid": jid, "device_id": device}
	if plaintext == nil {
		req["empty"] = true
	} else {
		req["plaintext"] = plaintext
	}
	if bundle != nil {
		req["bundle"] = bundle
	}
	r := new(Encrypted)
	return r, p.call(req, r)
}

// Decrypt decrypts what a device sent to the peer.
func (p *Peer) Decrypt(jid string, device uint32, e *Encrypted) (*Decrypted, error) {
	req := map[string]any{"op": "decrypt", "jid": jid, "device_id": device, "key": e.Key, "prekey": e.PreKey}
	if e.Payload != nil {
		req["payload"] = e.Payload
	}
	if e.IV != nil {
		req["iv"] = e.IV
	}
	r := new(Decrypted)
	return r, p.call(req, r)
}
