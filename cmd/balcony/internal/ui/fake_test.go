package ui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
)

// fakeAccount is an Account whose answers the test sets.
type fakeAccount struct {
	jid jid.JID

	mu      sync.Mutex
	cands   []Candidate
	sent    []string // "MECH to body"
	sendErr error
	runs    []Request
	secrets [][]byte // the secrets Run saw (the slices, to check they are cleared)
	seen    []string // the secrets' values when Run saw them
	history []client.Event
}

func (f *fakeAccount) JID() jid.JID { return f.jid }

func (f *fakeAccount) Send(ctx context.Context, to jid.JID, body, mech string) (Sent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return Sent{}, f.sendErr
	}
	f.sent = append(f.sent, shortName(mech)+" "+to.String()+" "+body)
	return Sent{IDs: []string{"id" + itoa(len(f.sent))}}, nil
}

func (f *fakeAccount) Candidates(ctx context.Context, to jid.JID, refresh bool) []Candidate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Candidate(nil), f.cands...)
}

func (f *fakeAccount) Run(ctx context.Context, r Request) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, r)
	if r.Secret != nil {
		f.secrets = append(f.secrets, r.Secret)
		f.seen = append(f.seen, string(r.Secret))
	}
	if len(r.Args) > 0 && r.Args[0] == "fail" {
		return nil, errors.New("it failed")
	}
	return []string{"ran " + r.Command + " " + strings.Join(r.Args, " ")}, nil
}

func (f *fakeAccount) History(ctx context.Context, with jid.JID, each func(client.Event)) error {
	for _, ev := range f.history {
		each(ev)
	}
	return nil
}

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.org/phone")
	t0    = time.Date(2026, 3, 4, 15, 4, 5, 0, time.Local)
)

// harness drives a model as the program would, without a terminal.
type harness struct {
	t    *testing.T
	m    *Model
	acct *fakeAccount
}

func newHarness(t *testing.T, w, h int) *harness {
	t.Helper()
	f := &fakeAccount{jid: alice}
	m := New(Options{Accounts: []Account{f}, Now: func() time.Time { return t0 },
		Hint: func(h eme.Hint, fpr string) string {
			if h.Action == eme.ActionVerify {
				return "/otr smp"
			}
			return ""
		}})
	t.Cleanup(m.Close)
	hs := &harness{t: t, m: m, acct: f}
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.send(ConnectedMsg{Account: alice, Bound: alice})
	return hs
}

// send feeds msg to the model and runs the commands it returns, feeding
// their messages back, as the program does.
func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	queue := []tea.Msg{msg}
	for n := 0; len(queue) > 0; n++ {
		if n > 100 {
			h.t.Fatal("the model keeps producing commands")
		}
		msg, queue = queue[0], queue[1:]
		_, cmd := h.m.Update(msg)
		queue = append(queue, run(cmd)...)
	}
}

func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, run(c)...)
		}
		return out
	}
	if msg == nil {
		return nil
	}
	if _, ok := msg.(tea.QuitMsg); ok {
		return nil
	}
	return []tea.Msg{msg}
}

// typeText types s, then the keys (enter, tab, ...).
func (h *harness) typeText(s string, keys ...string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	for _, k := range keys {
		h.send(keyPress(k))
	}
}

func keyPress(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "f1":
		return tea.KeyPressMsg{Code: tea.KeyF1}
	case "f2":
		return tea.KeyPressMsg{Code: tea.KeyF2}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "ctrl+n":
		return tea.KeyPressMsg{Code: 'n', Mod: tea.ModCtrl}
	}
	r := []rune(k)
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// screen is the view as text.
func (h *harness) screen() string {
	return ansi.Strip(h.m.View().Content)
}

func (h *harness) lines() []string { return strings.Split(h.screen(), "\n") }

func ansiStrip(s string) string { return ansi.Strip(s) }
