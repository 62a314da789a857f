package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// eventSink is where balcony serve writes the events of all its
// accounts: one JSON object per line, each tagged with its account,
// written whole (lines of different accounts never interleave).
type eventSink struct {
	mu sync.Mutex
	w  io.Writer
}

// errFenced is what an account's output returns once its host lost the
// database: no event of the account may be written any more, since
// another host may be serving it already.
var errFenced = errors.New("the host lost its database connection: the account may be served elsewhere")

// hostFence is set when a host loses its database connection. It is shared
// by the accounts the host holds under that connection; nil (never set)
// for SQLite stores, which have no other host. Its context ends when it
// is set, so that waiting on it costs no goroutine (context.AfterFunc).
type hostFence struct {
	on     atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
}

func newFence() *hostFence {
	f := &hostFence{}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f
}

func (f *hostFence) isSet() bool { return f != nil && f.on.Load() }

// done is closed when the fence is set (nil, never closed, for a nil
// fence).
func (f *hostFence) done() <-chan struct{} {
	if f == nil {
		return nil
	}
	return f.ctx.Done()
}

// afterFunc runs fn (in a goroutine of its own) when the fence is set,
// unless stop is called first; a nil fence never runs it.
func (f *hostFence) afterFunc(fn func()) (stop func() bool) {
	if f == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(f.ctx, fn)
}

// accountOut is an account's view of the sink. It refuses every line once
// the fence is set.
type accountOut struct {
	sink  *eventSink
	fence *hostFence
	// refused is set when a line was refused (read by the account's own
	// goroutine only, which is the one writing).
	refused bool
}

func (o *accountOut) fenced() bool { return o.fence.isSet() }

func (o *accountOut) Write(p []byte) (int, error) {
	o.sink.mu.Lock()
	defer o.sink.mu.Unlock()
	// Checked under the sink's lock: the host sets the fence before it
	// takes this lock to report the loss, so no line follows that report.
	if o.fenced() {
		o.refused = true
		return 0, errFenced
	}
	return o.sink.w.Write(p)
}

// status writes a line about serving an account: state is "waiting"
// (the lock is held, the fence delay runs), "connected", "failed",
// "fenced" (the host lost the database: no line of the account follows)
// or "stopped" (its XMPP session ended), and text says more.
func (s *eventSink) status(account, state, text string) {
	b, _ := json.Marshal(jsonEvent{Account: account, Type: "status", Time: time.Now().UTC(), Kind: state, Text: text})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.Write(append(jsonSafe(b), '\n'))
}

// fence sets the fence of a host's accounts under the sink's lock, so
// that no line of theirs is written after it returns, writes a "fenced"
// status line for each of accounts, and then wakes what waits on the
// fence.
func (s *eventSink) fence(f *hostFence, accounts []string) {
	s.mu.Lock()
	f.on.Store(true)
	s.mu.Unlock()
	for _, j := range accounts {
		s.status(j, "fenced", "the database connection was lost: nothing more is written for the account")
	}
	f.cancel()
}

// socketWriter sends every line to each process connected to a Unix
// socket. A consumer that does not take a line within socketWriteTimeout
// is disconnected (so that it cannot hold up every account), and lines
// written while nobody is connected are not kept: the socket is for
// watching; standard output is the reliable channel.
type socketWriter struct {
	ln    net.Listener
	path  string
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

const socketWriteTimeout = time.Second

// listenEvents creates the events socket at path (mode 0600; a stale
// socket there is replaced) and accepts consumers of this user.
func listenEvents(path string) (*socketWriter, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("events socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("events socket: %w", err)
	}
	sw := &socketWriter{ln: ln, path: path, conns: map[net.Conn]bool{}}
	sw.wg.Add(1)
	go func() {
		defer sw.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if uid, ok := peerUID(c); ok && uid != os.Getuid() {
				c.Close()
				continue
			}
			sw.mu.Lock()
			sw.conns[c] = true
			sw.mu.Unlock()
		}
	}()
	return sw, nil
}

func (sw *socketWriter) Write(p []byte) (int, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for c := range sw.conns {
		c.SetWriteDeadline(time.Now().Add(socketWriteTimeout))
		if _, err := c.Write(p); err != nil {
			c.Close()
			delete(sw.conns, c)
		}
	}
	return len(p), nil
}

// Close stops accepting, disconnects the consumers and removes the socket.
func (sw *socketWriter) Close() {
	sw.ln.Close()
	sw.wg.Wait()
	sw.mu.Lock()
	for c := range sw.conns {
		c.Close()
	}
	sw.conns = nil
	sw.mu.Unlock()
	os.Remove(sw.path)
}
