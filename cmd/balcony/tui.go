package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/cmd/balcony/internal/ui"
	"github.com/balcony-im/balcony/eme"
	esengine "github.com/balcony-im/balcony/esession"
	oxengine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
)

var uiCommand = &command{
	name:    "ui",
	summary: "the full-screen client (what balcony alone opens on a terminal)",
	usage: `Usage: balcony ui [--mouse] [--resource RES] [flags]
       balcony                     (on a terminal, without a command)

The full-screen client: every configured account at once (or the one named
with --account), each connected as "balcony listen" connects it and serving
its control socket, so that the other commands (balcony send, balcony otr,
...) act through it. Passphrases and passwords are asked for first, without
echo, unless given by the flags below.

The screen: the accounts' connection state at the top, the conversations as
tabs, the contacts with their presence and unread messages on the left, the
conversation with timestamps, a status line saying how the next message
will be protected and why, and the input line (history with Up and Down,
completion with Tab, F1 for help). Every message shows its security:

  15:04:05   │ bob [OX verified] hello        a message and its protection
  15:04:05 !!│ bob@example.org: ...           Balcony's notice
  15:04:05 --│ ...                            Balcony's answer to a command

The two columns left of the rule are Balcony's alone: a contact's text is
escaped and wrapped right of it, so no message can pass for a notice or
carry another label. F2 shows fingerprints and full addresses.

Encryption is chosen per conversation (/encryption): "auto", the default,
takes the strongest mechanism usable now (OMEMO devices of the contact
that may be encrypted to, an OX key the contact announced, a private OTR
conversation, an Encrypted Session), says which and why in
the status line, and never sends with a weaker mechanism than the
conversation had, or in the clear, without asking you first.

Commands, typed in a conversation:
` + ui.CommandHelp() + `
Flags:
  --mouse            the wheel scrolls, a click on a contact opens it
  --resource RES     ask the server for this resource (every account)
` + secretFlagsUsage,
	run: runUI,
}

// uiSession is an account's session in the full-screen client.
type uiSession struct {
	sess        *session
	stopControl func()
	mu          sync.Mutex
	features    map[string][]string // full JID -> disco features
}

