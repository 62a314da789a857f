package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	otrclient "github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/store"
)

// settingOTRPolicy is the store setting holding the account's OTR policy:
// "manual", "opportunistic" (the default), "advertise" or "always".
const settingOTRPolicy = "otr-policy"

// defaultOTRPolicy is libotr's default: answer whitespace tags and OTR
// errors with an AKE, but never start with a resource not known to run
// OTR, and never hold messages back.
const defaultOTRPolicy = "opportunistic"

var otrCommand = &command{
	name:    "otr",
	summary: "start, verify and end OTR conversations; OTR keys and policy (XEP-0364)",
	usage: `Usage: balcony otr start [--wait DUR] JID/RESOURCE
       balcony otr end JID/RESOURCE
       balcony otr smp [--question Q] [--secret-file F | --secret-env V] [--wait DUR] JID/RESOURCE
       balcony otr smp-answer [--secret-file F | --secret-env V] [--wait DUR] JID/RESOURCE
       balcony otr smp-abort JID/RESOURCE
       balcony otr status [JID[/RESOURCE]]
       balcony otr fingerprint
       balcony otr verify 'xmpp:JID?otr-fingerprint=HEX'
       balcony otr import-libotr [--name ACCOUNT] FILE
       balcony otr policy [manual|opportunistic|advertise|always]

Off-the-Record messaging (OTR version 3, compatible with version 2 and
with libotr-based clients such as Pidgin), used over XMPP as XEP-0364
(Deferred) describes. A private conversation lives in the memory of a
running "balcony listen" of the account and is bound to one resource of the
contact: the session commands act through the listener and take a full
JID. Send in a conversation with: balcony send --otr JID/RESOURCE TEXT

  start        ask JID/RESOURCE for a private conversation (an OTR query);
               always allowed, whatever the policy. While private, refresh
               the session keys. With --wait, wait for the conversation and
               print its state and the contact's fingerprint.
  end          end the private conversation: the contact is told, and
               messages are no longer sent with OTR.
  smp          verify the contact with the Socialist Millionaires' Protocol:
               you and the contact type the same secret (agreed in person or
               over a call), optionally after a question shown to the
               contact; nothing about the secret is revealed. Success marks
               the contact's fingerprint verified. With --wait, wait for the
               result (exit status 1 if the secrets differ).
  smp-answer   answer the contact's verification request with the secret.
               With --wait, wait up to DUR for the request and the result.
  smp-abort    abort a verification under way.
  status       list the conversations of the running listener: private and
               verified, private but unverified, finished, or not private,
               with the contact's fingerprint, the session id (which you may
               also compare by voice) and the instance tags.
  fingerprint  print the account's own OTR fingerprint and the xmpp: URI
               to share it (as a QR code, for instance). The account's DSA
               key is created on first use.
  verify       mark the fingerprint in a contact's xmpp: URI verified (read
               from the contact's device, for instance); the key is trusted
               when it shows up.
  import-libotr
               import the account's key from libotr's private key file
               (Pidgin: ~/.purple/otr.private_key) so that contacts keep
               seeing the same fingerprint. --name picks the libotr account
               when the file holds several. A running listener keeps its
               key until restarted.
  policy       show or set when OTR starts by itself; applies to new
               conversations:
                 manual         only "balcony otr start" and the contact's
                                requests start a conversation
                 opportunistic  also start when a contact's client announces
                                OTR (whitespace tag) or reports an OTR error,
                                and restart a conversation that a contact's
                                restart made unreadable; only with resources
                                known to run OTR (the default; Balcony's own
                                plaintext carries no whitespace tag)
                 advertise      opportunistic, and plaintext messages carry
                                the OTR whitespace tag until the contact
                                answers in plaintext (libotr's
                                OPPORTUNISTIC policy)
                 always         also start with resources never seen: a
                                message sent with --otr and no conversation
                                is held, a query is sent, and the message
                                follows once the conversation is private

What Balcony does, as XEP-0364 asks: every OTR message goes to the full JID
with the no-copy and no-permanent-store hints, the carbons <private/>
element and the EME tag; carbon copies and archived (MAM) copies are never
decrypted or fed to OTR (an encrypted one shows as a notice, a session
start inside one is ignored); a delivery receipt is sent only after a
message was decrypted; a message that cannot be decrypted is shown as a
notice, the contact's client is told with an OTR error, and (per policy) a
new conversation is started; a conversation ends when the contact's
resource goes offline or our connection ends. Decrypted HTML (from
libpurple-based clients) is shown as text. Listeners show every change as
a "!!" line: private, verified, finished, verification requests and
results, and a contact's new fingerprint.

Flags:
  --wait DUR         how long to wait (default: do not wait)
  --question Q       the question shown to the contact (smp)
  --secret-file F    read the shared secret from file F (smp, smp-answer)
  --secret-env V     read it from environment variable V; without either,
                     it is asked for on the terminal
  --name ACCOUNT     the libotr account to import (import-libotr)
` + secretFlagsUsage,
	run: runOTR,
}

