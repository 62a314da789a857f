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
	esclient "github.com/balcony-im/balcony/client/esession"
	otrclient "github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
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
  --timeout DUR      how long to wait for the connection and receipt (default 30s)
  --wait DUR         when OTR holds the message until the private conversation
                     starts (policy "always"), wait up to DUR until it has left
` + secretFlagsUsage + `
Without a mechanism flag the contact's policy decides (see balcony policy):
"require:X" uses X, "prefer" uses the strongest mechanism ready for the
contact (OMEMO devices it announces, an announced OX key, an OTR or
Encrypted Session), and
"plaintext" (the default) sends in the clear.
Exit status 3 means the policy refused to send (downgrade protection).
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
	s := &session{e: e, acct: a, store: st}
	pass, err := accountPassword(ctx, e, a, o, st)
	if err != nil {
		s.Close()
		return nil, err
	}
	ccfg, err := clientConfig(a, pass)
	if err != nil {
		s.Close()
		return nil, err
	}
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
		sess, err := prepare(ctx, e, &so, func(cfg *client.Config) { cfg.DisablePresence = true })
		if err != nil {
			return err
		}
		defer sess.Close()
		// The policy is checked before any connection: a downgrade is
		// refused (exit 3) even when the server cannot be reached.
		chosen, err := chooseMechanism(ctx, sess, to, sa)
		if err != nil {
			return err
		}
		if chosen == eme.OTR || chosen == eme.ESession {
			return needListener(errNoListener, a)
		}
		if err := sess.dial(ctx); err != nil {
			return err
		}
		go func() {
			for ev := range sess.client.Events() {
				sess.offer(ev)
			}
		}()
		res, err = doSend(ctx, sess, sa)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	switch {
	case res.Held && !res.Left:
		fmt.Fprintf(e.stdout, "held: the message leaves when the private conversation with %s starts (see balcony otr status)\n", to)
	case res.Held:
		fmt.Fprintf(e.stdout, "sent: the private conversation with %s started and the held message left\n", to)
	}
	if res.Delivered != "" {
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
}

// controlSend serves "send" on the control socket.
func controlSend(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a sendArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return doSend(ctx, s, a)
}

// answers reports whether ev is the receipt or error of a message with one
// of ids sent to "to" by self. It counts only from whom the message went
// to (an error also from the recipient's server or our own): anyone else
// who learnt an id can neither confirm nor fail the message.
func answers(ev any, ids map[string]bool, to, self jid.JID) bool {
	switch ev := ev.(type) {
	case *client.ReceiptEvent:
		return ids[ev.ID] && ev.From.Bare().Equal(to.Bare())
	case *client.ErrorEvent:
		from := ev.From.String()
		return ids[ev.ID] && (ev.From.Bare().Equal(to.Bare()) || from == to.Domainpart() || from == self.Domainpart())
	}
	return false
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

// doSend sends one message in a connected session, waiting for its
// receipt when asked to.
func doSend(ctx context.Context, s *session, a sendArgs) (sendResult, error) {
	to, err := jid.Parse(a.To)
	if err != nil {
		return sendResult{}, err
	}
	c := s.client
	mech, err := chooseMechanism(ctx, s, to, a)
	if err != nil {
		return sendResult{}, err
	}
	var w *watcher
	ids := map[string]bool{}
	if a.Receipt {
		// A receipt or error counts only from whom the message went to (an
		// error also from the recipient's server or our own): anyone who
		// learnt the id cannot confirm or fail the message.
		w = s.watch(func(ev any) bool { return answers(ev, ids, to, c.JID()) })
		defer s.unwatch(w)
	}
	// A message OTR holds leaves when the private conversation starts.
	var secure *watcher
	if mech == eme.OTR && a.Wait > 0 {
		secure = s.watch(func(ev any) bool {
			se, ok := ev.(*client.SecurityEvent)
			return ok && se.Mechanism == eme.OTR && se.Peer.Equal(to) && (se.Kind == otrclient.KindPrivate || se.Kind == otrclient.KindVerified)
		})
		defer s.unwatch(secure)
	}
	if isOMEMO(mech) && s.omemo != nil && !s.announce {
		// A device that never announced itself is unknown to the contact,
		// whose client would warn about its message.
		if ok, err := s.omemo.Published(ctx); err == nil && !ok {
			s.announceOMEMO(ctx)
		}
	}
	// ids is filled before any receipt can arrive: the watcher predicate
	// runs in the event loop, after Send has returned the ids.
	s.watchers.mu.Lock()
	sent, err := c.Send(ctx, &client.Outgoing{To: to, Body: a.Body, Receipt: a.Receipt}, mech)
	for _, id := range sent.IDs {
		ids[id] = true
	}
	s.watchers.mu.Unlock()
	switch {
	case errors.Is(err, esclient.ErrNoSession):
		return sendResult{}, withHint(err, "start one with: balcony esession start "+to.String())
	case errors.Is(err, otrclient.ErrFullJID):
		return sendResult{}, withHint(err, "name the contact's resource, e.g. "+to.Bare().String()+"/phone (see balcony otr status)")
	case errors.Is(err, otrclient.ErrNoSession):
		return sendResult{}, withHint(err, "start one with: balcony otr start --wait 30s "+to.String())
	case err != nil && isOMEMO(mech):
		return sendResult{}, omemoSendHint(err, to)
	}
	if err != nil {
		return sendResult{}, withLibraryHint(err, s.e.lang)
	}
	res := sendResult{IDs: sent.IDs, Held: sent.Held}
	if sent.Held {
		// The ids are those of the query; the message gets its own when it
		// leaves, so no receipt can be matched to it here.
		if secure == nil {
			return res, nil
		}
		wctx, cancel := context.WithTimeout(ctx, a.Wait)
		defer cancel()
		if _, err := s.wait(wctx, secure); err != nil {
			return res, withHint(fmt.Errorf("the private conversation with %s did not start within %s; the message is still held", to, a.Wait),
				"the contact may be offline or may not speak OTR; see balcony otr status "+to.String())
		}
		res.Left = true
		return res, nil
	}
	if w == nil {
		return res, nil
	}
	ev, err := s.wait(ctx, w)
	if err != nil {
		return res, withHint(errors.New("no delivery receipt before the timeout"), "the recipient may be offline or may not send receipts")
	}
	switch ev := ev.(type) {
	case *client.ReceiptEvent:
		res.Delivered = ev.ID
	case *client.ErrorEvent:
		return res, fmt.Errorf("not delivered: %s %s", ev.Condition, ev.Text)
	}
	return res, nil
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
func pendingKeyChanges(ctx context.Context, st *store.Store) []*client.SecurityEvent {
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
func loadPolicies(ctx context.Context, c *client.Client, st *store.Store) error {
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
