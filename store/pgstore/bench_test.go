package pgstore

import (
	"fmt"
	"testing"

	"github.com/balcony-im/balcony/internal/pgtest"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/storetest"
)

// BenchmarkPostgres measures the account store's operations on a real
// PostgreSQL on loopback, next to the primitive they are made of: one
// round trip (SELECT 1) and one empty transaction (BEGIN, SELECT 1,
// COMMIT) on the same pool. Compare ns/op as ratios to those. The test
// server runs with fsync=off, so commits cost no disk flush here.
func BenchmarkPostgres(b *testing.B) {
	url := pgtest.Start(b)
	s := open(b, url, nil)
	a, err := s.Create(ctx, "bench@example.org", storetest.Options(storetest.Passphrase))
	must(b, err)
	defer a.Close()
	f := fmt.Sprintf("%040X", 0)
	_, err = a.RecordSeenKey(ctx, "contact@example.org", store.OX, f, []byte("key"))
	must(b, err)

	b.Run("RoundTrip", func(b *testing.B) {
		var n int
		for b.Loop() {
			must(b, s.pool.QueryRow(ctx, `SELECT 1`).Scan(&n))
		}
	})
	b.Run("EmptyTransaction", func(b *testing.B) {
		var n int
		for b.Loop() {
			tx, err := s.pool.Begin(ctx)
			must(b, err)
			must(b, tx.QueryRow(ctx, `SELECT 1`).Scan(&n))
			must(b, tx.Commit(ctx))
		}
	})
	b.Run("Trust", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Trust(ctx, "contact@example.org", store.OX, f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetSetting", func(b *testing.B) {
		for b.Loop() {
			must(b, a.SetSetting(ctx, "k", "v"))
		}
	})
	b.Run("RecordSeenKeyNew", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, err := a.RecordSeenKey(ctx, fmt.Sprintf("c%d@example.org", i), store.OX, fmt.Sprintf("%040X", i), []byte("key")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LogMessage", func(b *testing.B) {
		body := string(make([]byte, 200))
		i := 0
		for b.Loop() {
			i++
			if _, err := a.LogMessage(ctx, store.LogEntry{StanzaID: fmt.Sprint(i), Peer: "a@b.c", Direction: store.Incoming, Body: body}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MessagesPage", func(b *testing.B) {
		for b.Loop() {
			if page, err := a.Messages(ctx, "a@b.c", 0, 50); err != nil || len(page) == 0 {
				b.Fatal(len(page), err)
			}
		}
	})
}