// setupOTR registers the OTR mechanism with the account's instance tag and
// policy. The key is loaded, or made, only when OTR is first used.
func setupOTR(ctx context.Context, s *session) error {
	loadKey := func() (*otr.PrivateKey, error) {
		key, created, err := otrOwnKey(context.Background(), s.store, true)
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(s.e.stderr, "balcony: created an OTR key for %s: %s\n", s.acct.JID, key.Fingerprint())
		}
		return key, nil
	}
	tag, err := s.store.OTRInstanceTag(ctx)
	if err != nil {
		return fmt.Errorf("OTR instance tag: %w", err)
	}
	name, err := otrPolicyName(ctx, s.store)
	if err != nil {
		return err
	}
	pol, auto, _ := otrPolicyByName(name)
	o, err := otrclient.New(otrclient.Config{LoadKey: loadKey, InstanceTag: tag, Policy: pol, AutoStart: auto, Store: s.store})
	if err != nil {
		return err
	}
	if err := s.client.Register(o); err != nil {
		return err
	}
	s.otr = o
	return nil
}

// otrOwnKey returns the account's active OTR key, creating and storing one
// if there is none and create is set.
func otrOwnKey(ctx context.Context, st store.AccountStore, create bool) (key *otr.PrivateKey, created bool, err error) {
	k, err := st.ActiveOwnKey(ctx, store.OTR)
	if errors.Is(err, store.ErrNotFound) && create {
		key, err := otr.GenerateKey(nil)
		if err != nil {
			return nil, false, err
		}
		if err := otrStoreKey(ctx, st, key); err != nil {
			return nil, false, err
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	secret, err := st.OwnKeySecret(ctx, store.OTR, k.Fingerprint)
	if err != nil {
		return nil, false, err
	}
	defer clear(secret)
	key = new(otr.PrivateKey)
	if err := key.UnmarshalBinary(secret); err != nil {
		return nil, false, fmt.Errorf("the stored OTR key is damaged: %w", err)
	}
	if got := strings.ToUpper(key.Fingerprint().Hex()); got != k.Fingerprint {
		return nil, false, fmt.Errorf("the stored OTR key %s has fingerprint %s", k.Fingerprint, got)
	}
	return key, false, nil
}

// otrStoreKey stores key as the account's active OTR key (the secret is
// the key's MarshalBinary, sealed by the store).
func otrStoreKey(ctx context.Context, st store.AccountStore, key *otr.PrivateKey) error {
	secret, err := key.MarshalBinary()
	if err != nil {
		return err
	}
	defer clear(secret)
	pub, err := key.Public().MarshalBinary()
	if err != nil {
		return err
	}
	fpr := strings.ToUpper(key.Fingerprint().Hex())
	err = st.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: fpr, Public: pub, Active: true}, secret)
	if errors.Is(err, store.ErrExists) {
		return st.SetActiveOwnKey(ctx, store.OTR, fpr)
	}
	return err
}

