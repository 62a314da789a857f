package client

import (
	"context"
	"testing"
	"time"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/xmltree"
)

// blockingMech holds every message from one sender until released.
type blockingMech struct {
	fakeMech
	slowFrom string
	release  chan struct{}
}

func (b *blockingMech) Open(ctx context.Context, in *Incoming) (*Opened, error) {
	if in.From.Bare().String() == b.slowFrom {
		<-b.release
	}
	return &Opened{Body: in.Stanza.AttrValue("id"), Security: Security{Authenticated: true}}, nil
}

// One sender whose message needs slow work (fetching its keys, say) does
// not hold up the messages of others; each sender's messages stay in
// order.
func TestSlowSenderDoesNotBlockOthers(t *testing.T) {
	c := newTestClient(t)
	m := &blockingMech{fakeMech: fakeMech{ns: eme.OX}, slowFrom: "mallory@example.org", release: make(chan struct{})}
	mustRegister(t, c, m)
	msg := func(from, id string) {
		st, err := xmltree.Parse([]byte(`<message xmlns="jabber:client" type="chat" from="`+from+`" id="`+id+`"><openpgp xmlns="urn:xmpp:openpgp:0">AAAA</openpgp></message>`), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.inbox.push(inboxItem{st: st})
	}
	msg("mallory@example.org/x", "m1")
	msg("mallory@example.org/x", "m2")
	msg("alice@example.org/a", "a1")
	msg("alice@example.org/a", "a2")
	next := func() *MessageEvent {
		t.Helper()
		select {
		case ev := <-c.Events():
			return ev.(*MessageEvent)
		case <-time.After(10 * time.Second):
			t.Fatal("no event: one sender's slow message holds up the others")
			return nil
		}
	}
	if a, b := next(), next(); a.Body != "a1" || b.Body != "a2" {
		t.Fatalf("alice's messages: %q %q", a.Body, b.Body)
	}
	close(m.release)
	if a, b := next(), next(); a.Body != "m1" || b.Body != "m2" {
		t.Fatalf("mallory's messages out of order: %q %q", a.Body, b.Body)
	}
}
