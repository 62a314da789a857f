package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"mellium.im/xmpp/jid"

	esclient "github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/store"
)

// settingESessionAccept is the store setting holding the accept policy
// for Encrypted Session requests: "ask" (default) or "subscribed".
const settingESessionAccept = "esession.accept"

var esessionCommand = &command{
	name:    "esession",
	summary: "start, verify and end Encrypted Sessions (XEP-0217/0116/0200/0187, Deferred)",
	usage: `Usage: balcony esession start [--wait DUR] [--keys] [--secret | --secret-file F | --secret-env V] JID
       balcony esession accept [--wait DUR] [--secret | --secret-file F | --secret-env V] JID
       balcony esession decline [--reason TEXT] JID
       balcony esession sas JID
       balcony esession confirm [--thread T] JID SAS
       balcony esession reject JID
       balcony esession end [--wait DUR] JID
       balcony esession status
       balcony esession rekey JID
       balcony esession renegotiate JID may|mustnot
       balcony esession continue [--wait DUR] JID RESOURCE
       balcony esession handover JID FILE
       balcony esession adopt FILE
       balcony esession keygen | publish | fetch JID
       balcony esession offline publish [--valid DUR] | withdraw | start JID [TEXT]
       balcony esession policy [ask|subscribed]
       balcony esession policy logging [may|mustnot]
       balcony esession policy rekey [N|never]
       balcony esession policy offline [DUR|off]

Encrypted Sessions (XEP-0155 negotiation, XEP-0217 key agreement, XEP-0200
stanza encryption; every one but XEP-0155 is Deferred and was never analysed)
live in the memory of a running "balcony listen" of the account: these
commands act through it. Send in a session with: balcony send --esession JID TEXT

  start     ask JID for a session: a full JID, or a bare JID with one
            resource online. With --wait, wait until it is established and
            print the short authentication string (SAS). The contact's
            published key (XEP-0189) is fetched first: a changed key is
            reported before the session. With --keys, both identify with
            their public keys (XEP-0116 SIGMA-I: keygen on both sides, and
            the contact's key verified with balcony trust) and there is no
            SAS. With --secret, a password agreed with the contact (asked
            without echo) goes into the keys: the contact must accept with
            the same one, and no one else can complete the session.
  accept    accept the newest request from JID. With --wait, wait up to DUR
            for a request to arrive and for the session to be established.
            With --secret, the password the contact started with.
  decline   decline the newest request from JID, with an optional reason.
  sas       print the SAS of the session with JID on standard output.
  confirm   record that you compared SAS with the contact over a channel you
            trust (voice, in person) and it matched: the session with that
            SAS (on thread T, with --thread) is verified, and later sessions
            that continue it through the secret retained in the key store
            are verified without a comparison. Type the SAS you compared
            (- reads it from standard input); a session that started since
            has another SAS and is not confirmed.
  reject    the SAS did NOT match: someone may be in the middle. Ends the
            session and forgets every secret retained with JID, so that no
            later session continues the chain; the next one must be
            compared again.
  end       end the session with JID (an encrypted terminate). With --wait,
            wait for the contact's acknowledgement.
  status    list the sessions of the running listener.
  rekey     exchange new keys in the session now (XEP-0200 §9); stanzas
            in flight under the old keys are still read. Sessions also
            re-key by themselves (policy rekey) and after a silence.
  renegotiate  ask the contact to agree on logging anew (XEP-0155 §6):
            mustnot keeps everything of the session out of both archives.
  continue  move the session to another of your resources (XEP-0155 §5);
            once the contact agreed (state "moved"), handover writes it to
            FILE (mode 0600; it holds the session keys: carry it over a
            channel you trust) and the other resource's listener takes it
            over with adopt, which destroys the file. With --wait, continue
            waits until the contact agreed.
  keygen    make this account's Encrypted Sessions key (RSA 3072) and
            publish it (XEP-0189); publish publishes it again. fetch reads
            a contact's published key and prints its fingerprint; list
            keys with balcony keys --mechanism esession and decide about
            them with balcony trust --mechanism esession.
  offline   XEP-0187: publish signed session options for your contacts
            while you are away (--valid, default 168h), withdraw them, or
            start a session with an offline contact from its options and
            send TEXT (- reads it from standard input) in it at once.
  policy    show or set who may start a session without asking you: "ask"
            (the default: every request waits for accept or decline) or
            "subscribed" (contacts with a presence subscription to you).
            Requests from anyone else always wait. "policy logging" is
            what you offer (XEP-0136): may (the default; a contact's
            mustnot is accepted) or mustnot (offered alone and required).
            "policy rekey" is the most stanzas between key exchanges
            (default 1000) or never. "policy offline DUR" makes a listener
            publish offline session options valid for DUR when it stops
            (default off). Policies apply to listeners started afterwards.
            A listener withdraws published offline options when it starts:
            they are for contacts who find you offline.

Without a SAS comparison, a verified key or a shared password, a session is
not authenticated: a man in the middle present from the first session on is
never detected. The negotiation, the
thread and the addresses travel in the clear. Messages of a session must
arrive exactly once and in order: anything lost, repeated or reordered ends
the session, and copies for other devices or the archive cannot be read.

Flags:
  --wait DUR       how long to wait (default: do not wait)
  --reason TEXT    the reason given when declining
  --thread T       confirm only the session on thread T
  --keys           SIGMA-I with public keys (start)
  --secret         ask for a password shared with the contact (start, accept)
  --secret-file F  read it from file F
  --secret-env V   read it from environment variable V
  --valid DUR      how long offline session options stay usable
` + secretFlagsUsage,
	run: runESession,
}

