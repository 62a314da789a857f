package storetest

import (
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

// testOfflineSecrets: the secrets of XEP-0187 offline options are kept
// sealed until deleted or expired, a replayed exchange is reported, and a
// sealed value moved to another nonce does not open.
func (su suite) testOfflineSecrets(t *testing.T) {
	s, name := su.create(t, store.Options{})
	n1, n2 := []byte("nonce-one-16byte"), []byte("nonce-two-16byte")
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	_, err := s.OfflineSecrets(ctx, n1)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.SaveOfflineSecrets(ctx, n1, []byte("MARKER-x1"), t0))
	must(t, s.SaveOfflineSecrets(ctx, n2, []byte("MARKER-x2"), t0.Add(time.Hour)))
	if got, err := s.OfflineSecrets(ctx, n1); err != nil || string(got) != "MARKER-x1" {
		t.Fatalf("secrets of n1: %q, %v", got, err)
	}
	if su.b.Contains(t, name, []byte("MARKER-x")) {
		t.Error("offline secrets stored in the clear")
	}
	if err := s.SaveOfflineSecrets(ctx, nil, []byte("x"), t0); err == nil {
		t.Error("empty nonce accepted")
	}
	if err := s.SaveOfflineSecrets(ctx, n1, nil, t0); err == nil {
		t.Error("empty secrets accepted")
	}

	// Replays: the same exchange twice, per nonce.
	for _, c := range []struct {
		nonce, exchange []byte
		replayed        bool
	}{
		{n1, []byte("d:aaaa"), false},
		{n1, []byte("n:bbbb"), false},
		{n1, []byte("d:aaaa"), true},
		{n2, []byte("d:aaaa"), false},
		{[]byte("unknown-nonce"), []byte("d:cccc"), true},
	} {
		replayed, err := s.MarkOfflineExchange(ctx, c.nonce, c.exchange)
		if err != nil || replayed != c.replayed {
			t.Errorf("MarkOfflineExchange(%s, %s) = %v, %v; want %v", c.nonce, c.exchange, replayed, err, c.replayed)
		}
	}
	// Saving the options again forgets their exchanges.
	must(t, s.SaveOfflineSecrets(ctx, n2, []byte("MARKER-x2b"), t0.Add(time.Hour)))
	if replayed, err := s.MarkOfflineExchange(ctx, n2, []byte("d:aaaa")); err != nil || replayed {
		t.Errorf("exchange of replaced options: %v, %v", replayed, err)
	}

	// A sealed value copied to another nonce does not open.
	if n := su.b.Exec(t, name, `UPDATE esession_offline SET secrets = (SELECT secrets FROM esession_offline WHERE /*account*/ nonce = ?)
		WHERE /*account*/ nonce = ?`, hex.EncodeToString(n1), hex.EncodeToString(n2)); n != 1 {
		t.Fatalf("tampering changed %d rows", n)
	}
	_, err = s.OfflineSecrets(ctx, n2)
	wantErr(t, err, store.ErrCorrupt)
	wantErr(t, s.Check(ctx), store.ErrCorrupt)

	// Expiry destroys the options that expired, with their exchanges.
	if n, err := s.ExpireOfflineSecrets(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	_, err = s.OfflineSecrets(ctx, n1)
	wantErr(t, err, store.ErrNotFound)
	if replayed, err := s.MarkOfflineExchange(ctx, n1, []byte("d:dddd")); err != nil || !replayed {
		t.Errorf("exchange for expired options: %v, %v", replayed, err)
	}
	must(t, s.DeleteOfflineSecrets(ctx, n2))
	must(t, s.DeleteOfflineSecrets(ctx, n2))
	_, err = s.OfflineSecrets(ctx, n2)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.Check(ctx))
}

// testContactsWithKey: which contacts a key is associated with, per
// mechanism (XEP-0116 §10.4).
func (su suite) testContactsWithKey(t *testing.T) {
	s := su.clocked(t, store.Options{})
	const key = "a2V5LW9uZQ=="
	for _, c := range []string{"romeo@montague.lit", "benvolio@montague.lit/phone"} {
		_, err := s.RecordSeenKey(ctx, c, store.ESession, key, []byte("<KeyValue/>"))
		must(t, err)
	}
	_, err := s.RecordSeenKey(ctx, "tybalt@capulet.lit", store.ESession, "b3RoZXI=", nil)
	must(t, err)
	got, err := s.ContactsWithKey(ctx, store.ESession, " "+key+" ")
	if err != nil || !slices.Equal(got, []string{"benvolio@montague.lit", "romeo@montague.lit"}) {
		t.Errorf("contacts with the key: %q, %v", got, err)
	}
	if got, err := s.ContactsWithKey(ctx, store.OTR, fpr('A')); err != nil || len(got) != 0 {
		t.Errorf("another mechanism: %q, %v", got, err)
	}
	if _, err := s.ContactsWithKey(ctx, "pgp", key); err == nil {
		t.Error("unknown mechanism accepted")
	}
}
