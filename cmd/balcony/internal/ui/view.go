package ui

import (
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/balcony-im/balcony/cmd/balcony/internal/termtext"
)

// styles of the client. Colours are dropped by the program on terminals
// without them (and with NO_COLOR); the layout never depends on them: the
// marker column and the label's place say what a line is.
type styles struct {
	title, tabActive, tab, faint, time, rule, me, contact, info, noticeText, status, help lipgloss.Style
	noticeMarker, infoMarker                                                              lipgloss.Style
	verified, unverified, untrusted, warning, plaintext                                   lipgloss.Style
}

func newStyles() *styles {
	c := lipgloss.Color
	return &styles{
		title:        lipgloss.NewStyle().Reverse(true).Bold(true),
		tabActive:    lipgloss.NewStyle().Reverse(true),
		tab:          lipgloss.NewStyle(),
		faint:        lipgloss.NewStyle().Faint(true),
		time:         lipgloss.NewStyle().Foreground(c("8")),
		rule:         lipgloss.NewStyle().Foreground(c("8")),
		me:           lipgloss.NewStyle().Bold(true).Foreground(c("4")),
		contact:      lipgloss.NewStyle().Bold(true).Foreground(c("6")),
		info:         lipgloss.NewStyle().Foreground(c("8")),
		noticeText:   lipgloss.NewStyle().Foreground(c("3")),
		status:       lipgloss.NewStyle().Reverse(true),
		help:         lipgloss.NewStyle().Border(lipgloss.NormalBorder()).Padding(0, 1),
		noticeMarker: lipgloss.NewStyle().Reverse(true).Bold(true).Foreground(c("3")),
		infoMarker:   lipgloss.NewStyle().Foreground(c("8")),
		verified:     lipgloss.NewStyle().Bold(true).Foreground(c("2")),
		unverified:   lipgloss.NewStyle().Foreground(c("3")),
		untrusted:    lipgloss.NewStyle().Bold(true).Foreground(c("1")),
		warning:      lipgloss.NewStyle().Bold(true).Foreground(c("1")),
		plaintext:    lipgloss.NewStyle().Foreground(c("5")),
	}
}

var theme = newStyles()

func (s *styles) label(state string) lipgloss.Style {
	switch state {
	case "verified":
		return s.verified
	case "unverified":
		return s.unverified
	case "untrusted":
		return s.untrusted
	case "warning":
		return s.warning
	}
	return s.plaintext
}

func (s *styles) marker(k entryKind) lipgloss.Style {
	switch k {
	case kindNotice:
		return s.noticeMarker
	case kindInfo:
		return s.infoMarker
	}
	return lipgloss.NewStyle()
}

// rosterWidth is the width of the contact list; 0 hides it on narrow
// terminals.
func (m *Model) rosterWidth() int {
	if m.width < 60 {
		return 0
	}
	return min(28, m.width/4)
}

// bodyHeight is the height of the roster and scrollback.
func (m *Model) bodyHeight() int { return max(m.height-4, 1) }

// layout applies the terminal size to the input line.
func (m *Model) layout() {
	m.in.setWidth(m.width)
}

// View implements tea.Model.
func (m *Model) View() tea.View {
	st := theme
	rows := []string{m.titleBar(st), m.tabBar(st)}
	body := m.scrollback(st)
	if rw := m.rosterWidth(); rw > 0 {
		roster := m.rosterPane(st, rw)
		for i := range body {
			body[i] = roster[i] + st.rule.Render("│") + body[i]
		}
	}
	rows = append(rows, body...)
	rows = append(rows, m.statusLine(st), m.in.view())
	if len(rows) > m.height && m.height > 0 {
		// A tiny terminal: the input line and what fits above it.
		rows = rows[len(rows)-m.height:]
	}
	if m.help {
		// The help covers the conversation: nothing of it shows beside
		// the box.
		for i := 1; i < len(rows)-2; i++ {
			rows[i] = strings.Repeat(" ", m.width)
		}
	}
	content := strings.Join(rows, "\n")
	if m.help {
		content = m.overlayHelp(content, st)
	}
	v := tea.NewView(content)
	v.AltScreen = true
	v.WindowTitle = "balcony"
	if m.opts.Mouse {
		v.MouseMode = tea.MouseModeCellMotion
	}
	if !m.help {
		if c := m.in.cursor(); c != nil {
			c.Position.Y = m.height - 1
			v.Cursor = c
		}
	}
	return v
}

