package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/store"
)

var policyCommand = &command{
	name:    "policy",
	summary: "show or set the encryption policy for contacts",
	usage: `Usage: balcony policy [JID [POLICY]]

Without arguments, lists the per-contact policies. With a JID, shows the
policy for that contact; with a POLICY, sets it:

  plaintext        messages may go out in the clear (the default)
  prefer           use the strongest mechanism ready for the contact, else plaintext
  require          never send in the clear
  require:ox       never send in the clear or with a mechanism weaker than OX
  require:otr      (also require:esession, require:omemo, ... by short name)
  default          remove the contact's own policy

A "require" policy is downgrade protection: "balcony send" refuses (exit
status 3) rather than send in the clear or with a weaker mechanism, and
messages that arrive less protected are shown with a warning.
` + secretFlagsUsage,
	run: runPolicy,
}

const policyPrefix = "policy:"

func runPolicy(ctx context.Context, e *env, args []string) error {
	fs := newFlags("policy")
	var so secretOptions
	so.add(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 2 {
		return &usageError{msg: "policy takes at most a JID and a policy", hint: "run: balcony help policy"}
	}
	_, st, err := openAccount(e, &so)
	if err != nil {
		return err
	}
	defer st.Close()
	if fs.NArg() == 0 {
		settings, err := st.Settings(ctx)
		if err != nil {
			return err
		}
		var lines []string
		for k, v := range settings {
			if c, ok := strings.CutPrefix(k, policyPrefix); ok {
				lines = append(lines, fmt.Sprintf("%s %s", c, v))
			}
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Fprintln(e.stdout, l)
		}
		return nil
	}
	j, err := jid.Parse(fs.Arg(0))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("invalid contact %q", fs.Arg(0))}
	}
	key := policyPrefix + j.Bare().String()
	if fs.NArg() == 1 {
		v, err := st.Setting(ctx, key)
		if errors.Is(err, store.ErrNotFound) || v == "" {
			v = "plaintext (default)"
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s %s\n", j.Bare(), v)
		return nil
	}
	if fs.Arg(1) == "default" {
		if err := st.DeleteSetting(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		fmt.Fprintf(e.stdout, "%s uses the default policy\n", j.Bare())
		return nil
	}
	pol, err := eme.ParsePolicy(fs.Arg(1))
	if err != nil {
		return &usageError{msg: err.Error(), hint: "run: balcony help policy"}
	}
	if err := st.SetSetting(ctx, key, pol.String()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", j.Bare(), pol)
	return nil
}
