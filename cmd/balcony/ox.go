package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	oxclient "github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
)

const oxUsage = `Usage: balcony ox keygen [--rsa] [--force] [--no-publish]
       balcony ox publish
       balcony ox discover JID
       balcony ox keys [JID]
       balcony ox fingerprint
       balcony ox import [--activate] FILE
       balcony ox export [--secret] [--armor] [--output FILE]
       balcony ox backup [--code-file FILE]
       balcony ox restore [--code-file FILE] [--code-env VAR]
       balcony ox withdraw FPR
       balcony ox force JID on|off

OpenPGP for XMPP (XEP-0373 v0.7, Experimental; IM profile XEP-0374,
Deferred). Messages are signed and encrypted (<signcrypt/>) to every key the
contact announces that you did not mark untrusted, and to all of your own
keys, so that your other devices and the server archive can read them. Send
with: balcony send --ox JID TEXT

  keygen       make the account's OpenPGP key (v4 EdDSA/Cv25519, or RSA-3072
               with --rsa; user ID xmpp:<your JID>, no expiry) and announce
               it on your server (PEP, readable by anyone). With --force a
               new key replaces the active one: the old key is no longer
               announced but kept to read old messages. --no-publish only
               stores it.
  publish      announce the active key again (the key list keeps your other
               devices' keys).
  discover     fetch the keys JID announces, record them, and show their
               fingerprints and trust. A contact's first key is trusted on
               first use ("blind"); later keys are "undecided" until you
               decide with "balcony trust". Messages count as verified only
               when signed by a key you marked verified.
  keys         list own and contacts' OX keys (balcony keys --mechanism ox).
  fingerprint  print the active key's fingerprint, to compare out of band.
  import       add a secret key from FILE (binary or ASCII armored; "-" for
               standard input) as an own key; its user ID must be
               xmpp:<your JID>. A passphrase-protected key is unlocked with
               --key-passphrase-file F or $BALCONY_KEY_PASSPHRASE (or a
               prompt). --activate makes it the signing and announced key.
  export       write the active public key (with --secret: the secret key,
               unprotected) to standard output or --output FILE (created
               with mode 0600, never overwritten); --armor for ASCII armor.
  backup       encrypt all own secret keys with a new backup code and store
               them on your server (XEP-0373 §5: a whitelist node only your
               account can read). The code is printed once and not kept;
               --code-file FILE writes it to a new 0600 file instead.
  restore      fetch the backup and decrypt it with the backup code (from
               --code-file, the variable named by --code-env, default
               BALCONY_BACKUP_CODE, or a prompt; never from the command
               line); every key in it becomes an own key.
  withdraw     remove one of your old keys (FPR) from the key list your
               server announces, e.g. the key of a lost device or store, so
               that contacts stop encrypting to it. The active key of this
               device cannot be withdrawn: replace it first (keygen --force).
  force        "on" requires OX for JID (policy require:ox): balcony send
               refuses to send to JID in the clear or with a weaker
               mechanism, and plaintext from JID is shown with a warning,
               against downgrade attacks. "off" returns to the default.

Commands that need the server act through a running "balcony listen" of the
account when there is one, and connect on their own otherwise.

Flags:
  --rsa                  keygen: RSA-3072 instead of EdDSA/Cv25519
  --force                keygen: replace an existing active key
  --no-publish           keygen: do not announce the key
  --activate             import: make the key the active one
  --key-passphrase-file F  import: read the key's passphrase from F
  --secret, --armor, --output FILE   export
  --code-file FILE       backup: write the code to FILE; restore: read it
  --code-env VAR         restore: read the code from VAR (default BALCONY_BACKUP_CODE)
` + secretFlagsUsage

var oxCommand = &command{
	name:    "ox",
	summary: "OpenPGP for XMPP: keys, announcement, backup, force OX",
	usage:   oxUsage,
	run:     runOX,
}

