// Package storetest is the behavioural test suite every implementation of
// store.AccountStore passes: the SQLite store of package store and the
// PostgreSQL store of store/pgstore run the same tests, so that both apply
// the same trust rules, key-change reports, retained-secret semantics,
// outbox, log paging and privacy rule, sealing of secrets and errors.
//
// A backend's test calls Run with a Backend that creates and reopens its
// stores.
package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/store"
)

// Backend is what the suite needs from an implementation.
type Backend interface {
	// Create creates a new, empty account store with opts and returns it
	// with a name that Open and the other methods take. The store is
	// closed when the test ends.
	Create(t *testing.T, opts store.Options) (store.AccountStore, string)
	// Open opens the store named name again, as another process would;
	// the store (if any) is closed when the test ends.
	Open(t *testing.T, name string, opts store.Options) (store.AccountStore, error)
	// Exec runs a statement of the shared rules' SQL (see store.Querier,
	// including the account markers) against the raw data of the store
	// named name, bypassing the store, and returns the rows it changed.
	Exec(t *testing.T, name string, query string, args ...any) int64
	// Contains reports whether the raw storage of the store named name
	// (files, or table contents) holds b anywhere, in the clear.
	Contains(t *testing.T, name string, b []byte) bool
}

// FastKDF keeps tests quick: Argon2id at its minimum cost.
var FastKDF = &store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// Passphrase is the passphrase of the suite's stores.
const Passphrase = "correct horse battery staple"

// Options returns options with the passphrase pass and FastKDF.
func Options(pass string) store.Options {
	return store.Options{Passphrase: []byte(pass), KDF: FastKDF}
}

// suite is one run of the tests against a backend.
type suite struct{ b Backend }

// Run runs every test of the suite against b, each as a subtest.
func Run(t *testing.T, b Backend) {
	s := suite{b}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"OXRules", s.testOXRules},
		{"OXNoBlindTrust", s.testOXNoBlindTrust},
		{"OTRRules", s.testOTRRules},
		{"ESessionRules", s.testESessionRules},
		{"OMEMORules", s.testOMEMORules},
		{"MechanismState", s.testMechanismState},
		{"MechanismsAndContactsIndependent", s.testIndependent},
		{"TrustDecidedBeforeSeen", s.testDecidedBeforeSeen},
		{"SetAnnouncedKeys", s.testSetAnnouncedKeys},
		{"KeyPublished", s.testKeyPublished},
		{"DeleteContactKey", s.testDeleteContactKey},
		{"InvalidKeyArguments", s.testInvalidKeyArguments},
		{"ArrivalOrderWithinOneMillisecond", s.testArrivalOrder},
		{"Account", s.testAccount},
		{"Settings", s.testSettings},
		{"OwnKeys", s.testOwnKeys},
		{"RetainedSecrets", s.testRetainedSecrets},
		{"OfflineSecrets", s.testOfflineSecrets},
		{"ContactsWithKey", s.testContactsWithKey},
		{"OTRInstanceTag", s.testOTRInstanceTag},
		{"Outbox", s.testOutbox},
		{"MessagesPaging", s.testMessagesPaging},
		{"LogDeduplicates", s.testLogDeduplicates},
		{"LogPrivateSessions", s.testLogPrivateSessions},
		{"LogMessagesBatch", s.testLogMessagesBatch},
		{"Reopen", s.testReopen},
		{"WrongPassphrase", s.testWrongPassphrase},
		{"ChangePassphrase", s.testChangePassphrase},
		{"KeyProtected", s.testKeyProtected},
		{"SecretsNotInTheClear", s.testSecretsNotInTheClear},
		{"SealedValuesBoundToRow", s.testSealedValuesBoundToRow},
		{"CheckFindsTampering", s.testCheck},
		{"ErrorMessages", s.testErrorMessages},
		{"Closed", s.testClosed},
		{"ConcurrentWritersTwoHandles", s.testConcurrentWriters},
	} {
		t.Run(tc.name, tc.fn)
	}
}

var ctx = context.Background()

// create makes a new store with the suite's passphrase and opts' other
// settings.
func (s suite) create(t *testing.T, opts store.Options) (store.AccountStore, string) {
	t.Helper()
	if opts.Passphrase == nil && opts.Key == nil && !opts.Unencrypted {
		opts.Passphrase = []byte(Passphrase)
	}
	if opts.KDF == nil {
		opts.KDF = FastKDF
	}
	return s.b.Create(t, opts)
}

// new makes a new store with default options.
func (s suite) new(t *testing.T) store.AccountStore {
	t.Helper()
	st, _ := s.create(t, store.Options{})
	return st
}

// clocked makes a new store whose clock advances a second per reading.
func (s suite) clocked(t *testing.T, opts store.Options) store.AccountStore {
	t.Helper()
	c := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { c = c.Add(time.Second); return c }
	st, _ := s.create(t, opts)
	return st
}

// reopen opens the store named name again and fails the test on error.
func (s suite) reopen(t *testing.T, name string, opts store.Options) store.AccountStore {
	t.Helper()
	st, err := s.b.Open(t, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// accountJID is the JID a store's record may name: the account's own for
// stores bound to one from the start (they have a JID method, as
// pgstore.Account does), any JID otherwise.
func accountJID(s store.AccountStore, fallback string) string {
	if a, ok := s.(interface{ JID() string }); ok {
		return a.JID()
	}
	return fallback
}

// fpr returns a distinct valid 40-digit fingerprint.
func fpr(c byte) string { return strings.Repeat(string(c), 40) }

// Must fails the test if err is not nil.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WantErr fails the test unless err matches target.
func WantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

var (
	must    = Must
	wantErr = WantErr
)
