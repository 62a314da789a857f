package client

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/xmltree"
	"github.com/balcony-im/balcony/ox"
)

// memoKeys supplies sender keys during one bulk decryption: each sender's
// keys are read from the store (and fetched over PEP if none is known)
// once, parsed once through the key cache, and shared by all workers.
type memoKeys struct {
	x    *OX
	mu   sync.Mutex
	m    map[string]*memoEntry
	jids map[string]jid.JID // parsed addresses, at most maxMemoJIDs
}

const maxMemoJIDs = 4096

type memoEntry struct {
	mu        sync.Mutex
	loaded    bool
	refetched bool
	sk        *senderKeys
	err       error
}

func (x *OX) newMemo() *memoKeys {
	return &memoKeys{x: x, m: map[string]*memoEntry{}, jids: map[string]jid.JID{}}
}

// jid parses an address, remembering the result: an archive holds the same
// few addresses many times, and normalising them is not free.
func (m *memoKeys) jid(s string) (jid.JID, error) {
	m.mu.Lock()
	j, ok := m.jids[s]
	m.mu.Unlock()
	if ok {
		return j, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return j, err
	}
	m.mu.Lock()
	if len(m.jids) < maxMemoJIDs {
		m.jids[s] = j
	}
	m.mu.Unlock()
	return j, nil
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

func (m *memoKeys) refetch(ctx context.Context, from jid.JID) (*senderKeys, bool) {
	e := m.entry(from.Bare().String())
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refetched {
		// Another worker fetched already: use what it found.
		return e.sk, e.sk != nil
	}
	e.refetched = true
	sk, ok := m.x.refetchKeys(ctx, from)
	if ok {
		e.sk, e.err, e.loaded = sk, nil, true
	}
	return sk, ok
}

// DecryptArchive runs archived messages (as QueryArchive returns them)
// through the message pipeline, as Client.History does, but with workers
// goroutines (0 means one per CPU) that share one opener and one cache of
// parsed sender keys: each sender's keys are read and parsed once for the
// whole batch, whatever the number of messages. The event for msgs[i] is at
// index i (nil when a message has nothing to show). Messages that are not
// OX messages take the pipeline's ordinary path.
func (x *OX) DecryptArchive(ctx context.Context, msgs []ArchivedMessage, workers int) []Event {
	return x.decryptBatch(ctx, msgs, workers, x.newMemo())
}

func (x *OX) decryptBatch(ctx context.Context, msgs []ArchivedMessage, workers int, memo *memoKeys) []Event {
	out := make([]Event, len(msgs))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(msgs))
	if workers <= 1 {
		for i, m := range msgs {
			out[i] = x.openArchived(ctx, m, memo)
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
				if i >= len(msgs) {
					return
				}
				out[i] = x.openArchived(ctx, msgs[i], memo)
			}
		}()
	}
	wg.Wait()
	return out
}

// HistoryPage is the size of the archive pages History fetches.
const HistoryPage = 100

