package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	omemoclient "github.com/balcony-im/balcony/client/omemo"
	"github.com/balcony-im/balcony/cmd/balcony/internal/ui"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/trust"
)

const omemoUsage = `Usage: balcony omemo devices [JID]
       balcony omemo fingerprint
       balcony omemo trust JID FINGERPRINT
       balcony omemo trust URI
       balcony omemo untrust JID FINGERPRINT
       balcony omemo remove-device ID
       balcony omemo reset JID [ID]
       balcony omemo publish
       balcony omemo off [--forget]
       balcony omemo on

OMEMO Encryption (XEP-0384, Experimental) in both generations in use:
OMEMO 2 (urn:xmpp:omemo:2) and OMEMO 0.3 (eu.siacs.conversations.axolotl,
what Conversations, Dino, Gajim, Monal and Profanity speak). This device
has one device id and one identity key for both; a running "balcony listen"
(or chat, or the full-screen client) announces it on your server, readable
by anyone. Messages are encrypted to every device of the contact and to
your own other devices that may be encrypted to. Send with:
balcony send --omemo JID TEXT (OMEMO 2 when the contact announces it,
else 0.3; --omemo=2 or --omemo=0.3 to choose).

Trust is blind before verification: a contact's devices are trusted
blindly until you verify one of them; from then on a new device of that
contact is not encrypted to until you decide about it. Untrusted devices
are never encrypted to.

  devices        read JID's device lists (default: your own account's) and
                 the keys of devices not seen yet; list each device's id,
                 generations, fingerprint, trust and the day a message from
                 it was last read here (a device of yours silent for long is
                 likely stale: see remove-device).
  fingerprint    this device's id, fingerprint and the URI to verify it
                 (xmpp:JID?omemo-sid-ID=FINGERPRINT, what other clients
                 show as a QR code).
  trust          mark a device key verified, after comparing the whole
                 fingerprint with the contact over a channel you trust.
                 FINGERPRINT may be a unique prefix (spaces and case do not
                 matter); a URI names the devices and their fingerprints,
                 and is refused if a device it names is known with another
                 key. A key not seen yet is trusted when it shows up.
  untrust        mark a device key untrusted: nothing is encrypted to it
                 again, and its messages carry a warning.
  remove-device  take another device of your account (a lost or
                 reinstalled one, ID from "balcony omemo devices") off your
                 device lists, so that contacts stop encrypting to it.
  reset          replace the sessions with JID's devices (one device with
                 ID) by new ones, for a conversation that no longer
                 decrypts; the contact's client is told with an empty
                 message.
  publish        announce this device again (bundles and device lists).
  off            turn OMEMO off on this device: it is taken off your device
                 lists and its bundles are deleted, so that contacts (and
                 your other devices) stop encrypting to it; it neither
                 sends with OMEMO nor announces itself until "omemo on".
                 Messages still encrypted to it are read while its keys
                 are kept; --forget erases its keys and sessions too
                 (what was encrypted to it can no longer be read, and
                 "omemo on" then makes a new device). Use it before
                 retiring a machine, or to stop using OMEMO on it (your
                 other devices keep theirs).
  on             turn OMEMO on again and announce the device.

Commands that need the server act through a running "balcony listen" of the
account when there is one, and connect on their own otherwise.
` + secretFlagsUsage

var omemoCommand = &command{
	name:    "omemo",
	summary: "OMEMO: devices, fingerprints, trust, stale devices",
	usage:   omemoUsage,
	run:     runOMEMO,
}

// setupOMEMO registers the account's OMEMO device, both generations,
// creating its id and keys on first use.
func setupOMEMO(ctx context.Context, s *session) error {
	d, err := omemoclient.New(omemoclient.Config{Store: s.store})
	if err != nil {
		return fmt.Errorf("OMEMO: %w", err)
	}
	for _, m := range d.Mechanisms() {
		if err := s.client.Register(m); err != nil {
			return fmt.Errorf("OMEMO: %w", err)
		}
	}
	s.omemo = d
	return nil
}

