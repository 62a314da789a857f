package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
)

var chatCommand = &command{
	name:    "chat",
	summary: "an interactive conversation with one contact",
	usage: `Usage: balcony chat [--omemo|--ox|--otr|--esession|--plain] [--resource RES] JID

Every line you type is sent to JID; everything that arrives is printed as
"balcony listen" prints it (TIME FROM [SECURITY] TEXT, notices as !!).
The chat also serves the account's control socket, so the other commands
(balcony otr, balcony esession, balcony send) work alongside it.

The mechanism flag chooses how lines are sent; without one the contact's
policy decides (see balcony policy). Lines starting with / are commands:

  /plain /omemo /ox /otr /esession
                              send the next lines this way; /auto: the policy decides
  /omemo devices|fingerprint  JID's OMEMO devices (read from the server), or yours
  /omemo trust|untrust FPR    decide about a device key of JID (or: /omemo trust URI)
  /omemo reset [ID]           new OMEMO sessions with JID's devices (or one)
  /otr start|end|status       OTR with JID (a full JID: name the resource)
  /otr smp [QUESTION]         verify the OTR conversation; asks for the secret
  /otr answer                 answer the contact's verification; asks for the secret
  /esession start|accept|decline|sas|reject|rekey|end|status
  /esession start keys        identify both by public keys (XEP-0116 SIGMA-I)
  /esession start secret, /esession accept secret
                              with a password shared with the contact; asks for it
  /esession confirm SAS       the SAS you compared with the contact matched
  /esession renegotiate may|mustnot   whether the session may be stored
  /status                     the state of every mechanism with JID
  /help, /quit                (end of input also quits)

Secrets asked for are read without echo on a terminal, or as the next input
line otherwise. Quitting ends the sessions properly (Encrypted Sessions are
terminated; OTR ends with the stream).
` + secretFlagsUsage,
	run: runChat,
}

// lockedWriter serialises writes of the event printer and the command loop.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runChat(ctx context.Context, e *env, args []string) error {
	fs := newFlags("chat")
	var so secretOptions
	so.add(fs)
	var useOMEMO omemoFlag
	fs.Var(&useOMEMO, "omemo", "")
	useOX := fs.Bool("ox", false, "")
	useOTR := fs.Bool("otr", false, "")
	useES := fs.Bool("esession", false, "")
	plain := fs.Bool("plain", false, "")
	resource := fs.String("resource", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "chat needs one JID", hint: "balcony chat bob@example.org"}
	}
	peer, err := jid.Parse(fs.Arg(0))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
	}
	mech, explicit := "", false
	for _, f := range []struct {
		on bool
		ns string
	}{{useOMEMO.ns != "", useOMEMO.ns}, {*useOX, eme.OX}, {*useOTR, eme.OTR}, {*useES, eme.ESession}, {*plain, ""}} {
		if f.on {
			if explicit {
				return &usageError{msg: "choose one of --omemo, --ox, --otr, --esession, --plain"}
			}
			mech, explicit = f.ns, true
		}
	}

	out := &lockedWriter{w: e.stdout}
	errw := &lockedWriter{w: e.stderr}
	ce := *e
	ce.stdout, ce.stderr = out, errw
	sess, err := connect(ctx, &ce, &so, func(cfg *client.Config) {
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
	sess.e = &ce
	sess.keepAnnounced(ctx)
	stopControl, err := serveControl(ctx, sess)
	if err != nil {
		return err
	}
	defer stopControl()

	r := &renderer{w: out, color: e.isTerminal, lang: e.lang, slash: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sess.client.Events() {
			r.event(ev)
			sess.offer(ev)
		}
	}()
	fmt.Fprintf(errw, "balcony: chatting with %s as %s; /help for commands\n", peer, sess.client.JID())

	// One reader, and it reads only when asked: a secret typed on the
	// terminal must reach term.ReadPassword, never a reader that is
	// already waiting for the next chat line.
	in := newLineReader(e.stdin)
	c := &chat{e: &ce, sess: sess, peer: peer, mech: mech, explicit: explicit, in: in}
	for {
		line, ok := in.next(ctx)
		if !ok {
			return nil
		}
		if quit := c.handle(ctx, line); quit {
			return nil
		}
	}
}

// lineReader reads lines from r on demand, so that nothing reads the
// input between two requests.
type lineReader struct {
	req  chan struct{}
	resp chan lineResult
}

type lineResult struct {
	line string
	ok   bool
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{req: make(chan struct{}), resp: make(chan lineResult)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for range lr.req {
			ok := sc.Scan()
			lr.resp <- lineResult{sc.Text(), ok}
			if !ok {
				return
			}
		}
	}()
	return lr
}

// next returns the next line, or false at the end of input or when ctx
// ends (the pending read is then abandoned with the process).
func (lr *lineReader) next(ctx context.Context) (string, bool) {
	select {
	case lr.req <- struct{}{}:
	case <-ctx.Done():
		return "", false
	}
	select {
	case r := <-lr.resp:
		return r.line, r.ok
	case <-ctx.Done():
		return "", false
	}
}

type chat struct {
	e        *env
	sess     *session
	peer     jid.JID
	mech     string
	explicit bool
	in       *lineReader
}

// handle runs one input line; it reports whether to quit. Errors are
// printed, never fatal.
func (c *chat) handle(ctx context.Context, line string) bool {
	if strings.TrimSpace(line) == "" {
		return false
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		line = strings.TrimPrefix(line, "/")
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := doSend(sctx, c.sess, sendArgs{To: c.peer.String(), Body: line, Mechanism: c.mech, Explicit: c.explicit})
		c.report(err)
		return false
	}
	f := strings.Fields(line[1:])
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "quit", "exit":
		return true
	case "help":
		fmt.Fprint(c.e.stdout, commands["chat"].usage)
	case "plain", "omemo", "ox", "otr", "esession", "auto":
		if f[0] == "omemo" && len(f) > 1 {
			c.omemo(ctx, f[1:])
			return false
		}
		if f[0] == "otr" && len(f) > 1 {
			c.otr(ctx, f[1:])
			return false
		}
		if f[0] == "esession" && len(f) > 1 {
			c.esession(ctx, f[1], strings.Join(f[2:], " "))
			return false
		}
		c.mech, c.explicit = map[string]string{"plain": "", "omemo": omemoAuto, "ox": eme.OX, "otr": eme.OTR, "esession": eme.ESession, "auto": ""}[f[0]], f[0] != "auto"
		fmt.Fprintf(c.e.stdout, "sending with: %s\n", f[0])
	case "status":
		c.otr(ctx, []string{"status"})
		c.esession(ctx, "status", "")
	default:
		c.report(&usageError{msg: "unknown command /" + f[0], hint: "/help lists them"})
	}
	return false
}

