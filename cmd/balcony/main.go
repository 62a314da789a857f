// Command balcony is an end-to-end encrypted XMPP client for the command
// line: OMEMO (XEP-0384, OMEMO 2 and 0.3), OpenPGP for XMPP
// (XEP-0373/0374), Off-the-Record messaging (OTR v3, XEP-0364) and
// Encrypted Sessions (XEP-0218 family), all marked and detected with
// Explicit Message Encryption (XEP-0380).
//
// Usage:
//
//	balcony [global flags] <command> [flags] [arguments]
//
// Run "balcony help" for the list of commands and "balcony help <command>"
// for each command's usage. Exit codes: 0 success, 1 error, 2 usage error,
// 3 a message or session could not be secured as the policy requires.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/balcony-im/balcony/eme"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitSecurity = 3
)

type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

// hintError is an error with a suggestion for the user.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

type command struct {
	name    string
	summary string
	usage   string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what every command gets: streams and global options.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	account        string // --account
	lang           string // --lang
	isTerminal     bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, isTerminal: isTerminal(stdout)}
	fs := flag.NewFlagSet("balcony", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var showVersion bool
	fs.BoolVar(&showVersion, "version", false, "")
	fs.StringVar(&e.account, "account", "", "")
	fs.StringVar(&e.account, "a", "", "")
	fs.StringVar(&e.lang, "lang", "", "")
	if err := fs.Parse(args); err != nil {
		return report(e, &usageError{msg: err.Error(), hint: "run: balcony help"})
	}
	if showVersion {
		fmt.Fprintln(stdout, "balcony", version())
		return exitOK
	}
	rest := fs.Args()
	if len(rest) == 0 {
		if !e.isTerminal || !isTerminal(stdin) {
			fmt.Fprint(stderr, mainUsage())
			return exitUsage
		}
		// On a terminal, balcony alone is the full-screen client.
		rest = []string{"ui"}
	}
	name := rest[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(rest) > 1 && rest[1] == "--man" {
			fmt.Fprint(stdout, manPage())
			return exitOK
		}
		if len(rest) > 1 {
			c, ok := commands[rest[1]]
			if !ok {
				return report(e, &usageError{msg: fmt.Sprintf("unknown command %q", rest[1]), hint: "run: balcony help"})
			}
			fmt.Fprint(stdout, c.usage)
			return exitOK
		}
		fmt.Fprint(stdout, mainUsage())
		return exitOK
	}
	if name == "version" {
		fmt.Fprintln(stdout, "balcony", version())
		return exitOK
	}
	c, ok := commands[name]
	if !ok {
		return report(e, &usageError{msg: fmt.Sprintf("unknown command %q", name), hint: "run: balcony help"})
	}
	if wantsHelp(rest[1:]) {
		fmt.Fprint(stdout, c.usage)
		return exitOK
	}
	if e.lang == "" {
		e.lang = languageFromEnv()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, e, rest[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, c.usage)
		return exitOK
	}
	return report(e, err)
}

// wantsHelp reports whether -h or --help is among args, before a "--"
// (after it, everything is an argument): every command and subcommand
// prints its usage for it.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func report(e *env, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "balcony: error: %s\n", oneLine(err.Error()))
	var ue *usageError
	var he *hintError
	switch {
	case errors.As(err, &ue):
		if ue.hint != "" {
			fmt.Fprintf(e.stderr, "balcony: hint: %s\n", ue.hint)
		}
		return exitUsage
	case errors.As(err, &he):
		fmt.Fprintf(e.stderr, "balcony: hint: %s\n", he.hint)
	}
	return exitCodeFor(err)
}

// exitCodeFor maps an error to the command's exit status.
func exitCodeFor(err error) int {
	var ce *controlError
	var ue *usageError
	switch {
	case errors.As(err, &ce) && ce.code != 0:
		return ce.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, eme.ErrDowngrade):
		return exitSecurity
	}
	return exitError
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`Usage: balcony [--account JID] [--lang LANG] <command> [flags] [arguments]
       balcony                      (on a terminal: the full-screen client)

Balcony is an end-to-end encrypted XMPP client: OpenPGP for XMPP, OTR and
Encrypted Sessions, every encrypted message marked and detected (XEP-0380).

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString(`
Global flags:
  -a, --account JID   the account to use (default: the default or only account)
      --lang LANG     language of notices (default: from $LANG)
      --version       print the version

Run "balcony help <command>" for a command's flags, "balcony help --man"
for the manual page.
`)
	return b.String()
}

// version is the module version when balcony was built from a tagged
// module (go install ...@v1.2.3), and otherwise the commit it was built
// from (with "+dirty" for uncommitted changes), as recorded by the Go
// toolchain.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return versionOf(info)
}

func versionOf(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v != "" && v != "(devel)" && !pseudoVersion.MatchString(v) {
		return v + " (" + info.GoVersion + ")"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel (" + info.GoVersion + ")"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return "commit " + rev + " (" + info.GoVersion + ")"
}

// pseudoVersion matches the versions the Go toolchain makes up for
// untagged commits (vX.Y.Z-[pre.]0.yyyymmddhhmmss-commit, or
// vX.0.0-yyyymmddhhmmss-commit), with an optional +dirty or
// +incompatible.
var pseudoVersion = regexp.MustCompile(`-(?:[0-9A-Za-z.-]*\.)?(?:0\.)?\d{14}-[0-9a-f]{12}(?:\+[a-z]+)?$`)

func languageFromEnv() string {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := os.Getenv(k); v != "" && v != "C" && v != "POSIX" {
			v, _, _ = strings.Cut(v, ".")
			return strings.ReplaceAll(v, "_", "-")
		}
	}
	return "en"
}

// newFlags returns a flag set for a command whose usage text is printed on
// -h and on errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// asTyped rewrites the flag package's "-name" in msg to the flag as the
// user typed it ("--name"), found in args.
func asTyped(msg string, args []string) string {
	const undefined = "flag provided but not defined: -"
	name, ok := strings.CutPrefix(msg, undefined)
	if !ok {
		return msg
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		typed, _, _ := strings.Cut(a, "=")
		if strings.TrimLeft(typed, "-") == name && strings.HasPrefix(typed, "-") {
			return "flag provided but not defined: " + typed
		}
	}
	return msg
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	// Allow flags after positional arguments, as users expect.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &usageError{msg: asTyped(err.Error(), args), hint: "run: balcony help " + fs.Name()}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}
