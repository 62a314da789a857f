package otr

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/xmltree"
)

// A stranger sends OTR messages from many resources, each with many
// instance tags and the first half of a large fragmented message: what
// Balcony keeps for them is bounded, per contact and in all.
func TestOTRStateBounded(t *testing.T) {
	n := newMemNet(t)
	bob := n.add("bob@example.org/desk", testKey(t, 0), Config{})
	piece := strings.Repeat("A", 64<<10)
	tag := uint32(0x1000)
	open := func(from string, body string) {
		st := xmltree.New(client.NSClient, "message", "from", from, "type", "chat").Append(xmltree.New(client.NSClient, "body").AppendText(body))
		in := &client.Incoming{Stanza: st, From: jid.MustParse(from), To: bob.jid, Time: time.Now()}
		_, _ = bob.o.Open(context.Background(), in)
	}
	for _, domain := range []string{"evil.example", "worse.example"} {
		for r := range 40 {
			from := fmt.Sprintf("mallory@%s/r%d", domain, r)
			for range 10 {
				tag++
				// A DH-Commit header from a new instance: it needs a
				// conversation of its own.
				var msg [11]byte
				binary.BigEndian.PutUint16(msg[0:], 3)
				msg[2] = 0x02
				binary.BigEndian.PutUint32(msg[3:], tag)
				open(from, "?OTR:"+base64.StdEncoding.EncodeToString(msg[:])+".")
				// The first of two fragments, never completed.
				open(from, fmt.Sprintf("?OTR|%08x|%08x,00001,00002,%s,", tag, bob.o.InstanceTag(), piece))
			}
		}
	}
	bob.o.mu.Lock()
	defer bob.o.mu.Unlock()
	perContact := map[string]int{}
	frags := map[string]int{}
	total := 0
	for _, p := range bob.o.peers {
		perContact[p.jid.Bare().String()]++
		if len(p.byTag) > 4 {
			t.Errorf("%s: %d conversations", p.jid, len(p.byTag))
		}
		for _, c := range p.convs() {
			frags[p.jid.Bare().String()] += c.PendingFragments()
			total += c.PendingFragments()
		}
	}
	for c, k := range perContact {
		if k > 16 {
			t.Errorf("%s: %d resources kept", c, k)
		}
		if frags[c] > 1<<20+len(piece) {
			t.Errorf("%s: %d bytes of fragments kept", c, frags[c])
		}
	}
	if total > 8<<20 || total == 0 {
		t.Errorf("%d bytes of fragments kept in all", total)
	}
	if len(perContact) != 2 {
		t.Errorf("contacts %v", perContact)
	}
}