// isOMEMO reports whether ns is one of the OMEMO generations Balcony
// speaks.
func isOMEMO(ns string) bool { return ns == eme.OMEMO2 || ns == eme.OMEMO0 }

// omemoFlag is send's --omemo: alone, the generation the contact
// announces (OMEMO 2 first); --omemo=2 or --omemo=0.3 names one.
type omemoFlag struct{ ns, set string }

func (f *omemoFlag) String() string   { return f.set }
func (f *omemoFlag) IsBoolFlag() bool { return true }
func (f *omemoFlag) Set(v string) error {
	switch v {
	case "true", "auto":
		f.ns = omemoAuto
	case "2":
		f.ns = eme.OMEMO2
	case "0.3":
		f.ns = eme.OMEMO0
	case "false":
		f.ns = ""
	default:
		return errors.New("want --omemo, --omemo=2 or --omemo=0.3")
	}
	f.set = v
	return nil
}

// omemoAuto in sendArgs.Mechanism asks for the OMEMO generation the
// contact announces.
const omemoAuto = "omemo"

// omemoGeneration picks the generation of "--omemo": OMEMO 2 when the
// contact has a device of it that may be encrypted to, else 0.3 when it
// has one of that, else OMEMO 2 (whose error then says what is missing).
func omemoGeneration(ctx context.Context, s *session, to jid.JID) string {
	if s.omemo == nil {
		return eme.OMEMO2
	}
	for _, m := range s.omemo.Mechanisms() {
		if m.Usable(ctx, to) {
			return m.Namespace()
		}
	}
	return eme.OMEMO2
}

// omemoOnHint and omemoOffLine tell the user that OMEMO is off on this
// device and how to turn it on.
const (
	omemoOnHint  = "turn it on with: balcony omemo on"
	omemoOffLine = "OMEMO is turned off on this device (balcony omemo on)"
)

// omemoSendHint adds what to do to the errors of an OMEMO send.
func omemoSendHint(err error, to jid.JID) error {
	bare := to.Bare().String()
	var ue *omemoclient.UntrustedError
	var se *client.StanzaError
	switch {
	case errors.Is(err, omemoclient.ErrOff):
		return withHint(err, omemoOnHint)
	case errors.Is(err, omemoclient.ErrNoDevices),
		// Prosody answers forbidden for a node that does not exist.
		errors.As(err, &se) && (se.Condition == "forbidden" || se.Condition == "item-not-found"):
		return withHint(err, bare+"'s client may not speak OMEMO; see what it announces with: balcony omemo devices "+bare)
	case errors.As(err, &ue):
		return withHint(err, "compare the fingerprints with the contact and decide: balcony omemo devices "+bare+", then balcony omemo trust "+bare+" FINGERPRINT")
	}
	return err
}

// announceOMEMO publishes this device's bundles and device list entries,
// as every long-running session does after connecting; a failure is
// reported and the session goes on (contacts who know the device still
// reach it).
func (s *session) announceOMEMO(ctx context.Context) {
	if s.omemo == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if s.omemo.Off() {
		// Off: make sure the device is not on the lists (an earlier
		// "omemo off" may have failed half way).
		if err := s.omemo.Withdraw(pctx); err != nil {
			fmt.Fprintf(s.e.stderr, "balcony: taking the OMEMO device (turned off) off the device lists failed: %v\n", err)
		}
		return
	}
	if err := s.omemo.Publish(pctx); err != nil {
		fmt.Fprintf(s.e.stderr, "balcony: announcing the OMEMO device failed: %v\n", err)
	}
}