// otrPolicyByName maps a policy name to the engine's policy and the
// mechanism's auto-start mode.
func otrPolicyByName(name string) (otr.Policy, otrclient.AutoStart, error) {
	switch name {
	case "manual":
		return otr.PolicyManual, otrclient.AutoStartNever, nil
	case "opportunistic":
		return otr.PolicyOpportunistic &^ otr.SendWhitespaceTag, otrclient.AutoStartKnown, nil
	case "advertise":
		return otr.PolicyOpportunistic, otrclient.AutoStartKnown, nil
	case "always":
		return otr.PolicyAlways, otrclient.AutoStartAlways, nil
	}
	return 0, 0, &usageError{msg: fmt.Sprintf("unknown OTR policy %q", name), hint: "use manual, opportunistic, advertise or always"}
}

// otrPolicyName returns the account's policy name from the store.
func otrPolicyName(ctx context.Context, st store.AccountStore) (string, error) {
	v, err := st.Setting(ctx, settingOTRPolicy)
	if errors.Is(err, store.ErrNotFound) {
		return defaultOTRPolicy, nil
	}
	if err != nil {
		return "", err
	}
	if _, _, err := otrPolicyByName(v); err != nil {
		return "", fmt.Errorf("the stored OTR policy %q is not valid; set it with: balcony otr policy opportunistic", v)
	}
	return v, nil
}

// otrArgs is a control request of "balcony otr".
type otrArgs struct {
	Op       string        `json:"op"`
	JID      string        `json:"jid,omitempty"`
	Wait     time.Duration `json:"wait,omitempty"`
	Question string        `json:"question,omitempty"`
	Secret   []byte        `json:"secret,omitempty"`
	Policy   string        `json:"policy,omitempty"`
}

// otrInfo is the state of one conversation as the command shows it.
type otrInfo struct {
	Peer          string `json:"peer"`
	State         string `json:"state"`
	Fingerprint   string `json:"fingerprint,omitempty"`
	Trust         string `json:"trust,omitempty"`
	SSID          string `json:"ssid,omitempty"`
	Version       int    `json:"version,omitempty"`
	OurInstance   uint32 `json:"our_instance,omitempty"`
	TheirInstance uint32 `json:"their_instance,omitempty"`
	SMP           bool   `json:"smp,omitempty"`
}

type otrResult struct {
	Session  otrInfo   `json:"session"`
	Sessions []otrInfo `json:"sessions,omitempty"`
	Own      string    `json:"own,omitempty"`    // our fingerprint
	Policy   string    `json:"policy,omitempty"` // for new conversations
	Outcome  string    `json:"outcome,omitempty"`
	Text     string    `json:"text,omitempty"`
}

func otrInfoOf(st otrclient.Status) otrInfo {
	return otrInfo{Peer: st.Peer.String(), State: st.State.String(), Fingerprint: st.Fingerprint, Trust: st.Trust,
		SSID: st.SSID, Version: st.Version, OurInstance: st.OurInstance, TheirInstance: st.TheirInstance, SMP: st.SMP}
}

