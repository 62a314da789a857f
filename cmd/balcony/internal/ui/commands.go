package ui

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/cmd/balcony/internal/termtext"
	"github.com/balcony-im/balcony/eme"
)

// uiCommand is a slash command of the client.
type uiCommand struct {
	name    string
	args    string
	summary string
	// subs are the subcommands, for completion.
	subs []string
	// conv: the command needs a conversation with a contact.
	conv bool
}

// commandTable lists the slash commands; the help overlay, completion and
// "balcony help ui" are made from it.
var commandTable = []uiCommand{
	{name: "open", args: "JID [ACCOUNT]", summary: "open a conversation with JID (as ACCOUNT when there are several)"},
	{name: "close", summary: "close this conversation's tab", conv: true},
	{name: "encryption", args: "auto|off|require MECH", subs: []string{"auto", "off", "require"}, conv: true,
		summary: "how this conversation's messages are protected: auto picks the strongest mechanism usable now and never a weaker one or plaintext without your yes; off sends in the clear; require MECH (omemo2, omemo, ox, otr, esession) sends only with MECH"},
	{name: "omemo", args: "devices|fingerprint|trust FPR|untrust FPR|reset [ID]", subs: []string{"devices", "fingerprint", "trust", "untrust", "reset"}, conv: true,
		summary: "OMEMO: read and list the contact's devices with their fingerprints, show yours, verify a device key (or distrust it: nothing is encrypted to it again), start new sessions with the contact's devices"},
	{name: "ox", args: "keys|trust FPR STATE|publish|keygen", subs: []string{"keys", "trust", "publish", "keygen"}, conv: true,
		summary: "OpenPGP for XMPP: fetch and list the contact's announced keys, decide about one, announce your key, make one"},
	{name: "otr", args: "start|end|smp [QUESTION]|answer|abort|status", subs: []string{"start", "end", "smp", "answer", "abort", "status"}, conv: true,
		summary: "OTR: start or end a private conversation; verify it with a shared secret (asked for without echo) or answer the contact's verification"},
	{name: "esession", args: "start [keys|secret]|accept [secret]|decline|sas|confirm SAS|reject|rekey|renegotiate may|mustnot|end|status", subs: []string{"start", "accept", "decline", "sas", "confirm", "reject", "rekey", "renegotiate", "end", "status"}, conv: true,
		summary: "Encrypted Sessions: start, accept or end one (start keys: identified by public keys; secret: with a password shared with the contact, asked for without echo); show the short authentication string (SAS) and confirm it after comparing it with the contact; exchange new keys; renegotiate whether the session may be stored"},
	{name: "trust", args: "[FPR verified|blind|undecided|untrusted]", conv: true,
		summary: "list the contact's keys and sessions with fingerprints and SAS, or decide about a key"},
	{name: "history", args: "[N]", conv: true, summary: "read the conversation from the server's archive (the last N messages)"},
	{name: "help", summary: "this help (F1)"},
	{name: "quit", summary: "leave (ctrl+q)"},
}

// CommandHelp describes the slash commands, for "balcony help ui".
func CommandHelp() string {
	var b strings.Builder
	for _, c := range commandTable {
		line := "  /" + c.name
		if c.args != "" {
			line += " " + c.args
		}
		b.WriteString(line + "\n")
		b.WriteString(wrapText(c.summary, 70, "      ") + "\n")
	}
	return b.String()
}

func wrapText(s string, w int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i == 0 || n+1+len(word) > w {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(indent + word)
			n = len(word)
			continue
		}
		b.WriteString(" " + word)
		n += 1 + len(word)
	}
	return b.String()
}

func lookupCommand(name string) (uiCommand, bool) {
	for _, c := range commandTable {
		if c.name == name {
			return c, true
		}
	}
	return uiCommand{}, false
}

