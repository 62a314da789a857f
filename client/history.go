package client

import (
	"context"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
)

// HistoryPage is the size of the archive pages History fetches.
const HistoryPage = 100

// HistoryOptions tune History.
type HistoryOptions struct {
	// Limit reads only the last Limit messages; 0 reads all.
	Limit int
	// Workers is how many goroutines a mechanism that opens archived
	// messages in batches (BatchOpener) may use; 0 means one per CPU.
	Workers int
}

// History reads the archived conversation with a contact (XEP-0313) and
// calls fn with each event, oldest first: *MessageEvent or *NoticeEvent.
// Every message goes through the pipeline as an archive copy (mechanisms
// never feed copies into session state). Messages of a mechanism that
// implements BatchOpener are opened in batches, page by page, while the
// next page is fetched, so memory stays bounded by a few pages. An error
// from fn stops History and is returned; so does an archive that answers
// with a page already read.
func (c *Client) History(ctx context.Context, with jid.JID, opts HistoryOptions, fn func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := c.NewArchiveReader(opts.Workers)
	emit := func(msgs []ArchivedMessage) error {
		for _, ev := range h.Open(ctx, msgs) {
			if ev != nil {
				if err := fn(ev); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if opts.Limit > 0 {
		msgs, err := c.lastArchived(ctx, with, opts.Limit)
		if err != nil {
			return err
		}
		for start := 0; start < len(msgs); start += HistoryPage {
			if err := emit(msgs[start:min(start+HistoryPage, len(msgs))]); err != nil {
				return err
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
		seen := map[string]bool{}
		for {
			pg, err := c.QueryArchive(ctx, q)
			if err == nil && seen[pg.Last] {
				err = errPageAgain(pg.Last)
			}
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
			seen[pg.Last] = true
			q.After = pg.Last
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		if err := emit(p.msgs); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// errPageAgain reports an archive that answered a query for the next page
// with a page already read, the one ending (or, paging backwards,
// starting) at id: a server that ignores XEP-0059 <after/> and <before/>,
// or pages in a circle, would be read forever.
func errPageAgain(id string) error {
	return fmt.Errorf("client: the archive sent the page at %q again; the history read is incomplete", id)
}

// lastArchived pages backwards from the end of the archive until limit
// messages are collected, and returns them oldest first.
func (c *Client) lastArchived(ctx context.Context, with jid.JID, limit int) ([]ArchivedMessage, error) {
	var pages [][]ArchivedMessage
	n := 0
	q := ArchiveQuery{With: with, Max: min(limit, HistoryPage), BeforeLast: true}
	seen := map[string]bool{}
	for n < limit {
		pg, err := c.QueryArchive(ctx, q)
		if err == nil && seen[pg.First] {
			err = errPageAgain(pg.First)
		}
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
		seen[pg.First] = true
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

// An ArchiveReader turns archived messages into events as History does,
// for messages fetched elsewhere (QueryArchive, an export): each goes
// through the pipeline as an archive copy, and messages of a mechanism
// that implements BatchOpener are opened together, with one Batch per
// reader, so that what the mechanism learns (sender keys) serves every
// page. An ArchiveReader is not safe for concurrent use.
type ArchiveReader struct {
	p       *Pipeline
	workers int
	batches map[string]Batch
}

// NewArchiveReader returns a reader whose batches use up to workers
// goroutines (0 means one per CPU).
func (c *Client) NewArchiveReader(workers int) *ArchiveReader {
	return &ArchiveReader{p: c.pipeline, workers: workers, batches: map[string]Batch{}}
}

// Open turns one page of archived messages into events: the event of
// msgs[i] is at index i, nil for a message with nothing to show.
func (h *ArchiveReader) Open(ctx context.Context, msgs []ArchivedMessage) []Event {
	p := h.p
	out := make([]Event, len(msgs))
	ins := make([]*inbound, len(msgs))
	dets := make([]eme.Detection, len(msgs))
	groups := map[string][]int{}
	for i, m := range msgs {
		in := p.archivedInbound(m)
		if in == nil {
			continue
		}
		ins[i] = in
		det, err := eme.DetectElement(in.st)
		if err == nil && det.Encrypted && det.Disagreement == nil && det.Mechanism != "" {
			if mech, ok, on := p.mechanism(det.Mechanism); ok && on {
				if _, ok := mech.(BatchOpener); ok {
					dets[i] = det
					groups[det.Mechanism] = append(groups[det.Mechanism], i)
					continue
				}
			}
		}
		out[i] = p.open(ctx, in)
	}
	for ns, idx := range groups {
		b := h.batches[ns]
		if b == nil {
			mech, _, _ := p.mechanism(ns)
			b = mech.(BatchOpener).NewBatch()
			h.batches[ns] = b
		}
		incs := make([]*Incoming, len(idx))
		for k, i := range idx {
			incs[k] = p.incomingFor(ins[i], dets[i])
		}
		res := b.Open(ctx, incs, h.workers)
		for k, i := range idx {
			var r BatchResult
			if k < len(res) {
				r = res[k]
			}
			if r.Opened == nil && r.Err == nil {
				r.Err = &OpenError{Reason: eme.ReasonUnspecified, Detail: "the mechanism returned no result"}
			}
			out[i] = p.finish(ctx, ins[i], dets[i], ns, r.Opened, r.Err)
		}
	}
	for _, ev := range out {
		if ev != nil {
			p.localize(ev)
		}
	}
	return out
}