func runOTR(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "otr needs a subcommand", hint: "run: balcony help otr"}
	}
	op, args := args[0], args[1:]
	fs := newFlags("otr")
	var so secretOptions
	so.add(fs)
	wait := fs.Duration("wait", 0, "")
	question := fs.String("question", "", "")
	secretFile := fs.String("secret-file", "", "")
	secretEnv := fs.String("secret-env", "", "")
	name := fs.String("name", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *wait < 0 {
		return &usageError{msg: "--wait must not be negative"}
	}
	switch {
	case *wait != 0 && op != "start" && op != "smp" && op != "smp-answer":
		return &usageError{msg: "--wait is for otr start, smp and smp-answer"}
	case *question != "" && op != "smp":
		return &usageError{msg: "--question is for otr smp"}
	case (*secretFile != "" || *secretEnv != "") && op != "smp" && op != "smp-answer":
		return &usageError{msg: "--secret-file and --secret-env are for otr smp and smp-answer"}
	case *name != "" && op != "import-libotr":
		return &usageError{msg: "--name is for otr import-libotr"}
	}
	a := otrArgs{Op: op, Wait: *wait, Question: *question}
	switch op {
	case "start", "end", "smp", "smp-answer", "smp-abort":
		if fs.NArg() != 1 {
			return &usageError{msg: "otr " + op + " needs the contact's full JID", hint: "for example: balcony otr " + op + " bob@example.org/laptop"}
		}
		j, err := jid.Parse(fs.Arg(0))
		if err != nil {
			return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
		}
		a.JID = j.String()
		if op == "smp" || op == "smp-answer" {
			secret, err := readSecret(e, *secretFile, *secretEnv, "Shared secret for "+j.String()+": ", false)
			switch {
			case errors.Is(err, errNoTerminal):
				return &usageError{msg: "no shared secret given", hint: "pass --secret-file FILE or --secret-env VAR, or run on a terminal"}
			case err != nil:
				return fmt.Errorf("reading the shared secret: %w", err)
			case len(secret) == 0:
				return &usageError{msg: "the shared secret must not be empty"}
			}
			a.Secret = secret
			defer clear(secret)
		}
	case "status":
		if fs.NArg() > 1 {
			return &usageError{msg: "otr status takes at most one JID"}
		}
		if fs.NArg() == 1 {
			j, err := jid.Parse(fs.Arg(0))
			if err != nil {
				return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
			}
			a.JID = j.String()
		}
	case "fingerprint":
		if fs.NArg() != 0 {
			return &usageError{msg: "otr fingerprint takes no arguments"}
		}
		return runOTRFingerprint(ctx, e, &so)
	case "verify":
		if fs.NArg() != 1 {
			return &usageError{msg: "otr verify needs the contact's xmpp: URI", hint: "for example: balcony otr verify 'xmpp:bob@example.org?otr-fingerprint=...'"}
		}
		return runOTRVerify(ctx, e, &so, fs.Arg(0))
	case "import-libotr":
		if fs.NArg() != 1 {
			return &usageError{msg: "otr import-libotr needs libotr's private key file", hint: "Pidgin keeps it in ~/.purple/otr.private_key"}
		}
		return runOTRImport(ctx, e, &so, fs.Arg(0), *name)
	case "policy":
		if fs.NArg() > 1 {
			return &usageError{msg: "otr policy takes at most one argument: manual, opportunistic or always"}
		}
		return runOTRPolicy(ctx, e, &so, fs.Args())
	default:
		return &usageError{msg: fmt.Sprintf("unknown otr subcommand %q", op), hint: "run: balcony help otr"}
	}
	acct, err := currentAccount(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait+30*time.Second)
	defer cancel()
	var res otrResult
	err = callControl(ctx, e, acct, "otr", a, &res)
	clear(a.Secret)
	if err != nil {
		return needListener(err, acct)
	}
	printOTR(e, a, res)
	return nil
}

// otrStateText says in words what a state means for the user.
func otrStateText(i otrInfo) string {
	switch i.State {
	case otrclient.StatePrivateVerified.String():
		return "private, verified"
	case otrclient.StatePrivateUnverified.String():
		return "private, unverified"
	case otrclient.StateFinished.String():
		return "finished (the contact ended the private conversation)"
	}
	return "not private"
}

