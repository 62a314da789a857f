package ui

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/cmd/balcony/internal/termtext"
	"github.com/balcony-im/balcony/eme"
)

// entryKind says who wrote a scrollback entry.
type entryKind int

const (
	kindMessage entryKind = iota // a message the contact (or another device of ours) sent
	kindOwn                      // a message this client sent
	kindNotice                   // Balcony's notice: security, errors
	kindInfo                     // Balcony's own output
)

// entry is one item of a conversation's scrollback. Every field that
// holds remote text is escaped when it is drawn, never before.
type entry struct {
	at   time.Time
	kind entryKind
	// from is the sender's address (messages), the peer a notice is
	// about, or "" for Balcony's own lines.
	from string
	// resource is the sender's resource, shown with the details.
	resource string
	label    label
	text     string
	// claimed is a delay stamp the sender wrote (never the time shown).
	claimed time.Time
	origin  string // "archive", "other device"
	// ids of a message we sent, for receipts; stanzaID is our server's.
	ids       []string
	stanzaID  string
	delivered bool
	held      bool
	pending   bool // still being sent
}

// label is a message's security at a glance.
type label struct {
	mech  string // short name, "" for plaintext
	state string // verified, unverified, untrusted, warning, plaintext
	fpr   string
}

// labelOf summarises a message's security.
func labelOf(s client.Security) label {
	if !s.Encrypted() {
		return label{state: "plaintext"}
	}
	l := label{mech: shortName(s.Mechanism), fpr: s.Fingerprint}
	switch {
	case len(s.Warnings) > 0:
		l.state = "warning"
	case s.Trust == "untrusted":
		l.state = "untrusted"
	case s.Verified:
		l.state = "verified"
	default:
		l.state = "unverified"
	}
	return l
}

// text is the label as drawn, with the fingerprint when details are on.
func (l label) text(details bool) string {
	if l.state == "" {
		return ""
	}
	s := l.state
	switch {
	case l.state == "sent":
		s = l.mech // our own message: the mechanism that sealed it
	case l.mech != "":
		s = l.mech + " " + l.state
	}
	if details && l.fpr != "" {
		f := strings.ReplaceAll(l.fpr, " ", "")
		if len(f) > 16 {
			f = f[:16]
		}
		s += " " + f
	}
	return "[" + termtext.Line(s) + "]"
}

// shortName is the upper-case short name of a mechanism (OX, OTR,
// ESESSION) or its namespace when it has none.
func shortName(ns string) string {
	if ns == "" {
		return "plaintext"
	}
	if m, ok := eme.Lookup(ns); ok && m.Short != "" {
		if m.Short == "esession" {
			return "ES"
		}
		return strings.ToUpper(m.Short)
	}
	return ns
}

// rank is a mechanism's strength (eme's ranks; plaintext 0).
func rank(ns string) int {
	if ns == "" {
		return eme.RankPlaintext
	}
	m, _ := eme.Lookup(ns)
	return m.Rank
}

func messageEntry(ev *client.MessageEvent) *entry {
	e := &entry{at: ev.Time, kind: kindMessage, from: ev.From.Bare().String(), resource: ev.From.Resourcepart(),
		label: labelOf(ev.Security), text: ev.Body, claimed: ev.Origin.ClaimedTime, stanzaID: ev.Origin.StanzaID}
	if ev.Origin.Carbon == client.CarbonSent {
		e.kind, e.from = kindOwn, "me"
	}
	switch {
	case ev.Origin.Archived:
		e.origin = "archive"
	case ev.Origin.Carbon != client.NotCarbon:
		e.origin = "other device"
	}
	if e.at.IsZero() {
		e.at = time.Now()
	}
	return e
}

// mode is how a conversation chooses its mechanism.
type mode int

const (
	modeAuto    mode = iota // the strongest usable, never weaker without a yes
	modeOff                 // plaintext
	modeRequire             // one mechanism, or nothing
)

// conversation is a tab: the console, or an account's chat with a contact.
type conversation struct {
	acct  *account // nil for the console
	peer  jid.JID  // bare
	title string
	// resource is the contact's resource last seen (for OTR).
	resource string
	entries  []*entry
	unread   int
	scroll   int // lines scrolled up from the bottom
	mode     mode
	require  string // namespace, with modeRequire
	// floor is the rank of the strongest mechanism that protected this
	// conversation (sent by the automatic choice, or received
	// authenticated): auto never goes below it without a yes.
	floor int
	cands []Candidate
	// choice is what the automatic choice would use now, and why.
	choice Candidate
}

// maxEntries bounds a scrollback.
const maxEntries = 5000

// add appends e, or inserts an archived entry at its time.
func (c *conversation) add(e *entry) {
	if e.origin == "archive" {
		for _, x := range c.entries {
			if e.stanzaID != "" && x.stanzaID == e.stanzaID {
				return // shown already
			}
		}
		i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].at.After(e.at) })
		c.entries = append(c.entries, nil)
		copy(c.entries[i+1:], c.entries[i:])
		c.entries[i] = e
	} else {
		c.entries = append(c.entries, e)
	}
	if len(c.entries) > maxEntries {
		c.entries = c.entries[len(c.entries)-maxEntries:]
	}
}