// History reads the archived conversation with a contact (XEP-0313) and
// calls fn with each event, oldest first: *MessageEvent or *NoticeEvent,
// like Client.History, but OX messages are decrypted by workers goroutines
// (0 means one per CPU) while the next page is fetched, so memory stays
// bounded by a few pages. With limit > 0 only the last limit messages are
// read. An error from fn stops History and is returned.
func (x *OX) History(ctx context.Context, with jid.JID, limit, workers int, fn func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	memo := x.newMemo()
	if limit > 0 {
		msgs, err := x.lastArchived(ctx, with, limit)
		if err != nil {
			return err
		}
		for start := 0; start < len(msgs); start += HistoryPage {
			for _, ev := range x.decryptBatch(ctx, msgs[start:min(start+HistoryPage, len(msgs))], workers, memo) {
				if ev != nil {
					if err := fn(ev); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	type page struct {
		msgs []ArchivedMessage
		err  error
	}
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		q := ArchiveQuery{With: with, Max: HistoryPage}
		for {
			pg, err := x.c.QueryArchive(ctx, q)
			var p page
			if err != nil {
				p.err = err
			} else {
				p.msgs = pg.Messages
			}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			if err != nil || pg.Complete || pg.Last == "" || len(pg.Messages) == 0 {
				return
			}
			q.After = pg.Last
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		for _, ev := range x.decryptBatch(ctx, p.msgs, workers, memo) {
			if ev != nil {
				if err := fn(ev); err != nil {
					return err
				}
			}
		}
	}
	return ctx.Err()
}

// lastArchived pages backwards from the end of the archive until limit
// messages are collected, and returns them oldest first.
func (x *OX) lastArchived(ctx context.Context, with jid.JID, limit int) ([]ArchivedMessage, error) {
	var pages [][]ArchivedMessage
	n := 0
	q := ArchiveQuery{With: with, Max: min(limit, HistoryPage), BeforeLast: true}
	for n < limit {
		pg, err := x.c.QueryArchive(ctx, q)
		if err != nil {
			return nil, err
		}
		if len(pg.Messages) == 0 {
			break
		}
		pages = append(pages, pg.Messages)
		n += len(pg.Messages)
		if pg.Complete || pg.First == "" {
			break
		}
		q = ArchiveQuery{With: with, Max: min(limit-n, HistoryPage), Before: pg.First}
		if q.Max <= 0 {
			break
		}
	}
	var out []ArchivedMessage
	for _, p := range slices.Backward(pages) {
		out = append(out, p...)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// openArchived is Pipeline.archived for one message with the keys from
// src. OX messages are opened here, everything else takes the pipeline's
// path; the steps after opening are those of Pipeline.open.
func (x *OX) openArchived(ctx context.Context, m ArchivedMessage, memo *memoKeys) Event {
	p := x.c.pipeline
	if m.Message.Child(ox.NS, "openpgp") == nil {
		return p.archived(m)
	}
	tokens := newTreeTokens(m.Message)
	det, err := eme.DetectTokens(tokens)
	mech, ok, enabled := p.mechanism(eme.OX)
	if err != nil || det.Disagreement != nil || det.Mechanism != eme.OX || !det.Encrypted || !ok || !enabled ||
		mech != Mechanism(x) || tokens.skipped > eme.DefaultMaxSize/2 {
		// Anything unusual, including a message so large that its size
		// matters to detection, takes the pipeline's own path.
		return p.archived(m)
	}
	in := &inbound{st: m.Message, time: m.Stamp, origin: Origin{Archived: true, Delayed: true, StanzaID: m.ID}}
	if f := m.Message.AttrValue("from"); f == "" {
		in.from = x.c.JID().Bare()
	} else if in.from, err = memo.jid(f); err != nil {
		return nil
	}
	if t, err := memo.jid(m.Message.AttrValue("to")); err == nil {
		in.to = t
	}
	if in.time.IsZero() {
		in.time = x.c.cfg.now()
	}
	opened, err := x.open(ctx, p.incomingFor(in, det), memo)
	if err != nil {
		var oe *OpenError
		if errors.As(err, &oe) {
			return p.notice(in, det, oe.Reason, oe.Detail)
		}
		return p.notice(in, det, eme.ReasonMalformed, err.Error())
	}
	p.afterOpen(ctx, in, eme.OX, opened)
	if opened.Silent {
		return nil
	}
	ev := &MessageEvent{
		From: in.from, To: in.to, ID: in.st.AttrValue("id"), Type: in.st.AttrValue("type"),
		Thread: in.st.ChildText(NSClient, "thread"), Time: in.time, Origin: in.origin,
		Body: opened.Body, Payload: opened.Payload, Security: opened.Security,
	}
	if err := p.Policy(in.from).CheckIncoming(eme.OX); err != nil && !bareEqual(in.from, x.c.JID()) {
		ev.Security.Warnings = append(ev.Security.Warnings, err.Error())
	}
	ev.Security.Mechanism = eme.OX
	if ev.Security.Name == "" {
		ev.Security.Name = eme.DisplayName(eme.OX, "")
	}
	return ev
}

// treeTokens reads a message tree as namespace-resolved tokens, as
// eme.DetectTokens wants them, without encoding and parsing it again. Text
// is given only where detection reads it, in the direct <body/> children of
// the message; the rest of the text (the Base64 of an <openpgp/> element)
// is skipped, and its length added to skipped.
type treeTokens struct {
	stack   []*xmltree.Element // elements whose start was not written yet, or are open
	pos     []int              // next child index of each open element
	open    int                // number of open elements at the bottom of stack
	skipped int
	posBuf  [8]int
}

func newTreeTokens(root *xmltree.Element) *treeTokens {
	r := &treeTokens{}
	r.stack = append(make([]*xmltree.Element, 0, 8), root)
	r.pos = r.posBuf[:0]
	return r
}

func (r *treeTokens) Token() (xml.Token, error) {
	for {
		if r.open < len(r.stack) {
			// Start the element on top.
			e := r.stack[r.open]
			r.open++
			r.pos = append(r.pos, 0)
			return xml.StartElement{Name: e.Name, Attr: e.Attr}, nil
		}
		if r.open == 0 {
			return nil, io.EOF
		}
		top := r.open - 1
		e := r.stack[top]
		i := r.pos[top]
		if i == len(e.Children) {
			r.stack = r.stack[:top]
			r.pos = r.pos[:top]
			r.open--
			return xml.EndElement{Name: e.Name}, nil
		}
		r.pos[top]++
		switch c := e.Children[i].(type) {
		case *xmltree.Element:
			r.stack = append(r.stack, c)
		case xmltree.CharData:
			if r.open == 2 && e.Name.Local == "body" {
				return xml.CharData(c), nil
			}
			r.skipped += len(c)
		}
	}
}
