package storetest

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/store"
)

// ofpr returns a distinct valid OMEMO fingerprint (64 hex digits).
func ofpr(c byte) string { return strings.Repeat(string(c), 64) }

// OMEMO: blind trust before verification. Every device of a contact is
// trusted blindly until the user verified one; later devices are then
// undecided, and those trusted blindly before keep their state.
func (su suite) testOMEMORules(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const romeo, tybalt = "romeo@montague.lit", "tybalt@capulet.lit"
	first, err := s.RecordSeenKey(ctx, romeo, store.OMEMO, strings.ToUpper(ofpr('a')), []byte("ik a"))
	must(t, err)
	if !first.New || first.Change != nil || first.Key.Trust != store.Blind || first.Key.Fingerprint != ofpr('a') {
		t.Fatalf("first OMEMO key: %+v, want new, blind, no change, lower case", first)
	}
	second, err := s.RecordSeenKey(ctx, romeo, store.OMEMO, ofpr('b'), nil)
	must(t, err)
	if !second.New || second.Key.Trust != store.Blind || second.Change == nil || !slices.Equal(second.Change.Previous, []string{ofpr('a')}) {
		t.Fatalf("second OMEMO key before any verification: %+v, want blind and a change", second)
	}
	must(t, s.SetTrust(ctx, romeo, store.OMEMO, ofpr('a'), store.Verified))
	third, err := s.RecordSeenKey(ctx, romeo, store.OMEMO, ofpr('c'), nil)
	must(t, err)
	if third.Key.Trust != store.Undecided || third.Change == nil {
		t.Fatalf("a key after the contact has a verified one: %+v, want undecided and a change", third)
	}
	// Another contact is not affected by romeo's verified key.
	other, err := s.RecordSeenKey(ctx, tybalt, store.OMEMO, ofpr('c'), nil)
	must(t, err)
	if other.Key.Trust != store.Blind {
		t.Fatalf("another contact's first key: %v", other.Key.Trust)
	}
	keys, err := s.ListKeys(ctx, romeo, store.OMEMO)
	must(t, err)
	var got []string
	for _, k := range keys {
		got = append(got, k.Fingerprint[:1]+" "+k.Trust.String())
	}
	if want := []string{"a verified", "b blind", "c undecided"}; !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
	if s.DefaultTrust(store.OMEMO, false) != store.Blind {
		t.Error("DefaultTrust(OMEMO, not first) is not blind")
	}
	for _, bad := range []string{ofpr('a')[:63], ofpr('g'), fpr('A')} {
		_, err := s.RecordSeenKey(ctx, romeo, store.OMEMO, bad, nil)
		if err == nil {
			t.Errorf("OMEMO fingerprint %q accepted", bad)
		}
	}

	var opts store.Options
	opts.NoBlindTrust = true
	nb := su.clocked(t, opts)
	seen, err := nb.RecordSeenKey(ctx, romeo, store.OMEMO, ofpr('a'), nil)
	must(t, err)
	if seen.Key.Trust != store.Undecided {
		t.Errorf("first OMEMO key with NoBlindTrust: %v", seen.Key.Trust)
	}
}

