// Package ui is Balcony's full-screen terminal client, a Bubble Tea model:
// several accounts at once, a roster with presence and unread counts,
// conversations in tabs, a scrollback with timestamps, an input line with
// history, editing and completion, and slash commands for every
// end-to-end encryption mechanism (OpenPGP for XMPP, XEP-0373/0374; OTR,
// XEP-0364; Encrypted Sessions, XEP-0218 family, Deferred).
//
// Every message carries its security label (mechanism and verified,
// unverified, untrusted, warning or plaintext) in a fixed place written by
// Balcony, and notices are marked in a gutter column left of a rule that
// remote text never reaches: everything a contact, a server or anyone on
// the way wrote is escaped onto the text column (see termtext) and
// wrapped inside it.
//
// The model does no I/O itself: what it needs of an account (send, the
// mechanisms' commands, the archive) is the Account interface, which the
// command implements with its sessions, and events reach it as messages
// (EventMsg, ConnectedMsg, FailedMsg). It can therefore be driven in tests
// without a terminal: feed messages to Update and read View as text.
package ui

import (
	"context"
	"time"

	tea "charm.land/bubbletea/v2"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/cmd/balcony/internal/termtext"
	"github.com/balcony-im/balcony/eme"
)

// Account is what the client needs of one connected account. Its methods
// are called from goroutines of their own, never from Update, and may
// block on the network. The command implements it with the same session
// code as "balcony listen".
type Account interface {
	// JID is the account's bare JID.
	JID() jid.JID
	// Send sends body to "to" with the mechanism given as its EME
	// namespace ("" for plaintext), exactly as chosen: the client has
	// chosen already. The contact's policy may still refuse it.
	Send(ctx context.Context, to jid.JID, body, mechanism string) (Sent, error)
	// Candidates says, for every mechanism the account has, whether it
	// can protect a message to the contact now and why (not). With
	// refresh it may ask the network first (the contact's announced keys
	// and client features).
	Candidates(ctx context.Context, to jid.JID, refresh bool) []Candidate
	// Run runs a mechanism's command ("omemo", "otr", "esession", "ox", "trust")
	// and returns what Balcony has to say about it, one line each.
	Run(ctx context.Context, r Request) ([]string, error)
	// History reads the archived conversation with a contact, oldest
	// first, calling each with every message or notice.
	History(ctx context.Context, with jid.JID, each func(client.Event)) error
}

// Sent is the outcome of Account.Send.
type Sent struct {
	// IDs are the ids of the stanzas sent, for receipts.
	IDs []string
	// Held: the mechanism keeps the message until its session starts.
	Held bool
}

// Candidate is one way to send to a contact.
type Candidate struct {
	// Mechanism is the EME namespace.
	Mechanism string
	// To is the address to send to with it (OTR: the full JID of the
	// private conversation).
	To jid.JID
	// Usable: the mechanism can protect a message to the contact now.
	Usable bool
	// Why says why it is usable or not, in Balcony's words.
	Why string
}

// Request is a mechanism command typed in a conversation.
type Request struct {
	// Command is "omemo", "otr", "esession", "ox" or "trust".
	Command string
	// Args are the words after the command ("smp", "our street?").
	Args []string
	// Peer is the conversation's contact: a full JID when a resource is
	// known, else the bare JID.
	Peer jid.JID
	// Secret is the shared secret of an OTR verification or the password
	// of an Encrypted Session, read without echo; the client clears it
	// after Run returns.
	Secret []byte
}

// Options configure the model.
type Options struct {
	// Accounts are the accounts shown, in order.
	Accounts []Account
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Hint turns what the library suggests into the client's command
	// ("/otr smp"); fpr is the key the event is about. Nil shows none.
	Hint func(h eme.Hint, fpr string) string
	// Explain splits an error into Balcony's message and a hint for what
	// to do. Nil shows the error alone.
	Explain func(err error) (msg, hint string)
	// Post delivers a message to the running program from another
	// goroutine (tea.Program.Send); the archive reader reports its
	// progress through it. Nil reports only the end.
	Post func(tea.Msg)
	// Mouse turns on mouse reporting: the wheel scrolls, a click on a
	// contact opens the conversation.
	Mouse bool
}

