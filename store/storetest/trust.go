package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

func (su suite) testOXRules(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const romeo = "romeo@montague.lit"

	first, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr('A'), []byte("key A v1"))
	must(t, err)
	if !first.New || first.Change != nil || first.Key.Trust != store.Blind {
		t.Fatalf("first store.OX key: %+v, want new, store.Blind, no change", first)
	}

	// Seen again: not new, data and last-seen updated.
	again, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr('a'), []byte("key A v2"))
	must(t, err)
	if again.New || again.Change != nil || string(again.Key.Data) != "key A v2" ||
		!again.Key.LastSeen.After(first.Key.LastSeen) || !again.Key.FirstSeen.Equal(first.Key.FirstSeen) {
		t.Fatalf("same key again: %+v (first %+v)", again, first)
	}
	// nil data keeps what is stored.
	again, err = s.RecordSeenKey(ctx, romeo, store.OX, fpr('A'), nil)
	must(t, err)
	if string(again.Key.Data) != "key A v2" {
		t.Errorf("nil data replaced stored data: %q", again.Key.Data)
	}

	// A second key: store.Undecided, reported as a change.
	second, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr('B'), []byte("key B"))
	must(t, err)
	if !second.New || second.Key.Trust != store.Undecided || second.Change == nil {
		t.Fatalf("second store.OX key: %+v, want new, store.Undecided, a change", second)
	}
	ch := second.Change
	if ch.Contact != romeo || ch.Mechanism != store.OX || ch.Fingerprint != fpr('B') ||
		!slices.Equal(ch.Previous, []string{fpr('A')}) || ch.Trust != store.Undecided {
		t.Errorf("store.KeyChange %+v", ch)
	}
	third, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr('C'), nil)
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
	wantErr(t, s.AcknowledgeKeyChange(ctx, ch.ID), store.ErrNotFound)
	pending, err = s.PendingKeyChanges(ctx)
	must(t, err)
	if len(pending) != 1 || pending[0].ID != third.Change.ID {
		t.Errorf("pending after acknowledging one: %+v", pending)
	}

	keys, err := s.ListKeys(ctx, romeo, store.OX)
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

func (su suite) testOXNoBlindTrust(t *testing.T) {
	var opts store.Options
	opts.NoBlindTrust = true
	s := su.clocked(t, opts)
	seen, err := s.RecordSeenKey(ctx, "romeo@montague.lit", store.OX, fpr('A'), nil)
	must(t, err)
	if seen.Key.Trust != store.Undecided {
		t.Errorf("first store.OX key with NoBlindTrust: %v", seen.Key.Trust)
	}
	if s.DefaultTrust(store.OX, true) != store.Undecided {
		t.Error("DefaultTrust(store.OX, first) ignores NoBlindTrust")
	}
}