// retainedSecretStore is what the Encrypted Sessions mechanism needs of
// the account's store: *store.Store, which keeps the secrets encrypted at
// rest.
type retainedSecretStore interface {
	RetainedSecrets(ctx context.Context, peer string) ([]store.RetainedSecret, error)
	ReplaceRetainedSecret(ctx context.Context, peer string, old []byte, next store.RetainedSecret) error
	VerifyRetainedSecret(ctx context.Context, peer string, value []byte) (bool, error)
	ExpireRetainedSecrets(ctx context.Context, peer string, createdBefore time.Time) (int, error)
}

// storeSecrets adapts the store to esession.RetainedSecrets. The store
// follows the same semantics (replace the secret equal to old, or add a
// new chain), so this only converts between arrays and slices.
type storeSecrets struct{ st retainedSecretStore }

var _ esession.RetainedSecrets = storeSecrets{}

// secretsTimeout bounds one store operation made during a negotiation.
const secretsTimeout = 10 * time.Second

func (a storeSecrets) Lookup(peer string) ([]esession.Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), secretsTimeout)
	defer cancel()
	list, err := a.st.RetainedSecrets(ctx, peer)
	if err != nil {
		return nil, err
	}
	out := make([]esession.Secret, 0, len(list))
	for _, r := range list {
		if len(r.Value) == len(esession.Secret{}.Value) {
			s := esession.Secret{Verified: r.Verified, Created: r.Created}
			copy(s.Value[:], r.Value)
			out = append(out, s)
		}
		clear(r.Value)
	}
	return out, nil
}

func (a storeSecrets) Replace(peer string, old *[32]byte, next esession.Secret) error {
	ctx, cancel := context.WithTimeout(context.Background(), secretsTimeout)
	defer cancel()
	var o []byte
	if old != nil {
		o = old[:]
	}
	v := next.Value
	defer clear(v[:])
	return a.st.ReplaceRetainedSecret(ctx, peer, o, store.RetainedSecret{Value: v[:], Verified: next.Verified, Created: next.Created})
}

func (a storeSecrets) Verify(peer string, value *[32]byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), secretsTimeout)
	defer cancel()
	v := *value
	defer clear(v[:])
	return a.st.VerifyRetainedSecret(ctx, peer, v[:])
}

func (a storeSecrets) Expire(peer string, createdBefore time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), secretsTimeout)
	defer cancel()
	_, err := a.st.ExpireRetainedSecrets(ctx, peer, createdBefore)
	return err
}