// EventMsg is an event of an account's client.
type EventMsg struct {
	Account jid.JID
	Event   client.Event
}

// ConnectedMsg reports that an account is online.
type ConnectedMsg struct {
	Account jid.JID
	// Bound is the full JID the server bound.
	Bound jid.JID
	// Missing lists what the server lacks (client.ServerInfo.Missing).
	Missing []string
	// Roster is the roster fetched at login.
	Roster []client.RosterItem
}

// FailedMsg reports that an account could not connect or serve.
type FailedMsg struct {
	Account jid.JID
	Err     error
}

// InfoMsg is a line Balcony has to say about an account (a key was
// created, ...).
type InfoMsg struct {
	Account jid.JID
	Text    string
}

// Internal messages: results of work done in commands.
type (
	candidatesMsg struct {
		conv  *conversation
		cands []Candidate
		// send is the message to send once the choice is made, if any.
		send string
	}
	sentMsg struct {
		conv  *conversation
		entry *entry
		sent  Sent
		err   error
	}
	ranMsg struct {
		conv  *conversation
		cmd   string
		lines []string
		err   error
	}
	historyProgressMsg struct {
		conv *conversation
		n    int
	}
	historyDoneMsg struct {
		conv   *conversation
		events []client.Event
		err    error
	}
)

// Model is the client's state. Use New; the zero Model is not usable.
type Model struct {
	opts     Options
	ctx      context.Context
	cancel   context.CancelFunc
	accounts []*account
	convs    []*conversation // tabs; convs[0] is the console
	active   int
	width    int
	height   int
	in       inputLine
	help     bool
	details  bool // fingerprints and full addresses in the scrollback
	status   string
	busy     string // work under way, shown in the status line
}

// account is an account's state in the client.
type account struct {
	Account
	jid     jid.JID
	state   string // connecting, connected, reconnecting, offline, failed
	bound   jid.JID
	missing []string
	roster  map[string]*contact // bare JID -> contact
}

// contact is a roster entry with its presence.
type contact struct {
	jid       jid.JID
	name      string
	resources map[string]string // resource -> show ("" = available)
}

// New returns the model for the accounts in opts.
func New(opts Options) *Model {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Model{opts: opts, ctx: ctx, cancel: cancel, width: 80, height: 24}
	m.convs = []*conversation{{title: "console"}}
	for _, a := range opts.Accounts {
		m.accounts = append(m.accounts, &account{Account: a, jid: a.JID().Bare(), state: "connecting", roster: map[string]*contact{}})
	}
	m.in = newInputLine()
	m.info(m.console(), "Balcony: F1 or /help for help; /open JID to start a conversation; ctrl+n and ctrl+p switch conversations; ctrl+q quits.")
	m.layout()
	return m
}

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd { return nil }

// SetPost sets Options.Post once the program exists.
func (m *Model) SetPost(post func(tea.Msg)) { m.opts.Post = post }

// Close stops the work the model started (commands under way).
func (m *Model) Close() { m.cancel() }

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tea.PasteMsg:
		return m, m.in.update(msg)
	case tea.MouseWheelMsg:
		m.wheel(msg)
	case tea.MouseClickMsg:
		m.click(msg)
	case EventMsg:
		return m, m.event(msg.Account, msg.Event)
	case ConnectedMsg:
		m.connected(msg)
	case FailedMsg:
		if a := m.account(msg.Account); a != nil {
			a.state = "failed"
			m.errorNotice(m.console(), a.jid.String(), msg.Err)
		}
	case InfoMsg:
		m.info(m.console(), msg.Account.String()+": "+msg.Text)
	case candidatesMsg:
		return m, m.chosen(msg)
	case sentMsg:
		m.sent(msg)
	case ranMsg:
		m.busy = ""
		if msg.err != nil {
			m.errorNotice(msg.conv, "/"+msg.cmd, msg.err)
		}
		for _, l := range msg.lines {
			m.info(msg.conv, l)
		}
		// A session may have started or ended: choose again.
		return m, m.refresh(msg.conv, false)
	case historyProgressMsg:
		m.busy = spinner(msg.n) + " reading the archive: " + itoa(msg.n) + " messages"
	case historyDoneMsg:
		m.historyDone(msg)
	}
	return m, nil
}

