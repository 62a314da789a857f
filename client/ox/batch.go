package ox

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
)

// memoKeys supplies sender keys during one bulk decryption: each sender's
// keys are read from the store (and fetched over PEP if none is known)
// once, parsed once through the key cache, and shared by all workers.
type memoKeys struct {
	x  *Mechanism
	mu sync.Mutex
	m  map[string]*memoEntry
}

type memoEntry struct {
	mu        sync.Mutex
	loaded    bool
	refetched bool
	sk        *senderKeys
	err       error
}

func (x *Mechanism) newMemo() *memoKeys {
	return &memoKeys{x: x, m: map[string]*memoEntry{}}
}

func (m *memoKeys) entry(bare string) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[bare]
	if !ok {
		e = new(memoEntry)
		m.m[bare] = e
	}
	return e
}

func (m *memoKeys) keys(ctx context.Context, from jid.JID) (*senderKeys, error) {
	e := m.entry(from.Bare().String())
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		e.sk, e.err = m.x.keysFetching(ctx, from)
		e.loaded = true
	}
	return e.sk, e.err
}

func (m *memoKeys) refetch(ctx context.Context, from jid.JID, prev *senderKeys) (*senderKeys, bool) {
	e := m.entry(from.Bare().String())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refetched {
		// Another worker fetched already: use what it found.
		return e.sk, e.sk != nil
	}
	e.refetched = true
	sk, ok := m.x.refetchKeys(ctx, from, prev)
	if ok {
		e.sk, e.err, e.loaded = sk, nil, true
	}
	return sk, ok
}

// settled returns what the memo holds: archived messages are opened
// against the keys known when the batch began.
func (m *memoKeys) settled(ctx context.Context, from jid.JID) (*senderKeys, error) {
	return m.keys(ctx, from)
}

var _ client.BatchOpener = (*Mechanism)(nil)

// NewBatch implements client.BatchOpener: archived OX messages are opened
// by several goroutines that share one opener and one cache of parsed
// sender keys, so that each sender's keys are read and parsed once for a
// whole Client.History, whatever the number of messages.
func (x *Mechanism) NewBatch() client.Batch { return &batch{x: x, memo: x.newMemo()} }

type batch struct {
	x    *Mechanism
	memo *memoKeys
}

// Open implements client.Batch with workers goroutines (0 means one per
// CPU).
func (b *batch) Open(ctx context.Context, ins []*client.Incoming, workers int) []client.BatchResult {
	out := make([]client.BatchResult, len(ins))
	open := func(i int) {
		op, err := b.x.open(ctx, ins[i], b.memo)
		out[i] = client.BatchResult{Opened: op, Err: err}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(ins))
	if workers <= 1 {
		for i := range ins {
			open(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ins) {
					return
				}
				open(i)
			}
		}()
	}
	wg.Wait()
	return out
}
