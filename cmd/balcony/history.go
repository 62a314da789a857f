package main

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
)

const historyUsage = `Usage: balcony history [--limit N] [--workers N] [--json] JID

Reads the conversation with JID from the server's archive (XEP-0313) and
prints it like "balcony listen", oldest first. OpenPGP for XMPP messages are
decrypted and verified on all cores (--workers, default one per CPU), your
own sent messages included; messages of session mechanisms (OTR, Encrypted
Sessions) cannot be read from the archive and are shown as notices.

Flags:
  --limit N      only the last N messages (default: all)
  --workers N    decryption workers (default: the number of CPUs)
  --json         one JSON object per event
` + secretFlagsUsage

var historyCommand = &command{
	name:    "history",
	summary: "print the archived conversation with a contact",
	usage:   historyUsage,
	run:     runHistory,
}

func runHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlags("history")
	var so secretOptions
	so.add(fs)
	limit := fs.Int("limit", 0, "")
	workers := fs.Int("workers", 0, "")
	asJSON := fs.Bool("json", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "history needs a JID", hint: "run: balcony help history"}
	}
	j, err := jid.Parse(fs.Arg(0))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("invalid JID %q: %v", fs.Arg(0), err)}
	}
	if *limit < 0 || *workers < 0 {
		return &usageError{msg: "--limit and --workers must not be negative"}
	}
	sess, err := connect(ctx, e, &so, func(c *client.Config) { c.DisablePresence = true })
	if err != nil {
		return err
	}
	defer sess.Close()
	go func() {
		for ev := range sess.client.Events() {
			sess.offer(ev)
		}
	}()
	r := &renderer{w: e.stdout, json: *asJSON, color: e.isTerminal, lang: e.lang}
	opts := client.HistoryOptions{Limit: *limit, Workers: *workers}
	return sess.client.History(ctx, j.Bare(), opts, func(ev client.Event) error {
		r.event(ev)
		return nil
	})
}
