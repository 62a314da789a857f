package client

import (
	"context"
	"errors"
	"sync"
	"time"
)

// catchUpSlack is how far before the loss of a stream a catch-up by time
// starts (clocks differ; the duplicates it fetches are recognised).
const catchUpSlack = 2 * time.Minute

// catchState tracks what the client may have missed. The server may drop
// a stanza it sent on a stream that could not be resumed (Prosody drops
// those it archived, counting on the client to fetch them), so after such
// a loss the client reads its own archive (XEP-0313) from the last
// archived message it saw, and delivers what it had not seen.
type catchState struct {
	mu sync.Mutex
	// cursor is the stanza-id (by our server: the archive's id) of the
	// last message seen.
	cursor string
	// pending: a catch-up is due, after the archive id from, or from the
	// time since when from is "".
	pending bool
	from    string
	since   time.Time
	running bool
}

// seen records the archive id of a message that arrived.
func (s *catchState) seen(id string) {
	s.mu.Lock()
	s.cursor = id
	s.mu.Unlock()
}

// lost notes that messages may be missing from now on.
func (s *catchState) lost(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending {
		// An earlier catch-up has not finished: it covers this one.
		return
	}
	s.pending, s.from, s.since = true, s.cursor, now
}

// ArchiveCursor returns the archive id from which a client started
// later should catch up (Config.LastArchiveID): the start of a catch-up
// not finished yet, or the id of the last archived message seen. Save it
// when the client closes (or as messages arrive) to miss nothing across
// a restart. It is "" when nothing was seen.
func (c *Client) ArchiveCursor() string {
	c.catch.mu.Lock()
	defer c.catch.mu.Unlock()
	if c.catch.pending {
		return c.catch.from
	}
	return c.catch.cursor
}

// catchUp delivers, from the archive, the messages that arrived since the
// stream was lost and were not delivered live: each goes through the
// pipeline as an archived copy with Origin.CatchUp set, after the
// duplicates check; a receipt is sent for those that ask for one. A
// catch-up cut short (the stream went away again) resumes where it
// stopped at the next connection.
func (c *Client) catchUp() {
	s := &c.catch
	s.mu.Lock()
	if !s.pending || s.running {
		s.mu.Unlock()
		return
	}
	s.running = true
	from, since := s.from, s.since
	s.mu.Unlock()
	done := false
	defer func() {
		s.mu.Lock()
		s.running = false
		if done {
			s.pending, s.from = false, ""
		}
		s.mu.Unlock()
	}()
	log := c.cfg.logger()
	if srv := c.Server(); srv.Discovered && !srv.Archive {
		log.Info("the server keeps no archive: messages it dropped while the stream was down cannot be fetched")
		done = true
		return
	}
	q := ArchiveQuery{Max: HistoryPage, After: from}
	switch {
	case from != "":
	case !since.IsZero():
		q.Start = since.Add(-catchUpSlack)
	default:
		done = true
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reader := c.NewArchiveReader(0)
	log.Debug("catching up from the archive", "after", q.After, "start", q.Start)
	for {
		asked := time.Now()
		page, err := c.QueryArchive(ctx, q)
		if err == nil {
			log.Debug("archive page read", "messages", len(page.Messages), "took", time.Since(asked))
		}
		if se, ok := errors.AsType[*StanzaError](err); ok && se.Condition == "item-not-found" && q.After != "" && !since.IsZero() {
			// The id left the archive (expired): from the time instead.
			q.After, q.Start = "", since.Add(-catchUpSlack)
			continue
		}
		if err != nil {
			log.Warn("catching up from the archive failed; trying again at the next connection", "err", err)
			return
		}
		var fresh []ArchivedMessage
		for _, m := range page.Messages {
			in := c.pipeline.archivedInbound(m)
			if in != nil && c.seen.admit(in.st, in.from, m.ID, true, c.JID()) {
				fresh = append(fresh, m)
			}
		}
		for i, ev := range reader.Open(ctx, fresh) {
			c.deliverCaughtUp(fresh[i], ev)
		}
		if n := len(page.Messages); n > 0 {
			s.mu.Lock()
			s.from = page.Messages[n-1].ID
			s.mu.Unlock()
		}
		if page.Complete || page.Last == "" || len(page.Messages) == 0 {
			done = true
			log.Debug("caught up from the archive")
			return
		}
		q.After, q.Start = page.Last, time.Time{}
	}
}

// deliverCaughtUp emits the event of a message fetched by a catch-up,
// after sending the receipt it asks for.
func (c *Client) deliverCaughtUp(m ArchivedMessage, ev Event) {
	switch e := ev.(type) {
	case nil:
		return
	case *MessageEvent:
		e.Origin.CatchUp = true
		in := c.pipeline.archivedInbound(m)
		asks := m.Message.Child(NSReceipts, "request") != nil || payloadChild(e.Payload, NSReceipts, "request") != nil
		if in != nil && asks && !bareEqual(in.from, c.JID()) {
			// The first delivery of this message to the account's user:
			// the sender learns it arrived.
			c.pipeline.sendReceipt(in)
		}
	case *NoticeEvent:
		e.Origin.CatchUp = true
	}
	c.emit(ev)
}
