package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/balcony-im/balcony/client"
	esclient "github.com/balcony-im/balcony/client/esession"
	omemoclient "github.com/balcony-im/balcony/client/omemo"
	otrclient "github.com/balcony-im/balcony/client/otr"
	oxclient "github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/store"
)

// secretOptions are the flags every command that needs the account (its
// store, its password) accepts.
type secretOptions struct {
	passwordFile, passwordEnv     string // the XMPP account password
	passphraseFile, passphraseEnv string // the store passphrase
}

func (o *secretOptions) add(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&o.passwordFile, "password-file", "", "")
	fs.StringVar(&o.passwordEnv, "password-env", "BALCONY_PASSWORD", "")
	fs.StringVar(&o.passphraseFile, "passphrase-file", "", "")
	fs.StringVar(&o.passphraseEnv, "passphrase-env", "BALCONY_PASSPHRASE", "")
}

const secretFlagsUsage = `  --password-file F     read the account password from F
  --password-env V      read the account password from environment variable V
                        (default BALCONY_PASSWORD); a password saved with
                        "balcony account password --save" is used otherwise
  --passphrase-file F   read the passphrase of the account's key store from F
  --passphrase-env V    read it from environment variable V (default BALCONY_PASSPHRASE)
`

// storeDir is the account's store directory.
func storeDir(a *accountConfig) (string, error) {
	d, err := dataDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, a.JID), nil
}

// readSecret reads a secret from a file, the environment or the terminal,
// in that order. prompt is shown on the terminal; confirm asks twice.
func readSecret(e *env, file, envVar, prompt string, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if envVar != "" {
		if v := os.Getenv(envVar); v != "" {
			return []byte(v), nil
		}
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, errNoTerminal
	}
	fmt.Fprint(e.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(e.stderr, "Again: ")
		b2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, err
		}
		if string(b) != string(b2) {
			return nil, errors.New("the two entries differ")
		}
	}
	return b, nil
}

var errNoTerminal = errors.New("no terminal to ask on")

// storeOptions are the store options of account a, without a passphrase.
func storeOptions(a *accountConfig) (store.Options, error) {
	opts := store.Options{Unencrypted: a.Unencrypted}
	if v := os.Getenv("BALCONY_STORE_KDF"); v != "" {
		p, err := parseKDF(v)
		if err != nil {
			return opts, &usageError{msg: "BALCONY_STORE_KDF: " + err.Error(), hint: "for example: BALCONY_STORE_KDF=time=3,memory=65536,threads=4"}
		}
		opts.KDF = &p
	}
	return opts, nil
}