// controlOX serves "ox" on the control socket.
func controlOX(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a oxArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return doOX(ctx, s, a)
}

// setupOX registers the OX mechanism with the account's keys: enabled when
// the account has one, otherwise disabled with a hint to make one.
func setupOX(ctx context.Context, s *session) error {
	x, err := oxclient.New(oxclient.Config{Store: s.store})
	if err != nil {
		return fmt.Errorf("OpenPGP for XMPP: %w", err)
	}
	if err := s.client.Register(x); err != nil {
		return fmt.Errorf("OpenPGP for XMPP: %w", err)
	}
	s.ox = x
	return nil
}

// oxArgs is a request of "balcony ox" that needs the server; it runs in
// the account's listener or in a connection of its own.
type oxArgs struct {
	Op      string `json:"op"` // keygen, publish, discover, backup, restore, reload, force
	RSA     bool   `json:"rsa,omitempty"`
	Force   bool   `json:"force,omitempty"`
	Publish bool   `json:"publish,omitempty"`
	Contact string `json:"contact,omitempty"`
	Code    string `json:"code,omitempty"`
	On      bool   `json:"on,omitempty"`
	// Fingerprint is the key to withdraw.
	Fingerprint string `json:"fingerprint,omitempty"`
}

type oxKeyInfo struct {
	Fingerprint string    `json:"fingerprint"`
	Trust       string    `json:"trust,omitempty"`
	Announced   bool      `json:"announced,omitempty"`
	Algorithm   string    `json:"algorithm,omitempty"`
	Created     time.Time `json:"created"`
}

type oxResult struct {
	Key      *oxKeyInfo  `json:"key,omitempty"`
	Keys     []oxKeyInfo `json:"keys,omitempty"`
	Problems []string    `json:"problems,omitempty"`
	Code     string      `json:"code,omitempty"`
	Added    []string    `json:"added,omitempty"`
	Existing []string    `json:"existing,omitempty"`
	Active   string      `json:"active,omitempty"`
}

// doOX runs a request in a connected session.
func doOX(ctx context.Context, s *session, a oxArgs) (*oxResult, error) {
	x := s.ox
	if x == nil {
		return nil, errors.New("OpenPGP for XMPP is not set up in this session")
	}
	res := &oxResult{}
	switch a.Op {
	case "keygen":
		k, err := generateOXKey(ctx, s.acct, s.store, a.RSA, a.Force)
		if err != nil {
			return nil, err
		}
		res.Key = &oxKeyInfo{Fingerprint: k.Fingerprint(), Algorithm: k.Algorithm(), Created: k.Created()}
		if err := x.LoadKeys(ctx); err != nil {
			return nil, err
		}
		if a.Publish {
			if err := x.Publish(ctx); err != nil {
				return res, withHint(fmt.Errorf("the key was stored but not announced: %w", err), "try again with: balcony ox publish")
			}
		}
	case "reload":
		if err := x.LoadKeys(ctx); err != nil {
			return nil, err
		}
	case "publish":
		if err := x.Publish(ctx); err != nil {
			return nil, oxHint(err)
		}
		k := x.Keys()[0]
		res.Key = &oxKeyInfo{Fingerprint: k.Fingerprint(), Algorithm: k.Algorithm(), Created: k.Created()}
	case "discover":
		j, err := jid.Parse(a.Contact)
		if err != nil {
			return nil, err
		}
		d, err := x.Discover(ctx, j)
		if err != nil {
			return nil, err
		}
		for _, k := range d.Keys {
			res.Keys = append(res.Keys, oxKeyInfo{Fingerprint: k.Fingerprint, Trust: k.Trust.String(), Announced: k.Announced,
				Algorithm: k.Algorithm, Created: k.Created})
		}
		for _, p := range d.Problems {
			res.Problems = append(res.Problems, strings.TrimPrefix(p.Error(), "ox: "))
		}
	case "backup":
		code, err := x.Backup(ctx)
		if err != nil {
			return nil, oxHint(err)
		}
		res.Code = code
	case "restore":
		r, err := x.Restore(ctx, a.Code)
		if err != nil {
			return nil, oxHint(err)
		}
		res.Added, res.Existing, res.Active = r.Added, r.Existing, r.Active
		for _, p := range r.Problems {
			res.Problems = append(res.Problems, strings.TrimPrefix(p.Error(), "ox: "))
		}
	case "withdraw":
		if err := x.Withdraw(ctx, a.Fingerprint); err != nil {
			switch {
			case errors.Is(err, oxclient.ErrActiveKey):
				return nil, withHint(err, "make a new key first with: balcony ox keygen --force")
			case errors.Is(err, oxclient.ErrNotAnnounced):
				return nil, withHint(err, "see the announced keys with: balcony ox discover "+s.acct.JID)
			}
			return nil, oxHint(err)
		}
	case "force":
		j, err := jid.Parse(a.Contact)
		if err != nil {
			return nil, err
		}
		pol := eme.Policy{}
		if a.On {
			pol = eme.Policy{Mode: eme.RequireEncryption, Mechanism: eme.OX}
		} else if s.acct.Policy != "" {
			if pol, err = eme.ParsePolicy(s.acct.Policy); err != nil {
				return nil, err
			}
		}
		s.client.Pipeline().SetPolicy(j, pol)
	default:
		return nil, fmt.Errorf("unknown ox request %q", a.Op)
	}
	return res, nil
}

