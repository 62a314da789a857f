package store

import (
	"fmt"
	"testing"
)

// BenchmarkOpenUnlock measures Open and Close of an existing store with the
// default Argon2id parameters: the cost paid once per process.
func BenchmarkOpenUnlock(b *testing.B) {
	dir := b.TempDir()
	s, err := Create(dir, Options{Passphrase: []byte(testPass)})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	for b.Loop() {
		s, err := Open(dir, Options{Passphrase: []byte(testPass)})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkOpenNoKDF measures Open and Close without the key derivation
// (minimal Argon2id parameters): file checks, quick_check, schema check.
func BenchmarkOpenNoKDF(b *testing.B) {
	dir := b.TempDir()
	createDir(b, dir, testOptions(testPass)).Close()
	for b.Loop() {
		s, err := Open(dir, testOptions(testPass))
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkLogMessage measures one committed (synchronous=FULL) write of a
// 200-byte message to the log.
func BenchmarkLogMessage(b *testing.B) {
	s := openTest(b)
	body := string(make([]byte, 200))
	i := 0
	for b.Loop() {
		i++
		if _, err := s.LogMessage(ctx, LogEntry{StanzaID: fmt.Sprint(i), Peer: "a@b.c", Direction: Incoming, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordSeenKeyNew measures recording a new contact key (key row
// and history entry in one transaction).
func BenchmarkRecordSeenKeyNew(b *testing.B) {
	s := openTest(b)
	i := 0
	for b.Loop() {
		i++
		if _, err := s.RecordSeenKey(ctx, fmt.Sprintf("c%d@example.org", i), OX, fmt.Sprintf("%040X", i), []byte("key")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrust measures the read done for each incoming signed message.
func BenchmarkTrust(b *testing.B) {
	s := openTest(b)
	if _, err := s.RecordSeenKey(ctx, "a@b.c", OX, fpr('A'), []byte("key")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Trust(ctx, "a@b.c", OX, fpr('A')); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessagesPage measures reading a page of 50 from a 5,000-message
// history.
func BenchmarkMessagesPage(b *testing.B) {
	s := openTest(b)
	for i := range 5000 {
		if _, err := s.LogMessage(ctx, LogEntry{Peer: "a@b.c", Direction: Incoming, Body: fmt.Sprint("message ", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		page, err := s.Messages(ctx, "a@b.c", 0, 50)
		if err != nil || len(page) != 50 {
			b.Fatal(len(page), err)
		}
	}
}

// BenchmarkReplaceRetainedSecret measures the end-of-negotiation update of
// an ESession chain.
func BenchmarkReplaceRetainedSecret(b *testing.B) {
	s := openTest(b)
	prev := []byte("secret 0")
	if err := s.ReplaceRetainedSecret(ctx, "a@b.c", nil, RetainedSecret{Value: prev}); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		next := []byte(fmt.Sprint("secret ", i))
		if err := s.ReplaceRetainedSecret(ctx, "a@b.c", prev, RetainedSecret{Value: next}); err != nil {
			b.Fatal(err)
		}
		prev = next
	}
}

// BenchmarkLogMessages100 measures logging a batch of 100 messages (for
// example a MAM page) in one transaction.
func BenchmarkLogMessages100(b *testing.B) {
	s := openTest(b)
	batch := make([]LogEntry, 100)
	body := string(make([]byte, 200))
	for b.Loop() {
		for i := range batch {
			batch[i] = LogEntry{Peer: "a@b.c", Direction: Incoming, Body: body}
		}
		if _, err := s.LogMessages(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
