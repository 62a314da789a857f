package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/storeoutbox"
	"github.com/balcony-im/balcony/store"
)

var sendCommand = &command{
	name:    "send",
	summary: "send a message",
	usage: `Usage: balcony send [flags] JID TEXT
       balcony send [flags] JID -        (read the message from standard input)

Flags:
  --omemo            encrypt with OMEMO (XEP-0384): OMEMO 2 when the contact
                     announces it, else OMEMO 0.3; --omemo=2 or --omemo=0.3
                     to choose the generation
  --ox               encrypt with OpenPGP for XMPP (XEP-0373/0374)
  --otr              encrypt with OTR (the recipient must be a full JID with a session)
  --esession         encrypt with an established Encrypted Session
  --plain            send in the clear (refused when the contact's policy requires encryption)
  --receipt          ask for a delivery receipt and wait for it (up to --timeout)
  --timeout DUR      how long to wait for the connection, the server's
                     acknowledgement and the receipt (default 30s)
  --wait DUR         wait up to DUR more for what becomes of the message and
                     print each step: a queued message until it left and the
                     server acknowledged it, a message OTR holds until the
                     private conversation started (policy "always")
  --json             print the steps as JSON lines (type "fate")
` + secretFlagsUsage + `
Without a mechanism flag the contact's policy decides (see balcony policy):
"require:X" uses X, "prefer" uses the strongest mechanism ready for the
contact (OMEMO devices it announces, an announced OX key, an OTR or
Encrypted Session), and
"plaintext" (the default) sends in the clear.
Exit status 3 means the policy refused to send (downgrade protection).

send succeeds once the server acknowledged the message (XEP-0198 stream
management), or wrote it when the server does not acknowledge messages,
or once the message waits durably in the account's outbox: a message in
the clear, with OX or with OMEMO written while the connection is down (no network, the
server unreachable, a running listener reconnecting) is queued and leaves,
in order, when the connection is back, with the next balcony listen or
send, even after a restart. OTR and Encrypted Sessions messages are not
queued: they need the live session. A failure (an error from the server
or the recipient, a message given up) exits 1 with its reason.
`,
	run: runSend,
}

var listenCommand = &command{
	name:    "listen",
	summary: "print incoming messages and notices, one per line",
	usage: `Usage: balcony listen [flags]

Prints every incoming message as
    TIME FROM [SECURITY] TEXT
and every notice (unreadable or refused message, security events) as
    TIME FROM !! TEXT
SECURITY is "plaintext" or the mechanism and state, e.g. "OX verified".

Flags:
  --count N          exit after N messages or notices (default: run until interrupted)
  --json             print one JSON object per event instead
  --timeout DUR      give up after DUR (default: none)
  --resource RES     ask the server for this resource
` + secretFlagsUsage + `
While it runs, other balcony commands for the same account (send, otr,
esession) act through it over a control socket in the account's data
directory, so that session mechanisms keep their state.
`,
	run: runListen,
}

