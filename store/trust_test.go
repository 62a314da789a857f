package store

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// fpr returns a distinct valid 40-digit fingerprint.
func fpr(c byte) string { return strings.Repeat(string(c), 40) }

// clock is a controllable Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func openClocked(t *testing.T, opts Options) *Store {
	c := &clock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	opts.Now = c.now
	return createDir(t, t.TempDir(), opts)
}

func TestOXRules(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	const romeo = "romeo@montague.lit"

	first, err := s.RecordSeenKey(ctx, romeo, OX, fpr('A'), []byte("key A v1"))
	must(t, err)
	if !first.New || first.Change != nil || first.Key.Trust != Blind {
		t.Fatalf("first OX key: %+v, want new, Blind, no change", first)
	}

	// Seen again: not new, data and last-seen updated.
	again, err := s.RecordSeenKey(ctx, romeo, OX, fpr('a'), []byte("key A v2"))
	must(t, err)
	if again.New || again.Change != nil || string(again.Key.Data) != "key A v2" ||
		!again.Key.LastSeen.After(first.Key.LastSeen) || !again.Key.FirstSeen.Equal(first.Key.FirstSeen) {
		t.Fatalf("same key again: %+v (first %+v)", again, first)
	}
	// nil data keeps what is stored.
	again, err = s.RecordSeenKey(ctx, romeo, OX, fpr('A'), nil)
	must(t, err)
	if string(again.Key.Data) != "key A v2" {
		t.Errorf("nil data replaced stored data: %q", again.Key.Data)
	}

	// A second key: Undecided, reported as a change.
	second, err := s.RecordSeenKey(ctx, romeo, OX, fpr('B'), []byte("key B"))
	must(t, err)
	if !second.New || second.Key.Trust != Undecided || second.Change == nil {
		t.Fatalf("second OX key: %+v, want new, Undecided, a change", second)
	}
	ch := second.Change
	if ch.Contact != romeo || ch.Mechanism != OX || ch.Fingerprint != fpr('B') ||
		!slices.Equal(ch.Previous, []string{fpr('A')}) || ch.Trust != Undecided {
		t.Errorf("KeyChange %+v", ch)
	}
	third, err := s.RecordSeenKey(ctx, romeo, OX, fpr('C'), nil)
	must(t, err)
	if third.Change == nil || !slices.Equal(third.Change.Previous, []string{fpr('A'), fpr('B')}) {
		t.Errorf("third key change: %+v", third.Change)
	}

	// The changes are pending until acknowledged.
	pending, err := s.PendingKeyChanges(ctx)
	must(t, err)
	if len(pending) != 2 || pending[0].ID != ch.ID || pending[0].Fingerprint != fpr('B') ||
		!slices.Equal(pending[0].Previous, ch.Previous) || pending[1].ID != third.Change.ID {
		t.Fatalf("pending %+v", pending)
	}
	must(t, s.AcknowledgeKeyChange(ctx, ch.ID))
	wantErr(t, s.AcknowledgeKeyChange(ctx, ch.ID), ErrNotFound)
	pending, err = s.PendingKeyChanges(ctx)
	must(t, err)
	if len(pending) != 1 || pending[0].ID != third.Change.ID {
		t.Errorf("pending after acknowledging one: %+v", pending)
	}

	keys, err := s.ListKeys(ctx, romeo, OX)
	must(t, err)
	var got []string
	for _, k := range keys {
		got = append(got, k.Fingerprint+" "+k.Trust.String())
	}
	want := []string{fpr('A') + " blind", fpr('B') + " undecided", fpr('C') + " undecided"}
	if !slices.Equal(got, want) {
		t.Errorf("ListKeys = %q, want %q", got, want)
	}
}

func TestOXNoBlindTrust(t *testing.T) {
	opts := testOptions(testPass)
	opts.NoBlindTrust = true
	s := openClocked(t, opts)
	seen, err := s.RecordSeenKey(ctx, "romeo@montague.lit", OX, fpr('A'), nil)
	must(t, err)
	if seen.Key.Trust != Undecided {
		t.Errorf("first OX key with NoBlindTrust: %v", seen.Key.Trust)
	}
	if s.DefaultTrust(OX, true) != Undecided {
		t.Error("DefaultTrust(OX, first) ignores NoBlindTrust")
	}
}

