package esession

import (
	"container/list"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"sync"
)

// This file is XEP-0201 (Best Practices for Message Threads, Active).

// NewThreadID returns a new ThreadID: 128 random bits from r (nil means
// crypto/rand) in unpadded URL-safe base64, 22 characters.
func NewThreadID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("esession: reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Threads tracks the conversation threads of plain one-to-one chats
// (XEP-0201 §4.1): a thread per conversation, echoed in replies; a message
// with an unknown ThreadID or none starts a new conversation. ThreadIDs
// are opaque and compared exactly. It remembers at most a fixed number of
// threads, forgetting the least recently used. It is safe for concurrent
// use; the zero value is not usable, use NewThreads.
type Threads struct {
	mu      sync.Mutex
	rand    io.Reader
	max     int
	lru     *list.List // of threadKey, most recent at the front
	known   map[threadKey]*list.Element
	current map[string]string // peer bare JID -> current thread
}

type threadKey struct{ peer, thread string }

// NewThreads returns a tracker remembering up to max threads (at least 1),
// generating ThreadIDs from r (nil means crypto/rand).
func NewThreads(r io.Reader, max int) *Threads {
	if max < 1 {
		max = 1
	}
	return &Threads{rand: r, max: max, lru: list.New(), known: map[threadKey]*list.Element{}, current: map[string]string{}}
}

// Incoming records a received chat message from peer (a bare JID) with
// the given ThreadID ("" for none). It returns the ThreadID to use in
// replies and whether the message starts a new conversation: a message
// without a thread gets a newly generated one, a message with an unknown
// thread starts a conversation under that thread.
func (t *Threads) Incoming(peer, thread string) (reply string, isNew bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if thread == "" {
		thread, err = NewThreadID(t.rand)
		if err != nil {
			return "", false, err
		}
	}
	isNew = t.touch(peer, thread)
	t.current[peer] = thread
	return thread, isNew, nil
}

// Outgoing returns the ThreadID for a message the user sends to peer: the
// current conversation's, or a new one.
func (t *Threads) Outgoing(peer string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if th, ok := t.current[peer]; ok {
		t.touch(peer, th)
		return th, nil
	}
	th, err := NewThreadID(t.rand)
	if err != nil {
		return "", err
	}
	t.touch(peer, th)
	t.current[peer] = th
	return th, nil
}

// End forgets a conversation; the next message to peer starts a new one.
func (t *Threads) End(peer, thread string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := threadKey{peer, thread}
	if e, ok := t.known[k]; ok {
		t.lru.Remove(e)
		delete(t.known, k)
	}
	if t.current[peer] == thread {
		delete(t.current, peer)
	}
}

// Known reports whether the thread is a remembered conversation with peer.
func (t *Threads) Known(peer, thread string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.known[threadKey{peer, thread}]
	return ok
}

// touch marks the thread used and reports whether it was new.
func (t *Threads) touch(peer, thread string) bool {
	k := threadKey{peer, thread}
	if e, ok := t.known[k]; ok {
		t.lru.MoveToFront(e)
		return false
	}
	t.known[k] = t.lru.PushFront(k)
	for t.lru.Len() > t.max {
		old := t.lru.Back()
		ok := old.Value.(threadKey)
		t.lru.Remove(old)
		delete(t.known, ok)
		if t.current[ok.peer] == ok.thread {
			delete(t.current, ok.peer)
		}
	}
	return true
}
