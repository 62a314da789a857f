package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/store"
)

var accountCommand = &command{
	name:    "account",
	summary: "add, list, remove accounts or choose the default one",
	usage: `Usage:
  balcony account add JID [--server HOST:PORT] [--direct-tls] [--ca-file FILE] [--tls12] [--resource RES] [--default] [--unencrypted-store] [--offline]
  balcony account set JID [--server HOST:PORT] [--direct-tls=BOOL] [--ca-file FILE] [--tls12=BOOL] [--resource RES] [--offline]
  balcony account list
  balcony account default JID
  balcony account remove JID

The account's password is not stored in the configuration file. Each command
that connects reads it from --password-file FILE, from the environment
variable named by --password-env (default BALCONY_PASSWORD), or from a prompt
on the terminal.

"account add" first logs in once with the password, to check the password,
the server's address and its certificate (--offline skips this), then
creates the account's key store, which every other command
needs: it asks for a new passphrase to protect it (twice, on a terminal), or
reads it from --passphrase-file FILE or the variable named by --passphrase-env
(default BALCONY_PASSPHRASE). A store already in the data directory (kept by
"account remove") is opened with its passphrase and used again; it is never
replaced.

Flags for add:
  --server HOST:PORT  connect here instead of looking up the domain's SRV records
  --direct-tls        use TLS from the first byte (XEP-0368) instead of STARTTLS
  --ca-file FILE      also trust this CA certificate (PEM) for the server; the
                      certificate is always verified
  --tls12             cap TLS at version 1.2 (rarely needed: Balcony moves to
                      TLS 1.2 by itself when a server can bind the login to
                      the connection only there, as ejabberd 23.01)
  --resource RES      the resource to ask the server for (default: the server's choice)
  --default           make it the default account
  --unencrypted-store do not protect the account's secret keys with a passphrase
                      (for unattended bots; anyone who can read the data
                      directory can then read the keys; see SECURITY.md)
  --offline           do not log in to check the password and the server
  --password-file F, --password-env V
                      where the password for the check comes from (default
                      $BALCONY_PASSWORD, else a prompt on the terminal)

"account set" changes the connection options of an existing account: only
the flags given change (--ca-file "" removes the CA file); the login is
checked with the new options unless --offline.

Saving the password (in the account's encrypted store):
  balcony account password --save    prompt for it (or read --password-file / $BALCONY_PASSWORD) and save it
  balcony account password --forget  delete it
  balcony account passphrase         change the store passphrase
`,
	run: runAccount,
}

