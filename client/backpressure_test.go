package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/balcony-im/balcony/xmltree"
)

// TestFullQueueHoldsOnlyUserMessages: with the queue of stanzas the server
// has not acknowledged full, and a server that answers requests but
// acknowledges nothing yet, the client's own requests still leave, while a
// message the user sends waits for room (Config.MaxUnacked). A new
// session's roster request once waited there behind the messages resent
// from the lost session, until its deadline: the session was dropped
// before it sent its presence, again and again, while the server stored
// the contact's messages offline.
func TestFullQueueHoldsOnlyUserMessages(t *testing.T) {
	w := newFarEnd(t)
	c := w.c
	c.sm.start("sm-1", true, time.Minute, account)
	for i := range c.cfg.MaxUnacked {
		c.sm.record(msg(i), time.Now(), nil)
	}
	roster := xmltree.New(NSClient, "iq").Append(xmltree.New(NSRoster, "query"))
	w.setAnswer(t, func(req *xmltree.Element) []*xmltree.Element {
		return []*xmltree.Element{reply(req, roster)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.FetchRoster(ctx); err != nil {
		t.Fatalf("the roster request waited for room among the user's messages: %v", err)
	}
	if err := c.SendPresence(ctx, "", ""); err != nil {
		t.Fatalf("presence: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err := c.Send(short, &Outgoing{To: juliet.Bare(), Body: "waits"}, "")
	if !errors.Is(err, ErrUnackedFull) {
		t.Fatalf("a user message with the queue full: %v, want ErrUnackedFull", err)
	}
}
