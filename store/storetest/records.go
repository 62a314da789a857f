package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

func (su suite) testAccount(t *testing.T) {
	s := su.new(t)
	_, err := s.Account(ctx)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.SetPassword(ctx, []byte("pw")), store.ErrNotFound)

	owner := accountJID(s, "juliet@capulet.lit")
	// A full JID with an upper-case local part names the same account.
	must(t, s.SetAccount(ctx, store.Account{JID: strings.ToUpper(owner[:1]) + owner[1:] + "/balcony", Resource: "balcony"}))
	a, err := s.Account(ctx)
	must(t, err)
	if a.JID != owner || a.Resource != "balcony" {
		t.Errorf("account %+v", a)
	}
	_, err = s.Password(ctx)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.SetPassword(ctx, []byte("pw")))
	must(t, s.SetAccount(ctx, store.Account{JID: owner, Server: "xmpp.capulet.lit:5222"}))
	if pw, err := s.Password(ctx); err != nil || string(pw) != "pw" {
		t.Errorf("password lost by SetAccount: %q, %v", pw, err)
	}
	if a, _ := s.Account(ctx); a.Server != "xmpp.capulet.lit:5222" || a.Resource != "" {
		t.Errorf("account not updated: %+v", a)
	}
	if err := s.SetAccount(ctx, store.Account{JID: "romeo@montague.lit"}); err == nil {
		t.Error("SetAccount changed the account JID")
	}
	must(t, s.ForgetPassword(ctx))
	_, err = s.Password(ctx)
	wantErr(t, err, store.ErrNotFound)
}

func (su suite) testSettings(t *testing.T) {
	s := su.new(t)
	_, err := s.Setting(ctx, "x")
	wantErr(t, err, store.ErrNotFound)
	must(t, s.SetSetting(ctx, "x", "1"))
	must(t, s.SetSetting(ctx, "x", "2"))
	must(t, s.SetSetting(ctx, "y", ""))
	all, err := s.Settings(ctx)
	must(t, err)
	if len(all) != 2 || all["x"] != "2" || all["y"] != "" {
		t.Errorf("settings %v", all)
	}
	must(t, s.DeleteSetting(ctx, "x"))
	must(t, s.DeleteSetting(ctx, "x"))
	_, err = s.Setting(ctx, "x")
	wantErr(t, err, store.ErrNotFound)
	if err := s.SetSetting(ctx, "", "v"); err == nil {
		t.Error("empty key accepted")
	}
}

func (su suite) testOwnKeys(t *testing.T) {
	s := su.new(t)
	_, err := s.ActiveOwnKey(ctx, store.OX)
	wantErr(t, err, store.ErrNotFound)

	a := store.OwnKey{Mechanism: store.OX, Fingerprint: fpr('a'), Public: []byte("pub a"), Active: true}
	b := store.OwnKey{Mechanism: store.OX, Fingerprint: fpr('B'), Public: []byte("pub b"), Active: true}
	must(t, s.AddOwnKey(ctx, a, []byte("sec a")))
	must(t, s.AddOwnKey(ctx, b, []byte("sec b")))
	wantErr(t, s.AddOwnKey(ctx, a, []byte("other")), store.ErrExists)
	if err := s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OX, Fingerprint: fpr('C')}, nil); err == nil {
		t.Error("empty secret accepted")
	}
	// An OTR key does not affect the OX active key.
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: fpr('D'), Active: true}, []byte("dsa")))

	active, err := s.ActiveOwnKey(ctx, store.OX)
	must(t, err)
	if active.Fingerprint != fpr('B') || string(active.Public) != "pub b" || !active.Active || active.Created.IsZero() {
		t.Errorf("active key %+v", active)
	}
	keys, err := s.OwnKeys(ctx, store.OX)
	must(t, err)
	if len(keys) != 2 || keys[0].Active == keys[1].Active {
		t.Fatalf("own keys %+v", keys)
	}
	must(t, s.SetActiveOwnKey(ctx, store.OX, fpr('A')))
	active, err = s.ActiveOwnKey(ctx, store.OX)
	must(t, err)
	if active.Fingerprint != fpr('A') {
		t.Errorf("active after SetActiveOwnKey: %s", active.Fingerprint)
	}
	wantErr(t, s.SetActiveOwnKey(ctx, store.OX, fpr('9')), store.ErrNotFound)
	if active, err := s.ActiveOwnKey(ctx, store.OX); err != nil || active.Fingerprint != fpr('A') {
		t.Errorf("failed SetActiveOwnKey changed the active key: %+v, %v", active, err)
	}
	if active, err := s.ActiveOwnKey(ctx, store.OTR); err != nil || active.Fingerprint != fpr('D') {
		t.Errorf("store.OTR active key %+v, %v", active, err)
	}

	sec, err := s.OwnKeySecret(ctx, store.OX, fpr('b'))
	if err != nil || string(sec) != "sec b" {
		t.Errorf("secret b: %q, %v", sec, err)
	}
	must(t, s.DeleteOwnKey(ctx, store.OX, fpr('B')))
	wantErr(t, s.DeleteOwnKey(ctx, store.OX, fpr('B')), store.ErrNotFound)
	_, err = s.OwnKeySecret(ctx, store.OX, fpr('B'))
	wantErr(t, err, store.ErrNotFound)
}

