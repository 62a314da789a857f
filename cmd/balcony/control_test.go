package main

import (
	"context"
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

func TestControlRuntimeDirMustBeOurs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(t.TempDir(), strings.Repeat("d", 120)))
	dir := filepath.Join(rt, "balcony-0")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := controlPath(&accountConfig{JID: "alice@example.org"}); err == nil {
		t.Fatal("accepted a runtime directory owned by another user")
	}
}
