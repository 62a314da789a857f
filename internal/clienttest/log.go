package clienttest

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// Logger returns a logger that writes the client's diagnostics to the
// test's log (shown when the test fails, or with -v), prefixed with name:
// a flaky failure in CI then comes with what the client saw. The level is
// Info, or Debug with BALCONY_TEST_LOG=debug. Records logged after the
// test ended are dropped (a client's goroutines may outlive it briefly).
func Logger(t testing.TB, name string) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("BALCONY_TEST_LOG"), "debug") {
		level = slog.LevelDebug
	}
	w := &testWriter{t: t}
	// Registered first, the cleanup runs last: after the client closed.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("client", name)
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool // the test ended
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