// fit cuts or pads a styled line to exactly w columns.
func fit(s string, w int) string {
	if lipgloss.Width(s) > w {
		s = truncate(s, w)
	}
	if n := w - lipgloss.Width(s); n > 0 {
		s += strings.Repeat(" ", n)
	}
	return s
}

func truncate(s string, w int) string {
	return lipgloss.NewStyle().MaxWidth(w).Render(s)
}

func (m *Model) titleBar(st *styles) string {
	var b strings.Builder
	b.WriteString(" balcony ")
	for _, a := range m.accounts {
		b.WriteString(" │ " + termtext.Addr(a.jid.String()) + " " + stateGlyph(a.state) + " " + a.state)
		if len(a.missing) > 0 {
			b.WriteString(" (server lacks " + itoa(len(a.missing)) + ")")
		}
	}
	right := " F1 help "
	left := b.String()
	if lipgloss.Width(left)+len(right) > m.width {
		return st.title.Render(fit(left, m.width))
	}
	return st.title.Render(fit(left, m.width-len(right)) + right)
}

func stateGlyph(state string) string {
	switch state {
	case "connected":
		return "●"
	case "connecting", "reconnecting":
		return "◌"
	}
	return "○"
}

func (m *Model) tabBar(st *styles) string {
	var parts []string
	for i, c := range m.convs {
		t := itoa(i) + ":" + termtext.Addr(c.title)
		if c.unread > 0 {
			t += "(" + itoa(c.unread) + ")"
		}
		if i == m.active {
			parts = append(parts, st.tabActive.Render(" "+t+" "))
		} else {
			parts = append(parts, st.tab.Render(" "+t+" "))
		}
	}
	return fit(strings.Join(parts, ""), m.width)
}

// scrollback is the active conversation's last lines, bodyHeight of them.
func (m *Model) scrollback(st *styles) []string {
	h := m.bodyHeight()
	w := m.width
	if rw := m.rosterWidth(); rw > 0 {
		w -= rw + 1
	}
	c := m.cur()
	lines := c.lines(w, st, m.details)
	maxScroll := max(len(lines)-h, 0)
	c.scroll = min(max(c.scroll, 0), maxScroll)
	end := len(lines) - c.scroll
	start := max(end-h, 0)
	out := make([]string, 0, h)
	for _, l := range lines[start:end] {
		out = append(out, fit(l, w))
	}
	for len(out) < h {
		out = append([]string{strings.Repeat(" ", w)}, out...)
	}
	if c.scroll > 0 {
		out[h-1] = fit(st.status.Render(" ↓ "+itoa(c.scroll)+" more lines below (PgDn) "), w)
	}
	return out
}

// rosterPane lists each account and its contacts with presence and unread
// counts, h lines of width w.
func (m *Model) rosterPane(st *styles, w int) []string {
	h := m.bodyHeight()
	var out []string
	for _, a := range m.accounts {
		out = append(out, fit(st.title.Render(stateGlyph(a.state)+" "+termtext.Addr(a.jid.String())), w))
		for _, c := range m.contacts(a) {
			glyph := "○"
			for _, show := range c.resources {
				if show == "" || show == "chat" {
					glyph = "●"
					break
				}
				glyph = "◐"
			}
			name := termtext.Addr(c.jid.String())
			if c.name != "" {
				name = termtext.Line(c.name)
			}
			line := " " + glyph + " " + name
			conv := m.conversation(a, c.jid, false)
			if conv != nil && conv.unread > 0 {
				line += " (" + itoa(conv.unread) + ")"
			}
			line = fit(line, w)
			if conv != nil && conv == m.cur() {
				line = st.tabActive.Render(line)
			}
			out = append(out, line)
		}
	}
	for len(out) < h {
		out = append(out, strings.Repeat(" ", w))
	}
	return out[:h]
}