// oxHint adds what to do to the errors a user can fix.
func oxHint(err error) error {
	switch {
	case errors.Is(err, oxclient.ErrNoOwnKey):
		return withHint(err, "make one with: balcony ox keygen (or restore one with: balcony ox restore)")
	case errors.Is(err, oxclient.ErrNoBackup):
		return withHint(err, "make one on a device that has the key with: balcony ox backup")
	case errors.Is(err, ox.ErrDecrypt):
		return withHint(errors.New("the backup could not be decrypted: wrong backup code?"), "the code has six groups of four characters, e.g. TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW")
	case errors.Is(err, ox.ErrBackupCode):
		return withHint(err, "the code has six groups of four characters, e.g. TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW")
	}
	var se *client.StanzaError
	if errors.As(err, &se) && se.Condition == "policy-violation" {
		// XEP-0373 §8.2: servers may refuse large keys.
		return withHint(err, "the server refused the data, probably as too large; an EdDSA key (balcony ox keygen --force) is much smaller than an RSA one")
	}
	var ce *client.NodeConfigError
	if errors.As(err, &ce) {
		return withHint(err, "the server does not apply the node configuration OX needs; ask its administrator")
	}
	return err
}

// runOXRequest runs a request through the account's listener, or in a
// connection of its own when none runs.
func runOXRequest(ctx context.Context, e *env, so *secretOptions, a oxArgs) (*oxResult, error) {
	acct, err := currentAccount(e)
	if err != nil {
		return nil, err
	}
	var res oxResult
	err = callControl(ctx, e, acct, "ox", a, &res)
	if !errors.Is(err, errNoListener) {
		return &res, err
	}
	sess, err := connectOnce(ctx, e, so)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return doOX(ctx, sess, a)
}

// notifyListener asks a running listener to apply a change made in the
// store; without a listener there is nothing to do.
func notifyListener(ctx context.Context, e *env, a oxArgs) error {
	acct, err := currentAccount(e)
	if err != nil {
		return err
	}
	if err := callControl(ctx, e, acct, "ox", a, nil); err != nil && !errors.Is(err, errNoListener) {
		return err
	}
	return nil
}

