package storetest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/balcony-im/balcony/store"
)

// The OTR instance tag is created once, by whichever of several
// concurrent first calls wins, and survives reopening.
func (su suite) testOTRInstanceTag(t *testing.T) {
	s, name := su.create(t, store.Options{})
	const n = 8
	tags := make([]uint32, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			tags[i], err = s.OTRInstanceTag(ctx)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, tag := range tags {
		if tag != tags[0] || tag < 0x100 {
			t.Fatalf("tags %x", tags)
		}
	}
	s.Close()
	s = su.reopen(t, name, Options(Passphrase))
	if tag, err := s.OTRInstanceTag(ctx); err != nil || tag != tags[0] {
		t.Errorf("after reopen: %x, %v; want %x", tag, err, tags[0])
	}
}

func (su suite) testReopen(t *testing.T) {
	s, name := su.create(t, store.Options{})
	must(t, s.SetAccount(ctx, store.Account{JID: accountJID(s, "juliet@example.org")}))
	must(t, s.SetPassword(ctx, []byte("xmpp password")))
	must(t, s.Close())
	s = su.reopen(t, name, Options(Passphrase))
	if !s.Encrypted() {
		t.Error("Encrypted() = false for a store with a passphrase")
	}
	pw, err := s.Password(ctx)
	if err != nil || string(pw) != "xmpp password" {
		t.Fatalf("Password() = %q, %v", pw, err)
	}
}

// A wrong passphrase fails with ErrWrongPassphrase, and the right one
// still works afterwards.
func (su suite) testWrongPassphrase(t *testing.T) {
	s, name := su.create(t, store.Options{})
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: fpr('B'), Active: true}, []byte("dsa secret")))
	must(t, s.Close())
	_, err := su.b.Open(t, name, Options("wrong horse"))
	wantErr(t, err, store.ErrWrongPassphrase)
	if !strings.Contains(err.Error(), "wrong passphrase") {
		t.Errorf("error %q does not say wrong passphrase", err)
	}
	_, err = su.b.Open(t, name, store.Options{})
	wantErr(t, err, store.ErrPassphraseRequired)
	s = su.reopen(t, name, Options(Passphrase))
	sec, err := s.OwnKeySecret(ctx, store.OTR, strings.ToLower(fpr('B')))
	if err != nil || string(sec) != "dsa secret" {
		t.Fatalf("OwnKeySecret = %q, %v", sec, err)
	}
}

func (su suite) testChangePassphrase(t *testing.T) {
	s, name := su.create(t, store.Options{})
	other := su.reopen(t, name, Options(Passphrase)) // a second process
	must(t, s.SetAccount(ctx, store.Account{JID: accountJID(s, "romeo@example.net")}))
	must(t, s.SetPassword(ctx, []byte("pw")))
	wantErr(t, s.ChangePassphrase(ctx, nil), store.ErrPassphraseRequired)
	wantErr(t, s.ChangeKey(ctx, make([]byte, 32)), store.ErrEncryptionMode)
	must(t, s.ChangePassphrase(ctx, []byte("new passphrase")))
	// Stores already open keep working: the data key is unchanged.
	if pw, err := other.Password(ctx); err != nil || string(pw) != "pw" {
		t.Fatalf("other store: Password() = %q, %v", pw, err)
	}
	s.Close()
	other.Close()
	_, err := su.b.Open(t, name, Options(Passphrase))
	wantErr(t, err, store.ErrWrongPassphrase)
	s = su.reopen(t, name, Options("new passphrase"))
	if pw, err := s.Password(ctx); err != nil || string(pw) != "pw" {
		t.Fatalf("after change: Password() = %q, %v", pw, err)
	}
}