func printOTR(e *env, a otrArgs, res otrResult) {
	s := res.Session
	switch a.Op {
	case "start":
		if a.Wait == 0 {
			fmt.Fprintf(e.stdout, "asked %s for a private conversation\n", s.Peer)
			return
		}
		fmt.Fprintf(e.stdout, "private conversation with %s: %s\n", s.Peer, otrStateText(s))
		printOTRDetails(e, s)
		if s.State == otrclient.StatePrivateUnverified.String() {
			fmt.Fprintf(e.stdout, "verify it with: balcony otr smp %s (or compare the fingerprint over a channel you trust)\n", s.Peer)
		}
	case "end":
		fmt.Fprintf(e.stdout, "ended the private conversation with %s\n", s.Peer)
	case "smp", "smp-answer":
		if a.Wait == 0 {
			if a.Op == "smp" {
				fmt.Fprintf(e.stdout, "asked %s to verify the conversation; the result shows in balcony listen\n", s.Peer)
			} else {
				fmt.Fprintf(e.stdout, "answered the verification request of %s; the result shows in balcony listen\n", s.Peer)
			}
			return
		}
		fmt.Fprintf(e.stdout, "verification succeeded: %s is verified\n", s.Peer)
		printOTRDetails(e, s)
	case "smp-abort":
		fmt.Fprintf(e.stdout, "aborted the verification with %s\n", s.Peer)
	case "status":
		fmt.Fprintf(e.stdout, "own fingerprint %s, policy %s\n", res.Own, res.Policy)
		if len(res.Sessions) == 0 {
			fmt.Fprintln(e.stdout, "no OTR conversations")
			return
		}
		for _, x := range res.Sessions {
			fmt.Fprintf(e.stdout, "%s: %s\n", x.Peer, otrStateText(x))
			printOTRDetails(e, x)
		}
	}
}

func printOTRDetails(e *env, s otrInfo) {
	if s.Fingerprint != "" {
		trust := ""
		if s.Trust != "" {
			trust = " (" + s.Trust + ")"
		}
		fmt.Fprintf(e.stdout, "  fingerprint %s%s\n", s.Fingerprint, trust)
	}
	if s.SSID != "" {
		fmt.Fprintf(e.stdout, "  session id %s, protocol version %d, instance tags %#x (ours) %#x (theirs)\n", s.SSID, s.Version, s.OurInstance, s.TheirInstance)
	}
	if s.SMP {
		fmt.Fprintln(e.stdout, "  verification under way")
	}
}

