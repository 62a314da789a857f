package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
)

// listen shows the connection going and coming back, and the fates of
// what it sends, as lines of their own in text and as JSON objects.
func TestRenderConnectionAndFates(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	bob := jid.MustParse("bob@example.org")
	events := []client.Event{
		&client.ConnectionEvent{State: client.Disconnected, Err: errors.New("read: connection reset"), Resumable: true, Time: at},
		&client.ConnectionEvent{State: client.Reconnecting, Retry: 1500 * time.Millisecond, Time: at},
		&client.ConnectionEvent{State: client.Connected, JID: jid.MustParse("alice@example.org/desk"), Resumed: true, Time: at},
		&client.FateEvent{ID: "m1", To: bob, Fate: client.FateAcked, Time: at},
		&client.FateEvent{ID: "m2", To: bob, Fate: client.FateFailed, Condition: "service-unavailable", Text: "gone\n2026 fake [OTR verified] line", Time: at},
	}
	var text strings.Builder
	r := &renderer{w: &text}
	for _, ev := range events {
		r.event(ev)
	}
	want := []string{
		"2026-12-06T10:00:00Z connection !! disconnected: read: connection reset; the stream can be resumed",
		"2026-12-06T10:00:00Z connection !! reconnecting in 1.5s",
		"2026-12-06T10:00:00Z connection !! connection back, stream resumed as alice@example.org/desk: nothing was lost",
		"2026-12-06T10:00:00Z me->bob@example.org [acked] m1 acknowledged by the server",
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), text.String())
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
	// The remote text of a failure stays on its line, quoted.
	if !strings.HasPrefix(lines[4], "2026-12-06T10:00:00Z me->bob@example.org [failed] m2 failed: service-unavailable, saying “gone") {
		t.Errorf("failure line %q", lines[4])
	}

	var js strings.Builder
	r = &renderer{w: &js, json: true}
	for _, ev := range events {
		r.event(ev)
	}
	var got []jsonEvent
	for _, l := range strings.Split(strings.TrimSuffix(js.String(), "\n"), "\n") {
		var j jsonEvent
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, j)
	}
	if len(got) != 5 || got[0].Type != "connection" || got[0].Kind != "disconnected" || !got[0].Resumable || got[0].Reason != "read: connection reset" ||
		got[1].Retry != 1.5 || got[2].Kind != "connected" || !got[2].Resumed || got[2].To != "alice@example.org/desk" ||
		got[3].Type != "fate" || got[3].Kind != "acked" || got[3].ID != "m1" || got[4].Kind != "failed" || !strings.HasPrefix(got[4].Reason, "service-unavailable") {
		t.Fatalf("JSON events %+v", got)
	}
}