// generateOXKey makes and stores a new active key for the account.
func generateOXKey(ctx context.Context, acct *accountConfig, st store.AccountStore, rsa, force bool) (*ox.Key, error) {
	own, err := st.OwnKeys(ctx, store.OX)
	if err != nil {
		return nil, err
	}
	for _, k := range own {
		if k.Active && !force {
			return nil, withHint(fmt.Errorf("%s already has the OpenPGP key %s", acct.JID, displayFingerprint(store.OX, k.Fingerprint)),
				"to replace it as the signing and announced key: balcony ox keygen --force (the old key is kept to read old messages)")
		}
	}
	j, err := jid.Parse(acct.JID)
	if err != nil {
		return nil, err
	}
	alg := ox.EdDSA25519
	if rsa {
		alg = ox.RSA3072
	}
	k, err := ox.GenerateKey(j, alg, nil)
	if err != nil {
		return nil, err
	}
	if err := oxclient.StoreKey(ctx, st, k, true); err != nil {
		return nil, err
	}
	return k, nil
}

func runOX(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "ox needs a subcommand", hint: "run: balcony help ox"}
	}
	op, args := args[0], args[1:]
	fs := newFlags("ox")
	var so secretOptions
	so.add(fs)
	rsa := fs.Bool("rsa", false, "")
	force := fs.Bool("force", false, "")
	noPublish := fs.Bool("no-publish", false, "")
	activate := fs.Bool("activate", false, "")
	keyPassFile := fs.String("key-passphrase-file", "", "")
	secret := fs.Bool("secret", false, "")
	armor := fs.Bool("armor", false, "")
	output := fs.String("output", "", "")
	fs.StringVar(output, "o", "", "")
	codeFile := fs.String("code-file", "", "")
	codeEnv := fs.String("code-env", "BALCONY_BACKUP_CODE", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	nargs := func(n int, what string) error {
		if fs.NArg() != n {
			return &usageError{msg: "ox " + op + " " + what, hint: "run: balcony help ox"}
		}
		return nil
	}
	contact := func() (jid.JID, error) {
		j, err := jid.Parse(fs.Arg(0))
		if err != nil {
			return jid.JID{}, &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
		}
		return j.Bare(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch op {
	case "keygen":
		if err := nargs(0, "takes no arguments"); err != nil {
			return err
		}
		return oxKeygen(ctx, e, &so, *rsa, *force, !*noPublish)
	case "publish":
		if err := nargs(0, "takes no arguments"); err != nil {
			return err
		}
		res, err := runOXRequest(ctx, e, &so, oxArgs{Op: "publish"})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "announced OpenPGP key %s (readable by anyone)\n", displayFingerprint(store.OX, res.Key.Fingerprint))
		return nil
	case "discover":
		if err := nargs(1, "needs a JID"); err != nil {
			return err
		}
		j, err := contact()
		if err != nil {
			return err
		}
		res, err := runOXRequest(ctx, e, &so, oxArgs{Op: "discover", Contact: j.String()})
		if err != nil {
			return err
		}
		return printDiscovery(e, j, res)
	case "keys":
		if fs.NArg() > 1 {
			return &usageError{msg: "ox keys takes at most one JID", hint: "run: balcony help ox"}
		}
		return runKeys(ctx, e, append([]string{"--mechanism", "ox"}, args...))
	case "fingerprint":
		if err := nargs(0, "takes no arguments"); err != nil {
			return err
		}
		_, st, err := openAccount(e, &so)
		if err != nil {
			return err
		}
		defer st.Close()
		k, err := st.ActiveOwnKey(ctx, store.OX)
		if errors.Is(err, store.ErrNotFound) {
			return oxHint(oxclient.ErrNoOwnKey)
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, k.Fingerprint)
		return nil
	case "import":
		if err := nargs(1, "needs a FILE"); err != nil {
			return err
		}
		return oxImport(ctx, e, &so, fs.Arg(0), *activate, *keyPassFile)
	case "export":
		if err := nargs(0, "takes no arguments"); err != nil {
			return err
		}
		return oxExport(ctx, e, &so, *secret, *armor, *output)
	case "backup":
		if err := nargs(0, "takes no arguments"); err != nil {
			return err
		}
		return oxBackup(ctx, e, &so, *codeFile)
	case "restore":
		if err := nargs(0, "takes no arguments (the code comes from --code-file, $"+*codeEnv+" or a prompt)"); err != nil {
			return err
		}
		return oxRestore(ctx, e, &so, *codeFile, *codeEnv)
	case "withdraw":
		if err := nargs(1, "needs the fingerprint of the key to withdraw"); err != nil {
			return err
		}
		fpr, err := store.NormalizeFingerprint(store.OX, fs.Arg(0))
		if err != nil {
			return &usageError{msg: fmt.Sprintf("ox withdraw: %q is not an OpenPGP fingerprint: %v", fs.Arg(0), err)}
		}
		if _, err := runOXRequest(ctx, e, &so, oxArgs{Op: "withdraw", Fingerprint: fpr}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "withdrew OpenPGP key %s: it is no longer announced\n", displayFingerprint(store.OX, fpr))
		return nil
	case "force":
		if err := nargs(2, "needs a JID and on or off"); err != nil {
			return err
		}
		j, err := contact()
		if err != nil {
			return err
		}
		switch fs.Arg(1) {
		case "on", "off":
		default:
			return &usageError{msg: fmt.Sprintf("ox force: %q is neither on nor off", fs.Arg(1)), hint: "balcony ox force " + j.String() + " on"}
		}
		return oxForce(ctx, e, &so, j, fs.Arg(1) == "on")
	}
	return &usageError{msg: fmt.Sprintf("unknown ox subcommand %q", op), hint: "run: balcony help ox"}
}

func oxKeygen(ctx context.Context, e *env, so *secretOptions, rsa, force, publish bool) error {
	var res *oxResult
	if _, err := currentAccount(e); err != nil {
		return err
	}
	if publish {
		fmt.Fprintln(e.stderr, "balcony: generating the key and announcing it")
		var err error
		if res, err = runOXRequest(ctx, e, so, oxArgs{Op: "keygen", RSA: rsa, Force: force, Publish: true}); err != nil {
			return err
		}
	} else {
		a, st, err := openAccount(e, so)
		if err != nil {
			return err
		}
		k, err := generateOXKey(ctx, a, st, rsa, force)
		st.Close()
		if err != nil {
			return err
		}
		res = &oxResult{Key: &oxKeyInfo{Fingerprint: k.Fingerprint(), Algorithm: k.Algorithm(), Created: k.Created()}}
		if err := notifyListener(ctx, e, oxArgs{Op: "reload"}); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "generated OpenPGP key %s (%s)\n", displayFingerprint(store.OX, res.Key.Fingerprint), res.Key.Algorithm)
	if publish {
		fmt.Fprintln(e.stdout, "announced it on your server (readable by anyone)")
	} else {
		fmt.Fprintln(e.stdout, "not announced yet: balcony ox publish")
	}
	fmt.Fprintln(e.stdout, "back it up with: balcony ox backup")
	return nil
}

func printDiscovery(e *env, j jid.JID, res *oxResult) error {
	for _, p := range res.Problems {
		fmt.Fprintf(e.stderr, "balcony: warning: %s: %s\n", j, p)
	}
	var announced []oxKeyInfo
	for _, k := range res.Keys {
		if k.Announced {
			announced = append(announced, k)
		}
	}
	if len(announced) == 0 {
		return withHint(fmt.Errorf("%s announces no usable OpenPGP key", j), "ask them to set up OpenPGP for XMPP in their client")
	}
	fmt.Fprintf(e.stdout, "%s announces %d OpenPGP key(s):\n", j, len(announced))
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, k := range announced {
		fmt.Fprintf(tw, "  %s\t%s\t%s\tcreated %s\n", displayFingerprint(store.OX, k.Fingerprint), k.Trust, k.Algorithm, k.Created.UTC().Format("2006-01-02"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "compare the fingerprints with %s over a channel you trust, then: balcony trust %s FINGERPRINT verified\n", j, j)
	return nil
}

func oxImport(ctx context.Context, e *env, so *secretOptions, file string, activate bool, passFile string) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, ox.MaxKeySize+1))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	defer clear(data)
	keys, err := ox.ParseKeys(data)
	if err != nil {
		return err
	}
	a, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	j, err := jid.Parse(a.JID)
	if err != nil {
		return err
	}
	_, err = st.ActiveOwnKey(ctx, store.OX)
	hasActive := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	imported := 0
	for _, k := range keys {
		if !k.Secret() {
			return withHint(fmt.Errorf("%s holds the public key %s only", file, displayFingerprint(store.OX, k.Fingerprint())),
				"import your own secret key; to trust a contact's key compare fingerprints and use: balcony trust")
		}
		if k.Locked() {
			pass, err := readSecret(e, passFile, "BALCONY_KEY_PASSPHRASE", "Passphrase of key "+k.Fingerprint()+": ", false)
			if errors.Is(err, errNoTerminal) {
				return withHint(errors.New("the key is protected by a passphrase"), "pass --key-passphrase-file FILE or set BALCONY_KEY_PASSPHRASE")
			}
			if err != nil {
				return err
			}
			k, err = k.Unlock(pass)
			clear(pass)
			if err != nil {
				return err
			}
		}
		if err := k.ValidFor(j, time.Now()); err != nil {
			return withHint(err, "an OX key needs the user ID xmpp:"+j.Bare().String()+" and must not be expired or revoked")
		}
		if err := k.CanEncrypt(time.Now()); err != nil {
			return err
		}
		act := activate || !hasActive
		if err := oxclient.StoreKey(ctx, st, k, act); errors.Is(err, store.ErrExists) {
			fmt.Fprintf(e.stdout, "key %s is already an own key\n", displayFingerprint(store.OX, k.Fingerprint()))
			continue
		} else if err != nil {
			return err
		}
		hasActive = hasActive || act
		imported++
		state := ""
		if act {
			state = " (active)"
		}
		fmt.Fprintf(e.stdout, "imported OpenPGP key %s%s\n", displayFingerprint(store.OX, k.Fingerprint()), state)
	}
	if imported > 0 {
		if err := notifyListener(ctx, e, oxArgs{Op: "reload"}); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "announce it with: balcony ox publish")
	}
	return nil
}

