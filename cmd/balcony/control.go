package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/balcony-im/balcony/client"
)

// The control socket lets one-shot commands act through a running
// "balcony listen" of the same account. Session mechanisms (OTR, Encrypted
// Sessions) keep their state in that process's memory, so "balcony otr
// start", "balcony esession sas" or "balcony send --otr" must run there.
//
// The socket is <data dir>/<account>/control.sock, in the account's 0700
// directory, with mode 0600. When that path is too long for a Unix
// socket, it lives in a new 0700 directory with an unpredictable name
// under $XDG_RUNTIME_DIR or the temporary directory, recorded in
// <data dir>/<account>/control.path, so that no other user can take its
// place or block it. On Linux both ends check that the other process
// belongs to the same user (SO_PEERCRED). The protocol is one JSON request
// line, carrying the caller's deadline, and one JSON response line per
// connection.

type controlRequest struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
	Lang string          `json:"lang,omitempty"`
	// Deadline is the caller's: the handler gives up with it.
	Deadline time.Time `json:"deadline,omitempty"`
}

type controlResponse struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Hint   string          `json:"hint,omitempty"`
	Code   int             `json:"code,omitempty"`
}

// controlHandler runs a request inside the listener.
type controlHandler func(ctx context.Context, s *session, args json.RawMessage) (any, error)

// controlPath returns the socket a command dials to reach the account's
// listener: control.sock in the account's data directory, or, when that
// path is too long for a Unix socket, the path the listener recorded in
// control.path there (see listenPath). It fails with errNoListener when
// no listener recorded one.
func controlPath(a *accountConfig) (string, error) {
	dir, err := storeDir(a)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "control.sock")
	if len(p) < maxSocketPath {
		return p, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, controlPointer))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errNoListener
	}
	if err != nil {
		return "", err
	}
	p = string(b)
	if !filepath.IsAbs(p) || len(p) >= maxSocketPath {
		return "", fmt.Errorf("%s does not name a control socket", filepath.Join(dir, controlPointer))
	}
	if err := checkPrivateDir(filepath.Dir(p)); err != nil {
		return "", err
	}
	return p, nil
}

// controlPointer is the file in the account's data directory that names
// the control socket when it lives elsewhere.
const controlPointer = "control.path"

// listenPath chooses where the listener's socket lives and prepares it.
// For a deep data directory the socket goes into a new directory with an
// unpredictable name (os.MkdirTemp, mode 0700) under $XDG_RUNTIME_DIR or
// the temporary directory, so that no other local user can create it
// first, and its path is recorded in the 0700 data directory. cleanup
// removes what listenPath made.
func listenPath(a *accountConfig) (path string, cleanup func(), err error) {
	dir, err := storeDir(a)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, "control.sock")
	if len(p) < maxSocketPath {
		return p, func() { os.Remove(p) }, nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" || checkPrivateDir(base) != nil {
		base = os.TempDir()
	}
	rt, err := os.MkdirTemp(base, "balcony-")
	if err != nil {
		return "", nil, err
	}
	p = filepath.Join(rt, "control.sock")
	if len(p) >= maxSocketPath {
		os.Remove(rt)
		return "", nil, fmt.Errorf("no short enough directory for the control socket (%s)", p)
	}
	if err := writeFileAtomic(filepath.Join(dir, controlPointer), []byte(p), 0o600); err != nil {
		os.Remove(rt)
		return "", nil, err
	}
	return p, func() {
		os.Remove(filepath.Join(dir, controlPointer))
		os.Remove(p)
		os.Remove(rt)
	}, nil
}

// checkPrivateDir makes sure dir is a real directory of this user with
// mode 0700.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || !ownedByMe(fi) {
		return fmt.Errorf("%s must be a directory of yours with mode 0700", dir)
	}
	return nil
}

// maxSocketPath is below the smallest sun_path limit of common systems.
const maxSocketPath = 100

// serveControl listens on the account's control socket until ctx ends.
// Only one listener per account may serve: a lock file next to the socket
// settles races between two starting at once.
func serveControl(ctx context.Context, s *session) (stop func(), err error) {
	dir, err := storeDir(s.acct)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The lock lives in the account's 0700 data directory, wherever the
	// socket goes.
	lock, err := os.OpenFile(filepath.Join(dir, "control.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if !lockFile(lock) {
		lock.Close()
		return nil, withHint(errors.New("another balcony listen is running for "+s.acct.JID), "stop it first, or send commands to it (balcony send, balcony otr, balcony esession use it)")
	}
	path, cleanup, err := listenPath(s.acct)
	if err != nil {
		lock.Close()
		return nil, err
	}
	// Holding the lock, a socket left by a killed listener is stale.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		cleanup()
		lock.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		cleanup()
		lock.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		conns   = map[net.Conn]bool{}
		stopped bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Only processes of this user may drive the session (the
			// directory is 0700 too).
			if uid, ok := peerUID(conn); ok && uid != os.Getuid() {
				conn.Close()
				continue
			}
			// A connection accepted while stop runs is closed here: stop
			// may already have closed the ones it knew of.
			mu.Lock()
			if stopped {
				mu.Unlock()
				conn.Close()
				continue
			}
			conns[conn] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handleControl(ctx, s, conn)
				mu.Lock()
				delete(conns, conn)
				mu.Unlock()
			}()
		}
	}()
	return func() {
		cancel()
		ln.Close()
		mu.Lock()
		stopped = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		cleanup()
		lock.Close()
	}, nil
}

