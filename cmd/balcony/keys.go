package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/store"
)

var keysCommand = &command{
	name:    "keys",
	summary: "list own and contacts' keys, fingerprints and trust",
	usage: `Usage: balcony keys [--mechanism ox|otr|esession|omemo] [--history] [CONTACT]

Lists the account's own keys and its contacts' keys for every mechanism,
with fingerprints, trust decisions and when each key was first and last
seen, and the xmpp: URIs to compare fingerprints out of band (for example
as a QR code). Key changes not yet acknowledged are listed first; decide
about the new key with "balcony trust". OMEMO keys are listed per device
key; "balcony omemo devices" shows the device ids, "balcony omemo
fingerprint" this device's key and URI.

Trust states: verified (compared out of band, or OTR SMP / ESession SAS
succeeded), blind (trusted on first use, the OX default for a contact's
first key, and of every OMEMO device of a contact until you verify one),
undecided (not used to encrypt until you decide), untrusted.

Flags:
  --mechanism M   only this mechanism
  --history       also print every key event (first key, change, decision)
` + secretFlagsUsage,
	run: runKeys,
}

var trustCommand = &command{
	name:    "trust",
	summary: "mark a contact's key verified, blind, undecided or untrusted",
	usage: `Usage: balcony trust [--mechanism ox|otr|esession|omemo] CONTACT FINGERPRINT STATE

STATE is verified, blind, undecided or untrusted. FINGERPRINT may be any
unique prefix (spaces and case do not matter). Deciding about a key also
acknowledges a pending key change for it.

Mark a key verified only after comparing the whole fingerprint with the
contact over a channel you trust (in person, a call you recognise).
` + secretFlagsUsage,
	run: runTrust,
}

var mechanismNames = map[string]store.Mechanism{"ox": store.OX, "otr": store.OTR, "esession": store.ESession, "omemo": store.OMEMO}

func parseMechanism(s string) (store.Mechanism, error) {
	if s == "" {
		return "", nil
	}
	m, ok := mechanismNames[strings.ToLower(s)]
	if !ok {
		return "", &usageError{msg: fmt.Sprintf("unknown mechanism %q", s), hint: "use ox, otr, esession or omemo"}
	}
	return m, nil
}

// fingerprintURI returns the URI to share a fingerprint out of band.
func fingerprintURI(j string, m store.Mechanism, fpr string) string {
	switch m {
	case store.OTR:
		// XEP-0364 §6: the otr-fingerprint query component.
		return "xmpp:" + j + "?otr-fingerprint=" + strings.ToUpper(strings.ReplaceAll(fpr, " ", ""))
	case store.OX:
		return "openpgp4fpr:" + strings.ToUpper(fpr)
	}
	return ""
}

// displayFingerprint groups hex fingerprints in blocks of four (OX) or
// eight (OTR, as libotr shows them; OMEMO, as XEP-0384 §8 recommends).
func displayFingerprint(m store.Mechanism, fpr string) string {
	n := 0
	switch m {
	case store.OX:
		n = 4
	case store.OTR, store.OMEMO:
		n = 8
	default:
		return fpr
	}
	var b strings.Builder
	for i := 0; i < len(fpr); i += n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fpr[i:min(i+n, len(fpr))])
	}
	return b.String()
}