// account returns the account with bare JID j.
func (m *Model) account(j jid.JID) *account {
	for _, a := range m.accounts {
		if a.jid.Equal(j.Bare()) {
			return a
		}
	}
	return nil
}

func (m *Model) connected(msg ConnectedMsg) {
	a := m.account(msg.Account)
	if a == nil {
		return
	}
	a.state, a.bound, a.missing = "connected", msg.Bound, msg.Missing
	m.setRoster(a, msg.Roster)
	m.info(m.console(), a.jid.String()+": connected as "+msg.Bound.String())
	if len(msg.Missing) > 0 {
		n := &entry{at: m.opts.Now(), kind: kindNotice, from: a.jid.String(),
			text: "the server lacks " + join(msg.Missing) + "; Balcony works without, with less (no archive: no /history; no personal eventing: no OX keys)"}
		m.console().add(n)
	}
}

func (m *Model) setRoster(a *account, items []client.RosterItem) {
	for _, it := range items {
		bare := it.JID.Bare()
		c := a.roster[bare.String()]
		if c == nil {
			c = &contact{jid: bare, resources: map[string]string{}}
			a.roster[bare.String()] = c
		}
		c.name = it.Name
	}
}

// event turns a client event into scrollback entries and state.
func (m *Model) event(acct jid.JID, ev client.Event) tea.Cmd {
	a := m.account(acct)
	if a == nil {
		return nil
	}
	switch ev := ev.(type) {
	case *client.MessageEvent:
		return m.message(a, ev)
	case *client.NoticeEvent:
		c := m.conversation(a, ev.From, true)
		m.notice(c, ev.Time, ev.From, ev.Text, ev.Hint, "")
	case *client.SecurityEvent:
		c := m.conversation(a, ev.Peer, true)
		if ev.Peer.Resourcepart() != "" {
			c.resource = ev.Peer.Resourcepart()
		}
		txt := termtext.WithFingerprint(ev.Text, ev.Fingerprint)
		m.notice(c, m.opts.Now(), ev.Peer, txt, ev.Hint, ev.Fingerprint)
		return m.refresh(c, false)
	case *client.ReceiptEvent:
		for _, c := range m.convs {
			if c.acct == a && c.peer.Equal(ev.From.Bare()) {
				c.delivered(ev.ID)
			}
		}
	case *client.ErrorEvent:
		c := m.conversation(a, ev.From, false)
		if c == nil {
			c = m.console()
		}
		txt := "the server or contact answered message " + eme.QuoteRemote(ev.ID) + " with the error " + ev.Condition
		if q := eme.QuoteRemote(ev.Text); q != "" {
			txt += ", saying " + q
		}
		m.notice(c, m.opts.Now(), ev.From, txt, eme.Hint{}, "")
	case *client.SubscriptionEvent:
		m.notice(m.console(), m.opts.Now(), ev.From, "subscription: "+ev.Type, eme.Hint{}, "")
	case *client.PresenceEvent:
		m.presence(a, ev)
	case *client.RosterEvent:
		m.setRoster(a, ev.Items)
	case *client.ConnectionEvent:
		switch ev.State {
		case client.Connected:
			a.state = "connected"
		case client.Reconnecting:
			a.state = "reconnecting"
			m.info(m.console(), a.jid.String()+": connection lost; reconnecting in "+ev.Retry.Round(time.Second).String())
		case client.Disconnected:
			a.state = "offline"
			if ev.Err != nil {
				m.errorNotice(m.console(), a.jid.String(), ev.Err)
			}
		}
	}
	return nil
}