// Mechanism state: values by name, read back opened, listed by prefix,
// changed several at once, deleted, sealed and bound to their name, and
// the change of several names is one transaction.
func (su suite) testMechanismState(t *testing.T) {
	s, name := su.create(t, store.Options{})
	const marker = "MARKER-omemo-session-7f3a"
	v, err := s.MechanismState(ctx, store.OMEMO, "account")
	if v != nil || err != nil {
		t.Fatalf("missing name: %q, %v; want nil, nil", v, err)
	}
	set := map[string][]byte{
		"account":                    []byte("identity"),
		"session/2/a@b.c/1":          []byte(marker + "1"),
		"session/2/a@b.c/2":          []byte("two"),
		"session/2/a_b@c.d/1":        []byte("underscore"),
		"session/20/x@y.z/1":         []byte("other prefix"),
		"devices/romeo@montague.lit": {},
	}
	must(t, s.UpdateMechanismState(ctx, store.OMEMO, set, nil))
	if v, err := s.MechanismState(ctx, store.OMEMO, "account"); err != nil || string(v) != "identity" {
		t.Fatalf("account: %q, %v", v, err)
	}
	if v, err := s.MechanismState(ctx, store.OMEMO, "devices/romeo@montague.lit"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value: %q (nil %v), %v", v, v == nil, err)
	}
	if v, err := s.MechanismState(ctx, store.OX, "account"); v != nil || err != nil {
		t.Fatalf("another mechanism's name: %q, %v", v, err)
	}
	got, err := s.MechanismStates(ctx, store.OMEMO, "session/2/")
	must(t, err)
	if want := []string{"session/2/a@b.c/1", "session/2/a@b.c/2", "session/2/a_b@c.d/1"}; !slices.Equal(slices.Sorted(maps.Keys(got)), want) ||
		string(got["session/2/a@b.c/2"]) != "two" {
		t.Fatalf("prefix session/2/: %q", got)
	}
	all, err := s.MechanismStates(ctx, store.OMEMO, "")
	must(t, err)
	if len(all) != len(set) {
		t.Fatalf("all names: %d, want %d", len(all), len(set))
	}

	// Replace one, delete two, add one, in one call.
	must(t, s.UpdateMechanismState(ctx, store.OMEMO, map[string][]byte{"account": []byte("identity 2"), "keys/2": []byte("pre-keys")},
		[]string{"session/2/a@b.c/1", "session/20/x@y.z/1", "never/stored"}))
	got, err = s.MechanismStates(ctx, store.OMEMO, "")
	must(t, err)
	if want := []string{"account", "devices/romeo@montague.lit", "keys/2", "session/2/a@b.c/2", "session/2/a_b@c.d/1"}; !slices.Equal(slices.Sorted(maps.Keys(got)), want) ||
		string(got["account"]) != "identity 2" {
		t.Fatalf("after the update: %q", got)
	}

	// A bad name fails the whole change: nothing is written.
	err = s.UpdateMechanismState(ctx, store.OMEMO, map[string][]byte{"account": []byte("identity 3"), "": []byte("x")}, nil)
	if err == nil {
		t.Fatal("an empty name was accepted")
	}
	err = s.UpdateMechanismState(ctx, store.OMEMO, map[string][]byte{"nil": nil}, nil)
	if err == nil {
		t.Fatal("a nil value was accepted")
	}
	if v, _ := s.MechanismState(ctx, store.OMEMO, "account"); string(v) != "identity 2" {
		t.Fatalf("a refused change wrote %q", v)
	}
	if err := s.UpdateMechanismState(ctx, "pgp", map[string][]byte{"a": {1}}, nil); err == nil {
		t.Fatal("an unknown mechanism was accepted")
	}

	// Sealed: not in the clear, and a value moved to another name does
	// not open.
	must(t, s.UpdateMechanismState(ctx, store.OMEMO, map[string][]byte{"session/2/a@b.c/1": []byte(marker + "1")}, nil))
	if su.b.Contains(t, name, []byte(marker)) {
		t.Fatal("a session is stored in the clear")
	}
	must(t, s.Check(ctx))
	if n := su.b.Exec(t, name, `UPDATE mechanism_state SET value = (SELECT value FROM mechanism_state WHERE /*account*/ key = 'account')
		WHERE /*account*/ key = ?`, "session/2/a@b.c/2"); n != 1 {
		t.Fatalf("tampering changed %d rows", n)
	}
	_, err = s.MechanismState(ctx, store.OMEMO, "session/2/a@b.c/2")
	wantErr(t, err, store.ErrCorrupt)
	_, err = s.MechanismStates(ctx, store.OMEMO, "session/")
	wantErr(t, err, store.ErrCorrupt)
	wantErr(t, s.Check(ctx), store.ErrCorrupt)
}