func (su suite) testOTRRules(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const bob = "bob@example.com"
	first, err := s.RecordSeenKey(ctx, bob+"/laptop", store.OTR, "2fd4e1c6 7a2d28fc ed849ee1 bb76e739 1b93eb12", []byte("pubkey"))
	must(t, err)
	if first.Key.Trust != store.Undecided || first.Change != nil || first.Key.Contact != bob {
		t.Fatalf("first store.OTR fingerprint: %+v", first)
	}
	// SMP succeeded.
	must(t, s.SetTrust(ctx, bob, store.OTR, "2FD4E1C67A2D28FCED849EE1BB76E7391B93EB12", store.Verified))
	tr, err := s.Trust(ctx, bob, store.OTR, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
	if err != nil || tr != store.Verified {
		t.Fatalf("after SMP: %v, %v", tr, err)
	}
	// Setting the same state again records nothing.
	must(t, s.SetTrust(ctx, bob, store.OTR, first.Key.Fingerprint, store.Verified))

	second, err := s.RecordSeenKey(ctx, bob, store.OTR, fpr('E'), nil)
	must(t, err)
	if second.Key.Trust != store.Undecided || second.Change == nil {
		t.Errorf("new store.OTR fingerprint: %+v", second)
	}

	evs, err := s.KeyEvents(ctx, bob, store.OTR)
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

func (su suite) testESessionRules(t *testing.T) {
	s := su.clocked(t, store.Options{})
	first, err := s.RecordSeenKey(ctx, "carol@example.net", store.ESession, " q1w2e3r4t5y6u7i8o9p0+/== ", nil)
	must(t, err)
	if first.Key.Trust != store.Undecided || first.Key.Fingerprint != "q1w2e3r4t5y6u7i8o9p0+/==" {
		t.Fatalf("first store.ESession key: %+v", first)
	}
	// Base64 fingerprints are case-sensitive: another case is another key.
	second, err := s.RecordSeenKey(ctx, "carol@example.net", store.ESession, "Q1W2E3R4T5Y6U7I8O9P0+/==", nil)
	must(t, err)
	if !second.New || second.Change == nil {
		t.Errorf("second store.ESession key: %+v", second)
	}
	// SAS confirmed.
	must(t, s.SetTrust(ctx, "carol@example.net", store.ESession, second.Key.Fingerprint, store.Verified))
}

func (su suite) testIndependent(t *testing.T) {
	s := su.clocked(t, store.Options{})
	_, err := s.RecordSeenKey(ctx, "dave@example.org", store.OX, fpr('1'), nil)
	must(t, err)
	otr, err := s.RecordSeenKey(ctx, "dave@example.org", store.OTR, fpr('1'), nil)
	must(t, err)
	other, err := s.RecordSeenKey(ctx, "erin@example.org", store.OX, fpr('1'), nil)
	must(t, err)
	if otr.Change != nil || otr.Key.Trust != store.Undecided {
		t.Errorf("first store.OTR key of a contact with an store.OX key: %+v", otr)
	}
	if other.Change != nil || other.Key.Trust != store.Blind {
		t.Errorf("first store.OX key of another contact with the same fingerprint: %+v", other)
	}
	all, err := s.ListKeys(ctx, "", "")
	must(t, err)
	if len(all) != 3 {
		t.Errorf("ListKeys(all) = %d keys", len(all))
	}
	oxKeys, err := s.ListKeys(ctx, "", store.OX)
	must(t, err)
	if len(oxKeys) != 2 || oxKeys[0].Contact != "dave@example.org" || oxKeys[1].Contact != "erin@example.org" {
		t.Errorf("ListKeys(store.OX) = %+v", oxKeys)
	}
}

func (su suite) testDecidedBeforeSeen(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const frank = "frank@example.org"
	_, err := s.RecordSeenKey(ctx, frank, store.OX, fpr('1'), nil)
	must(t, err)
	// The user scans frank's new fingerprint before the key shows up.
	must(t, s.SetTrust(ctx, frank, store.OX, fpr('2'), store.Verified))
	keys, err := s.ListKeys(ctx, frank, store.OX)
	must(t, err)
	if len(keys) != 2 || keys[1].Fingerprint != fpr('2') || !keys[1].FirstSeen.IsZero() || keys[1].Trust != store.Verified {
		t.Fatalf("keys %+v", keys)
	}
	seen, err := s.RecordSeenKey(ctx, frank, store.OX, fpr('2'), []byte("data"))
	must(t, err)
	if !seen.New || seen.Key.Trust != store.Verified || seen.Key.FirstSeen.IsZero() || seen.Change == nil || seen.Change.Trust != store.Verified {
		t.Errorf("pre-verified key seen: %+v change %+v", seen, seen.Change)
	}
	// A key decided (untrusted) before any key was seen is a first key
	// that keeps the decision.
	must(t, s.SetTrust(ctx, "grace@example.org", store.OX, fpr('3'), store.Untrusted))
	seen, err = s.RecordSeenKey(ctx, "grace@example.org", store.OX, fpr('3'), nil)
	must(t, err)
	if seen.Key.Trust != store.Untrusted || seen.Change != nil {
		t.Errorf("pre-rejected first key: %+v", seen)
	}
}

func (su suite) testSetAnnouncedKeys(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const h = "heidi@example.org"
	for _, c := range []byte("ABC") {
		_, err := s.RecordSeenKey(ctx, h, store.OX, fpr(c), nil)
		must(t, err)
	}
	announced := func() string {
		keys, err := s.ListKeys(ctx, h, store.OX)
		must(t, err)
		var b strings.Builder
		for _, k := range keys {
			if k.Announced {
				b.WriteByte(k.Fingerprint[0])
			}
		}
		return b.String()
	}
	must(t, s.SetAnnouncedKeys(ctx, h, store.OX, []string{fpr('a'), fpr('C'), fpr('F')}))
	if got := announced(); got != "AC" {
		t.Errorf("announced %q, want AC", got)
	}
	must(t, s.SetAnnouncedKeys(ctx, h, store.OX, []string{fpr('B')}))
	if got := announced(); got != "B" {
		t.Errorf("announced %q, want B", got)
	}
	if err := s.SetAnnouncedKeys(ctx, h, store.OX, []string{"not hex"}); err == nil {
		t.Error("SetAnnouncedKeys accepted an invalid fingerprint")
	}
}

func (su suite) testKeyPublished(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const h = "judy@example.org"
	wantErr(t, s.SetKeyPublished(ctx, h, store.OX, fpr('A'), time.Unix(1000, 0)), store.ErrNotFound)
	_, err := s.RecordSeenKey(ctx, h, store.OX, fpr('A'), []byte("key data"))
	must(t, err)
	published := func() time.Time {
		keys, err := s.ListKeys(ctx, h, store.OX)
		must(t, err)
		if len(keys) != 1 {
			t.Fatalf("%d keys", len(keys))
		}
		return keys[0].Published
	}
	if p := published(); !p.IsZero() {
		t.Errorf("published %v before any was recorded", p)
	}
	when := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	must(t, s.SetKeyPublished(ctx, h, store.OX, fpr('A'), when))
	if p := published(); !p.Equal(when) {
		t.Errorf("published %v, want %v", p, when)
	}
}

func (su suite) testDeleteContactKey(t *testing.T) {
	s := su.clocked(t, store.Options{})
	_, err := s.RecordSeenKey(ctx, "ivan@example.org", store.OTR, fpr('1'), nil)
	must(t, err)
	must(t, s.SetTrust(ctx, "ivan@example.org", store.OTR, fpr('1'), store.Verified))
	must(t, s.DeleteContactKey(ctx, "ivan@example.org", store.OTR, fpr('1')))
	wantErr(t, s.DeleteContactKey(ctx, "ivan@example.org", store.OTR, fpr('1')), store.ErrNotFound)
	evs, err := s.KeyEvents(ctx, "ivan@example.org", "")
	must(t, err)
	if len(evs) != 0 {
		t.Errorf("history survived the key: %+v", evs)
	}
	seen, err := s.RecordSeenKey(ctx, "ivan@example.org", store.OTR, fpr('1'), nil)
	must(t, err)
	if !seen.New || seen.Key.Trust != store.Undecided {
		t.Errorf("forgotten key seen again: %+v", seen)
	}
}

func (su suite) testInvalidKeyArguments(t *testing.T) {
	s := su.new(t)
	for _, tc := range []struct {
		contact string
		m       store.Mechanism
		fpr     string
	}{
		{"", store.OX, fpr('A')},
		{"not a jid@", store.OX, fpr('A')},
		{"a@b.c", "omemo", fpr('A')},
		{"a@b.c", store.OX, "xyz"},
		{"a@b.c", store.OX, strings.Repeat("A", 39)},
		{"a@b.c", store.OTR, strings.Repeat("A", 64)},
		{"a@b.c", store.ESession, "has space"},
	} {
		if _, err := s.RecordSeenKey(ctx, tc.contact, tc.m, tc.fpr, nil); err == nil {
			t.Errorf("RecordSeenKey(%q, %q, %q) accepted", tc.contact, tc.m, tc.fpr)
		}
	}
	if err := s.SetTrust(ctx, "a@b.c", store.OX, fpr('A'), store.TrustState(9)); err == nil {
		t.Error("SetTrust accepted an invalid state")
	}
	// OX accepts v6 (64-digit) fingerprints.
	if _, err := s.RecordSeenKey(ctx, "a@b.c", store.OX, strings.Repeat("ab", 32), nil); err != nil {
		t.Errorf("v6 fingerprint: %v", err)
	}
}

// Keys recorded within the same millisecond are listed in the order they
// arrived, not by fingerprint; the same holds for the keys a KeyChange
// lists as previous, for own keys created at the same time and for
// retained secrets written at the same time.
func (su suite) testArrivalOrder(t *testing.T) {
	s, _ := su.create(t, store.Options{Now: frozen})
	const romeo = "romeo@montague.lit"
	for _, c := range []byte("CAB") {
		_, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr(c), nil)
		must(t, err)
	}
	keys, err := s.ListKeys(ctx, romeo, store.OX)
	must(t, err)
	var got []string
	for _, k := range keys {
		got = append(got, k.Fingerprint[:1])
	}
	if want := []string{"C", "A", "B"}; !slices.Equal(got, want) {
		t.Errorf("ListKeys order %q, want arrival order %q", got, want)
	}
	seen, err := s.RecordSeenKey(ctx, romeo, store.OX, fpr('0'), nil)
	must(t, err)
	if want := []string{fpr('C'), fpr('A'), fpr('B')}; seen.Change == nil || !slices.Equal(seen.Change.Previous, want) {
		t.Errorf("store.KeyChange.Previous %+v, want arrival order", seen.Change)
	}

	for _, c := range []byte("DC") {
		must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: fpr(c), Created: frozen()}, []byte("secret")))
	}
	own, err := s.OwnKeys(ctx, store.OTR)
	must(t, err)
	if len(own) != 2 || own[0].Fingerprint != fpr('D') || own[1].Fingerprint != fpr('C') {
		t.Errorf("OwnKeys %+v, want D then C (the order they were added)", own)
	}

	// Two chains, then the first one continues: it is now the newest.
	const peer = "nurse@capulet.lit"
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, store.RetainedSecret{Value: []byte("one")}))
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, store.RetainedSecret{Value: []byte("two")}))
	must(t, s.ReplaceRetainedSecret(ctx, peer, []byte("one"), store.RetainedSecret{Value: []byte("one'")}))
	rs, err := s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 2 || string(rs[0].Value) != "one'" || string(rs[1].Value) != "two" {
		t.Errorf("retained secrets %q, %q; want the one written last first", rs[0].Value, rs[1].Value)
	}
}

// frozen is an Options.Now that never advances: every write happens in the
// same millisecond, as fast writes on a real clock often do.
func frozen() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
