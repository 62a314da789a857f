package ui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// promptKind is what the input line is asking for.
type promptKind int

const (
	promptNone    promptKind = iota
	promptSecret             // a secret, read without echo
	promptConfirm            // a yes or no
)

// prompt is a question the input line asks instead of taking a message.
type prompt struct {
	kind promptKind
	text string
	// done receives the answer: the secret (cleared after), or "y"/"n".
	done func(answer []byte) tea.Cmd
}

// inputLine is the editable line with its history and prompts.
type inputLine struct {
	ti      textinput.Model
	history []string
	pos     int    // index into history while browsing; len(history) otherwise
	draft   string // what was typed before browsing
	prompt  *prompt
}

// maxHistory bounds the lines remembered.
const maxHistory = 500

func newInputLine() inputLine {
	ti := textinput.New()
	ti.Prompt = "> "
	ti.SetVirtualCursor(false)
	km := textinput.DefaultKeyMap()
	// Up and down browse the history, Tab completes: not suggestions.
	km.NextSuggestion = key.NewBinding(key.WithDisabled())
	km.PrevSuggestion = key.NewBinding(key.WithDisabled())
	km.AcceptSuggestion = key.NewBinding(key.WithDisabled())
	ti.KeyMap = km
	ti.CharLimit = 10000
	ti.Focus()
	return inputLine{ti: ti}
}

func (l *inputLine) setWidth(w int) { l.ti.SetWidth(max(w-lipglossWidth(l.ti.Prompt)-1, 1)) }

func lipglossWidth(s string) int { return len([]rune(s)) }

func (l *inputLine) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	l.ti, cmd = l.ti.Update(msg)
	return cmd
}

func (l *inputLine) value() string { return l.ti.Value() }

func (l *inputLine) set(s string) {
	l.ti.SetValue(s)
	l.ti.CursorEnd()
}

// take returns the line and clears it, remembering it in the history
// (never a secret: prompts are not remembered).
func (l *inputLine) take() string {
	v := l.ti.Value()
	l.ti.SetValue("")
	if l.prompt == nil && strings.TrimSpace(v) != "" {
		if n := len(l.history); n == 0 || l.history[n-1] != v {
			l.history = append(l.history, v)
			if len(l.history) > maxHistory {
				l.history = l.history[1:]
			}
		}
	}
	l.pos = len(l.history)
	l.draft = ""
	return v
}

// browse moves through the history: -1 earlier, +1 later.
func (l *inputLine) browse(d int) {
	if l.prompt != nil {
		return
	}
	if l.pos == len(l.history) {
		l.draft = l.ti.Value()
	}
	p := min(max(l.pos+d, 0), len(l.history))
	if p == l.pos {
		return
	}
	l.pos = p
	if p == len(l.history) {
		l.set(l.draft)
		return
	}
	l.set(l.history[p])
}

// ask turns the line into a prompt.
func (l *inputLine) ask(p *prompt) {
	l.prompt = p
	l.ti.SetValue("")
	l.ti.Prompt = p.text + " "
	if p.kind == promptSecret {
		l.ti.EchoMode = textinput.EchoNone
	}
}

// answer ends the prompt with the line typed (cleared from the widget).
func (l *inputLine) answer() (*prompt, []byte) {
	p := l.prompt
	b := []byte(l.ti.Value())
	l.ti.SetValue("")
	l.ti.Reset()
	l.prompt = nil
	l.ti.Prompt = "> "
	l.ti.EchoMode = textinput.EchoNormal
	return p, b
}

func (l *inputLine) view() string { return l.ti.View() }

// cursor is the terminal cursor; a secret's length does not move it.
func (l *inputLine) cursor() *tea.Cursor {
	c := l.ti.Cursor()
	if c != nil && l.prompt != nil && l.prompt.kind == promptSecret {
		c.Position.X = lipglossWidth(l.ti.Prompt)
	}
	return c
}

// key handles a key press. Keys of the whole client come first, then
// the prompt, then editing.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	if m.help {
		switch s {
		case "f1", "esc", "q", "enter":
			m.help = false
		case "ctrl+c", "ctrl+q":
			return m.quit()
		}
		return nil
	}
	switch s {
	case "ctrl+c", "ctrl+q":
		return m.quit()
	case "f1":
		m.help = true
		return nil
	case "f2":
		m.details = !m.details
		return nil
	case "pgup":
		m.cur().scroll += max(m.bodyHeight()-2, 1)
		return nil
	case "pgdown":
		m.cur().scroll -= max(m.bodyHeight()-2, 1)
		return nil
	case "ctrl+n":
		return m.switchTo((m.active + 1) % len(m.convs))
	case "ctrl+p":
		return m.switchTo((m.active + len(m.convs) - 1) % len(m.convs))
	}
	if strings.HasPrefix(s, "alt+") && len(s) == 5 && s[4] >= '0' && s[4] <= '9' {
		return m.switchTo(int(s[4] - '0'))
	}
	if p := m.in.prompt; p != nil {
		switch {
		case s == "esc":
			p, b := m.in.answer()
			clear(b)
			m.status = ""
			return p.done(nil)
		case s == "enter":
			p, b := m.in.answer()
			m.status = ""
			cmd := p.done(b)
			clear(b)
			return cmd
		case p.kind == promptConfirm && (s == "y" || s == "n"):
			m.in.ti.SetValue(s)
			p, b := m.in.answer()
			m.status = ""
			return p.done(b)
		case p.kind == promptConfirm:
			return nil
		}
		return m.in.update(k)
	}
	switch s {
	case "enter":
		m.status = ""
		return m.submit(m.in.take())
	case "up":
		m.in.browse(-1)
		return nil
	case "down":
		m.in.browse(+1)
		return nil
	case "tab":
		m.complete()
		return nil
	case "esc":
		m.status = ""
		return nil
	}
	m.status = ""
	return m.in.update(k)
}

func (m *Model) quit() tea.Cmd {
	m.cancel()
	return tea.Quit
}

// wheel scrolls the conversation.
func (m *Model) wheel(msg tea.MouseWheelMsg) {
	switch msg.Button {
	case tea.MouseWheelUp:
		m.cur().scroll += 3
	case tea.MouseWheelDown:
		m.cur().scroll -= 3
	}
}

// click on a contact in the roster opens its conversation.
func (m *Model) click(msg tea.MouseClickMsg) {
	rw := m.rosterWidth()
	if msg.X >= rw || msg.Y < 2 {
		return
	}
	row := msg.Y - 2
	for _, a := range m.accounts {
		if row == 0 {
			return
		}
		row--
		cs := m.contacts(a)
		if row < len(cs) {
			c := m.conversation(a, cs[row].jid, true)
			for i, x := range m.convs {
				if x == c {
					m.switchTo(i)
				}
			}
			return
		}
		row -= len(cs)
	}
}

// complete extends the word under the cursor (the line's end) from the
// candidates; with several, it shows them in the status line.
func (m *Model) complete() {
	line := m.in.value()
	cands := m.completions(line)
	if len(cands) == 0 {
		return
	}
	// The last word is replaced by the candidates' common prefix.
	i := strings.LastIndexByte(line, ' ') + 1
	prefix := cands[0]
	for _, c := range cands[1:] {
		for !strings.HasPrefix(c, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if len(cands) == 1 {
		prefix += " "
	}
	if len(prefix) >= len(line[i:]) {
		m.in.set(line[:i] + prefix)
	}
	if len(cands) > 1 {
		m.status = "complete: " + strings.Join(cands, "  ")
	}
}