// setupESession registers the Encrypted Sessions mechanism, enabled, with
// the retained secrets kept in the account's store.
func setupESession(ctx context.Context, s *session) error {
	cfg, err := esessionConfig(ctx, s.store)
	if err != nil {
		return err
	}
	es, err := esclient.New(cfg)
	if err != nil {
		return err
	}
	if err := s.client.Register(es); err != nil {
		return err
	}
	s.esession = es
	// XEP-0217 §6 asks to terminate every session before going offline:
	// the mechanism does so in its Closing hook, which Client.Close runs
	// while the stream still works.
	return nil
}

// esessionArgs is a control request of "balcony esession".
type esessionArgs struct {
	Op     string        `json:"op"`
	JID    string        `json:"jid,omitempty"`
	Wait   time.Duration `json:"wait,omitempty"`
	Reason string        `json:"reason,omitempty"`
	SAS    string        `json:"sas,omitempty"`
	Thread string        `json:"thread,omitempty"`
	// ThreeMessage asks for SIGMA-I; Password is a password shared with
	// the contact (cleared after use).
	ThreeMessage bool   `json:"three_message,omitempty"`
	Password     []byte `json:"password,omitempty"`
	Logging      string `json:"logging,omitempty"`
	Resource     string `json:"resource,omitempty"`
	// State is a handed-over session (adopt).
	State []byte        `json:"state,omitempty"`
	Body  string        `json:"body,omitempty"`
	Valid time.Duration `json:"valid,omitempty"`
}

