package client

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/xmltree"
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
	det, fast := oxDetect(m.Message)
	mech, ok, enabled := p.mechanism(eme.OX)
	if !fast || !ok || !enabled || mech != Mechanism(x) {
		// Anything unusual takes the pipeline's own path.
		return p.archived(m)
	}
	var err error
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
	return p.opened(in, eme.OX, opened)
}

// oxQuiet are namespaces of children that OX messages carry beside the
// payload and that play no part in detecting encryption.
var oxQuiet = map[string]bool{
	NSHints: true, NSSID: true, NSDelay: true, NSReceipts: true, NSCarbons: true,
	"http://jabber.org/protocol/chatstates": true,
	"urn:xmpp:chat-markers:0":               true,
	"urn:xmpp:message-correct:0":            true,
	"urn:xmpp:reply:0":                      true,
	"urn:xmpp:fallback:0":                   true,
}

// oxDetect gives eme.Detect's answer for the common shape of an archived OX
// message without encoding it: <openpgp/> payloads, EME tags for OX only,
// bodies that are not OTR, and otherwise only children from oxQuiet or the
// thread and subject. For anything else it reports false, and the message
// takes the pipeline's own path. FuzzOXDetect checks the two agree.
func oxDetect(st *xmltree.Element) (eme.Detection, bool) {
	var d eme.Detection
	if st.Name.Local != "message" || !stanzaSpace(st.Name.Space) {
		return d, false
	}
	for _, c := range st.Children {
		e, ok := c.(*xmltree.Element)
		if !ok {
			continue
		}
		switch {
		case e.Name.Space == ox.NS && e.Name.Local == "openpgp":
			// Detection counts the size of the message; a large one is
			// left to it.
			n := 0
			for _, t := range e.Children {
				if t, ok := t.(xmltree.CharData); ok {
					n += len(t)
				}
			}
			if n > eme.DefaultMaxSize/2 {
				return d, false
			}
			d.Payloads = append(d.Payloads, eme.Payload{Namespace: eme.OX, Element: "openpgp"})
		case e.Name.Space == eme.NS && e.Name.Local == "encryption":
			var tag eme.Encryption
			var haveNS, haveName bool
			for _, a := range e.Attr {
				switch {
				case a.Name.Space != "":
				case a.Name.Local == "namespace" && !haveNS:
					tag.Namespace, haveNS = a.Value, true
				case a.Name.Local == "name" && !haveName:
					tag.Name, haveName = a.Value, true
				}
			}
			if tag.Namespace != eme.OX {
				return d, false
			}
			d.Tags = append(d.Tags, tag)
		case e.Name.Local == "body" && stanzaSpace(e.Name.Space):
			d.HasBody = true
			if kind, _ := eme.ClassifyOTR(e.Text()); kind != eme.OTRNone {
				return d, false
			}
		case e.Name.Space == NSClient && (e.Name.Local == "thread" || e.Name.Local == "subject"):
		case oxQuiet[e.Name.Space]:
		default:
			return d, false
		}
		if depth(e, 2) > eme.DefaultMaxDepth {
			return d, false
		}
	}
	if len(d.Payloads) == 0 {
		return d, false
	}
	d.Encrypted, d.Mechanism = true, eme.OX
	return d, true
}

func stanzaSpace(ns string) bool { return ns == "" || ns == NSClient || ns == NSServer }

// depth returns the nesting depth of the deepest element under e, which is
// at depth d.
func depth(e *xmltree.Element, d int) int {
	max := d
	for _, c := range e.Children {
		if c, ok := c.(*xmltree.Element); ok {
			if n := depth(c, d+1); n > max {
				max = n
			}
		}
	}
	return max
}
