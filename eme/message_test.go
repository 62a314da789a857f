package eme

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/language"
)

// verbs lists the argument verbs of a format in the order of the
// arguments they take (explicit indexes resolved).
func verbs(t *testing.T, f string) []int {
	t.Helper()
	var out []int
	next := 1
	for _, m := range regexp.MustCompile(`%(\[(\d+)\])?([a-z%])`).FindAllStringSubmatch(f, -1) {
		if m[3] == "%" {
			continue
		}
		if m[3] != "s" {
			t.Errorf("format %q: verb %%%s (only %%s is allowed)", f, m[3])
		}
		n := next
		if m[2] != "" {
			n = int(m[2][0] - '0')
		}
		out = append(out, n)
		next = n + 1
	}
	slices.Sort(out)
	return out
}

// TestMessageCatalogueComplete: every message has a text in every
// language, with the same arguments as the English one.
func TestMessageCatalogueComplete(t *testing.T) {
	for _, tag := range supported {
		cat := messageCatalogue[tag]
		for id, en := range messagesEnglish {
			f, ok := cat[id]
			if !ok {
				t.Errorf("%v: no text for %s", tag, id)
				continue
			}
			if !slices.Equal(verbs(t, f), verbs(t, en)) {
				t.Errorf("%v %s: arguments %v, English has %v", tag, id, verbs(t, f), verbs(t, en))
			}
			if strings.TrimSpace(f) != f || f == "" {
				t.Errorf("%v %s: %q", tag, id, f)
			}
		}
		for id := range cat {
			if _, ok := messagesEnglish[id]; !ok {
				t.Errorf("%v: %s is not in the English catalogue", tag, id)
			}
		}
	}
}

func TestMessageText(t *testing.T) {
	m := Msg(MsgOTRPeerOffline, "bob@example.org/phone")
	if got, want := m.Text(language.English), "bob@example.org/phone went offline; the private conversation ended."; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if m.Text(language.German) == m.Text(language.English) {
		t.Fatal("German text is the English one")
	}
	// An unknown language falls back to English; an unknown ID to its name.
	if got := m.Text(language.Japanese); got != m.String() {
		t.Fatalf("fallback: %q", got)
	}
	if got := Msg("no-such-message").Text(language.English); got != "no-such-message" {
		t.Fatalf("unknown id: %q", got)
	}
	// Arguments come from the network: control and bidi characters go.
	evil := Msg(MsgOTRPeerOffline, "bob\u202e@example.org\n[12:00] alice: hi")
	if s := evil.Text(language.English); strings.ContainsAny(s, "\u202e\n") {
		t.Fatalf("argument not cleaned: %q", s)
	}
	if got := Texts(language.English, Msg(MsgESDeclined, "a@b"), Msg(MsgESReasonGiven, "busy")); got != "a@b declined the Encrypted Session. Reason given: busy" {
		t.Fatalf("Texts: %q", got)
	}
}

func TestHintText(t *testing.T) {
	if got := (Hint{}).Text(language.English, "balcony ox keygen"); got != "" {
		t.Fatalf("zero hint: %q", got)
	}
	h := Hint{Action: ActionVerify, Mechanism: OTR, Peer: "bob@example.org/phone"}
	if got := h.Text(language.English, "balcony otr smp bob@example.org/phone"); got != "To verify, run: balcony otr smp bob@example.org/phone" {
		t.Fatalf("%q", got)
	}
	for a := ActionEnable; a < numActions; a++ {
		for _, tag := range supported {
			if (Hint{Action: a}).Text(tag, "cmd") == "" {
				t.Errorf("%v %v: no text", a, tag)
			}
		}
		if a.String() == "" {
			t.Errorf("action %d has no name", a)
		}
	}
}