func (c *chat) report(err error) {
	if err == nil {
		return
	}
	fmt.Fprintf(c.e.stderr, "balcony: error: %s\n", oneLine(err.Error()))
	var he *hintError
	var ue *usageError
	switch {
	case errors.As(err, &he):
		fmt.Fprintf(c.e.stderr, "balcony: hint: %s\n", he.hint)
	case errors.As(err, &ue) && ue.hint != "":
		fmt.Fprintf(c.e.stderr, "balcony: hint: %s\n", ue.hint)
	}
}

// secret reads a secret without echo on a terminal (no other read of the
// input is pending: lines are read only on request), else the next line.
func (c *chat) secret(ctx context.Context, prompt string) ([]byte, error) {
	if f, ok := c.e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.e.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.e.stderr)
		return b, err
	}
	line, ok := c.in.next(ctx)
	if !ok {
		return nil, errors.New("no secret given")
	}
	return []byte(line), nil
}

// call runs a control handler in this process and decodes its result.
func (c *chat) call(ctx context.Context, name string, args, result any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	res, err := controlHandlers[name](ctx, c.sess, raw)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, result)
}

func (c *chat) omemo(ctx context.Context, f []string) {
	a, err := omemoSlashArgs(c.peer, f)
	if err != nil {
		c.report(err)
		return
	}
	var res omemoResult
	if err := c.call(ctx, "omemo", a, &res); err != nil {
		c.report(err)
		return
	}
	c.report(printOMEMO(c.e, a, &res))
}

func (c *chat) otr(ctx context.Context, f []string) {
	a := otrArgs{Op: f[0], JID: c.peer.String(), Wait: 30 * time.Second}
	switch f[0] {
	case "start", "end", "status":
		if f[0] == "status" {
			a.JID, a.Wait = "", 0
		}
	case "smp", "answer":
		if f[0] == "answer" {
			a.Op = "smp-answer"
		}
		a.Question = strings.Join(f[1:], " ")
		s, err := c.secret(ctx, "SMP secret: ")
		if err != nil {
			c.report(err)
			return
		}
		a.Secret = s
		defer clear(a.Secret)
		a.Wait = 60 * time.Second
	default:
		c.report(&usageError{msg: "unknown /otr command " + f[0], hint: "/otr start|end|status|smp|answer"})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.Wait+5*time.Second)
	defer cancel()
	var res otrResult
	if err := c.call(ctx, "otr", a, &res); err != nil {
		c.report(err)
		return
	}
	printOTR(c.e, a, res)
}

func (c *chat) esession(ctx context.Context, op, arg string) {
	var pw []byte
	if arg == "secret" && (op == "start" || op == "accept") {
		var err error
		pw, err = c.secret(ctx, "Password shared with "+c.peer.String()+" (not shown): ")
		defer clear(pw)
		if err != nil || len(pw) == 0 {
			c.report(errors.New("no session " + op + "ed: no password"))
			return
		}
	}
	a, err := slashESession(op, arg, c.peer.String(), pw)
	if err != nil {
		c.report(err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.Wait+5*time.Second)
	defer cancel()
	var res esessionResult
	if err := c.call(ctx, "esession", a, &res); err != nil {
		c.report(err)
		return
	}
	printESessionResult(c.e, a, res)
}
