package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
	// Settled, and still known as written.
	if ck.After != "b" || len(ck.Recent) != 1 || len(ck.Settled) != 2 || !ck.written("a") || !ck.written("b") || !ck.written("c") {
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
	if loaded.resumeFrom() != "b" || !loaded.written("c") || !loaded.written("a") || loaded.Recent[0].At < time.Now().Add(-time.Second).UnixMilli() {
		t.Fatalf("loaded: %+v", loaded)
	}
	loaded.add("d", time.Now().Add(settle/2), settle)
	if !loaded.written("c") {
		t.Fatal("an id of the last run settled early")
	}
}

// What a former holder recorded after the checkpoint was read joins it:
// its archive id and its recent ids count as written; where to resume
// does not move.
func TestCheckpointMerge(t *testing.T) {
	now := time.Now()
	ck := &checkpoint{seen: map[string]bool{}}
	ck.add("x", now.Add(-time.Hour), time.Minute)
	ck.add("a", now, time.Minute)
	ck.add("b", now, time.Minute)
	later := &checkpoint{seen: map[string]bool{}}
	later.add("a", now.Add(-time.Hour), time.Minute)
	later.add("b", now, time.Minute)
	later.add("c", now, time.Minute)
	later.Settled = append(later.Settled, "w")
	ck.merge(later)
	if !ck.written("w") {
		t.Fatal("an id the former holder had settled is not known as written")
	}
	if ck.resumeFrom() != "x" || !ck.written("a") || !ck.written("b") || !ck.written("c") || len(ck.Recent) != 3 {
		t.Fatalf("merged: %+v", ck)
	}
}

func TestCheckpointBounded(t *testing.T) {
	ck := &checkpoint{seen: map[string]bool{}}
	now := time.Now()
	for i := range maxRecent + maxSettled + 100 {
		ck.add(fmt.Sprint(i), now, time.Hour)
	}
	if len(ck.Recent) != maxRecent || len(ck.Settled) != maxSettled || len(ck.seen) != maxRecent+maxSettled ||
		ck.After != fmt.Sprint(maxSettled+99) || ck.written("99") || !ck.written("100") {
		t.Fatalf("%d recent, %d settled, %d seen, after %q", len(ck.Recent), len(ck.Settled), len(ck.seen), ck.After)
	}
}

// Written out of the archive's order (a live message, then an older one
// from the catch-up), both settle together and the older becomes After:
// the newer is still known as written, after a reload too, so the
// catch-up after After does not write it again.
func TestCheckpointSettledOutOfOrder(t *testing.T) {
	ctx := context.Background()
	st := tempStore(t)
	ck, err := loadCheckpoint(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	const settle = 5 * time.Second
	ck.add("live-66", t0, settle)
	ck.add("archived-64", t0.Add(50*time.Millisecond), settle)
	ck.add("next", t0.Add(settle+time.Second), settle)
	if ck.After != "archived-64" || !ck.written("live-66") {
		t.Fatalf("after %q, live-66 written %v", ck.After, ck.written("live-66"))
	}
	if err := ck.save(ctx, st); err != nil {
		t.Fatal(err)
	}
	loaded, err := loadCheckpoint(ctx, st)
	if err != nil || loaded.resumeFrom() != "archived-64" || !loaded.written("live-66") {
		t.Fatalf("loaded %+v: %v", loaded, err)
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
	sink.fence(fence, []string{"a@example.org"})
	r.jsonLine(jsonEvent{Type: "message", Body: "after"})
	select {
	case <-fence.done():
	default:
		t.Fatal("fence not done")
	}
	got := b.String()
	if !strings.Contains(got, `"before"`) || strings.Contains(got, `"after"`) || !out.refused || !strings.Contains(got, `"kind":"fenced"`) {
		t.Fatalf("output %q, refused %v", got, out.refused)
	}
	if !strings.Contains(got, `"account":"a@example.org"`) {
		t.Fatalf("lines not tagged: %q", got)
	}
}

// The events socket gives every line to each connected consumer and
// removes itself when closed.
func TestEventsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.sock")
	sw, err := listenEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	sink := &eventSink{w: sw}
	// Accepting is asynchronous: write until both consumers have a line.
	got := make(chan string, 2)
	for _, c := range conns {
		go func() {
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- line
		}()
	}
	deadline := time.After(10 * time.Second)
	var lines []string
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(lines) < 2 {
		select {
		case l := <-got:
			lines = append(lines, l)
		case <-tick.C:
			sink.status("a@example.org", "connected", "")
		case <-deadline:
			t.Fatalf("consumers got %d lines", len(lines))
		}
	}
	for _, l := range lines {
		if !strings.Contains(l, `"account":"a@example.org"`) {
			t.Fatalf("line %q", l)
		}
	}
	sw.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
