package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

func (su suite) testOutbox(t *testing.T) {
	s := su.new(t)
	id1, err := s.Enqueue(ctx, "romeo@montague.lit/orchard", "first", store.OTR)
	must(t, err)
	id2, err := s.Enqueue(ctx, "romeo@montague.lit", "second", "")
	must(t, err)
	if _, err := s.Enqueue(ctx, "@bad", "x", ""); err == nil {
		t.Error("invalid JID accepted")
	}
	if _, err := s.Enqueue(ctx, "a@b.c", "x", "pgp"); err == nil {
		t.Error("unknown mechanism accepted")
	}
	out, err := s.Outbox(ctx)
	must(t, err)
	if len(out) != 2 || out[0].ID != id1 || out[0].To != "romeo@montague.lit/orchard" || out[0].Body != "first" ||
		out[0].Mechanism != store.OTR || out[1].ID != id2 || out[1].Body != "second" || out[1].Mechanism != "" {
		t.Fatalf("outbox %+v", out)
	}
	must(t, s.Dequeue(ctx, id1))
	wantErr(t, s.Dequeue(ctx, id1), store.ErrNotFound)
	out, err = s.Outbox(ctx)
	must(t, err)
	if len(out) != 1 || out[0].ID != id2 {
		t.Errorf("outbox after dequeue %+v", out)
	}
	// A message keeps its id and its receipt request.
	id3, err := s.EnqueueMessage(ctx, store.OutboxMessage{To: "romeo@montague.lit", Body: "third", Mechanism: store.OX,
		MessageID: "m-3", Receipt: true, Type: "normal", Thread: "t-1"})
	must(t, err)
	if _, err := s.EnqueueMessage(ctx, store.OutboxMessage{To: "a@b.c", Body: "x", MessageID: strings.Repeat("i", 257)}); err == nil {
		t.Error("an overlong message id accepted")
	}
	if _, err := s.EnqueueMessage(ctx, store.OutboxMessage{To: "a@b.c", Body: "x", Type: "error"}); err == nil {
		t.Error("a message of type error accepted")
	}
	out, err = s.Outbox(ctx)
	must(t, err)
	if len(out) != 2 || out[0].MessageID != "" || out[0].Receipt || out[1].ID != id3 || out[1].MessageID != "m-3" ||
		!out[1].Receipt || out[1].Body != "third" || out[1].Mechanism != store.OX || out[1].Type != "normal" || out[1].Thread != "t-1" {
		t.Errorf("outbox with a message id %+v", out)
	}
	// The generation of a mechanism with several is kept beside it.
	id4, err := s.EnqueueMessage(ctx, store.OutboxMessage{To: "romeo@montague.lit", Body: "fourth", Mechanism: store.OMEMO,
		Namespace: "urn:xmpp:omemo:2"})
	must(t, err)
	out, err = s.Outbox(ctx)
	must(t, err)
	if len(out) != 3 || out[2].ID != id4 || out[2].Mechanism != store.OMEMO || out[2].Namespace != "urn:xmpp:omemo:2" || out[1].Namespace != "" {
		t.Errorf("outbox with a namespace %+v", out)
	}
}

func (su suite) testMessagesPaging(t *testing.T) {
	s := su.new(t)
	const peer = "nurse@capulet.lit"
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// 125 messages, logged out of time order (as MAM back-fill does) and
	// with runs of equal timestamps; plus another peer's messages.
	const n = 125
	for i := n - 1; i >= 0; i-- {
		_, err := s.LogMessage(ctx, store.LogEntry{Peer: peer, Direction: store.Incoming, Body: fmt.Sprint(i),
			Time: base.Add(time.Duration(i/3) * time.Minute)})
		must(t, err)
		_, err = s.LogMessage(ctx, store.LogEntry{Peer: "other@capulet.lit", Direction: store.Outgoing, Body: "noise",
			Time: base.Add(time.Duration(i) * time.Minute)})
		must(t, err)
	}
	var all []store.LogEntry
	var before int64
	pages := 0
	for {
		page, err := s.Messages(ctx, peer, before, 50)
		must(t, err)
		if len(page) == 0 {
			break
		}
		pages++
		all = append(page, all...)
		before = page[0].ID
	}
	if pages != 3 || len(all) != n {
		t.Fatalf("%d pages, %d messages", pages, len(all))
	}
	seen := make(map[int64]bool)
	for i, e := range all {
		if seen[e.ID] {
			t.Fatalf("message %d returned twice", e.ID)
		}
		seen[e.ID] = true
		if e.Peer != peer {
			t.Fatalf("message of %s", e.Peer)
		}
		if i > 0 {
			p := all[i-1]
			if e.Time.Before(p.Time) || (e.Time.Equal(p.Time) && e.ID < p.ID) {
				t.Fatalf("out of order at %d: %v/%d after %v/%d", i, e.Time, e.ID, p.Time, p.ID)
			}
		}
	}
	// Same-minute messages were logged in reverse, so bodies within a
	// minute are by id; across minutes by time.
	if all[0].Body != "2" || all[n-1].Body != "123" {
		t.Errorf("first %q, last %q", all[0].Body, all[n-1].Body)
	}
	_, err := s.Messages(ctx, peer, 999999, 10)
	wantErr(t, err, store.ErrNotFound)
	page, err := s.Messages(ctx, peer, 0, 0)
	must(t, err)
	if len(page) != 50 {
		t.Errorf("default page size %d", len(page))
	}
}

