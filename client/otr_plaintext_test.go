package client

import (
	"strings"
	"testing"

	"github.com/balcony-im/balcony/otr"
)

func TestOTRPlaintextObserver(t *testing.T) {
	tag := string(otr.WhitespaceTag(otr.PolicyOpportunistic))
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), OTRConfig{Policy: otr.PolicyOpportunistic})
	bob := n.add("bob@example.net/desk", testKey(t, 3), OTRConfig{})
	manual := n.add("carol@example.com/x", testKey(t, 5), OTRConfig{Policy: otr.PolicyManual})

	// Opportunistic: plaintext advertises OTR until the contact answers in
	// plaintext without a tag.
	if got := alice.o.OutgoingPlaintext(bob.jid.Bare(), "hello"); got != "hello"+tag {
		t.Fatalf("outgoing plaintext %q, want the whitespace tag appended", got)
	}
	if got := alice.o.OutgoingPlaintext(bob.jid, ""); got != "" {
		t.Fatalf("empty body tagged: %q", got)
	}
	if w := alice.o.IncomingPlaintext(&Incoming{From: bob.jid}); len(w) != 0 {
		t.Fatalf("warning without a private conversation: %v", w)
	}
	if got := alice.o.OutgoingPlaintext(bob.jid, "again"); got != "again" {
		t.Fatalf("still tagging after a plaintext reply: %q", got)
	}
	// Manual policy never tags.
	if got := manual.o.OutgoingPlaintext(alice.jid, "x"); got != "x" {
		t.Fatalf("manual policy tagged: %q", got)
	}

	// Plaintext from a resource with a private conversation is flagged.
	private(t, n, alice, bob)
	w := alice.o.IncomingPlaintext(&Incoming{From: bob.jid})
	if len(w) != 1 || !strings.Contains(w[0], "outside the private OTR conversation") {
		t.Fatalf("warnings %v", w)
	}
}

// Plaintext carrying a whitespace tag during a private conversation is
// flagged too.
func TestOTRTaggedPlaintextDuringPrivateConversation(t *testing.T) {
	tag := string(otr.WhitespaceTag(otr.PolicyOpportunistic))
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), OTRConfig{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), OTRConfig{})
	private(t, n, alice, bob)
	bob.sendPlain(alice, "in the clear"+tag)
	n.pump()
	m := alice.lastMessage(t)
	if m.Body != "in the clear" || m.Security.Encrypted() || len(m.Security.Warnings) == 0 ||
		!strings.Contains(m.Security.Warnings[0], "outside the private OTR conversation") {
		t.Fatalf("message %+v", m)
	}
}