// completions are the candidates for the last word of line.
func (m *Model) completions(line string) []string {
	if !strings.HasPrefix(line, "/") {
		return nil
	}
	words := strings.Split(line[1:], " ")
	last := words[len(words)-1]
	var pool []string
	switch len(words) {
	case 1:
		for _, c := range commandTable {
			pool = append(pool, "/"+c.name)
		}
		last = "/" + last
	case 2:
		c, ok := lookupCommand(words[0])
		if !ok {
			return nil
		}
		pool = c.subs
		if c.name == "open" {
			pool = m.knownContacts()
		}
	case 3:
		switch {
		case words[0] == "encryption" && words[1] == "require":
			pool = []string{"omemo2", "omemo", "ox", "otr", "esession"}
		case words[0] == "open":
			for _, a := range m.accounts {
				pool = append(pool, a.jid.String())
			}
		case words[0] == "trust":
			pool = trustStates
		}
	case 4:
		if words[0] == "ox" && words[1] == "trust" {
			pool = trustStates
		}
	}
	var out []string
	for _, p := range pool {
		if strings.HasPrefix(p, last) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

var trustStates = []string{"blind", "undecided", "untrusted", "verified"}

// knownContacts are the roster entries and conversations of every account.
func (m *Model) knownContacts() []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range m.accounts {
		for _, c := range m.contacts(a) {
			if s := c.jid.String(); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// submit runs a typed line: a command, or a message for the active
// conversation. "//" starts a message with a slash.
func (m *Model) submit(line string) tea.Cmd {
	if strings.TrimSpace(line) == "" {
		return nil
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		return m.sendText(strings.TrimPrefix(line, "/"))
	}
	f := strings.Fields(line[1:])
	if len(f) == 0 {
		return nil
	}
	c := m.cur()
	cmd, ok := lookupCommand(f[0])
	if !ok {
		m.errorNotice(c, "/"+f[0], errors.New("unknown command; /help lists them, Tab completes them"))
		return nil
	}
	if cmd.conv && c.acct == nil {
		m.errorNotice(c, "/"+f[0], errors.New("this command acts in a conversation: open one with /open JID"))
		return nil
	}
	args := f[1:]
	switch cmd.name {
	case "help":
		m.help = true
	case "quit":
		return m.quit()
	case "open":
		return m.open(args)
	case "close":
		return m.closeConversation()
	case "encryption":
		return m.encryption(c, args)
	case "history":
		return m.history(c, args)
	case "otr":
		if len(args) > 0 && args[0] == "smp" || len(args) > 0 && args[0] == "answer" {
			return m.askSecret(c, cmd.name, args, "Shared secret for ", "verification not started: no secret")
		}
		return m.run(c, cmd.name, args, nil)
	case "esession":
		if len(args) == 2 && (args[0] == "start" || args[0] == "accept") && args[1] == "secret" {
			return m.askSecret(c, cmd.name, args, "Password shared with ", "no session "+args[0]+"ed: no password")
		}
		return m.run(c, cmd.name, args, nil)
	default: // omemo, ox, trust
		return m.run(c, cmd.name, args, nil)
	}
	return nil
}

// open opens (or switches to) a conversation.
func (m *Model) open(args []string) tea.Cmd {
	if len(args) == 0 || len(args) > 2 {
		m.errorNotice(m.cur(), "/open", errors.New("usage: /open JID [ACCOUNT]"))
		return nil
	}
	peer, err := jid.Parse(args[0])
	if err != nil || peer.Localpart() == "" {
		m.errorNotice(m.cur(), "/open", errors.New("not a contact's address: "+termtext.Line(args[0])))
		return nil
	}
	a := m.cur().acct
	if len(args) == 2 {
		if j, err := jid.Parse(args[1]); err == nil {
			a = m.account(j)
		}
		if a == nil {
			m.errorNotice(m.cur(), "/open", errors.New("no account "+termtext.Line(args[1])))
			return nil
		}
	}
	if a == nil {
		if len(m.accounts) == 0 {
			return nil
		}
		a = m.accounts[0]
	}
	c := m.conversation(a, peer, true)
	if peer.Resourcepart() != "" {
		c.resource = peer.Resourcepart()
	}
	for i, x := range m.convs {
		if x == c {
			m.active = i
			c.unread = 0
		}
	}
	// Ask the network once: the contact's announced keys and features.
	return m.refresh(c, true)
}

func (m *Model) closeConversation() tea.Cmd {
	if m.active == 0 {
		return nil
	}
	m.convs = append(m.convs[:m.active], m.convs[m.active+1:]...)
	m.active = min(m.active, len(m.convs)-1)
	return m.switchTo(m.active)
}

// encryption sets how the conversation's messages are protected.
func (m *Model) encryption(c *conversation, args []string) tea.Cmd {
	usage := errors.New("usage: /encryption auto|off|require omemo2|omemo|ox|otr|esession")
	if len(args) == 0 {
		m.info(c, m.encryptionStatus())
		for _, x := range c.cands {
			usable := "not usable"
			if x.Usable {
				usable = "usable"
			}
			m.info(c, shortName(x.Mechanism)+": "+usable+", "+x.Why)
		}
		return nil
	}
	switch {
	case args[0] == "auto" && len(args) == 1:
		c.mode = modeAuto
	case args[0] == "off" && len(args) == 1:
		c.mode = modeOff
		m.info(c, "encryption off: messages to "+c.peer.String()+" go in the clear")
	case args[0] == "require" && len(args) == 2:
		pol, err := eme.ParsePolicy("require:" + args[1])
		if err != nil {
			m.errorNotice(c, "/encryption", usage)
			return nil
		}
		c.mode, c.require = modeRequire, pol.Mechanism
		m.info(c, shortName(pol.Mechanism)+" required: nothing is sent to "+c.peer.String()+" without it")
	default:
		m.errorNotice(c, "/encryption", usage)
		return nil
	}
	return m.refresh(c, c.mode == modeAuto)
}

// sendText sends a message in the active conversation: the choice of the
// mechanism comes first (chosen), then the send.
func (m *Model) sendText(body string) tea.Cmd {
	c := m.cur()
	if c.acct == nil {
		m.errorNotice(c, "", errors.New("the console sends nothing: open a conversation with /open JID"))
		return nil
	}
	if c.mode == modeOff {
		return m.send(c, body, Candidate{To: c.peer})
	}
	return m.choose(c, false, body)
}

// best is the strongest usable candidate, or the zero Candidate.
func best(cands []Candidate) Candidate {
	var b Candidate
	for _, x := range cands {
		if !x.Usable {
			continue
		}
		if b.Mechanism == "" || rank(x.Mechanism) > rank(b.Mechanism) ||
			rank(x.Mechanism) == rank(b.Mechanism) && x.Mechanism < b.Mechanism {
			b = x
		}
	}
	return b
}

// reasons lists why each mechanism is (not) usable.
func reasons(cands []Candidate) string {
	var parts []string
	for _, x := range cands {
		parts = append(parts, shortName(x.Mechanism)+": "+x.Why)
	}
	return strings.Join(parts, "; ")
}

// chosen applies fresh candidates: the status line shows the choice, and
// a waiting message is sent as the mode allows.
func (m *Model) chosen(msg candidatesMsg) tea.Cmd {
	c := msg.conv
	c.cands = msg.cands
	c.choice = best(msg.cands)
	if c.choice.Mechanism == "" {
		c.choice.Why = reasons(msg.cands)
	}
	if msg.send == "" {
		return nil
	}
	body := msg.send
	switch c.mode {
	case modeRequire:
		for _, x := range msg.cands {
			if x.Mechanism == c.require {
				if !x.Usable {
					m.errorNotice(c, "not sent", errors.New(shortName(x.Mechanism)+" is required and not usable: "+x.Why+"; the message was kept in the input line"))
					m.in.set(body)
					return nil
				}
				return m.send(c, body, x)
			}
		}
		m.errorNotice(c, "not sent", errors.New(shortName(c.require)+" is required and this account does not have it"))
		m.in.set(body)
		return nil
	case modeOff:
		return m.send(c, body, Candidate{To: c.peer})
	}
	b := c.choice
	switch {
	case b.Mechanism != "" && rank(b.Mechanism) >= c.floor:
		return m.send(c, body, b)
	case b.Mechanism != "":
		m.notice(c, m.opts.Now(), c.peer, "the strongest mechanism this conversation had is not usable now: "+reasons(msg.cands), eme.Hint{}, "")
		return m.confirm(c, "Send with the weaker "+shortName(b.Mechanism)+"? [y/N]", body, b)
	}
	m.notice(c, m.opts.Now(), c.peer, "nothing can protect this message now: "+reasons(msg.cands), eme.Hint{}, "")
	return m.confirm(c, "Send it in the clear? [y/N]", body, Candidate{To: c.peer})
}

// confirm asks before sending with less protection than auto allows.
func (m *Model) confirm(c *conversation, question, body string, with Candidate) tea.Cmd {
	m.in.ask(&prompt{kind: promptConfirm, text: termtext.Line(question), done: func(a []byte) tea.Cmd {
		if string(a) == "y" || string(a) == "Y" {
			return m.send(c, body, with)
		}
		m.info(c, "not sent; the message is back in the input line")
		m.in.set(body)
		return nil
	}})
	return nil
}

// send sends body with the chosen candidate, showing it at once.
func (m *Model) send(c *conversation, body string, with Candidate) tea.Cmd {
	e := &entry{at: m.opts.Now(), kind: kindOwn, from: "me", text: body, pending: true,
		label: label{mech: "", state: "plaintext"}}
	if with.Mechanism != "" {
		e.label = label{mech: shortName(with.Mechanism), state: "sent"}
	}
	c.add(e)
	c.scroll = 0
	if c.mode == modeAuto && with.Mechanism != "" {
		c.raise(with.Mechanism)
	}
	ctx, a := m.ctx, c.acct
	to := with.To
	if to.Domainpart() == "" {
		to = c.peer
	}
	return func() tea.Msg {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		s, err := a.Send(sctx, to, body, with.Mechanism)
		return sentMsg{conv: c, entry: e, sent: s, err: err}
	}
}

func (m *Model) sent(msg sentMsg) {
	e := msg.entry
	e.pending = false
	if msg.err != nil {
		e.label = label{state: "not sent"}
		m.errorNotice(msg.conv, "not sent", msg.err)
		return
	}
	e.ids, e.held = msg.sent.IDs, msg.sent.Held
}

// askSecret reads a secret shared with the contact without echo (the
// OTR verification's, an Encrypted Session's password), then runs the
// command with it.
func (m *Model) askSecret(c *conversation, name string, args []string, question, none string) tea.Cmd {
	q := question + c.to().String() + " (not shown; Esc cancels):"
	m.in.ask(&prompt{kind: promptSecret, text: termtext.Line(q), done: func(secret []byte) tea.Cmd {
		if len(secret) == 0 {
			m.info(c, none)
			return nil
		}
		// The caller clears its copy when done returns.
		return m.run(c, name, args, append([]byte(nil), secret...))
	}})
	return nil
}

// run runs a mechanism command in a goroutine.
func (m *Model) run(c *conversation, name string, args []string, secret []byte) tea.Cmd {
	m.busy = "/" + name + " " + strings.Join(args, " ") + " …"
	ctx, a := m.ctx, c.acct
	req := Request{Command: name, Args: args, Peer: c.to(), Secret: secret}
	return func() tea.Msg {
		defer clear(secret)
		rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		lines, err := a.Run(rctx, req)
		return ranMsg{conv: c, cmd: name, lines: lines, err: err}
	}
}

// history reads the archive with a progress indicator.
func (m *Model) history(c *conversation, args []string) tea.Cmd {
	limit := 0
	if len(args) == 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			m.errorNotice(c, "/history", errors.New("usage: /history [N], N a positive number"))
			return nil
		}
		limit = n
	}
	m.busy = spinner(0) + " reading the archive"
	ctx, a, post := m.ctx, c.acct, m.opts.Post
	return func() tea.Msg {
		var evs []client.Event
		last := time.Now()
		err := a.History(ctx, c.peer, func(ev client.Event) {
			evs = append(evs, ev)
			if post != nil && time.Since(last) > 100*time.Millisecond {
				last = time.Now()
				post(historyProgressMsg{conv: c, n: len(evs)})
			}
		})
		if limit > 0 && len(evs) > limit {
			evs = evs[len(evs)-limit:]
		}
		return historyDoneMsg{conv: c, events: evs, err: err}
	}
}

func (m *Model) historyDone(msg historyDoneMsg) {
	m.busy = ""
	c := msg.conv
	if msg.err != nil {
		m.errorNotice(c, "/history", msg.err)
	}
	n := 0
	for _, ev := range msg.events {
		switch ev := ev.(type) {
		case *client.MessageEvent:
			if ev.Body == "" {
				continue
			}
			e := messageEntry(ev)
			e.origin = "archive"
			if ev.From.Bare().Equal(c.acct.jid) {
				e.kind, e.from = kindOwn, "me"
			}
			c.add(e)
			n++
		case *client.NoticeEvent:
			text := ev.Text
			if m.opts.Hint != nil {
				if h := m.opts.Hint(ev.Hint, ""); h != "" {
					text += " (" + h + ")"
				}
			}
			c.add(&entry{at: ev.Time, kind: kindNotice, from: ev.From.String(), text: text, origin: "archive", stanzaID: ev.Origin.StanzaID})
			n++
		}
	}
	if msg.err == nil {
		m.info(c, "read "+itoa(n)+" messages and notices from the archive")
	}
}