func (m *Model) presence(a *account, ev *client.PresenceEvent) {
	bare := ev.From.Bare()
	if bare.Equal(a.jid) {
		return
	}
	c := a.roster[bare.String()]
	if c == nil {
		if !ev.Available {
			return
		}
		c = &contact{jid: bare, resources: map[string]string{}}
		a.roster[bare.String()] = c
	}
	if ev.Available {
		c.resources[ev.From.Resourcepart()] = ev.Show
	} else {
		delete(c.resources, ev.From.Resourcepart())
	}
}

func (m *Model) message(a *account, ev *client.MessageEvent) tea.Cmd {
	peer := ev.From
	if ev.Origin.Carbon == client.CarbonSent {
		peer = ev.To
	}
	c := m.conversation(a, peer, true)
	if ev.Body == "" {
		// Chat states and other body-less messages: nothing to show but
		// their warnings.
		for _, w := range ev.Security.Warnings {
			m.notice(c, ev.Time, ev.From, "warning: "+w.Text, eme.Hint{}, "")
		}
		return nil
	}
	e := messageEntry(ev)
	if !ev.Origin.Copy() && ev.From.Resourcepart() != "" {
		c.resource = ev.From.Resourcepart()
	}
	if ev.Security.Authenticated {
		c.raise(ev.Security.Mechanism)
	}
	c.add(e)
	m.unread(c)
	for _, w := range ev.Security.Warnings {
		m.notice(c, ev.Time, ev.From, "warning: "+w.Text, eme.Hint{}, "")
	}
	return nil
}

// notice adds Balcony's notice about peer to c, with the command for the
// hint.
func (m *Model) notice(c *conversation, at time.Time, peer jid.JID, text string, h eme.Hint, fpr string) {
	if m.opts.Hint != nil {
		if cmd := m.opts.Hint(h, fpr); cmd != "" {
			text += " (" + cmd + ")"
		}
	}
	if at.IsZero() {
		at = m.opts.Now()
	}
	c.add(&entry{at: at, kind: kindNotice, from: peer.String(), text: text})
	m.unread(c)
}

// errorNotice shows a local error as a notice: Balcony's words.
func (m *Model) errorNotice(c *conversation, what string, err error) {
	msg, hint := err.Error(), ""
	if m.opts.Explain != nil {
		msg, hint = m.opts.Explain(err)
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	if what != "" {
		msg = what + ": " + msg
	}
	c.add(&entry{at: m.opts.Now(), kind: kindNotice, text: msg})
	m.unread(c)
}

// info adds a line of Balcony's own output.
func (m *Model) info(c *conversation, text string) {
	c.add(&entry{at: m.opts.Now(), kind: kindInfo, text: text})
}

func (m *Model) unread(c *conversation) {
	if m.convs[m.active] != c {
		c.unread++
	}
}

func (m *Model) console() *conversation { return m.convs[0] }

// conversation returns the conversation of an account with a contact (by
// bare JID), opened as a new tab when create is set.
func (m *Model) conversation(a *account, peer jid.JID, create bool) *conversation {
	bare := peer.Bare()
	for _, c := range m.convs {
		if c.acct == a && c.peer.Equal(bare) {
			return c
		}
	}
	if !create {
		return nil
	}
	c := &conversation{acct: a, peer: bare, title: bare.String(), mode: modeAuto}
	m.convs = append(m.convs, c)
	return c
}

// cur is the active conversation.
func (m *Model) cur() *conversation { return m.convs[m.active] }

// switchTo makes conversation i active.
func (m *Model) switchTo(i int) tea.Cmd {
	if i < 0 || i >= len(m.convs) {
		return nil
	}
	m.active = i
	c := m.convs[i]
	c.unread = 0
	return m.refresh(c, false)
}

// refresh asks the account which mechanisms can protect messages to the
// conversation's contact now.
func (m *Model) refresh(c *conversation, network bool) tea.Cmd {
	if c == nil || c.acct == nil {
		return nil
	}
	return m.choose(c, network, "")
}

// choose computes the candidates, then sends body (if any) as they allow.
func (m *Model) choose(c *conversation, network bool, body string) tea.Cmd {
	ctx, a, peer := m.ctx, c.acct, c.peer
	return func() tea.Msg {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return candidatesMsg{conv: c, cands: a.Candidates(cctx, peer, network), send: body}
	}
}