func runKeys(ctx context.Context, e *env, args []string) error {
	fs := newFlags("keys")
	var so secretOptions
	so.add(fs)
	mechFlag := fs.String("mechanism", "", "")
	history := fs.Bool("history", false, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := parseMechanism(*mechFlag)
	if err != nil {
		return err
	}
	contact := ""
	switch fs.NArg() {
	case 0:
	case 1:
		j, err := jid.Parse(fs.Arg(0))
		if err != nil {
			return &usageError{msg: fmt.Sprintf("invalid contact %q", fs.Arg(0))}
		}
		contact = j.Bare().String()
	default:
		return &usageError{msg: "keys takes at most one contact", hint: "run: balcony help keys"}
	}
	a, st, err := openAccount(e, &so)
	if err != nil {
		return err
	}
	defer st.Close()

	changes, err := st.PendingKeyChanges(ctx)
	if err != nil {
		return err
	}
	for _, c := range changes {
		if (contact != "" && c.Contact != contact) || (m != "" && c.Mechanism != m) {
			continue
		}
		fmt.Fprintf(e.stdout, "!! %s has a new %s key %s (%s) since %s; before: %s\n   decide with: balcony trust --mechanism %s %s %s verified|untrusted\n",
			c.Contact, strings.ToUpper(string(c.Mechanism)), displayFingerprint(c.Mechanism, c.Fingerprint), c.Trust,
			c.Time.UTC().Format(time.RFC3339), strings.Join(c.Previous, ", "), c.Mechanism, c.Contact, c.Fingerprint)
	}

	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if contact == "" || contact == a.JID {
		fmt.Fprintf(tw, "Own keys (%s)\n", a.JID)
		for _, mm := range []store.Mechanism{store.OX, store.OTR, store.ESession} {
			if m != "" && mm != m {
				continue
			}
			own, err := st.OwnKeys(ctx, mm)
			if err != nil {
				return err
			}
			for _, k := range own {
				active := ""
				if k.Active {
					active = "active"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\tcreated %s\n", strings.ToUpper(string(mm)), displayFingerprint(mm, k.Fingerprint), active, k.Created.UTC().Format("2006-01-02"))
				if u := fingerprintURI(a.JID, mm, k.Fingerprint); u != "" {
					fmt.Fprintf(tw, "  \t%s\t\t\n", u)
				}
			}
		}
	}
	keys, err := st.ListKeys(ctx, contact, m)
	if err != nil {
		return err
	}
	last := ""
	for _, k := range keys {
		if k.Contact != last {
			fmt.Fprintf(tw, "%s\n", k.Contact)
			last = k.Contact
		}
		seen := "never seen"
		if !k.LastSeen.IsZero() {
			seen = "last seen " + k.LastSeen.UTC().Format("2006-01-02")
		}
		ann := ""
		if k.Announced {
			ann = "announced"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s %s\n", strings.ToUpper(string(k.Mechanism)), displayFingerprint(k.Mechanism, k.Fingerprint), k.Trust, seen, ann)
		if *history {
			evs, err := st.KeyEvents(ctx, k.Contact, k.Mechanism)
			if err != nil {
				return err
			}
			for _, ev := range evs {
				if ev.Fingerprint != k.Fingerprint {
					continue
				}
				fmt.Fprintf(tw, "  \t  %s %s -> %s\t\t%s\n", ev.Kind, ev.OldTrust, ev.NewTrust, ev.Time.UTC().Format(time.RFC3339))
			}
		}
	}
	return tw.Flush()
}

func runTrust(ctx context.Context, e *env, args []string) error {
	fs := newFlags("trust")
	var so secretOptions
	so.add(fs)
	mechFlag := fs.String("mechanism", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return &usageError{msg: "trust needs CONTACT FINGERPRINT STATE", hint: "balcony trust bob@example.org 1357B018 verified"}
	}
	m, err := parseMechanism(*mechFlag)
	if err != nil {
		return err
	}
	j, err := jid.Parse(fs.Arg(0))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("invalid contact %q", fs.Arg(0))}
	}
	state, err := store.ParseTrustState(strings.ToLower(fs.Arg(2)))
	if err != nil {
		return &usageError{msg: fmt.Sprintf("unknown trust state %q", fs.Arg(2)), hint: "use verified, blind, undecided or untrusted"}
	}
	_, st, err := openAccount(e, &so)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := decideTrust(ctx, st, j, m, fs.Arg(1), state)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s key %s of %s is now %s\n", strings.ToUpper(string(k.Mechanism)), displayFingerprint(k.Mechanism, k.Fingerprint), k.Contact, state)
	return nil
}

// decideTrust records a trust decision about the contact's key whose
// fingerprint starts with prefix (of mechanism m, "" for any), and
// acknowledges a pending key change for it. The full-screen client's
// /trust uses it too.
func decideTrust(ctx context.Context, st store.AccountStore, j jid.JID, m store.Mechanism, fpr string, state store.TrustState) (store.ContactKey, error) {
	keys, err := st.ListKeys(ctx, j.Bare().String(), m)
	if err != nil {
		return store.ContactKey{}, err
	}
	prefix := strings.ToUpper(strings.NewReplacer(" ", "", ":", "").Replace(fpr))
	var match []store.ContactKey
	for _, k := range keys {
		if strings.HasPrefix(strings.ToUpper(k.Fingerprint), prefix) {
			match = append(match, k)
		}
	}
	switch {
	case prefix == "" || len(match) == 0:
		return store.ContactKey{}, withHint(fmt.Errorf("no key of %s starts with %q", j.Bare(), fpr), "list the keys with: balcony keys "+j.Bare().String())
	case len(match) > 1:
		return store.ContactKey{}, withHint(fmt.Errorf("%d keys of %s start with %q", len(match), j.Bare(), fpr), "give more of the fingerprint, or --mechanism")
	}
	k := match[0]
	if err := st.SetTrust(ctx, k.Contact, k.Mechanism, k.Fingerprint, state); err != nil {
		return k, err
	}
	changes, err := st.PendingKeyChanges(ctx)
	if err != nil {
		return k, err
	}
	for _, c := range changes {
		if c.Contact == k.Contact && c.Mechanism == k.Mechanism && c.Fingerprint == k.Fingerprint {
			if err := st.AcknowledgeKeyChange(ctx, c.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return k, err
			}
		}
	}
	return k, nil
}