// handleOTR runs "balcony otr" requests inside the listener.
func handleOTR(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a otrArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	defer clear(a.Secret)
	o := s.otr
	if o == nil {
		return nil, errors.New("this listener has no OTR mechanism")
	}
	pol, _ := o.Policy()
	switch a.Op {
	case "status":
		res := otrResult{Own: o.Fingerprint().String(), Policy: otrPolicyLabel(pol)}
		var want jid.JID
		if a.JID != "" {
			j, err := jid.Parse(a.JID)
			if err != nil {
				return nil, err
			}
			want = j
		}
		for _, st := range o.Sessions(ctx) {
			if want.Domainpart() == "" || st.Peer.Equal(want) || want.Resourcepart() == "" && st.Peer.Bare().Equal(want) {
				res.Sessions = append(res.Sessions, otrInfoOf(st))
			}
		}
		if len(res.Sessions) == 0 && want.Resourcepart() != "" {
			res.Sessions = append(res.Sessions, otrInfoOf(o.Status(ctx, want)))
		}
		return res, nil
	case "policy":
		p, auto, err := otrPolicyByName(a.Policy)
		if err != nil {
			return nil, err
		}
		o.SetPolicy(p, auto)
		return otrResult{Policy: a.Policy}, nil
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
	kinds := func(ks ...client.SecurityKind) func(ev any) bool {
		return func(ev any) bool {
			se, ok := ev.(*client.SecurityEvent)
			if !ok || se.Mechanism != eme.OTR || !se.Peer.Equal(j) {
				return false
			}
			for _, k := range ks {
				if se.Kind == k {
					return true
				}
			}
			return false
		}
	}
	switch a.Op {
	case "start":
		var w *watcher
		if a.Wait > 0 {
			// Registered before starting, so the result cannot be missed.
			w = s.watch(kinds(otrclient.KindPrivate, otrclient.KindVerified))
		}
		if err := o.Start(ctx, j); err != nil {
			if w != nil {
				s.unwatch(w)
			}
			return nil, otrHint(s, err, j)
		}
		if w != nil {
			if _, err := s.wait(wctx, w); err != nil {
				return nil, withHint(fmt.Errorf("no private conversation with %s within %s", j, a.Wait),
					"check that "+j.String()+" is online with an OTR client; its user may have to accept first")
			}
		}
	case "end":
		if err := o.End(ctx, j); err != nil {
			return nil, otrHint(s, err, j)
		}
	case "smp", "smp-answer":
		var outcome, request *watcher
		if a.Wait > 0 {
			outcome = s.watch(kinds(otrclient.KindSMPSucceeded, otrclient.KindSMPFailed, otrclient.KindSMPAborted))
			defer s.unwatch(outcome)
		}
		if a.Op == "smp" {
			err = o.StartSMP(ctx, j, a.Question, a.Secret)
		} else {
			if a.Wait > 0 {
				request = s.watch(kinds(otrclient.KindSMPQuestion, otrclient.KindSMPRequest))
				defer s.unwatch(request)
			}
			err = o.AnswerSMP(ctx, j, a.Secret)
			if errors.Is(err, otr.ErrNoSMP) && request != nil {
				// The request may still be on its way.
				if _, werr := s.wait(wctx, request); werr == nil {
					err = o.AnswerSMP(ctx, j, a.Secret)
				}
			}
		}
		if err != nil {
			return nil, otrHint(s, err, j)
		}
		if outcome != nil {
			ev, err := s.wait(wctx, outcome)
			if err != nil {
				return nil, withHint(fmt.Errorf("no verification result from %s within %s", j, a.Wait),
					"the contact must answer with the same secret: balcony otr smp-answer")
			}
			se := ev.(*client.SecurityEvent)
			if se.Kind != otrclient.KindSMPSucceeded {
				return nil, withHint(errors.New(se.Text), "agree on the secret again over a channel you trust and retry")
			}
		}
	case "smp-abort":
		if err := o.AbortSMP(ctx, j); err != nil {
			return nil, otrHint(s, err, j)
		}
	default:
		return nil, fmt.Errorf("unknown otr request %q", a.Op)
	}
	return otrResult{Session: otrInfoOf(o.Status(ctx, j))}, nil
}

func otrPolicyLabel(p otr.Policy) string {
	for _, n := range []string{"manual", "opportunistic", "advertise", "always"} {
		if q, _, _ := otrPolicyByName(n); q == p {
			return n
		}
	}
	return fmt.Sprintf("%#x", uint32(p))
}

// otrHint adds what to do next to the mechanism's errors.
func otrHint(s *session, err error, j jid.JID) error {
	switch {
	case errors.Is(err, otrclient.ErrFullJID):
		var rs []string
		for _, r := range s.client.Resources(j) {
			rs = append(rs, r.String())
		}
		if len(rs) == 0 {
			return withHint(err, "name the resource, for example: "+j.Bare().String()+"/laptop (no resource of "+j.Bare().String()+" is online as far as this listener knows)")
		}
		return withHint(err, "name the resource; online now: "+strings.Join(rs, ", "))
	case errors.Is(err, otrclient.ErrNoSession):
		return withHint(err, "start one with: balcony otr start "+j.String())
	case errors.Is(err, otr.ErrNoSMP):
		return withHint(err, "wait for the contact's request (--wait DUR), or start one with: balcony otr smp "+j.String())
	}
	return err
}

func runOTRFingerprint(ctx context.Context, e *env, so *secretOptions) error {
	a, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	key, created, err := otrOwnKey(ctx, st, true)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(e.stderr, "balcony: created an OTR key for %s\n", a.JID)
	}
	j, err := jid.Parse(a.JID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", a.JID, key.Fingerprint())
	fmt.Fprintln(e.stdout, otrclient.FingerprintURI(j, key.Fingerprint()))
	return nil
}

func runOTRVerify(ctx context.Context, e *env, so *secretOptions, uri string) error {
	j, f, err := otrclient.ParseFingerprintURI(uri)
	if err != nil {
		return &usageError{msg: err.Error(), hint: "the URI looks like xmpp:bob@example.org?otr-fingerprint=<40 hex digits>"}
	}
	a, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	if j.String() == a.JID {
		return &usageError{msg: "that is this account's own fingerprint"}
	}
	if err := st.SetTrust(ctx, j.String(), store.OTR, strings.ToUpper(f.Hex()), store.Verified); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "marked %s's OTR fingerprint %s verified\n", j, f)
	return nil
}