func TestOTRRules(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	const bob = "bob@example.com"
	first, err := s.RecordSeenKey(ctx, bob+"/laptop", OTR, "2fd4e1c6 7a2d28fc ed849ee1 bb76e739 1b93eb12", []byte("pubkey"))
	must(t, err)
	if first.Key.Trust != Undecided || first.Change != nil || first.Key.Contact != bob {
		t.Fatalf("first OTR fingerprint: %+v", first)
	}
	// SMP succeeded.
	must(t, s.SetTrust(ctx, bob, OTR, "2FD4E1C67A2D28FCED849EE1BB76E7391B93EB12", Verified))
	tr, err := s.Trust(ctx, bob, OTR, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
	if err != nil || tr != Verified {
		t.Fatalf("after SMP: %v, %v", tr, err)
	}
	// Setting the same state again records nothing.
	must(t, s.SetTrust(ctx, bob, OTR, first.Key.Fingerprint, Verified))

	second, err := s.RecordSeenKey(ctx, bob, OTR, fpr('E'), nil)
	must(t, err)
	if second.Key.Trust != Undecided || second.Change == nil {
		t.Errorf("new OTR fingerprint: %+v", second)
	}

	evs, err := s.KeyEvents(ctx, bob, OTR)
	must(t, err)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind.String()+":"+e.OldTrust.String()+">"+e.NewTrust.String())
	}
	want := []string{"first:undecided>undecided", "trust:undecided>verified", "changed:undecided>undecided"}
	if !slices.Equal(kinds, want) {
		t.Errorf("history %q, want %q", kinds, want)
	}
	if evs[2].Acknowledged || !evs[0].Acknowledged || !evs[1].Acknowledged {
		t.Errorf("acknowledged flags: %v %v %v", evs[0].Acknowledged, evs[1].Acknowledged, evs[2].Acknowledged)
	}
}

func TestESessionRules(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	first, err := s.RecordSeenKey(ctx, "carol@example.net", ESession, " q1w2e3r4t5y6u7i8o9p0+/== ", nil)
	must(t, err)
	if first.Key.Trust != Undecided || first.Key.Fingerprint != "q1w2e3r4t5y6u7i8o9p0+/==" {
		t.Fatalf("first ESession key: %+v", first)
	}
	// Base64 fingerprints are case-sensitive: another case is another key.
	second, err := s.RecordSeenKey(ctx, "carol@example.net", ESession, "Q1W2E3R4T5Y6U7I8O9P0+/==", nil)
	must(t, err)
	if !second.New || second.Change == nil {
		t.Errorf("second ESession key: %+v", second)
	}
	// SAS confirmed.
	must(t, s.SetTrust(ctx, "carol@example.net", ESession, second.Key.Fingerprint, Verified))
}

func TestMechanismsAndContactsIndependent(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	_, err := s.RecordSeenKey(ctx, "dave@example.org", OX, fpr('1'), nil)
	must(t, err)
	otr, err := s.RecordSeenKey(ctx, "dave@example.org", OTR, fpr('1'), nil)
	must(t, err)
	other, err := s.RecordSeenKey(ctx, "erin@example.org", OX, fpr('1'), nil)
	must(t, err)
	if otr.Change != nil || otr.Key.Trust != Undecided {
		t.Errorf("first OTR key of a contact with an OX key: %+v", otr)
	}
	if other.Change != nil || other.Key.Trust != Blind {
		t.Errorf("first OX key of another contact with the same fingerprint: %+v", other)
	}
	all, err := s.ListKeys(ctx, "", "")
	must(t, err)
	if len(all) != 3 {
		t.Errorf("ListKeys(all) = %d keys", len(all))
	}
	oxKeys, err := s.ListKeys(ctx, "", OX)
	must(t, err)
	if len(oxKeys) != 2 || oxKeys[0].Contact != "dave@example.org" || oxKeys[1].Contact != "erin@example.org" {
		t.Errorf("ListKeys(OX) = %+v", oxKeys)
	}
}

