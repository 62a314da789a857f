package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	esclient "github.com/balcony-im/balcony/client/esession"
	"github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/store"
)

// This file is the part of "balcony esession" beyond XEP-0217 sessions
// compared by SAS: public-key identities (XEP-0116, XEP-0189), a password
// shared with the contact (XEP-0116 "other shared secret"), re-keying
// (XEP-0200 §9), renegotiation and moving a session to another resource
// (XEP-0155 §5-§6), offline sessions (XEP-0187) and the logging policy
// (XEP-0136).

// Settings of the Encrypted Sessions mechanism in the account's store.
const (
	// settingESessionLogging is "may" (default) or "mustnot".
	settingESessionLogging = "esession.logging"
	// settingESessionRekey is the rekey_freq asked for: a number of
	// stanzas, or "never".
	settingESessionRekey = "esession.rekey"
	// settingESessionOffline is how long the offline session options a
	// listener publishes when it stops stay usable, or "off" (default).
	settingESessionOffline = "esession.offline"
)

// defaultRekeyFreq is the rekey_freq the command asks for unless the
// policy says otherwise: a key exchange every 1000 stanzas at most.
const defaultRekeyFreq = 1000

// defaultOfflineValidity is how long published offline session options
// stay usable unless --valid says otherwise.
const defaultOfflineValidity = 7 * 24 * time.Hour

