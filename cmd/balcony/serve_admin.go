package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/pgstore"
)

// openShared opens the PostgreSQL store and reads the key file named by
// --store and --key-file (or their environment variables).
func openShared(ctx context.Context, dsn, keyFile string) (*pgstore.Store, []byte, error) {
	if dsn == "" {
		return nil, nil, withHint(errors.New("no PostgreSQL store given"), "pass --store URL or set BALCONY_STORE; SQLite accounts are added with: balcony account add")
	}
	if keyFile == "" {
		return nil, nil, withHint(errors.New("no key file given"), "pass --key-file FILE or set BALCONY_KEY_FILE (make one with: balcony serve keygen FILE)")
	}
	key, err := store.ReadKeyFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	pg, err := pgstore.Open(ctx, dsn, nil)
	if err != nil {
		clear(key)
		return nil, nil, err
	}
	return pg, key, nil
}

// runServeAdd adds an account to a PostgreSQL store, with the server to
// reach it at and its password sealed in the store.
func runServeAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags("serve")
	dsn := fs.String("store", os.Getenv("BALCONY_STORE"), "")
	keyFile := fs.String("key-file", os.Getenv("BALCONY_KEY_FILE"), "")
	server := fs.String("server", "", "")
	directTLS := fs.Bool("direct-tls", false, "")
	resource := fs.String("resource", "", "")
	passwordFile := fs.String("password-file", "", "")
	passwordEnv := fs.String("password-env", "BALCONY_PASSWORD", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "serve add needs the account's JID", hint: "balcony serve add bot@example.org --store URL --key-file FILE"}
	}
	j, err := jid.Parse(fs.Arg(0))
	if err != nil || j.Localpart() == "" {
		return &usageError{msg: fmt.Sprintf("invalid account JID %q", fs.Arg(0))}
	}
	pass, err := readSecret(e, *passwordFile, *passwordEnv, "Password for "+j.Bare().String()+": ", false)
	if errors.Is(err, errNoTerminal) {
		return withHint(errors.New("no password available for "+j.Bare().String()), "set "+*passwordEnv+" or pass --password-file FILE")
	}
	if err != nil {
		return err
	}
	defer clear(pass)
	pg, key, err := openShared(ctx, *dsn, *keyFile)
	if err != nil {
		return err
	}
	defer pg.Close()
	defer clear(key)
	st, err := pg.Create(ctx, j.Bare().String(), store.Options{Key: key})
	if errors.Is(err, store.ErrExists) {
		return withHint(err, "the store holds the account already")
	}
	if err != nil {
		return err
	}
	defer st.Close()
	rec := store.Account{JID: st.JID(), Server: *server, DirectTLS: *directTLS, Resource: *resource}
	if err := st.SetAccount(ctx, rec); err != nil {
		return err
	}
	if err := st.SetPassword(ctx, pass); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added %s\n", st.JID())
	return nil
}

// runServeList lists the accounts of a PostgreSQL store and whether a
// serve process holds each.
func runServeList(ctx context.Context, e *env, args []string) error {
	fs := newFlags("serve")
	dsn := fs.String("store", os.Getenv("BALCONY_STORE"), "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dsn == "" {
		return withHint(errors.New("no PostgreSQL store given"), "pass --store URL or set BALCONY_STORE")
	}
	pg, err := pgstore.Open(ctx, *dsn, nil)
	if err != nil {
		return err
	}
	defer pg.Close()
	jids, err := pg.Accounts(ctx)
	if err != nil {
		return err
	}
	busy, err := pg.Served(ctx)
	if err != nil {
		return err
	}
	for _, j := range jids {
		state := "not served"
		if busy[j] {
			state = "served"
		}
		fmt.Fprintf(e.stdout, "%s %s\n", j, state)
	}
	return nil
}