// connect opens the account's store, sets up its client (with the options
// changed by mod) and mechanisms, and connects. The caller closes the
// session.
func connect(ctx context.Context, e *env, o *secretOptions, mod func(*client.Config)) (*session, error) {
	s, err := prepare(ctx, e, o, mod)
	if err != nil {
		return nil, err
	}
	if err := s.dial(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// connectOnce connects a session of its own for one request, without
// presence, its events handed to the session's watchers. The caller
// closes it.
func connectOnce(ctx context.Context, e *env, o *secretOptions) (*session, error) {
	s, err := connect(ctx, e, o, func(c *client.Config) { c.DisablePresence = true })
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range s.client.Events() {
			s.offer(ev)
		}
	}()
	return s, nil
}

// dial connects a prepared session's client.
func (s *session) dial(ctx context.Context) error {
	if err := s.client.Connect(ctx); err != nil {
		return withHint(err, connectHint(err, s.acct))
	}
	return nil
}

// prepare is connect without the connection: the store is open, the
// client and its mechanisms set up and the policies loaded, so that local
// checks can run before any network traffic.
func prepare(ctx context.Context, e *env, o *secretOptions, mod func(*client.Config)) (*session, error) {
	a, st, err := openAccount(e, o)
	if err != nil {
		return nil, err
	}
	pass, err := accountPassword(ctx, e, a, o, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return newSession(ctx, e, a, st, pass, mod)
}

// newSession sets up the client of account a on its open store st (which
// the session closes from then on, even on error) with the options
// changed by mod, its mechanisms and policies, without connecting. Each
// session has its own client, store, mechanisms and watchers: a process
// may run many (balcony serve).
func newSession(ctx context.Context, e *env, a *accountConfig, st store.AccountStore, pass string, mod func(*client.Config)) (*session, error) {
	s := &session{e: e, acct: a, store: st}
	ccfg, err := clientConfig(a, pass)
	if err != nil {
		s.Close()
		return nil, err
	}
	// Messages written while offline wait in the store's outbox and leave
	// with whichever command connects next.
	ccfg.Outbox = storeoutbox.Store{S: st}
	if mod != nil {
		mod(&ccfg)
	}
	c, err := client.New(ccfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.client = c
	c.Pipeline().SetLanguage(e.lang)
	if a.Policy != "" {
		pol, err := eme.ParsePolicy(a.Policy)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("account policy: %w", err)
		}
		c.Pipeline().SetDefaultPolicy(pol)
	}
	if err := loadPolicies(ctx, c, st); err != nil {
		s.Close()
		return nil, err
	}
	// Mechanisms register before connecting so that their disco features
	// are in the first presence's caps.
	for _, setup := range mechanismSetups {
		if err := setup(ctx, s); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// unreachable reports whether a connection failed for want of a network
// or server (a message may then wait in the outbox), rather than being
// refused (a wrong password, an untrusted certificate).
func unreachable(err error) bool {
	var (
		ae      *client.AuthError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		netErr  net.Error
		dnsErr  *net.DNSError
	)
	switch {
	case errors.As(err, &ae), errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &host):
		return false
	}
	return errors.As(err, &netErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func connectHint(err error, a *accountConfig) string {
	var (
		ae      *client.AuthError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
	)
	switch {
	case errors.As(err, &ae) && ae.BindingSuspect():
		return "the server refused to bind the login to this TLS connection (" + ae.ChannelBinding + "): someone may be intercepting the connection; do not retry on this network, and tell the server's admin"
	case errors.As(err, &ae) && ae.Condition == "not-authorized":
		return "the password for " + a.JID + " is wrong (or the account does not exist on this server)"
	case errors.As(err, &ae):
		return "the server refused the login (" + ae.Condition + "); ask the server's admin about the account " + a.JID
	case errors.As(err, &host):
		return "the server's certificate is not for the domain of " + a.JID + ": check --server, or someone may be intercepting the connection"
	case errors.As(err, &unknown), errors.As(err, &certErr):
		return "the server's certificate is not trusted; if the server uses a private CA, add it with: balcony account add " + a.JID + " --ca-file CA.pem"
	case errors.As(err, &dnsErr):
		return "the server's name does not resolve; check the domain of " + a.JID + " or set the address with --server HOST:PORT"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens at the server's address; check --server HOST:PORT and that the server is running"
	}
	return "run with a working network connection and check the account with: balcony account list"
}

func runSend(ctx context.Context, e *env, args []string) error {
	fs := newFlags("send")
	var so secretOptions
	so.add(fs)
	var useOMEMO omemoFlag
	fs.Var(&useOMEMO, "omemo", "")
	useOX := fs.Bool("ox", false, "")
	useOTR := fs.Bool("otr", false, "")
	useES := fs.Bool("esession", false, "")
	plain := fs.Bool("plain", false, "")
	receipt := fs.Bool("receipt", false, "")
	timeout := fs.Duration("timeout", 30*time.Second, "")
	wait := fs.Duration("wait", 0, "")
	asJSON := fs.Bool("json", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return &usageError{msg: "send needs a JID and a text (or - for standard input)", hint: "balcony send bob@example.org 'hello'"}
	}
	to, err := jid.Parse(fs.Arg(0))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("invalid recipient %q: %v", fs.Arg(0), err)}
	}
	text := fs.Arg(1)
	if text == "-" {
		b, err := io.ReadAll(bufio.NewReader(e.stdin))
		if err != nil {
			return err
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if text == "" {
		return &usageError{msg: "refusing to send an empty message"}
	}
	n := 0
	mech := ""
	for _, f := range []struct {
		on bool
		ns string
	}{{useOMEMO.ns != "", useOMEMO.ns}, {*useOX, eme.OX}, {*useOTR, eme.OTR}, {*useES, eme.ESession}, {*plain, ""}} {
		if f.on {
			n++
			mech = f.ns
		}
	}
	if n > 1 {
		return &usageError{msg: "choose one of --omemo, --ox, --otr, --esession, --plain"}
	}
	if *wait < 0 {
		return &usageError{msg: "--wait must not be negative"}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout+*wait)
	defer cancel()
	sa := sendArgs{To: to.String(), Body: text, Mechanism: mech, Explicit: n > 0, Receipt: *receipt, Wait: *wait}
	var res sendResult
	// A running listener holds the session state (OTR, Encrypted
	// Sessions): send through it when there is one.
	a, err := currentAccount(e)
	if err != nil {
		return err
	}
	err = callControl(ctx, e, a, "send", sa, &res)
	if errors.Is(err, errNoListener) {
		var sess *session
		sess, err = prepare(ctx, e, &so, func(cfg *client.Config) { cfg.DisablePresence = true })
		if err != nil {
			return err
		}
		defer sess.Close()
		// The policy is checked before any connection: a downgrade is
		// refused (exit 3) even when the server cannot be reached.
		var chosen string
		if chosen, err = chooseMechanism(ctx, sess, to, sa); err != nil {
			return err
		}
		if chosen == eme.OTR || chosen == eme.ESession {
			return needListener(errNoListener, a)
		}
		go func() {
			for ev := range sess.client.Events() {
				sess.offer(ev)
			}
		}()
		if err := sess.dial(ctx); err != nil {
			// Offline: a message that may wait goes into the outbox.
			if !unreachable(err) || (chosen != "" && chosen != eme.OX) {
				return err
			}
			sa.Mechanism, sa.Explicit = chosen, true
		}
		res, err = doSend(ctx, sess, sa)
	}
	printFates(e, res, *wait > 0, *asJSON, to)
	if err != nil {
		return err
	}
	switch {
	case res.Queued && !res.Acked && !*asJSON:
		fmt.Fprintf(e.stdout, "queued: the message to %s leaves when the connection is back\n", to)
	case res.Held && !res.Left:
		fmt.Fprintf(e.stdout, "held: the message leaves when the private conversation with %s starts (see balcony otr status)\n", to)
	case res.Held:
		fmt.Fprintf(e.stdout, "sent: the private conversation with %s started and the held message left\n", to)
	}
	if res.Delivered != "" && !*asJSON && *wait == 0 {
		fmt.Fprintf(e.stdout, "delivered %s\n", res.Delivered)
	}
	return nil
}

type sendArgs struct {
	To        string `json:"to"`
	Body      string `json:"body"`
	Mechanism string `json:"mechanism"` // EME namespace, "" = plaintext or policy
	Explicit  bool   `json:"explicit"`  // the user chose the mechanism
	Receipt   bool   `json:"receipt"`
	// Wait is how long to wait for a message held by its mechanism (OTR
	// under "always", before the private conversation starts) to leave.
	Wait time.Duration `json:"wait,omitempty"`
}

type sendResult struct {
	IDs       []string `json:"ids"`
	Delivered string   `json:"delivered,omitempty"`
	// Held: the mechanism holds the message until its session starts;
	// Left: it has left since (with a wait).
	Held bool `json:"held,omitempty"`
	Left bool `json:"left,omitempty"`
	// Queued: the message waits in the outbox (durably); Acked: the
	// server acknowledged it; Fates: what became of it, step by step.
	Queued bool         `json:"queued,omitempty"`
	Acked  bool         `json:"acked,omitempty"`
	Fates  []fateRecord `json:"fates,omitempty"`
}

// controlSend serves "send" on the control socket.
func controlSend(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a sendArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return doSend(ctx, s, a)
}

// chooseMechanism returns the mechanism a send uses: the user's choice, or
// the policy's. It refuses what the contact's policy does not allow.
func chooseMechanism(ctx context.Context, s *session, to jid.JID, a sendArgs) (string, error) {
	c := s.client
	mech := a.Mechanism
	if mech == omemoAuto {
		mech = omemoGeneration(ctx, s, to)
	}
	if !a.Explicit {
		mech = c.Pipeline().Best(ctx, to)
		if pol := c.Pipeline().Policy(to); mech == "" && pol.Mode == eme.RequireEncryption {
			return "", withHint(fmt.Errorf("%w; no mechanism is ready for %s", &eme.DowngradeError{Policy: pol}, to.Bare()),
				"choose one: --omemo, --ox, --otr (after balcony otr start) or --esession (after balcony esession start)")
		}
	}
	if err := c.Pipeline().Policy(to).CheckOutgoing(mech); err != nil {
		return "", err
	}
	return mech, nil
}

func runListen(ctx context.Context, e *env, args []string) error {
	fs := newFlags("listen")
	var so secretOptions
	so.add(fs)
	count := fs.Int("count", 0, "")
	asJSON := fs.Bool("json", false, "")
	timeout := fs.Duration("timeout", 0, "")
	resource := fs.String("resource", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return &usageError{msg: "listen takes no arguments", hint: "run: balcony help listen"}
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	sess, err := connect(ctx, e, &so, func(cfg *client.Config) {
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
	defer sess.Close()
	c := sess.client
	// Announced before other commands can act through this listener, so
	// that a contact told to write finds the device.
	sess.keepAnnounced(ctx)
	stopControl, err := serveControl(ctx, sess)
	if err != nil {
		return err
	}
	defer stopControl()
	if err := esessionOnline(ctx, sess); err != nil {
		fmt.Fprintf(e.stderr, "balcony: warning: %s\n", oneLine(err.Error()))
	}
	fmt.Fprintf(e.stderr, "balcony: listening as %s\n", c.JID())
	r := &renderer{w: e.stdout, json: *asJSON, color: e.isTerminal, lang: e.lang}
	// Key changes not yet acknowledged are shown again at every start.
	for _, ev := range pendingKeyChanges(ctx, sess.store) {
		r.event(ev)
	}
	seen := 0
	for {
		select {
		case <-ctx.Done():
			// Stopped (a signal, or --timeout): what was received is still
			// shown, while the client closes.
			closed := make(chan struct{})
			go func() { c.Close(); close(closed) }()
			for ev := range c.Events() {
				r.event(ev)
				sess.offer(ev)
			}
			<-closed
			if *timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && *count > 0 {
				return fmt.Errorf("timed out after %d of %d events", seen, *count)
			}
			return nil
		case ev, ok := <-c.Events():
			if !ok {
				return nil
			}
			r.event(ev)
			sess.offer(ev)
			switch ev := ev.(type) {
			case *client.MessageEvent:
				if ev.Body != "" {
					seen++
				}
			case *client.NoticeEvent:
				seen++
			}
			if *count > 0 && seen >= *count {
				return nil
			}
		}
	}
}

// pendingKeyChanges are the key changes not yet acknowledged, as events:
// shown again at every start of a listener or the full-screen client.
func pendingKeyChanges(ctx context.Context, st store.AccountStore) []*client.SecurityEvent {
	changes, err := st.PendingKeyChanges(ctx)
	if err != nil {
		return nil
	}
	var out []*client.SecurityEvent
	for _, ch := range changes {
		j, _ := jid.Parse(ch.Contact)
		out = append(out, &client.SecurityEvent{Peer: j, Mechanism: string(ch.Mechanism), Kind: "key-changed",
			Text:        fmt.Sprintf("%s has a new %s key (%s), not yet acknowledged; check it and decide with: balcony trust", ch.Contact, strings.ToUpper(string(ch.Mechanism)), ch.Trust),
			Fingerprint: ch.Fingerprint})
	}
	return out
}

func shortMechanism(ns string) string {
	if m, ok := eme.Lookup(ns); ok && m.Short != "" {
		return strings.ToUpper(m.Short)
	}
	return ns
}

// loadPolicies applies the per-contact policies saved in the store
// (settings "policy:<bare JID>").
func loadPolicies(ctx context.Context, c *client.Client, st store.SettingStore) error {
	settings, err := st.Settings(ctx)
	if err != nil {
		return err
	}
	for k, v := range settings {
		contact, ok := strings.CutPrefix(k, "policy:")
		if !ok {
			continue
		}
		j, err := jid.Parse(contact)
		if err != nil {
			continue
		}
		pol, err := eme.ParsePolicy(v)
		if err != nil {
			return fmt.Errorf("policy for %s: %w", contact, err)
		}
		c.Pipeline().SetPolicy(j, pol)
	}
	return nil
}