func oxExport(ctx context.Context, e *env, so *secretOptions, secret, armor bool, output string) error {
	if output == "" && e.isTerminal && (!armor || secret) {
		if secret {
			return &usageError{msg: "refusing to print a secret key on a terminal", hint: "write it to a file: balcony ox export --secret --output FILE"}
		}
		return &usageError{msg: "refusing to write binary data to a terminal", hint: "add --armor, or --output FILE"}
	}
	_, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := st.ActiveOwnKey(ctx, store.OX)
	if errors.Is(err, store.ErrNotFound) {
		return oxHint(oxclient.ErrNoOwnKey)
	}
	if err != nil {
		return err
	}
	data := k.Public
	mode := os.FileMode(0o644)
	if secret {
		if data, err = st.OwnKeySecret(ctx, store.OX, k.Fingerprint); err != nil {
			return err
		}
		defer clear(data)
		mode = 0o600
		fmt.Fprintln(e.stderr, "balcony: warning: the secret key is written without passphrase protection")
	}
	if armor {
		a, err := ox.Armor(data)
		if err != nil {
			return err
		}
		if secret {
			defer clear(a)
		}
		data = a
	}
	if output == "" {
		_, err := e.stdout.Write(data)
		return err
	}
	return writeNewFile(output, data, mode)
}

