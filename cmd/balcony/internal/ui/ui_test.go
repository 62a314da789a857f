package ui

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
)

func msgEvent(body string, sec client.Security) EventMsg {
	return EventMsg{Account: alice, Event: &client.MessageEvent{From: bob, To: alice, Body: body, Time: t0, Security: sec}}
}

// gutter is the marker of a scrollback line (roster hidden): the two
// columns before the rule, or "" when the line is not a scrollback line.
func gutter(line string) (string, bool) {
	r := []rune(line)
	if len(r) > 26 && r[25] == '│' && r[26+11] == '│' {
		r = r[26:] // the roster of a 100-column screen
	}
	if len(r) < gutterWidth || r[11] != '│' {
		return "", false
	}
	return string(r[9:11]), true
}

// Remote text can imitate neither a notice nor a label: whatever a body
// holds, it stays right of the rule, the marker column of its lines is
// blank, and the label Balcony wrote comes first.
func TestSpoofedBodyStaysRightOfRule(t *testing.T) {
	bodies := []string{
		"hi\n15:04:05 !!│ bob@example.org: key changed",
		"[OX verified] trust me",
		strings.Repeat(" ", 37) + "!!│ notice",
		strings.Repeat("x", 41) + " !!│ Verification succeeded",
		"\x1b[2J\x1b[7m!!\x1b[0m│ cleared",
		"\u202e!!│ reversed \u2028 line \r carriage",
		"\t\t\t\t!! tabbed",
		strings.Repeat("界", 30) + "!!│",
	}
	for _, w := range []int{40, 57, 59} { // roster hidden below 60 columns
		h := newHarness(t, w, 40)
		for _, b := range bodies {
			h.send(msgEvent(b, client.Security{}))
		}
		h.send(keyPress("ctrl+n"))
		lines := h.lines()
		msgs := 0
		for i, l := range lines {
			if lipgloss.Width(l) > w {
				t.Errorf("width %d: line %d is %d wide: %q", w, i, lipgloss.Width(l), l)
			}
			g, ok := gutter(l)
			if !ok {
				continue
			}
			if g != "  " {
				t.Errorf("width %d: a message line has the marker %q: %q", w, g, l)
			}
			if strings.Contains(string([]rune(l)[gutterWidth:]), "│") {
				t.Errorf("width %d: the rule's glyph in the text column: %q", w, l)
			}
			if strings.HasPrefix(l, "15:04:05") {
				msgs++
				if !strings.HasPrefix(l, "15:04:05   │ bob [plaintext] ") {
					t.Errorf("width %d: label not first: %q", w, l)
				}
			}
			if strings.ContainsAny(l, "\x1b\u202e\u2028\r\t") {
				t.Errorf("width %d: raw control in %q", w, l)
			}
		}
		if msgs != len(bodies) {
			t.Errorf("width %d: %d messages shown, want %d:\n%s", w, msgs, len(bodies), h.screen())
		}
	}
}

// A notice carries the marker on each of its lines; a message never.
func TestNoticeMarker(t *testing.T) {
	h := newHarness(t, 100, 20)
	h.send(EventMsg{Account: alice, Event: &client.NoticeEvent{From: bob, Time: t0, Reason: eme.ReasonNotSupported,
		Text: "This message was encrypted with OMEMO and could not be decrypted: it is malformed."}})
	h.send(EventMsg{Account: alice, Event: &client.SecurityEvent{Peer: bob, Mechanism: eme.OTR, Kind: "otr-private",
		Text: "Private conversation started.", Hint: eme.Hint{Action: eme.ActionVerify, Mechanism: eme.OTR}}})
	h.send(keyPress("ctrl+n"))
	notices := 0
	for _, l := range h.lines() {
		if g, ok := gutter(l); ok && g == "!!" {
			notices++
		}
	}
	if notices < 2 {
		t.Errorf("%d notice lines:\n%s", notices, h.screen())
	}
	if !strings.Contains(h.screen(), "Private conversation started. (/otr") {
		t.Errorf("the hint's command is missing:\n%s", h.screen())
	}
}

