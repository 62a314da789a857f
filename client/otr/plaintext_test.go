package otr

import (
	"context"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
)

func TestOTRPlaintextObserver(t *testing.T) {
	tag := string(engine.WhitespaceTag(engine.PolicyOpportunistic))
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{Policy: engine.PolicyOpportunistic})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	manual := n.add("carol@example.com/x", testKey(t, 5), Config{Policy: engine.PolicyManual})

	// Opportunistic: plaintext advertises OTR until the contact answers in
	// plaintext without a tag.
	if got := alice.o.OutgoingPlaintext(bob.jid.Bare(), "hello"); got != "hello"+tag {
		t.Fatalf("outgoing plaintext %q, want the whitespace tag appended", got)
	}
	if got := alice.o.OutgoingPlaintext(bob.jid, ""); got != "" {
		t.Fatalf("empty body tagged: %q", got)
	}
	if r := alice.o.IncomingPlaintext(context.Background(), &client.Incoming{From: bob.jid}, "hi"); len(r.Warnings) != 0 || r.Body != "hi" {
		t.Fatalf("plaintext without a private conversation: %+v", r)
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
	w := alice.o.IncomingPlaintext(context.Background(), &client.Incoming{From: bob.jid}, "hi").Warnings
	if len(w) != 1 || w[0].Message.ID != eme.MsgOTRSentInClear || w[0].Message.Args[0] != bob.jid.String() {
		t.Fatalf("warnings %v", w)
	}
}

// Plaintext carrying a whitespace tag during a private conversation is
// flagged too.
func TestOTRTaggedPlaintextDuringPrivateConversation(t *testing.T) {
	tag := string(engine.WhitespaceTag(engine.PolicyOpportunistic))
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	private(t, n, alice, bob)
	bob.sendPlain(alice, "in the clear"+tag)
	n.pump()
	m := alice.lastMessage(t)
	if m.Body != "in the clear" || m.Security.Encrypted() || len(m.Security.Warnings) == 0 ||
		m.Security.Warnings[0].Message.ID != eme.MsgOTRSentInClear || !strings.Contains(m.Security.Warnings[0].Text, "outside the private OTR conversation") {
		t.Fatalf("message %+v", m)
	}
}

func TestStripWhitespaceTag(t *testing.T) {
	otrTagBase := string(engine.WhitespaceTag(0)) // the base tag alone
	if otrTagBase != "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20" {
		t.Fatalf("base tag %q", otrTagBase)
	}
	tag := otrTagBase + "  \t\t  \t\t" // v3
	for in, want := range map[string]string{
		"hello" + tag:              "hello",
		tag + "hi":                 "hi",
		"a" + otrTagBase + "b":     "ab",
		"no tag at all":            "no tag at all",
		"x" + tag + "y" + tag + "": "xy",
	} {
		if got := stripWhitespaceTag(in); got != want {
			t.Errorf("stripWhitespaceTag(%q) = %q, want %q", in, got, want)
		}
	}
}