// writeNewFile creates path (never overwriting) with mode and writes data.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func oxBackup(ctx context.Context, e *env, so *secretOptions, codeFile string) error {
	if codeFile != "" {
		// Fail before publishing if the file cannot be created.
		if _, err := os.Stat(codeFile); err == nil {
			return fmt.Errorf("%s exists; choose a new file for the backup code", codeFile)
		}
	}
	res, err := runOXRequest(ctx, e, so, oxArgs{Op: "backup"})
	if err != nil {
		return err
	}
	if codeFile != "" {
		if err := writeNewFile(codeFile, []byte(res.Code+"\n"), 0o600); err != nil {
			return fmt.Errorf("the backup was published, but writing its code failed: %w", err)
		}
		fmt.Fprintf(e.stdout, "backup of your OpenPGP secret keys published; its code was written to %s\n", codeFile)
		fmt.Fprintln(e.stdout, "keep the code safe and delete the file; restore on another device with: balcony ox restore --code-file FILE")
		return nil
	}
	fmt.Fprintf(e.stdout, `Backup of your OpenPGP secret keys published on your server. Backup code:

    %s

It is shown only this once and Balcony does not keep it. Write it down and
keep it safe: with it and access to your account, your messages can be read.
Restore on another device with: balcony ox restore
`, res.Code)
	return nil
}