func TestTrustDecidedBeforeSeen(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	const frank = "frank@example.org"
	_, err := s.RecordSeenKey(ctx, frank, OX, fpr('1'), nil)
	must(t, err)
	// The user scans frank's new fingerprint before the key shows up.
	must(t, s.SetTrust(ctx, frank, OX, fpr('2'), Verified))
	keys, err := s.ListKeys(ctx, frank, OX)
	must(t, err)
	if len(keys) != 2 || keys[1].Fingerprint != fpr('2') || !keys[1].FirstSeen.IsZero() || keys[1].Trust != Verified {
		t.Fatalf("keys %+v", keys)
	}
	seen, err := s.RecordSeenKey(ctx, frank, OX, fpr('2'), []byte("data"))
	must(t, err)
	if !seen.New || seen.Key.Trust != Verified || seen.Key.FirstSeen.IsZero() || seen.Change == nil || seen.Change.Trust != Verified {
		t.Errorf("pre-verified key seen: %+v change %+v", seen, seen.Change)
	}
	// A key decided (untrusted) before any key was seen is a first key
	// that keeps the decision.
	must(t, s.SetTrust(ctx, "grace@example.org", OX, fpr('3'), Untrusted))
	seen, err = s.RecordSeenKey(ctx, "grace@example.org", OX, fpr('3'), nil)
	must(t, err)
	if seen.Key.Trust != Untrusted || seen.Change != nil {
		t.Errorf("pre-rejected first key: %+v", seen)
	}
}

func TestSetAnnouncedKeys(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	const h = "heidi@example.org"
	for _, c := range []byte("ABC") {
		_, err := s.RecordSeenKey(ctx, h, OX, fpr(c), nil)
		must(t, err)
	}
	announced := func() string {
		keys, err := s.ListKeys(ctx, h, OX)
		must(t, err)
		var b strings.Builder
		for _, k := range keys {
			if k.Announced {
				b.WriteByte(k.Fingerprint[0])
			}
		}
		return b.String()
	}
	must(t, s.SetAnnouncedKeys(ctx, h, OX, []string{fpr('a'), fpr('C'), fpr('F')}))
	if got := announced(); got != "AC" {
		t.Errorf("announced %q, want AC", got)
	}
	must(t, s.SetAnnouncedKeys(ctx, h, OX, []string{fpr('B')}))
	if got := announced(); got != "B" {
		t.Errorf("announced %q, want B", got)
	}
	if err := s.SetAnnouncedKeys(ctx, h, OX, []string{"not hex"}); err == nil {
		t.Error("SetAnnouncedKeys accepted an invalid fingerprint")
	}
}

func TestDeleteContactKey(t *testing.T) {
	s := openClocked(t, testOptions(testPass))
	_, err := s.RecordSeenKey(ctx, "ivan@example.org", OTR, fpr('1'), nil)
	must(t, err)
	must(t, s.SetTrust(ctx, "ivan@example.org", OTR, fpr('1'), Verified))
	must(t, s.DeleteContactKey(ctx, "ivan@example.org", OTR, fpr('1')))
	wantErr(t, s.DeleteContactKey(ctx, "ivan@example.org", OTR, fpr('1')), ErrNotFound)
	evs, err := s.KeyEvents(ctx, "ivan@example.org", "")
	must(t, err)
	if len(evs) != 0 {
		t.Errorf("history survived the key: %+v", evs)
	}
	seen, err := s.RecordSeenKey(ctx, "ivan@example.org", OTR, fpr('1'), nil)
	must(t, err)
	if !seen.New || seen.Key.Trust != Undecided {
		t.Errorf("forgotten key seen again: %+v", seen)
	}
}