// omemoArgs is a request of "balcony omemo"; it runs in the account's
// listener or in a session of its own.
type omemoArgs struct {
	Op          string `json:"op"` // devices, fingerprint, trust, untrust, remove-device, reset, publish, off, on
	Contact     string `json:"contact,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	URI         string `json:"uri,omitempty"`
	ID          uint32 `json:"id,omitempty"`
	Forget      bool   `json:"forget,omitempty"` // off: erase the keys
}

type omemoDevice struct {
	JID         string   `json:"jid"`
	ID          uint32   `json:"id"`
	Generations []string `json:"generations,omitempty"` // "2", "0.3"
	Listed      bool     `json:"listed"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	Trust       string   `json:"trust,omitempty"`
	This        bool     `json:"this,omitempty"`
	// LastMessage is the day a message from the device was last read
	// (YYYY-MM-DD), "" for never.
	LastMessage string `json:"last_message,omitempty"`
}

type omemoResult struct {
	Devices []omemoDevice `json:"devices,omitempty"`
	// Offline: the device lists could not be read; Devices is what is
	// known.
	Offline     string `json:"offline,omitempty"`
	ID          uint32 `json:"id,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	URI         string `json:"uri,omitempty"`
	Reset       int    `json:"reset,omitempty"`
	// Decided are the keys a trust decision was recorded for (ID 0 when
	// the device is not known yet).
	Decided []omemoDevice `json:"decided,omitempty"`
	// Off: OMEMO is turned off on this device.
	Off bool `json:"off,omitempty"`
}

// controlOMEMO serves "omemo" on the control socket.
func controlOMEMO(ctx context.Context, s *session, raw json.RawMessage) (any, error) {
	var a omemoArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return doOMEMO(ctx, s, a)
}

func omemoDevices(infos []omemoclient.DeviceInfo) []omemoDevice {
	var out []omemoDevice
	for _, i := range infos {
		d := omemoDevice{JID: i.JID, ID: i.ID, Listed: i.Listed, Fingerprint: i.Fingerprint, This: i.This}
		if !i.LastMessage.IsZero() {
			d.LastMessage = i.LastMessage.UTC().Format(time.DateOnly)
		}
		if i.Fingerprint != "" {
			d.Trust = i.Trust.String()
		}
		for _, g := range i.Generations {
			d.Generations = append(d.Generations, strings.TrimPrefix(g.String(), "OMEMO "))
		}
		out = append(out, d)
	}
	return out
}

// doOMEMO runs a request in a session (connected for devices,
// remove-device, reset and publish).
func doOMEMO(ctx context.Context, s *session, a omemoArgs) (*omemoResult, error) {
	d := s.omemo
	if d == nil {
		return nil, errors.New("OMEMO is not set up in this session")
	}
	self, err := jid.Parse(s.acct.JID)
	if err != nil {
		return nil, err
	}
	contact := self.Bare()
	if a.Contact != "" {
		if contact, err = jid.Parse(a.Contact); err != nil {
			return nil, err
		}
		contact = contact.Bare()
	}
	res := &omemoResult{Off: d.Off()}
	switch a.Op {
	case "devices":
		infos, err := d.Devices(ctx, contact)
		if err != nil {
			res.Offline = err.Error()
			if infos, err = d.KnownDevices(ctx, contact); err != nil {
				return nil, err
			}
		}
		res.Devices = omemoDevices(infos)
	case "fingerprint":
		res.ID, res.Fingerprint, res.URI = d.DeviceID(), d.Fingerprint(), d.URI(self)
	case "trust", "untrust":
		var err error
		res.Decided, err = decideOMEMO(ctx, s, contact, a)
		return res, err
	case "remove-device":
		if err := d.RemoveDevice(ctx, a.ID); err != nil {
			switch {
			case errors.Is(err, omemoclient.ErrOwnDevice):
				return nil, withHint(err, "to retire this device, remove its id from another device of the account")
			case errors.Is(err, omemoclient.ErrUnknownDevice):
				return nil, withHint(err, "see your account's devices with: balcony omemo devices")
			}
			return nil, err
		}
	case "reset":
		n, err := d.ResetSession(ctx, contact, a.ID)
		if errors.Is(err, omemoclient.ErrOff) {
			return nil, withHint(err, omemoOnHint)
		}
		if err != nil && n == 0 {
			return nil, err
		}
		res.Reset = n
	case "publish":
		if err := d.Publish(ctx); err != nil {
			if errors.Is(err, omemoclient.ErrOff) {
				return nil, withHint(err, omemoOnHint)
			}
			return nil, err
		}
		res.ID, res.Fingerprint = d.DeviceID(), d.Fingerprint()
	case "off":
		res.ID, res.Fingerprint = d.DeviceID(), d.Fingerprint() // before --forget replaces them
		if err := d.TurnOff(ctx, a.Forget); err != nil {
			if !d.Off() {
				return nil, err
			}
			again := "balcony omemo off"
			if a.Forget {
				again += " --forget"
			}
			return nil, withHint(err, "OMEMO is off on this device, but it may still be on the lists; run "+again+" again (a listener also does it when it connects)")
		}
		res.Off = true
	case "on":
		res.Off = false
		if err := d.TurnOn(ctx); err != nil {
			if d.Off() {
				return nil, err
			}
			return nil, withHint(err, "OMEMO is on; the device is announced when a listener connects, or with: balcony omemo publish")
		}
		res.ID, res.Fingerprint = d.DeviceID(), d.Fingerprint()
	default:
		return nil, fmt.Errorf("unknown omemo request %q", a.Op)
	}
	return res, nil
}

// decideOMEMO records a trust decision about a device key given by a
// fingerprint (or a unique prefix of one), or about every device a
// verification URI names, and returns the keys decided about.
func decideOMEMO(ctx context.Context, s *session, contact jid.JID, a omemoArgs) ([]omemoDevice, error) {
	state := trust.Verified
	if a.Op == "untrust" {
		state = trust.Untrusted
	}
	if a.URI == "" {
		fpr, err := decideOMEMOKey(ctx, s, contact, a.Fingerprint, state)
		if err != nil {
			return nil, err
		}
		d := omemoDevice{JID: contact.String(), Fingerprint: fpr, Trust: state.String()}
		if known, err := s.omemo.KnownDevices(ctx, contact); err == nil {
			for _, k := range known {
				if k.Fingerprint == fpr {
					d.ID = k.ID
				}
			}
		}
		return []omemoDevice{d}, nil
	}
	owner, devs, err := omemoclient.ParseURI(a.URI)
	if err != nil {
		return nil, err
	}
	known, err := s.omemo.KnownDevices(ctx, owner)
	if err != nil {
		return nil, err
	}
	// Every device is checked before anything is recorded: a URI that
	// disagrees with a known key is refused as a whole.
	for _, u := range devs {
		for _, k := range known {
			if k.ID == u.ID && k.Fingerprint != "" && k.Fingerprint != u.Fingerprint {
				return nil, withHint(fmt.Errorf("the device %d of %s has the key %s, not %s as the URI says", u.ID, owner,
					omemoclient.DisplayFingerprint(k.Fingerprint), omemoclient.DisplayFingerprint(u.Fingerprint)),
					"nothing was recorded; ask the contact where the URI comes from, and compare the fingerprints again")
			}
		}
	}
	var out []omemoDevice
	for _, u := range devs {
		fpr, err := decideOMEMOKey(ctx, s, owner, u.Fingerprint, state)
		if err != nil {
			return out, err
		}
		out = append(out, omemoDevice{JID: owner.String(), ID: u.ID, Fingerprint: fpr, Trust: state.String()})
	}
	return out, nil
}

// decideOMEMOKey records a decision about the contact's key whose
// fingerprint is fpr or starts with it, and returns the whole
// fingerprint; a whole fingerprint not seen yet is decided in advance
// (the key is trusted when it shows up).
func decideOMEMOKey(ctx context.Context, s *session, contact jid.JID, fpr string, state trust.State) (string, error) {
	k, err := decideTrust(ctx, s.store, contact, store.OMEMO, fpr, state)
	if err == nil {
		return k.Fingerprint, nil
	}
	if whole, nerr := trust.NormalizeFingerprint(trust.OMEMO, fpr); nerr == nil {
		return whole, s.omemo.SetTrust(ctx, contact, whole, state)
	}
	return "", err
}

// runOMEMORequest runs a request through the account's listener, or in a
// session of its own (connected when network is set).
func runOMEMORequest(ctx context.Context, e *env, so *secretOptions, a omemoArgs, network bool) (*omemoResult, error) {
	acct, err := currentAccount(e)
	if err != nil {
		return nil, err
	}
	var res omemoResult
	err = callControl(ctx, e, acct, "omemo", a, &res)
	if !errors.Is(err, errNoListener) {
		return &res, err
	}
	if !network {
		// The store alone: no password, no client.
		a2, st, err := openAccount(e, so)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		sess := &session{e: e, acct: a2, store: st}
		if sess.omemo, err = omemoclient.New(omemoclient.Config{Store: st}); err != nil {
			return nil, fmt.Errorf("OMEMO: %w", err)
		}
		return doOMEMO(ctx, sess, a)
	}
	sess, err := connectOnce(ctx, e, so)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return doOMEMO(ctx, sess, a)
}

func runOMEMO(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "omemo needs a subcommand", hint: "run: balcony help omemo"}
	}
	op, args := args[0], args[1:]
	fs := newFlags("omemo")
	var so secretOptions
	so.add(fs)
	forget := fs.Bool("forget", false, "off: erase this device's keys and sessions too")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usage := func(what string) error {
		return &usageError{msg: "omemo " + op + " " + what, hint: "run: balcony help omemo"}
	}
	if *forget && op != "off" {
		return usage("takes no --forget (only omemo off does)")
	}
	contact := func(i int) (string, error) {
		j, err := jid.Parse(fs.Arg(i))
		if err != nil || j.Localpart() == "" {
			return "", &usageError{msg: fmt.Sprintf("invalid JID %q", fs.Arg(i))}
		}
		return j.Bare().String(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a := omemoArgs{Op: op}
	network := true
	var err error
	switch op {
	case "devices":
		if fs.NArg() > 1 {
			return usage("takes at most one JID")
		}
		if fs.NArg() == 1 {
			if a.Contact, err = contact(0); err != nil {
				return err
			}
		}
	case "fingerprint", "publish", "off", "on":
		if fs.NArg() != 0 {
			return usage("takes no arguments")
		}
		network = op != "fingerprint"
		a.Forget = *forget
	case "trust", "untrust":
		network = false
		switch {
		case fs.NArg() == 1 && op == "trust" && strings.HasPrefix(fs.Arg(0), "xmpp:"):
			a.URI = fs.Arg(0)
		case fs.NArg() == 2:
			if a.Contact, err = contact(0); err != nil {
				return err
			}
			a.Fingerprint = fs.Arg(1)
		default:
			return usage("needs JID FINGERPRINT" + map[bool]string{true: " or an xmpp: URI", false: ""}[op == "trust"])
		}
	case "remove-device":
		if fs.NArg() != 1 {
			return usage("needs a device id")
		}
		id, perr := strconv.ParseUint(fs.Arg(0), 10, 32)
		if perr != nil || id == 0 {
			return &usageError{msg: fmt.Sprintf("invalid device id %q", fs.Arg(0)), hint: "the ids are listed by: balcony omemo devices"}
		}
		a.ID = uint32(id)
	case "reset":
		if fs.NArg() < 1 || fs.NArg() > 2 {
			return usage("needs JID [ID]")
		}
		if a.Contact, err = contact(0); err != nil {
			return err
		}
		if fs.NArg() == 2 {
			id, perr := strconv.ParseUint(fs.Arg(1), 10, 32)
			if perr != nil || id == 0 {
				return &usageError{msg: fmt.Sprintf("invalid device id %q", fs.Arg(1))}
			}
			a.ID = uint32(id)
		}
	default:
		return &usageError{msg: fmt.Sprintf("unknown omemo subcommand %q", op), hint: "run: balcony help omemo"}
	}
	res, err := runOMEMORequest(ctx, e, &so, a, network)
	if err != nil {
		return err
	}
	return printOMEMO(e, a, res)
}

// printOMEMO prints a request's result as the command and the
// full-screen client show it.
func printOMEMO(e *env, a omemoArgs, res *omemoResult) error {
	acct := e.account
	switch a.Op {
	case "devices":
		who := a.Contact
		if who == "" {
			who = "your account"
			if acct != "" {
				who = acct
			}
		}
		if res.Offline != "" {
			fmt.Fprintf(e.stdout, "the device lists could not be read (%s); what is known:\n", oneLine(res.Offline))
		}
		if res.Off && a.Contact == "" {
			fmt.Fprintln(e.stdout, omemoOffLine)
		}
		if len(res.Devices) == 0 {
			fmt.Fprintf(e.stdout, "%s announces no OMEMO device\n", who)
			return nil
		}
		fmt.Fprintf(e.stdout, "%s has %d OMEMO device(s):\n", who, len(res.Devices))
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, d := range res.Devices {
			fpr, st := "(key not read)", d.Trust
			if d.Fingerprint != "" {
				fpr = omemoclient.DisplayFingerprint(d.Fingerprint)
			}
			gens := "OMEMO " + strings.Join(d.Generations, ", ")
			last := "no message yet"
			if d.LastMessage != "" {
				last = "last message " + d.LastMessage
			}
			switch {
			case d.This && len(d.Generations) == 0:
				gens, st, last = "not listed", "this device (OMEMO off)", ""
			case d.This:
				st, last = "this device", ""
			case !d.Listed:
				gens = "no longer listed"
			}
			row := fmt.Sprintf("  %d\t%s\t%s\t%s", d.ID, gens, fpr, st)
			if last != "" {
				row += "\t" + last
			}
			fmt.Fprintln(tw, row)
		}
		return tw.Flush()
	case "fingerprint":
		fmt.Fprintf(e.stdout, "device %d\n%s\n%s\n", res.ID, omemoclient.DisplayFingerprint(res.Fingerprint), res.URI)
		if res.Off {
			fmt.Fprintln(e.stdout, omemoOffLine)
		}
	case "trust", "untrust":
		for _, d := range res.Decided {
			dev := "a device not seen yet"
			if d.ID != 0 {
				dev = "the device " + strconv.FormatUint(uint64(d.ID), 10)
			}
			fmt.Fprintf(e.stdout, "the OMEMO key %s of %s (%s) is now %s\n", omemoclient.DisplayFingerprint(d.Fingerprint), d.JID, dev, d.Trust)
		}
	case "remove-device":
		fmt.Fprintf(e.stdout, "the device %d is no longer on your OMEMO device lists\n", a.ID)
	case "reset":
		fmt.Fprintf(e.stdout, "replaced %d session(s) with %s's OMEMO devices\n", res.Reset, a.Contact)
	case "publish", "on":
		fmt.Fprintf(e.stdout, "announced the OMEMO device %d (%s), readable by anyone\n", res.ID, omemoclient.DisplayFingerprint(res.Fingerprint))
	case "off":
		what := "its keys are kept: messages still encrypted to it are read"
		if a.Forget {
			what = "its keys and sessions are erased: balcony omemo on makes a new device"
		}
		fmt.Fprintf(e.stdout, "OMEMO is off on this device: %d is no longer on your device lists; %s\n", res.ID, what)
	}
	return nil
}

// keepAnnounced makes a long-running session announce the OMEMO device
// now and again after every reconnection (XEP-0384 §5.3: a device keeps
// itself on its account's device list).
func (s *session) keepAnnounced(ctx context.Context) {
	s.announce = true
	s.announceOMEMO(ctx)
}

// reconnected is called by offer for every Connected event: the first is
// the connection the session started with, each later one a
// reconnection, after which the device is announced again in the
// background (another device may have dropped it from the list while
// this one was away).
func (s *session) reconnected() {
	s.connections++
	if !s.announce || s.omemo == nil || s.connections == 1 {
		return
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		s.announceOMEMO(context.Background())
	}()
}

// omemoSlashUsage is the slash command of chat and the full-screen client.
const omemoSlashUsage = "/omemo devices|fingerprint|trust FPR|untrust FPR|reset [ID]"

// omemoSlashArgs turns the arguments of /omemo, typed in a conversation
// with peer, into a request.
func omemoSlashArgs(peer jid.JID, args []string) (omemoArgs, error) {
	usage := &usageError{msg: "usage: " + omemoSlashUsage}
	if len(args) == 0 {
		return omemoArgs{}, usage
	}
	a := omemoArgs{Op: args[0], Contact: peer.Bare().String()}
	switch {
	case a.Op == "devices" && len(args) == 1, a.Op == "reset" && len(args) == 1:
	case a.Op == "fingerprint" && len(args) == 1:
		a.Contact = ""
	case a.Op == "trust" && len(args) == 2 && strings.HasPrefix(args[1], "xmpp:"):
		a.Contact, a.URI = "", args[1]
	case (a.Op == "trust" || a.Op == "untrust") && len(args) >= 2:
		// A fingerprint as shown, in groups, or in one piece.
		a.Fingerprint = strings.Join(args[1:], "")
	case a.Op == "reset" && len(args) == 2:
		id, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil || id == 0 {
			return a, usage
		}
		a.ID = uint32(id)
	default:
		return a, usage
	}
	return a, nil
}

// omemoCandidates are the OMEMO generations for the full-screen client's
// automatic choice: usable when the contact announces a device of the
// generation that may be encrypted to. With refresh the contact's device
// lists (and the keys of devices not seen yet) are read first.
func (u *uiSession) omemoCandidates(ctx context.Context, bare jid.JID, refresh bool) []ui.Candidate {
	d := u.sess.omemo
	if d == nil {
		return nil
	}
	if refresh {
		d.Devices(ctx, bare)
	}
	verified := false
	if known, err := d.KnownDevices(ctx, bare); err == nil {
		for _, k := range known {
			verified = verified || k.Trust == trust.Verified
		}
	}
	var out []ui.Candidate
	for _, m := range d.Mechanisms() {
		c := ui.Candidate{Mechanism: m.Namespace(), To: bare}
		switch {
		case d.Off():
			c.Why = omemoOffLine
		case m.Usable(ctx, bare) && verified:
			c.Usable, c.Why = true, bare.String()+"'s devices, verified"
		case m.Usable(ctx, bare):
			c.Usable, c.Why = true, bare.String()+"'s devices, trusted blindly (/omemo devices)"
		default:
			c.Why = "no " + shortMechanism(m.Namespace()) + " device of " + bare.String() + " to encrypt to (/omemo devices)"
		}
		out = append(out, c)
	}
	return out
}

// omemo runs /omemo in a conversation.
func (u *uiSession) omemo(ctx context.Context, e *env, r ui.Request) error {
	a, err := omemoSlashArgs(r.Peer, r.Args)
	if err != nil {
		return err
	}
	var res omemoResult
	if err := u.call(ctx, controlOMEMO, a, &res); err != nil {
		return err
	}
	return printOMEMO(e, a, &res)
}