// esessionConfig reads the user's Encrypted Sessions settings.
func esessionConfig(ctx context.Context, st store.AccountStore) (esclient.Config, error) {
	cfg := esclient.Config{Secrets: storeSecrets{st}, Store: st, Offline: st,
		AcceptPolicy: esclient.AskUser, Logging: esession.LoggingMay, RekeyFreq: defaultRekeyFreq}
	get := func(name string) (string, error) {
		v, err := st.Setting(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return strings.TrimSpace(v), err
	}
	v, err := get(settingESessionAccept)
	if err != nil {
		return cfg, err
	}
	if v == "subscribed" {
		cfg.AcceptPolicy = esclient.AcceptSubscribed
	}
	if v, err = get(settingESessionLogging); err != nil {
		return cfg, err
	}
	if v == esession.LoggingMustNot {
		cfg.Logging = esession.LoggingMustNot
	}
	if v, err = get(settingESessionRekey); err != nil {
		return cfg, err
	}
	switch n, perr := strconv.ParseUint(v, 10, 32); {
	case v == "never":
		cfg.RekeyFreq = esession.MaxRekeyFreq
	case perr == nil && n > 0:
		cfg.RekeyFreq = uint32(n)
	}
	if v, err = get(settingESessionOffline); err != nil {
		return cfg, err
	}
	if d, perr := time.ParseDuration(v); perr == nil && d > 0 {
		cfg.OfflineLifetime = d
	}
	return cfg, nil
}

// esessionOnline withdraws the offline session options published while
// the account was away, now that it is online (XEP-0187 §3.4 step 1):
// their secrets stay until they expire, so that sessions the server holds
// can still be read.
func esessionOnline(ctx context.Context, s *session) error {
	es := s.esession
	if es == nil || es.Key() == "" {
		return nil
	}
	if err := es.WithdrawOffline(ctx); err != nil {
		return fmt.Errorf("withdrawing the offline session options: %w", err)
	}
	return nil
}

// sharedSecretFlags read a password shared with the contact.
type sharedSecretFlags struct {
	ask        *bool
	file, envv *string
}

func addSharedSecretFlags(fs interface {
	Bool(string, bool, string) *bool
	String(string, string, string) *string
}) sharedSecretFlags {
	return sharedSecretFlags{ask: fs.Bool("secret", false, ""), file: fs.String("secret-file", "", ""), envv: fs.String("secret-env", "", "")}
}

func (f sharedSecretFlags) given() bool { return *f.ask || *f.file != "" || *f.envv != "" }

// read reads the shared password: from the file, the environment, or
// the terminal without echo.
func (f sharedSecretFlags) read(e *env, peer string) ([]byte, error) {
	secret, err := readSecret(e, *f.file, *f.envv, "Password shared with "+peer+" (not shown): ", false)
	switch {
	case errors.Is(err, errNoTerminal):
		return nil, &usageError{msg: "no terminal to ask for the shared password on", hint: "pass --secret-file FILE or --secret-env VAR"}
	case err != nil:
		return nil, fmt.Errorf("reading the shared password: %w", err)
	case len(secret) == 0:
		return nil, &usageError{msg: "the shared password must not be empty"}
	}
	return secret, nil
}

// parseESessionOp checks the arguments of the subcommands of this file
// and fills a; it reports false for a subcommand it does not know.
func parseESessionOp(e *env, op string, args []string, a *esessionArgs) (bool, error) {
	needJID := func(i int) (string, error) {
		j, err := jid.Parse(args[i])
		if err != nil {
			return "", &usageError{msg: fmt.Sprintf("invalid JID %q: %v", args[i], err)}
		}
		return j.String(), nil
	}
	var err error
	switch op {
	case "keygen", "publish":
		if len(args) != 0 {
			return true, &usageError{msg: "esession " + op + " takes no arguments"}
		}
	case "fetch", "rekey":
		if len(args) != 1 {
			return true, &usageError{msg: "esession " + op + " needs a JID"}
		}
		a.JID, err = needJID(0)
	case "renegotiate":
		if len(args) != 2 || args[1] != esession.LoggingMay && args[1] != esession.LoggingMustNot {
			return true, &usageError{msg: "esession renegotiate needs a JID and may or mustnot", hint: "for example: balcony esession renegotiate bob@example.org mustnot"}
		}
		a.JID, err = needJID(0)
		a.Logging = args[1]
	case "continue":
		if len(args) != 2 || args[1] == "" || strings.Contains(args[1], "/") {
			return true, &usageError{msg: "esession continue needs a JID and the resource of yours that takes the session over"}
		}
		a.JID, err = needJID(0)
		a.Resource = args[1]
	case "handover":
		if len(args) != 2 {
			return true, &usageError{msg: "esession handover needs a JID and the file to write the session to"}
		}
		a.JID, err = needJID(0)
	case "adopt":
		if len(args) != 1 {
			return true, &usageError{msg: "esession adopt needs the file esession handover wrote"}
		}
		b, rerr := os.ReadFile(args[0])
		if rerr != nil {
			return true, rerr
		}
		a.State = b
	case "offline":
		if len(args) == 0 {
			return true, &usageError{msg: "esession offline needs publish, withdraw or start"}
		}
		switch sub := args[0]; {
		case sub == "publish" && len(args) == 1, sub == "withdraw" && len(args) == 1:
			a.Op = "offline-" + sub
		case sub == "start" && len(args) >= 2:
			a.Op = "offline-start"
			a.JID, err = needJID(1)
			a.Body = strings.Join(args[2:], " ")
			if a.Body == "-" {
				b, rerr := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
				if rerr != nil {
					return true, rerr
				}
				a.Body = strings.TrimRight(string(b), "\n")
			}
		default:
			return true, &usageError{msg: "usage: balcony esession offline publish [--valid DUR] | withdraw | start JID [TEXT]"}
		}
	default:
		return false, nil
	}
	return true, err
}

// handleESessionOp runs the requests of this file inside the listener.
func handleESessionOp(ctx context.Context, es *esclient.Mechanism, a esessionArgs) (esessionResult, error) {
	var res esessionResult
	var err error
	switch a.Op {
	case "keygen":
		if res.Key, err = es.GenerateKey(ctx, 0); err != nil {
			return res, err
		}
		_, err = es.PublishKey(ctx)
		return res, err
	case "publish":
		res.Key, err = es.PublishKey(ctx)
		if err != nil && es.Key() == "" {
			err = withHint(err, "make one with: balcony esession keygen")
		}
		return res, err
	case "offline-publish":
		valid := a.Valid
		if valid <= 0 {
			valid = defaultOfflineValidity
		}
		res.Expires, err = es.PublishOffline(ctx, time.Now().Add(valid))
		if errors.Is(err, esclient.ErrNoOffline) {
			err = withHint(err, "make a key first: balcony esession keygen")
		}
		return res, err
	case "offline-withdraw":
		return res, es.WithdrawOffline(ctx)
	}
	j, err := jid.Parse(a.JID)
	if err != nil {
		return res, err
	}
	switch a.Op {
	case "fetch":
		res.Key, err = es.FetchKey(ctx, j)
		if err == nil && res.Key == "" {
			err = fmt.Errorf("%s published no Encrypted Sessions key", j.Bare())
		}
	case "rekey":
		res.Session, err = es.Rekey(ctx, j)
		if errors.Is(err, esclient.ErrRekeyNotAgreed) {
			err = withHint(err, "the session was agreed without key exchanges; set: balcony esession policy rekey N, then start a new session")
		} else if errors.Is(err, esession.ErrRekeyTooSoon) {
			err = withHint(err, "the session agreed on a number of stanzas between key exchanges (balcony esession status shows it); try again later")
		}
	case "renegotiate":
		res.Session, err = es.Renegotiate(ctx, j, a.Logging)
	case "continue":
		res.Session, err = es.Continue(ctx, j, a.Resource)
		if err == nil && a.Wait > 0 {
			wctx, cancel := context.WithTimeout(ctx, a.Wait)
			defer cancel()
			res.Session, err = es.WaitFor(wctx, j, res.Session.Thread, func(i esclient.Info) bool { return i.State == "moved" || i.State == "ended" })
			if err != nil {
				err = withHint(fmt.Errorf("%s did not agree to continue the session within %s", j, a.Wait), "the contact may be offline; balcony esession status shows the session")
			} else if res.Session.State != "moved" {
				err = fmt.Errorf("the Encrypted Session with %s ended instead of moving: %s", j, res.Session.EndReason)
			}
		}
	case "handover":
		res.State, res.Session, err = es.Handover(j)
		if errors.Is(err, esclient.ErrNoSession) {
			err = withHint(err, "move it first: balcony esession continue "+j.Bare().String()+" RESOURCE, and wait until the contact agreed (balcony esession status: moved)")
		}
	case "offline-start":
		res.Session, err = es.StartOffline(ctx, j, a.Body)
		switch {
		case errors.Is(err, esclient.ErrPeerOnline):
			err = withHint(err, "start an online session: balcony esession start "+j.Bare().String())
		case errors.Is(err, esclient.ErrNoOffline):
			err = withHint(err, "make a key first: balcony esession keygen")
		}
	default:
		return res, fmt.Errorf("unknown esession request %q", a.Op)
	}
	if _, hinted := errors.AsType[*hintError](err); err != nil && !hinted {
		err = esessionHint(err, j)
	}
	return res, err
}

// runESessionOpLocal does what the command does itself around the
// listener's answer: writing the handed-over session to its file, and
// destroying the file an adopted session came from.
func runESessionOpLocal(e *env, a esessionArgs, args []string, res esessionResult) error {
	switch a.Op {
	case "handover":
		defer clear(res.State)
		f, err := os.OpenFile(args[1], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return withHint(fmt.Errorf("the session is handed over but could not be written: %w", err),
				"it is lost: start a new session from the other resource")
		}
		_, err = f.Write(res.State)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case "adopt":
		clear(a.State)
		return destroyFile(args[0])
	}
	return nil
}

// destroyFile overwrites a file holding session keys and removes it.
func destroyFile(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil {
		_, err = f.Write(make([]byte, fi.Size()))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// printESessionOp prints the result of a request of this file.
func printESessionOp(e *env, a esessionArgs, args []string, res esessionResult) {
	s := res.Session
	switch a.Op {
	case "keygen":
		fmt.Fprintf(e.stdout, "made and published the Encrypted Sessions key %s\n", res.Key)
	case "publish":
		fmt.Fprintf(e.stdout, "published the Encrypted Sessions key %s\n", res.Key)
	case "fetch":
		fmt.Fprintf(e.stdout, "%s\n", res.Key)
		fmt.Fprintf(e.stderr, "balcony: decide about it after comparing it with the contact: balcony trust --mechanism esession %s FINGERPRINT verified\n", esession.Bare(a.JID))
	case "rekey":
		fmt.Fprintf(e.stdout, "sent new keys in the Encrypted Session with %s\n", s.Peer)
	case "renegotiate":
		fmt.Fprintf(e.stdout, "asked %s to renegotiate logging to %s; balcony esession status shows what was agreed\n", s.Peer, a.Logging)
	case "continue":
		if s.State == "moved" {
			fmt.Fprintf(e.stdout, "%s agreed to continue the Encrypted Session with %s; now run: balcony esession handover %s FILE\n", s.Peer, a.Resource, esession.Bare(s.Peer))
			return
		}
		fmt.Fprintf(e.stdout, "asked %s to continue the Encrypted Session with %s; once it is \"moved\", run: balcony esession handover %s FILE\n", s.Peer, a.Resource, esession.Bare(s.Peer))
	case "handover":
		fmt.Fprintf(e.stdout, "handed over the Encrypted Session with %s to %s; carry it to the other resource over a channel you trust and run there: balcony esession adopt %s\n", s.Peer, args[1], args[1])
	case "adopt":
		fmt.Fprintf(e.stdout, "took over the Encrypted Session with %s (thread %s)\n", s.Peer, s.Thread)
	case "offline-publish":
		fmt.Fprintf(e.stdout, "published offline session options valid until %s\n", res.Expires.UTC().Format(time.RFC3339))
	case "offline-withdraw":
		fmt.Fprintln(e.stdout, "withdrew the offline session options")
	case "offline-start":
		fmt.Fprintf(e.stdout, "started an offline Encrypted Session with %s (thread %s); it reads it when it comes back\n", s.Peer, s.Thread)
	}
}

// esessionPolicySetting checks "policy logging [may|mustnot]", "policy
// rekey [N|never]" and "policy offline [DUR|off]" and returns the setting and the new value
// ("" to show it).
func esessionPolicySetting(args []string) (name, value string, err error) {
	switch args[0] {
	case "logging":
		if len(args) == 2 && args[1] != esession.LoggingMay && args[1] != esession.LoggingMustNot {
			return "", "", &usageError{msg: fmt.Sprintf("unknown logging policy %q", args[1]), hint: "use may or mustnot"}
		}
		name = settingESessionLogging
	case "offline":
		if len(args) == 2 && args[1] != "off" {
			if d, err := time.ParseDuration(args[1]); err != nil || d < time.Minute {
				return "", "", &usageError{msg: fmt.Sprintf("invalid offline policy %q", args[1]), hint: "use a duration of a minute or more (for example 168h) or off"}
			}
		}
		name = settingESessionOffline
	case "rekey":
		if len(args) == 2 && args[1] != "never" {
			if n, err := strconv.ParseUint(args[1], 10, 32); err != nil || n == 0 || n >= uint64(esession.MaxRekeyFreq) {
				return "", "", &usageError{msg: fmt.Sprintf("invalid rekey policy %q", args[1]), hint: "use a number of stanzas (1 to 4294967294) or never"}
			}
		}
		name = settingESessionRekey
	}
	if len(args) == 2 {
		value = args[1]
	}
	return name, value, nil
}

// esessionPolicyDefault is the value of a policy setting never set.
func esessionPolicyDefault(name string) string {
	switch name {
	case settingESessionLogging:
		return esession.LoggingMay
	case settingESessionRekey:
		return strconv.Itoa(defaultRekeyFreq)
	case settingESessionOffline:
		return "off"
	}
	return "ask"
}

// esessionSlashHint lists the /esession commands of balcony chat and the
// full-screen client.
const esessionSlashHint = "/esession start [keys|secret]|accept [secret]|decline|sas|confirm SAS|reject|rekey|renegotiate may|mustnot|end|status"

// slashESession reads "/esession OP REST" typed in a conversation with
// peer; password is the one read without echo for "start secret" and
// "accept secret".
func slashESession(op, rest, peer string, password []byte) (esessionArgs, error) {
	a := esessionArgs{Op: op, JID: peer}
	switch op {
	case "start", "accept":
		a.Wait = 30 * time.Second
		switch {
		case rest == "secret" && len(password) > 0:
			a.Password = password
		case rest == "keys" && op == "start":
			a.ThreeMessage = true
		case rest != "":
			return a, &usageError{msg: "usage: /esession start [keys|secret] or /esession accept [secret]",
				hint: "keys: both identify with their public keys; secret: a password shared with the contact, asked for without echo"}
		}
	case "end":
		a.Wait = 30 * time.Second
	case "rekey":
	case "renegotiate":
		if rest != esession.LoggingMay && rest != esession.LoggingMustNot {
			return a, &usageError{msg: "usage: /esession renegotiate may|mustnot"}
		}
		a.Logging = rest
	case "decline":
		a.Reason = rest
	case "confirm":
		if a.SAS = strings.TrimSpace(rest); a.SAS == "" {
			return a, &usageError{msg: "/esession confirm needs the SAS you compared", hint: "/esession sas shows it; compare it with the contact, then: /esession confirm SAS"}
		}
	case "sas", "reject":
	case "status":
		a.JID = ""
	default:
		return a, &usageError{msg: "unknown /esession command " + op, hint: esessionSlashHint}
	}
	return a, nil
}

// printESessionResult prints the result of any esession request.
func printESessionResult(e *env, a esessionArgs, res esessionResult) {
	if a.Op == "rekey" || a.Op == "renegotiate" {
		printESessionOp(e, a, nil, res)
		return
	}
	printESession(e, a, res)
}
