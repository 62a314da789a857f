package client

import (
	"fmt"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

func withOrigin(id string) *xmltree.Element {
	m := xmltree.New(NSClient, "message").Append(xmltree.New(NSClient, "body").AppendText("hi"))
	if id != "" {
		m.Append(xmltree.New(NSSID, "origin-id", "id", id))
	}
	return m
}

func TestSeenSet(t *testing.T) {
	var s seenSet
	s.init(4)
	alice, mallory := jid.MustParse("alice@example.org/a"), jid.MustParse("mallory@example.org/m")
	self := jid.MustParse("bob@example.org/desk")
	if !s.admit(withOrigin("o1"), alice, "s1", false, self) {
		t.Fatal("first copy refused")
	}
	// The same message resent by its sender (new stanza-id, same
	// origin-id), from another resource of the sender.
	if s.admit(withOrigin("o1"), jid.MustParse("alice@example.org/b"), "s2", false, self) {
		t.Fatal("resent copy admitted")
	}
	// Its archived copy (stanza-id of the first), caught up.
	if s.admit(withOrigin("o1"), alice, "s1", true, self) {
		t.Fatal("archived copy admitted")
	}
	// Someone else reusing the origin-id cannot suppress a message.
	if !s.admit(withOrigin("o1"), mallory, "s3", false, self) {
		t.Fatal("another sender's message with the same origin-id refused")
	}
	// Without ids nothing can be recognised: every copy is delivered.
	for i := range 2 {
		if !s.admit(withOrigin(""), alice, "", false, self) {
			t.Fatalf("copy %d of a message without ids refused", i+1)
		}
	}
	// A message to ourselves comes back live and is shown; its archived
	// copy, like that of any message we sent, is not news.
	s.sent(withOrigin("mine"))
	if !s.admit(withOrigin("mine"), self, "s9", false, self) {
		t.Fatal("a message to ourselves refused")
	}
	s.sent(withOrigin("mine2"))
	if s.admit(withOrigin("mine2"), self, "s10", true, self) {
		t.Fatal("the archived copy of our own message admitted")
	}
}

// Memory is bounded: the oldest keys are forgotten first.
func TestSeenSetBounded(t *testing.T) {
	var s seenSet
	s.init(10)
	alice, self := jid.MustParse("alice@example.org/a"), jid.MustParse("bob@example.org/desk")
	for i := 0; i < 100; i++ {
		s.admit(withOrigin(fmt.Sprint(i)), alice, "", false, self)
	}
	if len(s.keys) != 10 {
		t.Fatalf("%d keys kept", len(s.keys))
	}
	if !s.admit(withOrigin("0"), alice, "", false, self) || s.admit(withOrigin("99"), alice, "", false, self) {
		t.Fatal("not the oldest forgotten")
	}
}

// Receipts and errors settle a message's fate only when they come from
// whom the message went to (or, for errors, from a server on the way).
func TestFateFromWhom(t *testing.T) {
	c := newTestClient(t)
	alice := jid.MustParse("alice@example.org")
	tr := c.fates.track("m1", alice, 0, []string{"m1", "m1b"})
	c.observeFate(&ReceiptEvent{From: jid.MustParse("mallory@example.org/x"), ID: "m1"})
	c.observeFate(&ErrorEvent{From: jid.MustParse("evil.example"), ID: "m1b", Condition: "service-unavailable"})
	if tr.done {
		t.Fatal("settled by a stranger")
	}
	c.observeFate(&ErrorEvent{From: jid.MustParse("example.org"), ID: "m1b", Condition: "service-unavailable"})
	if !tr.done {
		t.Fatal("not settled by the recipient's server")
	}
	// A later receipt does not change a final fate.
	c.observeFate(&ReceiptEvent{From: jid.MustParse("alice@example.org/phone"), ID: "m1"})
	var fates []*FateEvent
	timeout := time.After(5 * time.Second)
	for len(fates) < 1 {
		select {
		case ev := <-c.Events():
			if f, ok := ev.(*FateEvent); ok {
				fates = append(fates, f)
			}
		case <-timeout:
			t.Fatal("no fate event")
		}
	}
	if fates[0].Fate != FateFailed || fates[0].Condition != "service-unavailable" || fates[0].ID != "m1" {
		t.Fatalf("fate %+v", fates[0])
	}
	// The receipt's own fate event would have come right after.
	select {
	case ev := <-c.Events():
		if f, ok := ev.(*FateEvent); ok {
			t.Fatalf("second fate %+v", f)
		}
	case <-time.After(50 * time.Millisecond):
	}
}