func (su suite) testLogDeduplicates(t *testing.T) {
	s := su.new(t)
	e := store.LogEntry{StanzaID: "abc", Peer: "a@b.c/phone", Direction: store.Incoming, Mechanism: store.OX, Security: "verified", Body: "hi"}
	id1, err := s.LogMessage(ctx, e)
	must(t, err)
	e.Peer = "a@b.c/laptop" // a carbon or MAM copy
	id2, err := s.LogMessage(ctx, e)
	must(t, err)
	e.Direction = store.Outgoing
	id3, err := s.LogMessage(ctx, e)
	must(t, err)
	if id1 == 0 || id1 != id2 || id3 == id1 {
		t.Errorf("ids %d %d %d", id1, id2, id3)
	}
	msgs, err := s.Messages(ctx, "a@b.c", 0, 10)
	must(t, err)
	if len(msgs) != 2 || msgs[0].Security != "verified" || msgs[0].Mechanism != store.OX {
		t.Errorf("messages %+v", msgs)
	}
	if _, err := s.LogMessage(ctx, store.LogEntry{Peer: "a@b.c", Direction: "sideways"}); err == nil {
		t.Error("invalid direction accepted")
	}
}

func (su suite) testLogPrivateSessions(t *testing.T) {
	s := su.new(t)
	const peer = "a@b.c"
	for _, m := range []store.Mechanism{store.OTR, store.ESession} {
		id, err := s.LogMessage(ctx, store.LogEntry{Peer: peer, Direction: store.Incoming, Mechanism: m, Body: "off the record"})
		if err != nil || id != 0 {
			t.Errorf("%s message logged without opt-in: %d, %v", m, id, err)
		}
	}
	// Notices carry no plaintext and are kept.
	id, err := s.LogMessage(ctx, store.LogEntry{Peer: peer, Direction: store.Incoming, Mechanism: store.OTR, Notice: true,
		Body: "store.OTR message could not be decrypted"})
	if err != nil || id == 0 {
		t.Errorf("notice not logged: %d, %v", id, err)
	}
	must(t, s.SetSetting(ctx, store.SettingLogPrivateSessions, "true"))
	id, err = s.LogMessage(ctx, store.LogEntry{Peer: peer, Direction: store.Incoming, Mechanism: store.OTR, Body: "logged"})
	if err != nil || id == 0 {
		t.Errorf("store.OTR message after opt-in: %d, %v", id, err)
	}
	msgs, err := s.Messages(ctx, peer, 0, 10)
	must(t, err)
	if len(msgs) != 2 || !msgs[0].Notice || msgs[1].Body != "logged" {
		t.Errorf("messages %+v", msgs)
	}
	n, err := s.DeleteMessages(ctx, peer)
	if err != nil || n != 2 {
		t.Errorf("DeleteMessages = %d, %v", n, err)
	}
	msgs, err = s.Messages(ctx, peer, 0, 10)
	if err != nil || len(msgs) != 0 {
		t.Errorf("after delete: %+v, %v", msgs, err)
	}
}

func (su suite) testLogMessagesBatch(t *testing.T) {
	s := su.new(t)
	batch := []store.LogEntry{
		{StanzaID: "1", Peer: "a@b.c", Direction: store.Incoming, Body: "one"},
		{StanzaID: "2", Peer: "a@b.c", Direction: store.Incoming, Mechanism: store.OTR, Body: "not logged"},
		{StanzaID: "1", Peer: "a@b.c/x", Direction: store.Incoming, Body: "duplicate"},
		{StanzaID: "3", Peer: "d@e.f", Direction: store.Outgoing, Body: "three"},
	}
	ids, err := s.LogMessages(ctx, batch)
	must(t, err)
	if len(ids) != 4 || ids[0] == 0 || ids[1] != 0 || ids[2] != ids[0] || ids[3] == 0 {
		t.Fatalf("ids %v", ids)
	}
	// One invalid entry: nothing of the batch is written.
	_, err = s.LogMessages(ctx, []store.LogEntry{{Peer: "g@h.i", Direction: store.Incoming, Body: "x"}, {Peer: "", Direction: store.Incoming}})
	if err == nil {
		t.Fatal("invalid batch accepted")
	}
	msgs, err := s.Messages(ctx, "g@h.i", 0, 10)
	if err != nil || len(msgs) != 0 {
		t.Errorf("part of a failed batch written: %+v, %v", msgs, err)
	}
}
