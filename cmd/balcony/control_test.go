package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testSession(t *testing.T) *session {
	t.Helper()
	t.Setenv("BALCONY_DATA_DIR", t.TempDir())
	return &session{acct: &accountConfig{JID: "alice@example.org"}}
}

// An idle client must not keep the listener from stopping, and a second
// listener for the same account is refused while the first serves.
func TestControlStopWithIdleClientAndSingleListener(t *testing.T) {
	s := testSession(t)
	stop, err := serveControl(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serveControl(context.Background(), s); err == nil || !strings.Contains(err.Error(), "another balcony listen") {
		t.Fatalf("second listener: %v", err)
	}
	path, _ := controlPath(s.acct)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop blocked on an idle control connection")
	}
	// After stop, a new listener may serve again.
	stop2, err := serveControl(context.Background(), s)
	if err != nil {
		t.Fatalf("after stop: %v", err)
	}
	stop2()
}

func TestControlUnknownRequest(t *testing.T) {
	s := testSession(t)
	stop, err := serveControl(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	e := &env{lang: "en"}
	err = callControl(context.Background(), e, s.acct, "no-such-request", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown control request") {
		t.Fatalf("got %v", err)
	}
}

// A socket recorded in a directory that is not ours is never dialled.
func TestControlRuntimeDirMustBeOurs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	data := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	t.Setenv("BALCONY_DATA_DIR", data)
	a := &accountConfig{JID: "alice@example.org"}
	other := t.TempDir()
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	acct := filepath.Join(data, a.JID)
	if err := os.MkdirAll(acct, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(acct, controlPointer), []byte(filepath.Join(other, "control.sock")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := controlPath(a); err == nil {
		t.Fatal("accepted a socket in a directory owned by another user")
	}
}

// Another local user cannot block the listener by creating the fallback
// directory first: its name is not predictable (it was /tmp/balcony-UID).
func TestControlFallbackCannotBeSquatted(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("XDG_RUNTIME_DIR", "")
	s := testSession(t)
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(t.TempDir(), strings.Repeat("d", 120)))
	// What a squatter could create under the old, predictable name.
	if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("balcony-%d", os.Getuid())), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stop, err := serveControl(context.Background(), s)
	if err != nil {
		t.Fatalf("listener blocked: %v", err)
	}
	path, err := controlPath(s.acct)
	if err != nil || !strings.HasPrefix(path, tmp) || len(path) >= maxSocketPath {
		t.Fatalf("socket %q: %v", path, err)
	}
	err = callControl(context.Background(), &env{lang: "en"}, s.acct, "no-such-request", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown control request") {
		t.Fatalf("calling the listener: %v", err)
	}
	stop()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := controlPath(s.acct); !errors.Is(err, errNoListener) {
		t.Fatalf("after stop: %v", err)
	}
}