// A store protected by a key (from a key file) opens with that key only.
func (su suite) testKeyProtected(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	s, name := su.create(t, store.Options{Key: key})
	if !s.Encrypted() {
		t.Error("Encrypted() = false for a key-protected store")
	}
	must(t, s.SetAccount(ctx, store.Account{JID: accountJID(s, "bot@example.org")}))
	must(t, s.SetPassword(ctx, []byte("bot password")))
	wantErr(t, s.ChangePassphrase(ctx, []byte("x")), store.ErrEncryptionMode)
	must(t, s.Close())

	wrong := bytes.Clone(key)
	wrong[0] ^= 1
	_, err := su.b.Open(t, name, store.Options{Key: wrong})
	wantErr(t, err, store.ErrWrongPassphrase)
	_, err = su.b.Open(t, name, Options(Passphrase))
	wantErr(t, err, store.ErrEncryptionMode)
	_, err = su.b.Open(t, name, store.Options{})
	wantErr(t, err, store.ErrPassphraseRequired)
	if _, err := su.b.Open(t, name, store.Options{Key: key[:16]}); err == nil {
		t.Error("a 16-byte key was accepted")
	}

	s = su.reopen(t, name, store.Options{Key: key})
	next := make([]byte, 32)
	rand.Read(next)
	must(t, s.ChangeKey(ctx, next))
	must(t, s.Close())
	_, err = su.b.Open(t, name, store.Options{Key: key})
	wantErr(t, err, store.ErrWrongPassphrase)
	s = su.reopen(t, name, store.Options{Key: next})
	if pw, err := s.Password(ctx); err != nil || string(pw) != "bot password" {
		t.Fatalf("Password() = %q, %v", pw, err)
	}
	// A passphrase store refuses a key.
	_, pname := su.create(t, store.Options{})
	_, err = su.b.Open(t, pname, store.Options{Key: key})
	wantErr(t, err, store.ErrEncryptionMode)
}

// No secret and no message text is stored in the clear.
func (su suite) testSecretsNotInTheClear(t *testing.T) {
	s, name := su.create(t, store.Options{})
	marker := "MARKER-d41d8cd98f00b204e980"
	must(t, s.SetAccount(ctx, store.Account{JID: accountJID(s, "juliet@example.org")}))
	must(t, s.SetPassword(ctx, []byte(marker+"password")))
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OX, Fingerprint: fpr('1'), Public: []byte("public")}, []byte(marker+"ox")))
	must(t, s.ReplaceRetainedSecret(ctx, "romeo@example.net", nil, store.RetainedSecret{Value: []byte(marker + "srs")}))
	_, err := s.Enqueue(ctx, "romeo@example.net", marker+"outbox", store.OX)
	must(t, err)
	_, err = s.LogMessage(ctx, store.LogEntry{Peer: "romeo@example.net", Direction: store.Outgoing, Body: marker + "log"})
	must(t, err)
	if !su.b.Contains(t, name, []byte("public")) {
		t.Fatal("Contains does not find the public key: the check cannot fail")
	}
	for _, phase := range []string{"open", "closed"} {
		if su.b.Contains(t, name, []byte(marker)) {
			t.Errorf("%s: a secret is stored in the clear", phase)
		}
		s.Close()
	}
}

// A sealed value copied into another row does not open.
func (su suite) testSealedValuesBoundToRow(t *testing.T) {
	s, name := su.create(t, store.Options{})
	a, b := fpr('A'), fpr('B')
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OX, Fingerprint: a}, []byte("secret a")))
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OX, Fingerprint: b}, []byte("secret b")))
	must(t, s.Check(ctx))
	if n := su.b.Exec(t, name, `UPDATE own_keys SET secret = (SELECT secret FROM own_keys WHERE /*account*/ fingerprint = ?)
		WHERE /*account*/ fingerprint = ?`, a, b); n != 1 {
		t.Fatalf("tampering changed %d rows", n)
	}
	_, err := s.OwnKeySecret(ctx, store.OX, b)
	wantErr(t, err, store.ErrCorrupt)
	wantErr(t, s.Check(ctx), store.ErrCorrupt)
	if sec, err := s.OwnKeySecret(ctx, store.OX, a); err != nil || string(sec) != "secret a" {
		t.Errorf("untouched row: %q, %v", sec, err)
	}
}

// populated returns a store with a value in every sealed column.
func (su suite) populated(t *testing.T) (store.AccountStore, string) {
	s, name := su.create(t, store.Options{})
	must(t, s.SetAccount(ctx, store.Account{JID: accountJID(s, "a@b.c")}))
	must(t, s.SetPassword(ctx, []byte("pw")))
	must(t, s.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OX, Fingerprint: fpr('A')}, []byte("s")))
	must(t, s.ReplaceRetainedSecret(ctx, "d@e.f", nil, store.RetainedSecret{Value: []byte("rs")}))
	_, err := s.Enqueue(ctx, "d@e.f", "queued", "")
	must(t, err)
	_, err = s.LogMessage(ctx, store.LogEntry{Peer: "d@e.f", Direction: store.Incoming, Body: "hi"})
	must(t, err)
	return s, name
}