func TestSecurityLabels(t *testing.T) {
	h := newHarness(t, 100, 20)
	for _, tc := range []struct {
		sec  client.Security
		body string
	}{
		{client.Security{Mechanism: eme.OX, Verified: true, Authenticated: true, Fingerprint: "0123456789ABCDEF0123"}, "one"},
		{client.Security{Mechanism: eme.OTR, Authenticated: true}, "two"},
		{client.Security{Mechanism: eme.ESession, Trust: "untrusted"}, "three"},
		{client.Security{}, "four"},
		{client.Security{Mechanism: eme.OX, Warnings: []client.Warning{{Text: "odd timestamp"}}}, "five"},
	} {
		h.send(msgEvent(tc.body, tc.sec))
	}
	h.send(keyPress("ctrl+n"))
	s := h.screen()
	for _, want := range []string{"bob [OX verified] one", "bob [OTR unverified] two", "bob [ES untrusted] three",
		"bob [plaintext] four", "bob [OX warning] five", "!!│ bob@example.org/phone: warning: odd timestamp"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	// F2: fingerprints and full addresses on demand.
	h.send(keyPress("f2"))
	if s := h.screen(); !strings.Contains(s, "bob@example.org/phone [OX verified 0123456789ABCDEF] one") {
		t.Errorf("details:\n%s", s)
	}
}

func cand(ns string, usable bool, why string) Candidate {
	return Candidate{Mechanism: ns, To: bob.Bare(), Usable: usable, Why: why}
}

// The automatic choice takes the strongest usable mechanism and asks
// before anything weaker than what the conversation had, or plaintext.
func TestAutoChoice(t *testing.T) {
	h := newHarness(t, 100, 30)
	f := h.acct
	f.cands = []Candidate{cand(eme.OX, true, "bob announced a key"), cand(eme.OTR, true, "private"), cand(eme.ESession, false, "none")}
	h.typeText("/open bob@example.org", "enter")
	if s := h.screen(); !strings.Contains(s, "auto → OX (bob announced a key)") {
		t.Fatalf("status:\n%s", s)
	}
	h.typeText("first", "enter")
	// OX goes away: OTR is weaker, so it needs a yes.
	f.cands = []Candidate{cand(eme.OX, false, "no key"), cand(eme.OTR, true, "private"), cand(eme.ESession, false, "none")}
	h.typeText("second", "enter")
	if s := h.screen(); !strings.Contains(s, "Send with the weaker OTR? [y/N]") || !strings.Contains(s, "not usable now: OX: no key") {
		t.Fatalf("no question:\n%s", s)
	}
	h.typeText("n")
	if got := h.m.in.value(); got != "second" {
		t.Errorf("refused message not back in the input line: %q", got)
	}
	h.m.in.set("")
	h.typeText("third", "enter")
	h.typeText("y")
	// Nothing usable: plaintext only after a yes.
	f.cands = []Candidate{cand(eme.OX, false, "no key"), cand(eme.OTR, false, "no session")}
	h.typeText("fourth", "enter")
	if s := h.screen(); !strings.Contains(s, "Send it in the clear? [y/N]") {
		t.Fatalf("no question:\n%s", s)
	}
	h.send(keyPress("esc"))
	h.m.in.set("")
	h.typeText("fifth", "enter", "y")
	// Off: plaintext without asking; require: nothing without it.
	h.typeText("/encryption off", "enter")
	h.typeText("sixth", "enter")
	h.typeText("/encryption require otr", "enter")
	h.typeText("seventh", "enter")
	want := []string{"OX bob@example.org first", "OTR bob@example.org third", "plaintext bob@example.org fifth", "plaintext bob@example.org sixth"}
	if !slices.Equal(f.sent, want) {
		t.Errorf("sent %q, want %q", f.sent, want)
	}
	if s := h.screen(); !strings.Contains(s, "OTR is required and not usable: no session") || h.m.in.value() != "seventh" {
		t.Errorf("require:\n%s", s)
	}
	if s := h.screen(); !strings.Contains(s, "me [OX] first") || !strings.Contains(s, "me [plaintext] fifth") {
		t.Errorf("own labels:\n%s", s)
	}
}

// An authenticated message raises the floor too.
func TestAutoFloorFromIncoming(t *testing.T) {
	h := newHarness(t, 100, 30)
	h.acct.cands = []Candidate{cand(eme.OTR, true, "private")}
	h.send(msgEvent("signed", client.Security{Mechanism: eme.OX, Authenticated: true}))
	h.send(keyPress("ctrl+n"))
	h.typeText("reply", "enter")
	if len(h.acct.sent) != 0 || !strings.Contains(h.screen(), "Send with the weaker OTR?") {
		t.Fatalf("sent %q without asking:\n%s", h.acct.sent, h.screen())
	}
}

func TestCompletionAndHistory(t *testing.T) {
	h := newHarness(t, 100, 30)
	h.typeText("/enc", "tab")
	if got := h.m.in.value(); got != "/encryption " {
		t.Fatalf("completed %q", got)
	}
	h.typeText("re", "tab")
	h.typeText("o", "tab")
	if got := h.m.in.value(); got != "/encryption require o" {
		t.Fatalf("completed %q", got)
	}
	if !strings.Contains(h.screen(), "complete: omemo  omemo2  otr  ox") {
		t.Errorf("candidates not shown:\n%s", h.screen())
	}
	h.m.in.set("")
	h.typeText("/o", "tab")
	if got := h.m.in.value(); got != "/o" || !strings.Contains(h.screen(), "/omemo  /open  /otr  /ox") {
		t.Errorf("ambiguous: %q\n%s", got, h.screen())
	}
	h.m.in.set("")
	h.typeText("/open bob@", "tab")
	h.send(EventMsg{Account: alice, Event: &client.RosterEvent{Items: []client.RosterItem{{JID: bob.Bare()}}}})
	h.typeText("", "tab")
	if got := h.m.in.value(); got != "/open bob@example.org " {
		t.Errorf("contact completion %q", got)
	}
	h.typeText("", "enter")
	h.typeText("/encryption off", "enter")
	h.typeText("one", "enter")
	h.typeText("two", "enter")
	h.typeText("draft", "up", "up")
	if got := h.m.in.value(); got != "one" {
		t.Errorf("up up: %q", got)
	}
	h.typeText("", "down", "down")
	if got := h.m.in.value(); got != "draft" {
		t.Errorf("back down to the draft: %q", got)
	}
}

// The OTR secret is read without echo, reaches the account once, is
// cleared after, and never enters the history.
func TestSecretWithoutEcho(t *testing.T) {
	h := newHarness(t, 100, 30)
	h.typeText("/open bob@example.org/phone", "enter")
	h.typeText("/otr smp our street?", "enter")
	if s := h.screen(); !strings.Contains(s, "Shared secret for bob@example.org/phone (not shown; Esc cancels):") {
		t.Fatalf("no prompt:\n%s", s)
	}
	h.typeText("elm street")
	if s := h.screen(); strings.Contains(s, "elm") || strings.Contains(s, "*") {
		t.Fatalf("the secret shows:\n%s", s)
	}
	if c := h.m.View().Cursor; c == nil || c.X != utf8.RuneCountInString("Shared secret for bob@example.org/phone (not shown; Esc cancels): ") {
		t.Errorf("the cursor moves with the secret: %+v", c)
	}
	h.typeText("", "enter")
	f := h.acct
	if len(f.runs) != 1 || f.seen[0] != "elm street" || !slices.Equal(f.runs[0].Args, []string{"smp", "our", "street?"}) || f.runs[0].Peer.String() != bob.String() {
		t.Fatalf("runs %+v seen %q", f.runs, f.seen)
	}
	if string(f.secrets[0]) != strings.Repeat("\x00", len("elm street")) {
		t.Errorf("the secret was not cleared: %q", f.secrets[0])
	}
	for _, l := range h.m.in.history {
		if strings.Contains(l, "elm") {
			t.Errorf("the secret is in the history: %q", h.m.in.history)
		}
	}
	if !strings.Contains(h.screen(), "--│ ran otr smp our street?") {
		t.Errorf("result:\n%s", h.screen())
	}
	// Esc cancels without running anything.
	h.typeText("/otr answer", "enter")
	h.typeText("x", "esc")
	if len(f.runs) != 1 {
		t.Errorf("ran after Esc: %+v", f.runs)
	}
	// An Encrypted Session's password is read the same way.
	h.typeText("/esession start secret", "enter")
	if s := h.screen(); !strings.Contains(s, "Password shared with bob@example.org/phone (not shown; Esc cancels):") {
		t.Fatalf("no password prompt:\n%s", s)
	}
	h.typeText("correct horse")
	if s := h.screen(); strings.Contains(s, "horse") {
		t.Fatalf("the password shows:\n%s", s)
	}
	h.typeText("", "enter")
	if len(f.runs) != 2 || f.seen[1] != "correct horse" || !slices.Equal(f.runs[1].Args, []string{"start", "secret"}) || f.runs[1].Command != "esession" {
		t.Fatalf("runs %+v seen %q", f.runs, f.seen)
	}
	if string(f.secrets[1]) != strings.Repeat("\x00", len("correct horse")) {
		t.Errorf("the password was not cleared: %q", f.secrets[1])
	}
	h.typeText("/esession accept secret", "enter")
	h.typeText("", "enter")
	if len(f.runs) != 2 || !strings.Contains(h.screen(), "no session accepted: no password") {
		t.Errorf("an empty password ran: %+v\n%s", f.runs, h.screen())
	}
}

func TestCommandsAndErrors(t *testing.T) {
	h := newHarness(t, 100, 30)
	h.typeText("/otr start", "enter")
	if !strings.Contains(h.screen(), "acts in a conversation") {
		t.Errorf("console:\n%s", h.screen())
	}
	h.typeText("/nonsense", "enter")
	if !strings.Contains(h.screen(), "!!│ /nonsense: unknown command") {
		t.Errorf("unknown:\n%s", h.screen())
	}
	h.typeText("/open bob@example.org", "enter")
	h.typeText("/esession fail", "enter")
	h.typeText("/esession rekey", "enter")
	h.typeText("/trust", "enter")
	s := h.screen()
	for _, want := range []string{"!!│ /esession: it failed", "--│ ran esession rekey", "--│ ran trust"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q:\n%s", want, s)
		}
	}
	h.acct.sendErr = errorString("eme: refusing to send in the clear")
	h.typeText("/encryption off", "enter")
	h.typeText("x", "enter")
	if s := h.screen(); !strings.Contains(s, "me [not sent] x") || !strings.Contains(s, "!!│ not sent: eme: refusing") {
		t.Errorf("send error:\n%s", s)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Every size keeps the screen's frame: exactly the terminal's lines, none
// wider than it; the roster goes away on narrow terminals.
func TestResize(t *testing.T) {
	h := newHarness(t, 100, 30)
	h.send(msgEvent(strings.Repeat("long words ", 30), client.Security{}))
	for _, sz := range [][2]int{{100, 30}, {60, 12}, {59, 12}, {30, 8}, {200, 50}, {70, 4}} {
		h.send(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		lines := h.lines()
		if len(lines) != sz[1] {
			t.Errorf("%v: %d lines", sz, len(lines))
		}
		for _, l := range lines {
			if lipgloss.Width(l) > sz[0] {
				t.Errorf("%v: %d wide: %q", sz, lipgloss.Width(l), l)
			}
		}
		roster := strings.HasPrefix(lines[2], "● alice@")
		if sz[1] > 4 && roster != (sz[0] >= 60) {
			t.Errorf("%v: roster shown %v:\n%s", sz, roster, h.screen())
		}
	}
}

func TestHelpOverlay(t *testing.T) {
	h := newHarness(t, 100, 60)
	h.send(keyPress("f1"))
	s := h.screen()
	if !strings.Contains(s, "Balcony: keys") || !strings.Contains(s, "/encryption auto|off|require MECH") {
		t.Fatalf("help:\n%s", s)
	}
	h.send(keyPress("esc"))
	if strings.Contains(h.screen(), "Balcony: keys") {
		t.Error("help still shown")
	}
}

func TestServerMissingAndConnection(t *testing.T) {
	h := newHarness(t, 160, 20)
	h.send(ConnectedMsg{Account: alice, Bound: jid.MustParse("alice@example.org/x"), Missing: []string{"message archive (XEP-0313)"}})
	h.send(EventMsg{Account: alice, Event: &client.ConnectionEvent{State: client.Reconnecting, Retry: 2 * time.Second}})
	s := h.screen()
	if !regexp.MustCompile(`!!│ alice@example.org: the server lacks message archive \(XEP-0313\)`).MatchString(s) ||
		!strings.Contains(s, "alice@example.org ◌ reconnecting") || !strings.Contains(s, "reconnecting in 2s") {
		t.Errorf("screen:\n%s", s)
	}
}

func TestUnreadAndReceipts(t *testing.T) {
	h := newHarness(t, 100, 20)
	h.send(msgEvent("one", client.Security{}))
	h.send(msgEvent("two", client.Security{}))
	if s := h.screen(); !strings.Contains(s, "1:bob@example.org(2)") || !strings.Contains(s, "○ bob@example.org (2)") {
		t.Errorf("unread:\n%s", s)
	}
	h.send(EventMsg{Account: alice, Event: &client.PresenceEvent{From: bob, Available: true}})
	h.send(keyPress("ctrl+n"))
	if s := h.screen(); strings.Contains(s, "(2)") || !strings.Contains(s, "● bob@example.org") {
		t.Errorf("read:\n%s", s)
	}
	h.typeText("/encryption off", "enter")
	h.typeText("three", "enter")
	h.send(EventMsg{Account: alice, Event: &client.ReceiptEvent{From: bob, ID: "id1"}})
	if s := h.screen(); !strings.Contains(s, "me [plaintext] ✓ three") {
		t.Errorf("receipt:\n%s", s)
	}
}

func TestHistory(t *testing.T) {
	h := newHarness(t, 100, 30)
	var posted []tea.Msg
	h.m.SetPost(func(m tea.Msg) { posted = append(posted, m) })
	old := t0.Add(-time.Hour)
	h.send(EventMsg{Account: alice, Event: &client.MessageEvent{From: bob, Body: "live", Time: t0, Origin: client.Origin{StanzaID: "s2"}}})
	h.acct.history = []client.Event{
		&client.MessageEvent{From: alice, To: bob, Body: "mine", Time: old, Origin: client.Origin{Archived: true, StanzaID: "s1"}},
		&client.NoticeEvent{From: bob, Text: "OTR copy unreadable", Time: old.Add(time.Minute), Origin: client.Origin{Archived: true}},
		&client.MessageEvent{From: bob, Body: "live", Time: t0, Origin: client.Origin{Archived: true, StanzaID: "s2"}},
	}
	h.send(keyPress("ctrl+n"))
	h.typeText("/history", "enter")
	s := h.screen()
	iMine, iNotice, iLive := strings.Index(s, "me [plaintext] (archive) mine"), strings.Index(s, "OTR copy unreadable"), strings.Index(s, "bob [plaintext] live")
	if iMine < 0 || iNotice < iMine || iLive < iNotice || strings.Count(s, "] live") != 1 || !strings.Contains(s, "read 3 messages") {
		t.Errorf("history:\n%s", s)
	}
	h.send(historyProgressMsg{conv: h.m.cur(), n: 42})
	if !strings.Contains(h.screen(), "reading the archive: 42 messages") {
		t.Errorf("progress:\n%s", h.screen())
	}
}

// FuzzMessageRender: whatever a contact sends (body and resource), its
// lines fit the width, keep the marker column blank and hold no raw
// control character.
func FuzzMessageRender(f *testing.F) {
	f.Add("hi\n15:04:05 !!│ fake", "phone", 40)
	f.Add("\x1b[7m!!\x1b[0m\u202e", "x !! y", 13)
	f.Add(strings.Repeat("界", 50), "\u200b", 20)
	f.Fuzz(func(t *testing.T, body, res string, w int) {
		w = 13 + (w%200+200)%200
		from, err := jid.New("bob", "example.org", res)
		if err != nil {
			from = bob
		}
		e := messageEntry(&client.MessageEvent{From: from, Body: body, Time: t0})
		for _, details := range []bool{false, true} {
			for _, l := range e.render(w, theme, details) {
				s := ansiStrip(l)
				if lipgloss.Width(s) > max(w, gutterWidth+8) {
					t.Fatalf("width %d: %d wide: %q", w, lipgloss.Width(s), s)
				}
				g, ok := gutter(s)
				if !ok || g != "  " {
					t.Fatalf("gutter of %q", s)
				}
				for _, r := range s {
					if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' || r == '\u2028' {
						t.Fatalf("raw %U in %q", r, s)
					}
				}
			}
		}
	})
}