type esessionResult struct {
	Session  esclient.Info   `json:"session"`
	Sessions []esclient.Info `json:"sessions,omitempty"`
	// Key is a key fingerprint (keygen, publish, fetch).
	Key     string    `json:"key,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// State is the handed-over session (handover).
	State []byte `json:"state,omitempty"`
}

func runESession(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "esession needs a subcommand", hint: "run: balcony help esession"}
	}
	op, args := args[0], args[1:]
	fs := newFlags("esession")
	var so secretOptions
	so.add(fs)
	wait := fs.Duration("wait", 0, "")
	reason := fs.String("reason", "", "")
	thread := fs.String("thread", "", "")
	keys := fs.Bool("keys", false, "")
	valid := fs.Duration("valid", 0, "")
	shared := addSharedSecretFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a := esessionArgs{Op: op, Wait: *wait, Reason: *reason, Thread: *thread, ThreeMessage: *keys, Valid: *valid}
	known, err := parseESessionOp(e, op, fs.Args(), &a)
	if err != nil {
		return err
	}
	switch {
	case known:
	case op == "confirm":
		if fs.NArg() != 2 {
			return &usageError{msg: "esession confirm needs a JID and the SAS you compared", hint: "run: balcony esession sas JID, compare it with the contact, then: balcony esession confirm JID SAS"}
		}
		j, err := jid.Parse(fs.Arg(0))
		if err != nil {
			return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
		}
		a.JID = j.String()
		a.SAS = fs.Arg(1)
		if a.SAS == "-" {
			b, err := io.ReadAll(io.LimitReader(e.stdin, 1024))
			if err != nil {
				return err
			}
			a.SAS = strings.TrimSpace(string(b))
		}
		if a.SAS == "" {
			return &usageError{msg: "esession confirm needs the SAS you compared"}
		}
	case op == "start" || op == "accept" || op == "decline" || op == "sas" || op == "reject" || op == "end":
		if fs.NArg() != 1 {
			return &usageError{msg: "esession " + op + " needs a JID", hint: "run: balcony help esession"}
		}
		j, err := jid.Parse(fs.Arg(0))
		if err != nil {
			return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
		}
		a.JID = j.String()
	case op == "status":
		if fs.NArg() != 0 {
			return &usageError{msg: "esession status takes no arguments"}
		}
	case op == "policy":
		return runESessionPolicy(ctx, e, &so, fs.Args())
	default:
		return &usageError{msg: fmt.Sprintf("unknown esession subcommand %q", op), hint: "run: balcony help esession"}
	}
	if *thread != "" && op != "confirm" {
		return &usageError{msg: "--thread is for esession confirm"}
	}
	if *reason != "" && op != "decline" {
		return &usageError{msg: "--reason is for esession decline"}
	}
	if *wait != 0 && op != "start" && op != "accept" && op != "end" && op != "continue" {
		return &usageError{msg: "--wait is for esession start, accept, end and continue"}
	}
	if *wait < 0 {
		return &usageError{msg: "--wait must not be negative"}
	}
	if *keys && op != "start" {
		return &usageError{msg: "--keys is for esession start"}
	}
	if *valid != 0 && a.Op != "offline-publish" {
		return &usageError{msg: "--valid is for esession offline publish"}
	}
	if shared.given() {
		if op != "start" && op != "accept" {
			return &usageError{msg: "--secret, --secret-file and --secret-env are for esession start and accept"}
		}
		pw, err := shared.read(e, a.JID)
		if err != nil {
			return err
		}
		a.Password = pw
		defer clear(pw)
	}
	acct, err := currentAccount(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait+30*time.Second)
	defer cancel()
	var res esessionResult
	if err := callControl(ctx, e, acct, "esession", a, &res); err != nil {
		return needListener(err, acct)
	}
	if known {
		if err := runESessionOpLocal(e, a, fs.Args(), res); err != nil {
			return err
		}
		printESessionOp(e, a, fs.Args(), res)
		return nil
	}
	printESession(e, a, res)
	return nil
}

// printESession prints a successful result.
func printESession(e *env, a esessionArgs, res esessionResult) {
	s := res.Session
	switch a.Op {
	case "start", "accept":
		if s.State != "active" {
			if a.Op == "start" {
				fmt.Fprintf(e.stdout, "requested an Encrypted Session with %s\n", s.Peer)
			} else {
				fmt.Fprintf(e.stdout, "accepted the Encrypted Session requested by %s\n", s.Peer)
			}
			return
		}
		fmt.Fprintf(e.stdout, "established an Encrypted Session with %s\n", s.Peer)
		if s.SAS != "" {
			fmt.Fprintf(e.stdout, "SAS: %s\n", s.SAS)
		}
		if s.PeerKey != "" {
			fmt.Fprintf(e.stdout, "contact's key: %s\n", s.PeerKey)
		}
		if s.Password {
			fmt.Fprintln(e.stdout, "the shared password went into the keys")
		}
		fmt.Fprintf(e.stdout, "logging: %s\n", loggingText(s.Logging))
		fmt.Fprintln(e.stdout, verificationNote(s))
	case "decline":
		fmt.Fprintf(e.stdout, "declined the Encrypted Session requested by %s\n", s.Peer)
	case "sas":
		fmt.Fprintln(e.stdout, s.SAS)
		fmt.Fprintf(e.stderr, "balcony: %s\n", verificationNote(s))
	case "confirm":
		fmt.Fprintf(e.stdout, "confirmed SAS %s with %s: the session is verified, and so are later sessions that continue it\n", s.SAS, s.Peer)
	case "reject":
		fmt.Fprintf(e.stdout, "rejected the Encrypted Session with %s: it is ended and no secret is retained with %s any more\n", s.Peer, s.Peer)
	case "end":
		if s.State == "ended" {
			fmt.Fprintf(e.stdout, "ended the Encrypted Session with %s\n", s.Peer)
		} else {
			fmt.Fprintf(e.stdout, "sent the end of the Encrypted Session to %s\n", s.Peer)
		}
	case "status":
		if len(res.Sessions) == 0 {
			fmt.Fprintln(e.stdout, "no Encrypted Sessions")
			return
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PEER\tSTATE\tSAS\tVERIFIED\tTHREAD\tLOGGING\tWITH")
		for _, x := range res.Sessions {
			state := x.State
			if x.State == "ended" && x.EndReason != "" {
				state += " (" + x.EndReason + ")"
			}
			verified := "no"
			if x.Verified {
				verified = "yes"
			}
			if !x.Encrypted {
				verified = "plain"
			}
			sas := x.SAS
			if sas == "" {
				sas = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Peer, state, sas, verified, x.Thread, orDash(x.Logging), sessionWith(x))
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sessionWith lists what authenticates a session besides the SAS.
func sessionWith(x esclient.Info) string {
	var w []string
	if x.ThreeMessage {
		w = append(w, "keys")
	} else if x.PeerKey != "" {
		w = append(w, "key")
	}
	if x.Password {
		w = append(w, "password")
	}
	if x.Offline {
		w = append(w, "offline")
	}
	if x.RekeyFreq != 0 && x.RekeyFreq != esession.MaxRekeyFreq {
		w = append(w, fmt.Sprintf("rekey/%d", x.RekeyFreq))
	}
	return orDash(strings.Join(w, ","))
}

// loggingText says what the agreed logging value means.
func loggingText(l string) string {
	if l == esession.LoggingMustNot {
		return "mustnot (nothing of the session is stored, locally or in the server's archive)"
	}
	return "may (messages may be stored in the archives)"
}

func verificationNote(s esclient.Info) string {
	bare := esession.Bare(s.Peer)
	switch {
	case s.Verified && s.SAS == "":
		return "verified: " + bare + " signed with a key you verified"
	case s.SAS == "" && s.PeerKey != "":
		return "not verified: compare the fingerprint of " + bare + "'s key with the contact over a channel you trust, then run: balcony trust --mechanism esession " + bare + " " + s.PeerKey + " verified"
	case s.Verified:
		return "verified: the SAS was confirmed in this session or in the chain of sessions it continues"
	case s.ContinuityBroken:
		return "NOT verified, and the secret retained from earlier sessions with " + bare + " did not match: compare the SAS with " +
			bare + " over a channel you trust, then run: balcony esession confirm " + bare + " SAS"
	}
	return "not verified: compare the SAS with " + bare + " over a channel you trust, then run: balcony esession confirm " + bare + " SAS"
}

// handleESession runs "balcony esession" requests inside the listener.
func handleESession(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a esessionArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	es := s.esession
	if es == nil {
		return nil, errors.New("this listener has no Encrypted Sessions mechanism")
	}
	defer clear(a.Password)
	switch a.Op {
	case "status":
		return esessionResult{Sessions: es.Status()}, nil
	case "adopt":
		info, err := es.Adopt(ctx, a.State)
		clear(a.State)
		return esessionResult{Session: info}, err
	case "start", "accept", "decline", "sas", "confirm", "reject", "end":
	default:
		return handleESessionOp(ctx, es, a)
	}
	j, err := jid.Parse(a.JID)
	if err != nil {
		return nil, err
	}
	wctx := ctx
	if a.Wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, a.Wait)
		defer cancel()
	}
	settled := func(i esclient.Info) bool { return i.State == "active" || i.State == "ended" }
	var info esclient.Info
	switch a.Op {
	case "start":
		info, err = es.Start(ctx, j, &esclient.StartOptions{ThreeMessage: a.ThreeMessage, Password: a.Password})
		if err != nil {
			return nil, esessionHint(err, j)
		}
		if a.Wait > 0 {
			info, err = es.WaitFor(wctx, j, info.Thread, settled)
			if err := established(info, err, a.Wait, j); err != nil {
				return nil, err
			}
		}
	case "accept":
		if a.Wait > 0 {
			// The request may still be on its way.
			es.WaitFor(wctx, j, "", func(i esclient.Info) bool { return i.State == "asking" })
		}
		info, err = es.Accept(ctx, j, &esclient.AcceptOptions{Password: a.Password})
		if err != nil {
			return nil, esessionHint(err, j)
		}
		if a.Wait > 0 {
			info, err = es.WaitFor(wctx, j, info.Thread, settled)
			if err := established(info, err, a.Wait, j); err != nil {
				return nil, err
			}
		}
	case "decline":
		info, err = es.Decline(ctx, j, a.Reason)
	case "sas":
		info, err = es.SAS(j)
	case "confirm":
		info, err = es.ConfirmSAS(j, a.SAS, a.Thread)
		if errors.Is(err, esclient.ErrSASMismatch) {
			return nil, withHint(err, "compare the current SAS (balcony esession sas "+j.Bare().String()+") with the contact again; a session started since you read it has a SAS of its own")
		}
	case "reject":
		// A SAS mismatch: end the session and break the retained-secret
		// chain (esessions-research pitfall 11), whatever the end answers.
		info, err = es.End(ctx, j)
		if ferr := s.store.ForgetRetainedSecrets(ctx, j.Bare().String()); ferr != nil {
			return nil, fmt.Errorf("forgetting the retained secrets of %s: %w", j.Bare(), ferr)
		}
		if err != nil && !errors.Is(err, esclient.ErrNoSession) {
			return nil, esessionHint(err, j)
		}
		err = nil
		if info.Peer == "" {
			info.Peer = j.String()
		}
	case "end":
		info, err = es.End(ctx, j)
		if err == nil && a.Wait > 0 && info.State != "ended" {
			info, err = es.WaitFor(wctx, j, info.Thread, func(i esclient.Info) bool { return i.State == "ended" })
			if err != nil {
				return nil, withHint(fmt.Errorf("%s did not acknowledge the end of the session within %s", j, a.Wait),
					"the keys for sending are wiped already; the contact may be offline")
			}
		}
	default:
		return nil, fmt.Errorf("unknown esession request %q", a.Op)
	}
	if err != nil {
		return nil, esessionHint(err, j)
	}
	return esessionResult{Session: info}, nil
}

// established checks the outcome of waiting for a session.
func established(info esclient.Info, err error, wait time.Duration, j jid.JID) error {
	switch {
	case err != nil:
		return withHint(fmt.Errorf("the Encrypted Session with %s was not established within %s (state: %s)", j, wait, info.State),
			"the contact must accept the request (balcony esession accept); check: balcony esession status")
	case info.State == "ended":
		reason := info.EndReason
		if reason == "" {
			reason = "ended"
		}
		return fmt.Errorf("the Encrypted Session with %s was not established: %s", info.Peer, reason)
	}
	return nil
}

// esessionHint adds what to do next to the mechanism's errors.
func esessionHint(err error, j jid.JID) error {
	bare := j.Bare().String()
	switch {
	case errors.Is(err, esclient.ErrExists):
		return withHint(err, "see it with: balcony esession sas "+bare+", or end it with: balcony esession end "+bare)
	case errors.Is(err, esclient.ErrAmbiguousResource):
		return withHint(err, "name the resource: balcony esession start "+bare+"/RESOURCE")
	case errors.Is(err, esclient.ErrNoSession):
		return withHint(err, "start one with: balcony esession start "+bare+", or list them with: balcony esession status")
	}
	return err
}

func runESessionPolicy(ctx context.Context, e *env, so *secretOptions, args []string) error {
	name, label, value := settingESessionAccept, "esession policy", ""
	switch {
	case len(args) > 0 && (args[0] == "logging" || args[0] == "rekey" || args[0] == "offline"):
		if len(args) > 2 {
			return &usageError{msg: "esession policy " + args[0] + " takes at most one argument"}
		}
		var err error
		if name, value, err = esessionPolicySetting(args); err != nil {
			return err
		}
		label += " " + args[0]
	case len(args) > 1:
		return &usageError{msg: "esession policy takes at most one argument: ask or subscribed", hint: "or: policy logging may|mustnot, policy rekey N|never, policy offline DUR|off"}
	case len(args) == 1 && args[0] != "ask" && args[0] != "subscribed":
		return &usageError{msg: fmt.Sprintf("unknown policy %q", args[0]), hint: "use ask or subscribed"}
	case len(args) == 1:
		value = args[0]
	}
	_, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	if value != "" {
		if err := st.SetSetting(ctx, name, value); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: %s (applies to listeners started from now on)\n", label, value)
		return nil
	}
	v, err := st.Setting(ctx, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && strings.TrimSpace(v) == "" {
		v, err = esessionPolicyDefault(name), nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", label, v)
	return nil
}