func runUI(ctx context.Context, e *env, args []string) error {
	fs := newFlags("ui")
	var so secretOptions
	so.add(fs)
	mouse := fs.Bool("mouse", false, "")
	resource := fs.String("resource", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return &usageError{msg: "ui takes no arguments", hint: "run: balcony help ui"}
	}
	if !e.isTerminal || !isTerminal(e.stdin) {
		return withHint(errors.New("the full-screen client needs a terminal"), "scripts use balcony listen, balcony send and balcony chat")
	}
	accts, err := uiAccounts(e)
	if err != nil {
		return err
	}
	sink := &uiSink{}
	var sessions []*uiSession
	defer func() {
		for _, s := range sessions {
			s.stopControl()
			s.sess.Close()
		}
	}()
	var uas []ui.Account
	for _, a := range accts {
		ae := *e
		ae.account = a.JID
		// Nothing may write to the terminal under the client: what the
		// session has to say becomes a line in the console.
		ae.stdout, ae.stderr = io.Discard, sink.writer(a.JID)
		sess, err := prepare(ctx, &ae, &so, func(cfg *client.Config) {
			cfg.Reconnect = true
			if *resource != "" {
				if j, err := cfg.JID.WithResource(*resource); err == nil {
					cfg.JID = j
				}
			}
		})
		if err != nil {
			return err
		}
		stop, err := serveControl(ctx, sess)
		if err != nil {
			sess.Close()
			return err
		}
		us := &uiSession{sess: sess, stopControl: stop, features: map[string][]string{}}
		sessions = append(sessions, us)
		uas = append(uas, us)
	}
	model := ui.New(ui.Options{
		Accounts: uas,
		Hint:     func(h eme.Hint, fpr string) string { return hintCommand(h, fpr, true) },
		Explain:  explainError,
		Mouse:    *mouse,
	})
	defer model.Close()
	p := tea.NewProgram(model, tea.WithContext(ctx), tea.WithInput(e.stdin), tea.WithOutput(e.stdout))
	model.SetPost(p.Send)
	sink.start(p.Send)
	for _, s := range sessions {
		go s.serve(ctx, p.Send)
	}
	_, err = p.Run()
	if errors.Is(err, tea.ErrInterrupted) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// uiAccounts are the accounts the client opens: the one named with
// --account, else every configured one.
func uiAccounts(e *env) ([]accountConfig, error) {
	if e.account != "" {
		a, err := currentAccount(e)
		if err != nil {
			return nil, err
		}
		return []accountConfig{*a}, nil
	}
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	if len(cfg.Accounts) == 0 {
		return nil, &usageError{msg: "no account configured", hint: "add one with: balcony account add you@example.org"}
	}
	return cfg.Accounts, nil
}

// serve connects the account and hands its events to the client.
func (u *uiSession) serve(ctx context.Context, send func(tea.Msg)) {
	acct := u.JID()
	c := u.sess.client
	if err := u.sess.dial(ctx); err != nil {
		send(ui.FailedMsg{Account: acct, Err: err})
		return
	}
	u.sess.keepAnnounced(ctx)
	send(ui.ConnectedMsg{Account: acct, Bound: c.JID(), Missing: c.Server().Missing(), Roster: c.Roster()})
	if err := esessionOnline(ctx, u.sess); err != nil {
		send(ui.EventMsg{Account: acct, Event: &client.SecurityEvent{Peer: c.JID().Bare(), Mechanism: eme.ESession, Kind: "esession-offline", Text: err.Error()}})
	}
	for _, ev := range pendingKeyChanges(ctx, u.sess.store) {
		send(ui.EventMsg{Account: acct, Event: ev})
	}
	for ev := range c.Events() {
		u.sess.offer(ev)
		send(ui.EventMsg{Account: acct, Event: ev})
	}
}

// JID implements ui.Account.
func (u *uiSession) JID() jid.JID {
	j, _ := jid.Parse(u.sess.acct.JID)
	return j
}

// Send implements ui.Account with the command's send.
func (u *uiSession) Send(ctx context.Context, to jid.JID, body, mechanism string) (ui.Sent, error) {
	res, err := doSend(ctx, u.sess, sendArgs{To: to.String(), Body: body, Mechanism: mechanism, Explicit: true})
	return ui.Sent{IDs: res.IDs, Held: res.Held}, err
}

// History implements ui.Account.
func (u *uiSession) History(ctx context.Context, with jid.JID, each func(client.Event)) error {
	return u.sess.client.History(ctx, with.Bare(), client.HistoryOptions{}, func(ev client.Event) error {
		each(ev)
		return nil
	})
}

// Candidates implements ui.Account: for each mechanism, whether it can
// protect a message to the contact now (client.Availability) and why.
func (u *uiSession) Candidates(ctx context.Context, to jid.JID, refresh bool) []ui.Candidate {
	s := u.sess
	bare := to.Bare()
	if refresh {
		if s.ox != nil && s.client.Pipeline().Enabled(eme.OX) {
			// The contact's announced keys, fetched from PEP into the store.
			doOX(ctx, s, oxArgs{Op: "discover", Contact: bare.String()})
		}
		u.discover(ctx, bare)
	}
	feats := u.featuresOf(bare)
	out := u.omemoCandidates(ctx, bare, refresh)
	if s.ox != nil {
		c := ui.Candidate{Mechanism: eme.OX, To: bare}
		switch {
		case !s.client.Pipeline().Enabled(eme.OX):
			c.Why = "you have no OpenPGP key (/ox keygen makes one)"
		case s.ox.Usable(ctx, bare):
			c.Usable, c.Why = true, bare.String()+" announced an OpenPGP key"
		case feats[oxengine.NSIM]:
			c.Why = bare.String() + "'s client speaks OX, but no usable key of theirs is known (/ox keys)"
		default:
			c.Why = "no usable OpenPGP key of " + bare.String() + " is known (/ox keys looks)"
		}
		out = append(out, c)
	}
	if s.otr != nil {
		c := ui.Candidate{Mechanism: eme.OTR, To: to, Why: "no private conversation (/otr start)"}
		for _, st := range s.otr.Sessions(ctx) {
			if st.Peer.Bare().Equal(bare) && (to.Resourcepart() == "" || st.Peer.Equal(to)) && s.otr.Usable(ctx, st.Peer) {
				c.Usable, c.To = true, st.Peer
				c.Why = "private conversation with " + st.Peer.String() + ", " + strings.TrimPrefix(otrStateText(otrInfoOf(st)), "private, ")
				break
			}
		}
		out = append(out, c)
	}
	if s.esession != nil {
		c := ui.Candidate{Mechanism: eme.ESession, To: to, Why: "no Encrypted Session (/esession start)"}
		if feats[esengine.FeatureESession] {
			c.Why = bare.String() + "'s client offers Encrypted Sessions (/esession start)"
		}
		if s.esession.Usable(ctx, to) {
			c.Usable, c.Why = true, "Encrypted Session, SAS not confirmed"
			for _, i := range s.esession.Status() {
				if esengine.Bare(i.Peer) == bare.String() && i.State == "active" {
					if j, err := jid.Parse(i.Peer); err == nil {
						c.To = j
					}
					if i.Verified {
						c.Why = "Encrypted Session, verified"
					}
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// discover asks each online resource of the contact for its features
// (XEP-0030), once per resource.
func (u *uiSession) discover(ctx context.Context, bare jid.JID) {
	for _, r := range u.sess.client.Resources(bare) {
		u.mu.Lock()
		_, ok := u.features[r.String()]
		u.mu.Unlock()
		if ok {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := u.sess.client.QueryInfo(dctx, r, "")
		cancel()
		if err != nil {
			continue
		}
		u.mu.Lock()
		u.features[r.String()] = info.Features
		u.mu.Unlock()
	}
}

// featuresOf is the union of the features of the contact's online
// resources.
func (u *uiSession) featuresOf(bare jid.JID) map[string]bool {
	out := map[string]bool{}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.sess.client.Resources(bare) {
		for _, f := range u.features[r.String()] {
			out[f] = true
		}
	}
	return out
}

// Run implements ui.Account: the mechanisms' commands, through the same
// handlers the control socket serves, printed as the commands print them.
func (u *uiSession) Run(ctx context.Context, r ui.Request) ([]string, error) {
	var out bytes.Buffer
	e := *u.sess.e
	e.stdout, e.stderr = &out, &out
	var err error
	switch r.Command {
	case "otr":
		err = u.otr(ctx, &e, r)
	case "esession":
		err = u.esession(ctx, &e, r)
	case "ox":
		err = u.ox(ctx, &e, r)
	case "omemo":
		err = u.omemo(ctx, &e, r)
	case "trust":
		err = u.trust(ctx, &e, r)
	default:
		err = fmt.Errorf("unknown command %q", r.Command)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if l = strings.TrimPrefix(l, "balcony: "); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines, err
}

// call runs a control handler in this process, as chat does.
func (u *uiSession) call(ctx context.Context, h controlHandler, args, result any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	defer clear(raw)
	res, err := h(ctx, u.sess, raw)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, result)
}

// full is the contact's full JID for a session mechanism: the one given,
// or the only resource online.
func (u *uiSession) full(peer jid.JID) jid.JID {
	if peer.Resourcepart() != "" {
		return peer
	}
	if rs := u.sess.client.Resources(peer); len(rs) == 1 {
		return rs[0]
	}
	return peer
}

func (u *uiSession) otr(ctx context.Context, e *env, r ui.Request) error {
	if len(r.Args) == 0 {
		return &usageError{msg: "/otr needs a subcommand", hint: "/otr start|end|smp|answer|abort|status"}
	}
	a := otrArgs{Op: r.Args[0], JID: u.full(r.Peer).String()}
	switch a.Op {
	case "start":
		a.Wait = 30 * time.Second
	case "end":
	case "status":
		a.JID = r.Peer.Bare().String()
	case "smp", "answer":
		if a.Op == "answer" {
			a.Op = "smp-answer"
		}
		a.Question = strings.Join(r.Args[1:], " ")
		a.Secret = r.Secret
		a.Wait = 60 * time.Second
	case "abort":
		a.Op = "smp-abort"
	default:
		return &usageError{msg: "unknown /otr subcommand " + a.Op, hint: "/otr start|end|smp|answer|abort|status"}
	}
	var res otrResult
	if err := u.call(ctx, handleOTR, a, &res); err != nil {
		return err
	}
	printOTR(e, a, res)
	return nil
}

func (u *uiSession) esession(ctx context.Context, e *env, r ui.Request) error {
	if len(r.Args) == 0 {
		return &usageError{msg: "/esession needs a subcommand", hint: esessionSlashHint}
	}
	a, err := slashESession(r.Args[0], strings.Join(r.Args[1:], " "), u.full(r.Peer).String(), r.Secret)
	if err != nil {
		return err
	}
	var res esessionResult
	if err := u.call(ctx, handleESession, a, &res); err != nil {
		return err
	}
	printESessionResult(e, a, res)
	return nil
}

func (u *uiSession) ox(ctx context.Context, e *env, r ui.Request) error {
	usage := &usageError{msg: "usage: /ox keys|trust FINGERPRINT STATE|publish|keygen"}
	if len(r.Args) == 0 {
		return usage
	}
	bare := r.Peer.Bare()
	switch r.Args[0] {
	case "keys":
		if len(r.Args) != 1 {
			return usage
		}
		res, err := doOX(ctx, u.sess, oxArgs{Op: "discover", Contact: bare.String()})
		if err != nil {
			return err
		}
		return printDiscovery(e, bare, res)
	case "trust":
		if len(r.Args) != 3 {
			return usage
		}
		return u.decide(ctx, e, bare, store.OX, r.Args[1], r.Args[2])
	case "publish", "keygen":
		if len(r.Args) != 1 {
			return usage
		}
		res, err := doOX(ctx, u.sess, oxArgs{Op: r.Args[0], Publish: true})
		if err != nil {
			return err
		}
		if res.Key != nil {
			fmt.Fprintf(e.stdout, "announced your OpenPGP key %s (%s)\n", displayFingerprint(store.OX, res.Key.Fingerprint), res.Key.Algorithm)
		}
		return nil
	}
	return usage
}

// trust lists the contact's keys and sessions, or decides about a key.
func (u *uiSession) trust(ctx context.Context, e *env, r ui.Request) error {
	bare := r.Peer.Bare()
	switch len(r.Args) {
	case 0:
	case 2:
		return u.decide(ctx, e, bare, "", r.Args[0], r.Args[1])
	default:
		return &usageError{msg: "usage: /trust [FINGERPRINT verified|blind|undecided|untrusted]"}
	}
	keys, err := u.sess.store.ListKeys(ctx, bare.String(), "")
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintf(e.stdout, "no keys of %s are known (/ox keys fetches the OpenPGP ones)\n", bare)
	}
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%s key %s: %s\n", strings.ToUpper(string(k.Mechanism)), displayFingerprint(k.Mechanism, k.Fingerprint), k.Trust)
	}
	if u.sess.otr != nil {
		for _, st := range u.sess.otr.Sessions(ctx) {
			if st.Peer.Bare().Equal(bare) {
				i := otrInfoOf(st)
				fmt.Fprintf(e.stdout, "OTR with %s: %s\n", i.Peer, otrStateText(i))
				printOTRDetails(e, i)
			}
		}
	}
	if u.sess.esession != nil {
		for _, i := range u.sess.esession.Status() {
			if esengine.Bare(i.Peer) == bare.String() && i.SAS != "" {
				fmt.Fprintf(e.stdout, "Encrypted Session with %s (%s): SAS %s; %s\n", i.Peer, i.State, i.SAS, verificationNote(i))
			}
		}
	}
	return nil
}

func (u *uiSession) decide(ctx context.Context, e *env, bare jid.JID, m store.Mechanism, fpr, stateName string) error {
	state, err := store.ParseTrustState(strings.ToLower(stateName))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("unknown trust state %q", stateName), hint: "verified, blind, undecided or untrusted"}
	}
	k, err := decideTrust(ctx, u.sess.store, bare, m, fpr, state)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s key %s of %s is now %s\n", strings.ToUpper(string(k.Mechanism)), displayFingerprint(k.Mechanism, k.Fingerprint), k.Contact, state)
	return nil
}

// explainError splits an error into its message and hint.
func explainError(err error) (string, string) {
	msg := oneLine(err.Error())
	var he *hintError
	var ue *usageError
	switch {
	case errors.As(err, &he):
		return msg, he.hint
	case errors.As(err, &ue):
		return msg, ue.hint
	}
	return msg, ""
}

// uiSink turns what a session writes (on its standard error) into lines
// of the client's console, kept until the client runs.
type uiSink struct {
	mu      sync.Mutex
	send    func(tea.Msg)
	pending []ui.InfoMsg
}

func (s *uiSink) writer(account string) io.Writer {
	j, _ := jid.Parse(account)
	return &sinkWriter{s: s, account: j}
}

func (s *uiSink) start(send func(tea.Msg)) {
	s.mu.Lock()
	s.send = send
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	go func() {
		for _, m := range pending {
			send(m)
		}
	}()
}

type sinkWriter struct {
	s       *uiSink
	account jid.JID
}

func (w *sinkWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l = strings.TrimPrefix(l, "balcony: ")
		if strings.TrimSpace(l) == "" {
			continue
		}
		m := ui.InfoMsg{Account: w.account, Text: l}
		w.s.mu.Lock()
		send := w.s.send
		if send == nil {
			w.s.pending = append(w.s.pending, m)
		}
		w.s.mu.Unlock()
		if send != nil {
			go send(m)
		}
	}
	return len(p), nil
}