// contacts are an account's roster entries and open conversations, sorted.
func (m *Model) contacts(a *account) []*contact {
	seen := map[string]bool{}
	var out []*contact
	for k, c := range a.roster {
		seen[k] = true
		out = append(out, c)
	}
	for _, c := range m.convs {
		if c.acct == a && !seen[c.peer.String()] {
			seen[c.peer.String()] = true
			out = append(out, &contact{jid: c.peer})
		}
	}
	sortContacts(out)
	return out
}

func sortContacts(cs []*contact) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].jid.String() < cs[j-1].jid.String(); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// statusLine shows how the active conversation sends, and work under way.
func (m *Model) statusLine(st *styles) string {
	left := m.status
	if left == "" {
		left = m.encryptionStatus()
	}
	if m.busy != "" {
		left = m.busy + " · " + left
	}
	return st.status.Render(fit(" "+left, m.width))
}

// encryptionStatus says how the next message of the active conversation
// would be sent, and why.
func (m *Model) encryptionStatus() string {
	c := m.cur()
	if c.acct == nil {
		return "console of " + itoa(len(m.accounts)) + " account(s); /open JID starts a conversation"
	}
	to := termtext.Addr(c.peer.String())
	switch c.mode {
	case modeOff:
		return "to " + to + ": encryption off, messages go in the clear"
	case modeRequire:
		return "to " + to + ": " + shortName(c.require) + " required; nothing is sent without it"
	}
	if c.choice.Mechanism == "" {
		return "to " + to + ": auto, nothing usable now: in the clear only after your yes (/encryption says why)"
	}
	return "to " + to + ": auto → " + shortName(c.choice.Mechanism) + " (" + termtext.Line(c.choice.Why) + ")"
}

// helpText is the help overlay.
const helpText = `Balcony: keys
  Enter          send the line, or run a /command
  Tab            complete a command, a subcommand or a contact
  Up, Down       earlier and later lines you typed
  ctrl+a/e/w/u/k edit: start, end, delete word, to start, to end
  ctrl+n, ctrl+p next and previous conversation (alt+0..9: by number)
  PgUp, PgDn     scroll the conversation
  F2             show fingerprints and full addresses in the scrollback
  F1, Esc        close this help
  ctrl+q, ctrl+c quit

Lines in the scrollback
  TIME   │ who [OX verified] text   a message and how it was protected
  TIME !!│ ...                      Balcony's notice (no contact can
                                    write left of the │ rule)
  TIME --│ ...                      Balcony's answer to a command

Commands
`

// helpBox is the help's text for a box of at most w columns inside.
func (m *Model) helpBox(w int) string {
	var b strings.Builder
	b.WriteString(helpText)
	for _, c := range commandTable {
		b.WriteString("  /" + c.name)
		if c.args != "" {
			b.WriteString(" " + c.args)
		}
		b.WriteString("\n" + wrapText(c.summary, max(w-6, 20), "      ") + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// overlayHelp draws the help box over content, centred, scrolled to fit.
func (m *Model) overlayHelp(content string, st *styles) string {
	lines := strings.Split(m.helpBox(min(m.width-4, 76)), "\n")
	maxH := max(m.height-6, 3)
	if len(lines) > maxH {
		lines = append(lines[:maxH-1], "  … (a taller terminal shows the rest; the commands are in: balcony help ui)")
	}
	box := st.help.Render(strings.Join(lines, "\n"))
	if lipgloss.Width(box) > m.width {
		box = truncate(box, m.width)
	}
	x := max((m.width-lipgloss.Width(box))/2, 0)
	y := max((m.height-lipgloss.Height(box))/2, 0)
	return lipgloss.NewCompositor(
		lipgloss.NewLayer(content),
		lipgloss.NewLayer(box).X(x).Y(y).Z(1),
	).Render()
}