func runOTRImport(ctx context.Context, e *env, so *secretOptions, file, name string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	defer clear(data)
	keys, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	a, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	var pick []otr.AccountKey
	var names []string
	for _, k := range keys {
		names = append(names, k.Account+" ("+k.Protocol+")")
		switch {
		case name != "" && k.Account == name:
			pick = append(pick, k)
		case name == "" && libotrAccountIs(k.Account, a.JID):
			pick = append(pick, k)
		}
	}
	switch {
	case len(pick) == 0 && name != "":
		return withHint(fmt.Errorf("%s has no key for the libotr account %q", file, name), "it holds: "+strings.Join(names, ", "))
	case len(pick) == 0:
		return withHint(fmt.Errorf("%s has no key for %s", file, a.JID), "pick one with --name; it holds: "+strings.Join(names, ", "))
	case len(pick) > 1 && !sameKeys(pick):
		return withHint(fmt.Errorf("%s has several keys for %s", file, a.JID), "pick one with --name; it holds: "+strings.Join(names, ", "))
	}
	k := pick[0]
	if err := otrStoreKey(ctx, st, k.Key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "imported the OTR key of libotr account %s (%s) for %s: %s\n", k.Account, k.Protocol, a.JID, k.Key.Fingerprint())
	if err := callControl(ctx, e, a, "status", nil, nil); err == nil {
		fmt.Fprintln(e.stderr, "balcony: the running balcony listen keeps using the previous key until it is restarted")
	}
	return nil
}

// libotrAccountIs reports whether a libotr account name (libpurple writes
// "user@example.org/Resource") belongs to the bare JID.
func libotrAccountIs(account, bare string) bool {
	j, err := jid.Parse(account)
	return err == nil && j.Bare().String() == bare
}

func sameKeys(ks []otr.AccountKey) bool {
	for _, k := range ks[1:] {
		if !k.Key.Public().Equal(ks[0].Key.Public()) {
			return false
		}
	}
	return true
}

func runOTRPolicy(ctx context.Context, e *env, so *secretOptions, args []string) error {
	if len(args) == 1 {
		if _, _, err := otrPolicyByName(args[0]); err != nil {
			return err
		}
	}
	a, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	if len(args) == 0 {
		name, err := otrPolicyName(ctx, st)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "OTR policy: %s\n", name)
		return nil
	}
	if err := st.SetSetting(ctx, settingOTRPolicy, args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "OTR policy: %s\n", args[0])
	// A running listener applies it to its new conversations.
	err = callControl(ctx, e, a, "otr", otrArgs{Op: "policy", Policy: args[0]}, nil)
	if err != nil && !errors.Is(err, errNoListener) {
		fmt.Fprintf(e.stderr, "balcony: the running listener did not take the new policy (%v); restart it\n", err)
	}
	return nil
}