func oxRestore(ctx context.Context, e *env, so *secretOptions, codeFile, codeEnv string) error {
	code, err := readSecret(e, codeFile, codeEnv, "Backup code: ", false)
	if errors.Is(err, errNoTerminal) {
		return withHint(errors.New("no backup code given"), "pass --code-file FILE or set "+codeEnv+"; never put the code on the command line")
	}
	if err != nil {
		return err
	}
	res, err := runOXRequest(ctx, e, so, oxArgs{Op: "restore", Code: strings.TrimSpace(string(code))})
	clear(code)
	if err != nil {
		return err
	}
	for _, p := range res.Problems {
		fmt.Fprintf(e.stderr, "balcony: warning: %s\n", p)
	}
	fmt.Fprintf(e.stdout, "restored %d key(s) from the backup", len(res.Added))
	if len(res.Existing) > 0 {
		fmt.Fprintf(e.stdout, " (%d already present)", len(res.Existing))
	}
	fmt.Fprintln(e.stdout)
	for _, f := range append(res.Added, res.Existing...) {
		state := ""
		if f == res.Active {
			state = " (active)"
		}
		fmt.Fprintf(e.stdout, "  %s%s\n", displayFingerprint(store.OX, f), state)
	}
	return nil
}

func oxForce(ctx context.Context, e *env, so *secretOptions, j jid.JID, on bool) error {
	_, st, err := openAccount(e, so)
	if err != nil {
		return err
	}
	key := policyPrefix + j.String()
	require := eme.Policy{Mode: eme.RequireEncryption, Mechanism: eme.OX}.String()
	if on {
		err = st.SetSetting(ctx, key, require)
	} else {
		var cur string
		cur, err = st.Setting(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && cur != require:
			st.Close()
			fmt.Fprintf(e.stdout, "%s: OX was not forced (policy: %s)\n", j, policyOrDefault(cur))
			return nil
		case err == nil:
			err = st.DeleteSetting(ctx, key)
		}
	}
	st.Close()
	if err != nil {
		return err
	}
	if err := notifyListener(ctx, e, oxArgs{Op: "force", Contact: j.String(), On: on}); err != nil {
		return err
	}
	if on {
		fmt.Fprintf(e.stdout, "%s: OX required; messages in the clear or with a weaker mechanism are refused\n", j)
	} else {
		fmt.Fprintf(e.stdout, "%s: OX no longer required; the default policy applies\n", j)
	}
	return nil
}

func policyOrDefault(p string) string {
	if p == "" {
		return "default"
	}
	return p
}