// raise records that ns protected the conversation.
func (c *conversation) raise(ns string) {
	if r := rank(ns); r > c.floor {
		c.floor = r
	}
}

// delivered marks the message with stanza id id as delivered.
func (c *conversation) delivered(id string) {
	for _, e := range c.entries {
		for _, x := range e.ids {
			if x == id {
				e.delivered = true
				return
			}
		}
	}
}

// to is the address for a mechanism command: the full JID when a
// resource is known.
func (c *conversation) to() jid.JID {
	if c.resource != "" {
		if j, err := c.peer.WithResource(c.resource); err == nil {
			return j
		}
	}
	return c.peer
}

// The gutter: "15:04:05 !!│ " — the time, Balcony's two-column marker and
// a rule. Remote text starts right of the rule on every line, so nothing
// a contact writes can appear in the marker column.
const (
	timeWidth   = 8
	gutterWidth = timeWidth + 1 + 2 + 1 + 1
)

// markers of each kind of entry.
var markers = map[entryKind]string{kindMessage: "  ", kindOwn: "  ", kindNotice: "!!", kindInfo: "--"}

// lines renders the conversation for a text area of width w.
func (c *conversation) lines(w int, st *styles, details bool) []string {
	var out []string
	var day string
	for _, e := range c.entries {
		if d := e.at.Local().Format("2006-01-02"); d != day {
			if day != "" || e.at.Local().Format("2006-01-02") != time.Now().Format("2006-01-02") {
				out = append(out, st.faint.Render(strings.Repeat("─", timeWidth)+" "+d))
			}
			day = d
		}
		out = append(out, e.render(w, st, details)...)
	}
	return out
}

// render draws one entry: the gutter, then "who [label] text" wrapped
// within the text column.
func (e *entry) render(w int, st *styles, details bool) []string {
	textW := max(w-gutterWidth, 8)
	var b strings.Builder
	switch e.kind {
	case kindMessage, kindOwn:
		who := e.from
		if e.kind == kindMessage && !details {
			// The conversation names the contact; its localpart is enough.
			if j, err := jid.Parse(who); err == nil && j.Localpart() != "" {
				who = j.Localpart()
			}
		}
		if details && e.resource != "" {
			who += "/" + e.resource
		}
		whoStyle := st.contact
		if e.kind == kindOwn {
			whoStyle = st.me
		}
		b.WriteString(whoStyle.Render(termtext.Addr(who)))
		b.WriteString(" ")
		b.WriteString(st.label(e.label.state).Render(e.label.text(details)))
		if e.origin != "" {
			b.WriteString(st.faint.Render(" (" + e.origin + ")"))
		}
		if !e.claimed.IsZero() {
			b.WriteString(st.faint.Render(" (dated " + e.claimed.UTC().Format(time.RFC3339) + " by the sender)"))
		}
		switch {
		case e.pending:
			b.WriteString(st.faint.Render(" …"))
		case e.held:
			b.WriteString(st.faint.Render(" (held until the private conversation starts)"))
		case e.delivered:
			b.WriteString(st.faint.Render(" ✓"))
		}
		b.WriteString(" ")
		b.WriteString(termtext.Line(e.text))
	case kindNotice:
		if e.from != "" {
			b.WriteString(st.noticeText.Render(termtext.Addr(e.from) + ": "))
		}
		b.WriteString(st.noticeText.Render(termtext.Line(e.text)))
	case kindInfo:
		b.WriteString(st.info.Render(termtext.Line(e.text)))
	}
	// The rule's glyph is Balcony's alone: in the text column it can only
	// come from someone else, and is shown escaped.
	body := strings.Split(wrap(strings.ReplaceAll(b.String(), "│", `\u2502`), textW), "\n")
	marker := markers[e.kind]
	mk := st.marker(e.kind).Render(marker)
	blankMk := "  "
	if e.kind == kindNotice || e.kind == kindInfo {
		// Every line of a notice carries the marker.
		blankMk = mk
	}
	out := make([]string, len(body))
	for i, l := range body {
		ts := strings.Repeat(" ", timeWidth)
		m := blankMk
		if i == 0 {
			ts = st.time.Render(e.at.Local().Format("15:04:05"))
			m = mk
		}
		out[i] = ts + " " + m + st.rule.Render("│") + " " + l
	}
	return out
}

// wrap breaks styled text into lines of at most w columns: at spaces
// where it can, anywhere else (ansi.Wrap alone may leave a line one
// column too long at a hyphen), with the styles closed at each break.
func wrap(s string, w int) string {
	s = ansi.Hardwrap(ansi.Wrap(s, w, ""), w, true)
	var b strings.Builder
	ww := lipgloss.NewWrapWriter(&b)
	ww.Write([]byte(s))
	ww.Close()
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

func join(s []string) string { return strings.Join(s, ", ") }

// spinner is a frame of the activity indicator.
func spinner(n int) string {
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	return frames[n%len(frames)]
}