func runAccount(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "account needs a subcommand", hint: "run: balcony help account"}
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		fs := newFlags("account")
		server := fs.String("server", "", "")
		directTLS := fs.Bool("direct-tls", false, "")
		caFile := fs.String("ca-file", "", "")
		tls12 := fs.Bool("tls12", false, "")
		def := fs.Bool("default", false, "")
		unencrypted := fs.Bool("unencrypted-store", false, "")
		offline := fs.Bool("offline", false, "")
		resource := fs.String("resource", "", "")
		var so secretOptions
		so.add(fs)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return &usageError{msg: "account add needs one JID", hint: "balcony account add you@example.org"}
		}
		j, err := jid.Parse(fs.Arg(0))
		if err != nil || j.Localpart() == "" {
			return &usageError{msg: fmt.Sprintf("invalid account JID %q", fs.Arg(0)), hint: "an account looks like you@example.org"}
		}
		if *caFile != "" {
			abs, err := absPath(*caFile)
			if err != nil {
				return err
			}
			if _, err := os.Stat(abs); err != nil {
				return fmt.Errorf("CA file: %w", err)
			}
			*caFile = abs
		}
		bare := j.Bare().String()
		a := accountConfig{JID: bare, Server: *server, DirectTLS: *directTLS, CAFile: *caFile, TLS12: *tls12,
			Default: *def || len(cfg.Accounts) == 0, Unencrypted: *unencrypted, Resource: *resource}
		if !*offline {
			if err := addable(cfg, &a); err != nil {
				return err
			}
			if err := checkLogin(ctx, e, &a, &so); err != nil {
				return err
			}
		}
		return addAccount(e, cfg, a, &so)
	case "set":
		return setAccount(ctx, e, cfg, args[1:])
	case "list":
		if len(cfg.Accounts) == 0 {
			fmt.Fprintln(e.stdout, "no accounts; add one with: balcony account add you@example.org")
			return nil
		}
		for _, a := range cfg.Accounts {
			mark := " "
			if a.Default {
				mark = "*"
			}
			server := a.Server
			if server == "" {
				server = "(SRV lookup)"
			}
			fmt.Fprintf(e.stdout, "%s %s %s\n", mark, a.JID, server)
		}
		return nil
	case "password":
		fs := newFlags("account")
		var so secretOptions
		so.add(fs)
		save := fs.Bool("save", false, "")
		forget := fs.Bool("forget", false, "")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *save == *forget {
			return &usageError{msg: "account password needs --save or --forget"}
		}
		a, st, err := openAccount(e, &so)
		if err != nil {
			return err
		}
		defer st.Close()
		if *forget {
			return st.ForgetPassword(ctx)
		}
		b, err := readSecret(e, so.passwordFile, so.passwordEnv, "Password for "+a.JID+": ", false)
		if err != nil {
			return fmt.Errorf("reading the password: %w", err)
		}
		defer clear(b)
		if err := st.SetPassword(ctx, b); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "saved the password of %s in its store\n", a.JID)
		return nil
	case "passphrase":
		fs := newFlags("account")
		var so secretOptions
		so.add(fs)
		newFile := fs.String("new-passphrase-file", "", "")
		newEnv := fs.String("new-passphrase-env", "BALCONY_NEW_PASSPHRASE", "")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		a, st, err := openAccount(e, &so)
		if err != nil {
			return err
		}
		defer st.Close()
		if a.Unencrypted {
			return errors.New("the store of " + a.JID + " is unencrypted by choice; it has no passphrase")
		}
		np, err := readSecret(e, *newFile, *newEnv, "New passphrase: ", true)
		if err != nil {
			return fmt.Errorf("reading the new passphrase: %w", err)
		}
		defer clear(np)
		if len(np) == 0 {
			return errors.New("the passphrase must not be empty")
		}
		if err := st.ChangePassphrase(ctx, np); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "changed the passphrase")
		return nil
	case "default", "remove":
		if len(args) != 2 {
			return &usageError{msg: "account " + args[0] + " needs one JID"}
		}
		a, err := cfg.account(args[1])
		if err != nil {
			return err
		}
		if args[0] == "default" {
			for i := range cfg.Accounts {
				cfg.Accounts[i].Default = cfg.Accounts[i].JID == a.JID
			}
		} else {
			out := cfg.Accounts[:0]
			for _, x := range cfg.Accounts {
				if x.JID != a.JID {
					out = append(out, x)
				}
			}
			cfg.Accounts = out
		}
		return cfg.save()
	}
	return &usageError{msg: fmt.Sprintf("unknown account subcommand %q", args[0]), hint: "run: balcony help account"}
}

// checkLogin logs the account in once, to check the password, the
// server address and its certificate before anything is saved.
func checkLogin(ctx context.Context, e *env, a *accountConfig, so *secretOptions) error {
	pass, err := readSecret(e, so.passwordFile, so.passwordEnv, "Password for "+a.JID+": ", false)
	if errors.Is(err, errNoTerminal) {
		return withHint(errors.New("no password to check the login with"),
			"give it with --password-env VAR or --password-file FILE, or add the account without checking: --offline")
	}
	if err != nil {
		return fmt.Errorf("reading the password: %w", err)
	}
	defer clear(pass)
	cfg, err := clientConfig(a, string(pass))
	if err != nil {
		return err
	}
	cfg.DisablePresence, cfg.DisableCarbons = true, true
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		return withHint(fmt.Errorf("checking the login: %w", err), connectHint(err, a))
	}
	auth := c.Auth()
	binding := "without channel binding"
	if auth.ChannelBinding != "" {
		binding = "bound with " + auth.ChannelBinding
	}
	fmt.Fprintf(e.stdout, "logged in as %s over %s with %s, %s\n", c.JID(), tls.VersionName(auth.TLSVersion), auth.Mechanism, binding)
	return nil
}