// Check opens every sealed value: tampering with any, or moving it to
// another row, is found.
func (su suite) testCheck(t *testing.T) {
	s, _ := su.populated(t)
	must(t, s.Check(ctx))
	for _, tc := range []struct {
		query string
		args  []any
	}{
		{`UPDATE account SET password = (SELECT body FROM outbox WHERE /*account*/ TRUE) WHERE /*account*/ TRUE`, nil},
		{`UPDATE own_keys SET fingerprint = ? WHERE /*account*/ TRUE`, []any{fpr('B')}},
		{`UPDATE retained_secrets SET peer = 'x@e.f' WHERE /*account*/ TRUE`, nil},
		{`UPDATE outbox SET body = ? WHERE /*account*/ TRUE`, []any{[]byte{1}}},
		{`UPDATE messages SET body = (SELECT body FROM outbox WHERE /*account*/ TRUE) WHERE /*account*/ TRUE`, nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			s, name := su.populated(t)
			if n := su.b.Exec(t, name, tc.query, tc.args...); n != 1 {
				t.Fatalf("tampering changed %d rows", n)
			}
			wantErr(t, s.Check(ctx), store.ErrCorrupt)
		})
	}
}

func (su suite) testErrorMessages(t *testing.T) {
	s := su.new(t)
	_, err := s.Trust(ctx, "nurse@example.org", store.OTR, fpr('0'))
	wantErr(t, err, store.ErrNotFound)
	want := "store: trust: otr key " + fpr('0') + " of nurse@example.org: not found"
	if err.Error() != want {
		t.Errorf("error text\n got %q\nwant %q", err, want)
	}
	_, err = s.Account(ctx)
	wantErr(t, err, store.ErrNotFound)
	if err.Error() != "store: account: not found" {
		t.Errorf("error text %q", err)
	}
}

func (su suite) testClosed(t *testing.T) {
	s := su.new(t)
	must(t, s.Close())
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	wantErr(t, s.SetSetting(ctx, "a", "b"), store.ErrClosed)
	_, err := s.ListKeys(ctx, "", "")
	wantErr(t, err, store.ErrClosed)
}

// Two handles on one account (two processes, or two hosts) write at once:
// every write lands once, and the key history stays consistent (one first
// key, every other a change).
func (su suite) testConcurrentWriters(t *testing.T) {
	a, name := su.create(t, store.Options{})
	b := su.reopen(t, name, Options(Passphrase))
	const n = 25
	var wg sync.WaitGroup
	for h, st := range []store.AccountStore{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			who := string(rune('A' + h))
			for i := range n {
				if _, err := st.LogMessage(ctx, store.LogEntry{StanzaID: fmt.Sprint(who, i), Peer: "shared@example.org",
					Direction: store.Outgoing, Body: fmt.Sprint(who, " ", i)}); err != nil {
					t.Error(err)
					return
				}
				if _, err := st.RecordSeenKey(ctx, "shared@example.org", store.OX, fmt.Sprintf("%02X%038X", who[0], i), nil); err != nil {
					t.Error(err)
					return
				}
				if err := st.SetSetting(ctx, "last-"+who, strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	msgs, err := a.Messages(ctx, "shared@example.org", 0, store.MaxPage)
	must(t, err)
	count := map[string]int{}
	for _, m := range msgs {
		who, _, _ := strings.Cut(m.Body, " ")
		count[who]++
	}
	if count["A"] != n || count["B"] != n {
		t.Errorf("messages per writer %v, want %d each", count, n)
	}
	keys, err := b.ListKeys(ctx, "shared@example.org", store.OX)
	must(t, err)
	evs, err := a.KeyEvents(ctx, "shared@example.org", store.OX)
	must(t, err)
	kinds := map[store.EventKind]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if len(keys) != 2*n || kinds[store.FirstKey] != 1 || kinds[store.KeyChanged] != 2*n-1 {
		t.Errorf("%d keys, events %v", len(keys), kinds)
	}
	// Each change lists exactly the keys recorded before it.
	for i, e := range evs {
		if len(e.Previous) != i {
			t.Fatalf("event %d lists %d previous keys", i, len(e.Previous))
		}
	}
	for _, who := range []string{"A", "B"} {
		if v, err := b.Setting(ctx, "last-"+who); err != nil || v != strconv.Itoa(n-1) {
			t.Errorf("setting last-%s = %q, %v", who, v, err)
		}
	}
}
