package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
)

func init() {
	register(&command{
		name:    "account",
		summary: "add, list, remove accounts or choose the default one",
		usage: `Usage:
  balcony account add JID [--server HOST:PORT] [--direct-tls] [--ca-file FILE] [--tls12] [--default]
  balcony account list
  balcony account default JID
  balcony account remove JID

The account's password is not stored in the configuration file. Each command
that connects reads it from --password-file FILE, from the environment
variable named by --password-env (default BALCONY_PASSWORD), or from a prompt
on the terminal.

Flags for add:
  --server HOST:PORT  connect here instead of looking up the domain's SRV records
  --direct-tls        use TLS from the first byte (XEP-0368) instead of STARTTLS
  --ca-file FILE      also trust this CA certificate (PEM) for the server; the
                      certificate is always verified
  --tls12             cap TLS at version 1.2 (enables SCRAM-*-PLUS on servers
                      that only offer tls-unique channel binding)
  --default           make it the default account
`,
		run: runAccount,
	})
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
		for _, a := range cfg.Accounts {
			if a.JID == bare {
				return withHint(fmt.Errorf("account %s already exists", bare), "remove it first with: balcony account remove "+bare)
			}
		}
		a := accountConfig{JID: bare, Server: *server, DirectTLS: *directTLS, CAFile: *caFile, TLS12: *tls12, Default: *def || len(cfg.Accounts) == 0}
		if a.Default {
			for i := range cfg.Accounts {
				cfg.Accounts[i].Default = false
			}
		}
		cfg.Accounts = append(cfg.Accounts, a)
		if err := cfg.save(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added %s\n", bare)
		return nil
	case "list":
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

// passwordOptions are the flags every connecting command accepts.
type passwordOptions struct {
	file string
	env  string
}

func (p *passwordOptions) add(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&p.file, "password-file", "", "")
	fs.StringVar(&p.env, "password-env", "BALCONY_PASSWORD", "")
}

// password returns the account password from a file, the environment or a
// terminal prompt, in that order. It is never taken from the command line.
func (p *passwordOptions) password(e *env, account string) (string, error) {
	if p.file != "" {
		b, err := os.ReadFile(p.file)
		if err != nil {
			return "", fmt.Errorf("reading the password file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if p.env != "" {
		if v := os.Getenv(p.env); v != "" {
			return v, nil
		}
	}
	fd := int(os.Stdin.Fd())
	if f, ok := e.stdin.(*os.File); ok && f == os.Stdin && term.IsTerminal(fd) {
		fmt.Fprintf(e.stderr, "Password for %s: ", account)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return "", withHint(errors.New("no password available for "+account),
		"set "+p.env+", pass --password-file FILE, or run on a terminal to be prompted")
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
	cfg := client.Config{
		JID: j, Password: password, Addr: a.Server, DirectTLS: a.DirectTLS, CAFile: a.CAFile,
		ClientName: "Balcony", ClientVersion: version(),
	}
	if a.TLS12 {
		cfg.TLSMaxVersion = tls.VersionTLS12
	}
	return cfg, nil
}