// controlReadTimeout bounds how long a connection may take to send its
// request, so that an idle client cannot hold the listener open.
const controlReadTimeout = 10 * time.Second

func handleControl(ctx context.Context, s *session, conn net.Conn) {
	defer conn.Close()
	var req controlRequest
	conn.SetReadDeadline(time.Now().Add(controlReadTimeout))
	r := bufio.NewReader(io.LimitReader(conn, 1<<20))
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	conn.SetReadDeadline(time.Time{})
	resp := controlResponse{}
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = "malformed control request"
	} else if h, ok := controlHandlers[req.Cmd]; !ok {
		resp.Error = fmt.Sprintf("unknown control request %q", req.Cmd)
	} else {
		hctx := ctx
		if !req.Deadline.IsZero() {
			var cancel context.CancelFunc
			hctx, cancel = context.WithDeadline(ctx, req.Deadline)
			defer cancel()
		}
		res, err := h(hctx, s, req.Args)
		if err != nil {
			resp.Error = err.Error()
			var he *hintError
			if errors.As(err, &he) {
				resp.Hint = he.hint
			}
			resp.Code = exitCodeFor(err)
		} else {
			resp.OK = true
			resp.Result, _ = json.Marshal(res)
		}
	}
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

// errNoListener means no "balcony listen" runs for the account.
var errNoListener = errors.New("no balcony listen is running for this account")

// callControl sends a request to the account's running listener and
// decodes its result into result (may be nil). It returns errNoListener
// when there is none.
func callControl(ctx context.Context, e *env, a *accountConfig, cmd string, args, result any) error {
	path, err := controlPath(a)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return errNoListener
	}
	defer conn.Close()
	// The other end must be a listener of this user.
	if uid, ok := peerUID(conn); ok && uid != os.Getuid() {
		return fmt.Errorf("the control socket %s belongs to another user (uid %d); refusing to use it", path, uid)
	}
	dl, _ := ctx.Deadline()
	if !dl.IsZero() {
		conn.SetDeadline(dl)
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(controlRequest{Cmd: cmd, Args: raw, Lang: e.lang, Deadline: dl})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("the running balcony listen did not answer: %w", err)
	}
	var resp controlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("malformed answer from balcony listen: %w", err)
	}
	if !resp.OK {
		err := &controlError{msg: resp.Error, code: resp.Code}
		if resp.Hint != "" {
			return withHint(err, resp.Hint)
		}
		return err
	}
	if result != nil && len(resp.Result) > 0 {
		return json.Unmarshal(resp.Result, result)
	}
	return nil
}

// controlError is an error reported by the listener, with its exit code.
type controlError struct {
	msg  string
	code int
}

func (e *controlError) Error() string { return e.msg }

// needListener turns errNoListener into an error with a hint.
func needListener(err error, a *accountConfig) error {
	if errors.Is(err, errNoListener) {
		return withHint(fmt.Errorf("%w (%s)", err, a.JID), "session mechanisms live in a running listener: start one with: balcony -a "+a.JID+" listen")
	}
	return err
}

// watcher receives the first event matching its predicate from a
// listener's event loop. Register it before triggering the action whose
// result it waits for.
type watcher struct {
	pred func(ev any) bool
	ch   chan any
	// keep: the watcher stays registered after a match and receives
	// every matching event (up to its buffer; see watchAll).
	keep bool
}

type watchers struct {
	mu   sync.Mutex
	list []*watcher
}

// watch registers a watcher on the session's event stream (listen only).
func (s *session) watch(pred func(ev any) bool) *watcher {
	w := &watcher{pred: pred, ch: make(chan any, 1)}
	s.watchers.mu.Lock()
	s.watchers.list = append(s.watchers.list, w)
	s.watchers.mu.Unlock()
	return w
}

// watchAll registers a watcher that receives every matching event, not
// only the first, up to n events not yet read (more are dropped).
func (s *session) watchAll(n int, pred func(ev any) bool) *watcher {
	w := &watcher{pred: pred, ch: make(chan any, n), keep: true}
	s.watchers.mu.Lock()
	s.watchers.list = append(s.watchers.list, w)
	s.watchers.mu.Unlock()
	return w
}

// unwatch removes a watcher.
func (s *session) unwatch(w *watcher) {
	s.watchers.mu.Lock()
	defer s.watchers.mu.Unlock()
	out := s.watchers.list[:0]
	for _, x := range s.watchers.list {
		if x != w {
			out = append(out, x)
		}
	}
	s.watchers.list = out
}

// offer hands an event to the first matching watchers (each gets at most
// one event).
func (s *session) offer(ev any) {
	if ce, ok := ev.(*client.ConnectionEvent); ok && ce.State == client.Connected {
		s.reconnected()
	}
	s.watchers.mu.Lock()
	defer s.watchers.mu.Unlock()
	out := s.watchers.list[:0]
	for _, w := range s.watchers.list {
		if w.pred(ev) && w.keep {
			select {
			case w.ch <- ev:
			default:
			}
		} else if w.pred(ev) {
			w.ch <- ev
			continue
		}
		out = append(out, w)
	}
	s.watchers.list = out
}

// wait blocks until the watcher fires or ctx ends, then unregisters it.
func (s *session) wait(ctx context.Context, w *watcher) (any, error) {
	defer s.unwatch(w)
	select {
	case ev := <-w.ch:
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