func (su suite) testRetainedSecrets(t *testing.T) {
	s := su.new(t)
	const peer = "romeo@montague.lit"
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	lookup := func() string {
		t.Helper()
		rs, err := s.RetainedSecrets(ctx, peer+"/orchard")
		must(t, err)
		var parts []string
		for _, r := range rs {
			v := string(r.Value)
			if r.Verified {
				v += "+"
			}
			parts = append(parts, v)
		}
		return strings.Join(parts, ",")
	}
	replace := func(old string, next string, verified bool, minutes int) {
		t.Helper()
		var o []byte
		if old != "" {
			o = []byte(old)
		}
		must(t, s.ReplaceRetainedSecret(ctx, peer, o, store.RetainedSecret{Value: []byte(next), Verified: verified,
			Created: t0.Add(time.Duration(minutes) * time.Minute)}))
	}
	if got := lookup(); got != "" {
		t.Fatalf("no chain yet: %q", got)
	}
	replace("", "rs1", false, 1)
	if got := lookup(); got != "rs1" {
		t.Fatalf("after first session: %q", got)
	}
	// SAS confirmed in the first session: replaced by itself, verified.
	replace("rs1", "rs1", true, 1)
	if got := lookup(); got != "rs1+" {
		t.Fatalf("after SAS: %q", got)
	}
	// Second session continues the chain and keeps the flag.
	replace("rs1", "rs2", true, 2)
	rs, err := s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 1 || string(rs[0].Value) != "rs2" || !rs[0].Created.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after second session: %+v", rs)
	}
	// Another client of the peer, or an old secret that is gone: a
	// second chain, unverified; newest first.
	replace("rs1", "other", false, 3)
	if got := lookup(); got != "other,rs2+" {
		t.Fatalf("two chains: %q", got)
	}
	replace("rs2", "rs3", true, 4)
	if got := lookup(); got != "rs3+,other" {
		t.Fatalf("after third session: %q", got)
	}
	if err := s.ReplaceRetainedSecret(ctx, peer, nil, store.RetainedSecret{}); err == nil {
		t.Error("empty secret accepted")
	}
	// A zero Created means now.
	must(t, s.ReplaceRetainedSecret(ctx, "mercutio@montague.lit", nil, store.RetainedSecret{Value: []byte("m")}))
	rs, err = s.RetainedSecrets(ctx, "mercutio@montague.lit")
	if err != nil || len(rs) != 1 || time.Since(rs[0].Created) > time.Minute {
		t.Errorf("other peer: %+v, %v", rs, err)
	}
	must(t, s.ForgetRetainedSecrets(ctx, peer))
	if got := lookup(); got != "" {
		t.Errorf("after forget: %q", got)
	}
}