// setAccount changes the connection options of an existing account
// ("balcony account set JID --server ... --ca-file ... --tls12 ...").
// Only the flags given change; the login is checked unless --offline.
func setAccount(ctx context.Context, e *env, cfg *config, args []string) error {
	fs := newFlags("account")
	server := fs.String("server", "", "")
	directTLS := fs.Bool("direct-tls", false, "")
	caFile := fs.String("ca-file", "", "")
	tls12 := fs.Bool("tls12", false, "")
	resource := fs.String("resource", "", "")
	offline := fs.Bool("offline", false, "")
	var so secretOptions
	so.add(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "account set needs one JID and the options to change", hint: "balcony account set you@example.org --server xmpp.example.org:5222"}
	}
	a, err := cfg.account(fs.Arg(0))
	if err != nil {
		return err
	}
	changed := *a
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["server"] {
		changed.Server = *server
	}
	if given["direct-tls"] {
		changed.DirectTLS = *directTLS
	}
	if given["ca-file"] {
		changed.CAFile = ""
		if *caFile != "" {
			abs, err := absPath(*caFile)
			if err != nil {
				return err
			}
			if _, err := os.Stat(abs); err != nil {
				return fmt.Errorf("CA file: %w", err)
			}
			changed.CAFile = abs
		}
	}
	if given["tls12"] {
		changed.TLS12 = *tls12
	}
	if given["resource"] {
		changed.Resource = *resource
	}
	if changed == *a {
		return &usageError{msg: "account set changes nothing", hint: "give the options to change: --server, --direct-tls, --ca-file, --tls12, --resource"}
	}
	if !*offline {
		if err := checkLogin(ctx, e, &changed, &so); err != nil {
			return err
		}
	}
	*a = changed
	if err := cfg.save(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "updated %s\n", a.JID)
	return nil
}

// addable reports whether a can be added: not an account that is
// configured and has its store (addAccount checks it again).
func addable(cfg *config, a *accountConfig) error {
	dir, err := storeDir(a)
	if err != nil {
		return err
	}
	exists, err := storeExists(dir)
	if err != nil {
		return err
	}
	if _, cerr := cfg.account(a.JID); cerr == nil && exists {
		return withHint(fmt.Errorf("account %s already exists", a.JID), "remove it first with: balcony account remove "+a.JID)
	}
	return nil
}

// addAccount creates the account's store (or opens the one left in the
// data directory), then adds the account to the configuration. An account
// that is configured but has no store (its data directory was lost or
// moved away) gets a new store and its configuration replaced.
func addAccount(e *env, cfg *config, a accountConfig, so *secretOptions) error {
	configured := -1
	for i := range cfg.Accounts {
		if cfg.Accounts[i].JID == a.JID {
			configured = i
		}
	}
	dir, err := storeDir(&a)
	if err != nil {
		return err
	}
	exists, err := storeExists(dir)
	if err != nil {
		return err
	}
	if configured >= 0 && exists {
		return withHint(fmt.Errorf("account %s already exists", a.JID), "remove it first with: balcony account remove "+a.JID)
	}
	var st *store.Store
	if exists {
		st, err = openStore(e, &a, so)
	} else {
		st, err = createStore(e, &a, so)
	}
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	if configured >= 0 {
		a.Default = a.Default || cfg.Accounts[configured].Default
		cfg.Accounts = append(cfg.Accounts[:configured], cfg.Accounts[configured+1:]...)
	}
	if a.Default {
		for i := range cfg.Accounts {
			cfg.Accounts[i].Default = false
		}
	}
	cfg.Accounts = append(cfg.Accounts, a)
	if err := cfg.save(); err != nil {
		return err
	}
	if exists {
		fmt.Fprintf(e.stdout, "added %s, with the key store already in %s\n", a.JID, dir)
	} else {
		fmt.Fprintf(e.stdout, "added %s\n", a.JID)
	}
	return nil
}

func absPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// clientConfig builds the client configuration for an account.
func clientConfig(a *accountConfig, password string) (client.Config, error) {
	j, err := jid.Parse(a.JID)
	if err != nil {
		return client.Config{}, err
	}
	if a.Resource != "" {
		if j, err = j.WithResource(a.Resource); err != nil {
			return client.Config{}, fmt.Errorf("the account's resource %q: %w", a.Resource, err)
		}
	}
	cfg := client.Config{
		JID: j, Password: password, Addr: a.Server, DirectTLS: a.DirectTLS, CAFile: a.CAFile,
		ClientName: "Balcony", ClientVersion: version(),
	}
	if a.TLS12 {
		cfg.TLSMaxVersion = tls.VersionTLS12
	}
	return cfg, nil
}