func TestInvalidKeyArguments(t *testing.T) {
	s := openTest(t)
	for _, tc := range []struct {
		contact string
		m       Mechanism
		fpr     string
	}{
		{"", OX, fpr('A')},
		{"not a jid@", OX, fpr('A')},
		{"a@b.c", "omemo", fpr('A')},
		{"a@b.c", OX, "xyz"},
		{"a@b.c", OX, strings.Repeat("A", 39)},
		{"a@b.c", OTR, strings.Repeat("A", 64)},
		{"a@b.c", ESession, "has space"},
	} {
		if _, err := s.RecordSeenKey(ctx, tc.contact, tc.m, tc.fpr, nil); err == nil {
			t.Errorf("RecordSeenKey(%q, %q, %q) accepted", tc.contact, tc.m, tc.fpr)
		}
	}
	if err := s.SetTrust(ctx, "a@b.c", OX, fpr('A'), TrustState(9)); err == nil {
		t.Error("SetTrust accepted an invalid state")
	}
	// OX accepts v6 (64-digit) fingerprints.
	if _, err := s.RecordSeenKey(ctx, "a@b.c", OX, strings.Repeat("ab", 32), nil); err != nil {
		t.Errorf("v6 fingerprint: %v", err)
	}
}

func TestParseNames(t *testing.T) {
	for _, st := range []TrustState{Undecided, Verified, Blind, Untrusted} {
		got, err := ParseTrustState(strings.ToUpper(st.String()))
		if err != nil || got != st {
			t.Errorf("ParseTrustState(%q) = %v, %v", st, got, err)
		}
	}
	if _, err := ParseTrustState("trusted"); err == nil {
		t.Error("ParseTrustState accepted an unknown name")
	}
	for _, m := range Mechanisms() {
		if got, err := ParseMechanism(" " + strings.ToUpper(string(m))); err != nil || got != m {
			t.Errorf("ParseMechanism(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMechanism("omemo"); err == nil {
		t.Error("ParseMechanism accepted omemo")
	}
	if !Verified.Usable() || !Blind.Usable() || Undecided.Usable() || Untrusted.Usable() {
		t.Error("Usable is wrong")
	}
}

// frozen is an Options.Now that never advances: every write happens in the
// same millisecond, as fast writes on a real clock often do.
func frozen() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }

// Keys recorded within the same millisecond are listed in the order they
// arrived, not by fingerprint; the same holds for the keys a KeyChange
// lists as previous, for own keys created at the same time and for
// retained secrets written at the same time.
func TestArrivalOrderWithinOneMillisecond(t *testing.T) {
	opts := testOptions(testPass)
	opts.Now = frozen
	s := createDir(t, t.TempDir(), opts)
	const romeo = "romeo@montague.lit"
	for _, c := range []byte("CAB") {
		_, err := s.RecordSeenKey(ctx, romeo, OX, fpr(c), nil)
		must(t, err)
	}
	keys, err := s.ListKeys(ctx, romeo, OX)
	must(t, err)
	var got []string
	for _, k := range keys {
		got = append(got, k.Fingerprint[:1])
	}
	if want := []string{"C", "A", "B"}; !slices.Equal(got, want) {
		t.Errorf("ListKeys order %q, want arrival order %q", got, want)
	}
	seen, err := s.RecordSeenKey(ctx, romeo, OX, fpr('0'), nil)
	must(t, err)
	if want := []string{fpr('C'), fpr('A'), fpr('B')}; seen.Change == nil || !slices.Equal(seen.Change.Previous, want) {
		t.Errorf("KeyChange.Previous %+v, want arrival order", seen.Change)
	}

	for _, c := range []byte("DC") {
		must(t, s.AddOwnKey(ctx, OwnKey{Mechanism: OTR, Fingerprint: fpr(c), Created: frozen()}, []byte("secret")))
	}
	own, err := s.OwnKeys(ctx, OTR)
	must(t, err)
	if len(own) != 2 || own[0].Fingerprint != fpr('D') || own[1].Fingerprint != fpr('C') {
		t.Errorf("OwnKeys %+v, want D then C (the order they were added)", own)
	}

	// Two chains, then the first one continues: it is now the newest.
	const peer = "nurse@capulet.lit"
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, RetainedSecret{Value: []byte("one")}))
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, RetainedSecret{Value: []byte("two")}))
	must(t, s.ReplaceRetainedSecret(ctx, peer, []byte("one"), RetainedSecret{Value: []byte("one'")}))
	rs, err := s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 2 || string(rs[0].Value) != "one'" || string(rs[1].Value) != "two" {
		t.Errorf("retained secrets %q, %q; want the one written last first", rs[0].Value, rs[1].Value)
	}
}
