package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

// tempStore is an unencrypted SQLite store for the test.
func tempStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCheckpointSettles(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	ck, err := loadCheckpoint(ctx, st)
	if err != nil || ck.resumeFrom() != "" {
		t.Fatalf("fresh: %q %v", ck.resumeFrom(), err)
	}
	t0 := time.Now()
	const settle = 5 * time.Second
	ck.add("a", t0, settle)
	ck.add("b", t0.Add(time.Second), settle)
	// Nothing settled: the first message written is where to resume.
	if ck.resumeFrom() != "a" || !ck.written("a") || !ck.written("b") || ck.written("c") {
		t.Fatalf("before settling: %+v", ck)
	}
	ck.add("c", t0.Add(settle+time.Second), settle)
	if ck.After != "b" || len(ck.Recent) != 1 || ck.written("a") || ck.written("b") || !ck.written("c") {
		t.Fatalf("after settling: %+v", ck)
	}
	if err := ck.save(ctx, st); err != nil {
		t.Fatal(err)
	}
	loaded, err := loadCheckpoint(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	// A new run keeps the ids of the last one for a whole settle time.
	if loaded.resumeFrom() != "b" || !loaded.written("c") || loaded.Recent[0].At < time.Now().Add(-time.Second).UnixMilli() {
		t.Fatalf("loaded: %+v", loaded)
	}
	loaded.add("d", time.Now().Add(settle/2), settle)
	if !loaded.written("c") {
		t.Fatal("an id of the last run settled early")
	}
}

func TestCheckpointBounded(t *testing.T) {
	ck := &checkpoint{seen: map[string]bool{}}
	now := time.Now()
	for i := range maxRecent + 100 {
		ck.add(fmt.Sprint(i), now, time.Hour)
	}
	if len(ck.Recent) != maxRecent || len(ck.seen) != maxRecent || ck.After != "99" || ck.written("99") || !ck.written("100") {
		t.Fatalf("%d recent, %d seen, after %q", len(ck.Recent), len(ck.seen), ck.After)
	}
}

func TestCheckpointDamaged(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	if err := st.SetSetting(ctx, settingCheckpoint, "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCheckpoint(ctx, st); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("got %v", err)
	}
}

// Once a host is fenced, no line of its accounts is written; status
// lines still are.
func TestSinkFence(t *testing.T) {
	var b strings.Builder
	sink := &eventSink{w: &b}
	fence := newFence()
	out := &accountOut{sink: sink, fence: fence}
	r := &renderer{w: out, json: true, account: "a@example.org"}
	r.jsonLine(jsonEvent{Type: "message", Body: "before"})
	sink.fence(fence)
	r.jsonLine(jsonEvent{Type: "message", Body: "after"})
	sink.status("a@example.org", "fenced", "")
	got := b.String()
	if !strings.Contains(got, `"before"`) || strings.Contains(got, `"after"`) || !out.refused || !strings.Contains(got, `"kind":"fenced"`) {
		t.Fatalf("output %q, refused %v", got, out.refused)
	}
	if !strings.Contains(got, `"account":"a@example.org"`) {
		t.Fatalf("lines not tagged: %q", got)
	}
}