// storePassphrase reads the passphrase of a's store; creating asks twice
// on a terminal. The caller clears the result.
func storePassphrase(e *env, a *accountConfig, o *secretOptions, creating bool) ([]byte, error) {
	prompt := "Passphrase for the keys of " + a.JID + ": "
	if creating {
		prompt = "New passphrase to protect the keys of " + a.JID + ": "
	}
	pass, err := readSecret(e, o.passphraseFile, o.passphraseEnv, prompt, creating)
	if errors.Is(err, errNoTerminal) {
		return nil, withHint(errors.New("no passphrase available for the key store of "+a.JID),
			"set "+o.passphraseEnv+", pass --passphrase-file FILE, or run on a terminal; unattended bots may opt out with: balcony account add "+a.JID+" --unencrypted-store")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if len(pass) == 0 {
		return nil, errors.New("the passphrase must not be empty")
	}
	return pass, nil
}

// storeExists reports whether dir holds a store file, whatever its state.
func storeExists(dir string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, store.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// openStore opens the account's existing store; "balcony account add"
// creates it.
func openStore(e *env, a *accountConfig, o *secretOptions) (*store.Store, error) {
	dir, err := storeDir(a)
	if err != nil {
		return nil, err
	}
	// Say that there is no store before asking for its passphrase.
	if ok, err := storeExists(dir); err != nil {
		return nil, err
	} else if !ok {
		return nil, noStoreError(a, dir)
	}
	opts, err := storeOptions(a)
	if err != nil {
		return nil, err
	}
	if !a.Unencrypted {
		if opts.Passphrase, err = storePassphrase(e, a, o, false); err != nil {
			return nil, err
		}
		defer clear(opts.Passphrase)
	}
	s, err := store.Open(dir, opts)
	if err != nil {
		return nil, storeError(err, a, dir)
	}
	if err := claimStore(s, a, dir); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// createStore creates the account's store, asking for a new passphrase
// (twice on a terminal) unless the account opted out of encryption.
func createStore(e *env, a *accountConfig, o *secretOptions) (*store.Store, error) {
	dir, err := storeDir(a)
	if err != nil {
		return nil, err
	}
	opts, err := storeOptions(a)
	if err != nil {
		return nil, err
	}
	if !a.Unencrypted {
		if opts.Passphrase, err = storePassphrase(e, a, o, true); err != nil {
			return nil, err
		}
		defer clear(opts.Passphrase)
	}
	s, err := store.Create(dir, opts)
	if err != nil {
		return nil, storeError(err, a, dir)
	}
	if err := claimStore(s, a, dir); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// claimStore records the account in its store, or checks that the store
// belongs to it.
func claimStore(s *store.Store, a *accountConfig, dir string) error {
	ctx := context.Background()
	rec, err := s.Account(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.SetAccount(ctx, store.Account{JID: a.JID, Server: a.Server, DirectTLS: a.DirectTLS})
	case err != nil:
		return err
	case rec.JID != a.JID:
		return fmt.Errorf("the store in %s belongs to %s, not %s", dir, rec.JID, a.JID)
	}
	return nil
}

func noStoreError(a *accountConfig, dir string) error {
	return withHint(fmt.Errorf("%s has no key store (nothing in %s)", a.JID, dir),
		"create it with: balcony account add "+a.JID)
}

// storeError adds a hint to an error of store.Open or store.Create.
func storeError(err error, a *accountConfig, dir string) error {
	switch {
	case errors.Is(err, store.ErrNoStore):
		return noStoreError(a, dir)
	case errors.Is(err, store.ErrWrongPassphrase):
		return withHint(err, "check the passphrase; nothing was changed")
	case errors.Is(err, store.ErrEncryptionMode):
		return withHint(err, "the store's encryption mode differs from the account configuration (unencrypted_store in config.json)")
	case errors.Is(err, store.ErrLocked):
		return withHint(err, "another balcony process is writing; try again")
	case errors.Is(err, store.ErrCorrupt):
		return withHint(err, "the key store was left exactly as it is; restore "+filepath.Join(dir, store.FileName)+
			" from a backup, or move it away and run balcony account add "+a.JID+" to start a new one (its keys, trust decisions and retained secrets would be lost)")
	case errors.Is(err, store.ErrNewerSchema):
		return withHint(err, "a newer version of balcony wrote this store; use that version")
	}
	return err
}

// parseKDF parses "time=T,memory=KiB,threads=P": the Argon2id parameters
// used when a store or a new passphrase is created (see SECURITY.md).
func parseKDF(v string) (store.KDFParams, error) {
	p := store.DefaultKDFParams()
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := strconv.ParseUint(val, 10, 32)
		if !ok || err != nil {
			return p, fmt.Errorf("bad parameter %q", kv)
		}
		switch k {
		case "time":
			p.Time = uint32(n)
		case "memory":
			p.MemoryKiB = uint32(n)
		case "threads":
			if n > 255 {
				return p, fmt.Errorf("bad parameter %q", kv)
			}
			p.Threads = uint8(n)
		default:
			return p, fmt.Errorf("unknown parameter %q", k)
		}
	}
	return p, nil
}

// accountPassword returns the XMPP password: file, environment, the store
// (if saved there), then a prompt.
func accountPassword(ctx context.Context, e *env, a *accountConfig, o *secretOptions, st *store.Store) (string, error) {
	if o.passwordFile != "" || (o.passwordEnv != "" && os.Getenv(o.passwordEnv) != "") {
		b, err := readSecret(e, o.passwordFile, o.passwordEnv, "", false)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(b), nil
	}
	if st != nil {
		if b, err := st.Password(ctx); err == nil && len(b) > 0 {
			defer clear(b)
			return string(b), nil
		}
	}
	b, err := readSecret(e, "", "", "Password for "+a.JID+": ", false)
	if errors.Is(err, errNoTerminal) {
		return "", withHint(errors.New("no password available for "+a.JID),
			"set "+o.passwordEnv+", pass --password-file FILE, save it with: balcony account password --save, or run on a terminal to be prompted")
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// session is a connected account: its client and store.
// The store implements the storage each mechanism's glue declares.
var (
	_ otrclient.Store = (*store.Store)(nil)
	_ oxclient.Store  = (*store.Store)(nil)
)

type session struct {
	e        *env
	acct     *accountConfig
	client   *client.Client
	store    store.AccountStore
	watchers watchers

	// The mechanisms, set by their set-up functions (nil when absent).
	ox       *oxclient.Mechanism
	otr      *otrclient.Mechanism
	esession *esclient.Mechanism
	omemo    *omemoclient.Device

	// announce: this session keeps the OMEMO device announced, again after
	// every reconnection (connections counts the Connected events offered,
	// the first one being the connection announced by the session's start).
	announce    bool
	connections int
	background  sync.WaitGroup
}

// Close ends the XMPP session first (stream, TCP, then mechanisms, as
// XEP-0364 §5.2 asks), then closes the store.
func (s *session) Close() {
	if s.client != nil {
		s.client.Close()
	}
	s.background.Wait()
	if s.store != nil {
		s.store.Close()
	}
}

// openAccount resolves the account and opens its store, without
// connecting (for commands that only read or change local state).
func openAccount(e *env, o *secretOptions) (*accountConfig, *store.Store, error) {
	a, err := currentAccount(e)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(e, a, o)
	if err != nil {
		return nil, nil, err
	}
	return a, st, nil
}
