package pgstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/balcony-im/balcony/internal/pgtest"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/store/storetest"
)

var ctx = context.Background()

// pgBackend runs the shared suite against accounts of one PostgreSQL
// store, a new account for each store the suite creates.
type pgBackend struct {
	s *Store
	n atomic.Int64
}

func (b *pgBackend) Create(t *testing.T, opts store.Options) (store.AccountStore, string) {
	t.Helper()
	j := fmt.Sprintf("suite%d@example.org", b.n.Add(1))
	a, err := b.s.Create(ctx, j, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, j
}

func (b *pgBackend) Open(t *testing.T, j string, opts store.Options) (store.AccountStore, error) {
	a, err := b.s.Open(ctx, j, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { a.Close() })
	return a, nil
}

func (b *pgBackend) Exec(t *testing.T, j, query string, args ...any) int64 {
	t.Helper()
	id, err := b.s.accountID(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := b.s.pool.Exec(ctx, render(query), append([]any{id}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tag.RowsAffected()
}

// accountTables are the tables holding an account's rows.
var accountTables = []string{"accounts", "settings", "account", "own_keys", "contact_keys", "key_events",
	"otr_instance", "retained_secrets", "outbox", "messages"}

// Contains searches the text form of every row of the account, in which
// bytea values appear in hex.
func (b *pgBackend) Contains(t *testing.T, j string, data []byte) bool {
	t.Helper()
	id, err := b.s.accountID(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range accountTables {
		var n int
		err := b.s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` AS r
			WHERE r.account_id = $1 AND (strpos(r::text, $2) > 0 OR strpos(r::text, $3) > 0)`,
			id, string(data), hex.EncodeToString(data)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return true
		}
	}
	return false
}

func open(t testing.TB, url string, cfg *Config) *Store {
	t.Helper()
	s, err := Open(ctx, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var (
	must    = storetest.Must
	wantErr = storetest.WantErr
)

// TestPostgres runs against one real PostgreSQL server (started by
// scripts/postgres-harness.sh): the shared suite, then what is
// PostgreSQL's own.
func TestPostgres(t *testing.T) {
	url := pgtest.Start(t)
	s := open(t, url, &Config{LockCheckInterval: 50 * time.Millisecond})
	t.Run("Suite", func(t *testing.T) { storetest.Run(t, &pgBackend{s: s}) })
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, s) })
	t.Run("TwoAccountsIsolated", func(t *testing.T) { testIsolated(t, s) })
	t.Run("LockExclusiveAcrossPools", func(t *testing.T) { testLockExclusive(t, s, url) })
	t.Run("LockReleasedWhenConnectionKilled", func(t *testing.T) { testLockKilled(t, s, url) })
	t.Run("HostsShareAccounts", func(t *testing.T) { testHosts(t, s) })
	t.Run("SerialisationRetry", func(t *testing.T) { testRetry(t, s) })
	t.Run("WriteWaitsForLock", func(t *testing.T) { testWriteLockTimeout(t, s) })
	t.Run("KilledWriterLeavesNothing", func(t *testing.T) { testKilledWriter(t, s) })
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, url) })
}

func testAccounts(t *testing.T, s *Store) {
	opts := storetest.Options(storetest.Passphrase)
	_, err := s.Open(ctx, "nobody@example.org", opts)
	wantErr(t, err, store.ErrNoStore)
	a, err := s.Create(ctx, "Juliet@Capulet.lit/balcony", opts)
	must(t, err)
	defer a.Close()
	if a.JID() != "juliet@capulet.lit" {
		t.Errorf("JID %q", a.JID())
	}
	_, err = s.Create(ctx, "juliet@capulet.lit", opts)
	wantErr(t, err, store.ErrExists)
	_, err = s.Create(ctx, "bot@capulet.lit", store.Options{Unencrypted: true})
	wantErr(t, err, store.ErrEncryptionMode)
	if _, err := s.Create(ctx, "capulet.lit", opts); err == nil {
		t.Error("a JID without a local part was accepted")
	}
	// The record of an account may only name the account.
	if err := a.SetAccount(ctx, store.Account{JID: "romeo@montague.lit"}); err == nil {
		t.Error("SetAccount accepted another account's JID")
	}
	must(t, a.SetAccount(ctx, store.Account{JID: "juliet@capulet.lit", Server: "capulet.lit:5222"}))
	jids, err := s.Accounts(ctx)
	must(t, err)
	if !strings.Contains(strings.Join(jids, " "), "juliet@capulet.lit") {
		t.Errorf("accounts %q", jids)
	}
	must(t, s.Delete(ctx, "juliet@capulet.lit"))
	_, err = s.Open(ctx, "juliet@capulet.lit", opts)
	wantErr(t, err, store.ErrNoStore)
	// The handle still open fails cleanly.
	if err := a.SetSetting(ctx, "k", "v"); err == nil {
		t.Error("write to a deleted account succeeded")
	}
}

// Two accounts with the same contacts, keys and settings never see each
// other's rows, and a sealed value of one does not open in the other.
func testIsolated(t *testing.T, s *Store) {
	opts := storetest.Options(storetest.Passphrase)
	a, err := s.Create(ctx, "alice@isolated.example", opts)
	must(t, err)
	defer a.Close()
	b, err := s.Create(ctx, "bob@isolated.example", opts)
	must(t, err)
	defer b.Close()
	f := strings.Repeat("A", 40)
	for _, st := range []*Account{a, b} {
		_, err := st.RecordSeenKey(ctx, "carol@example.org", store.OX, f, []byte(st.JID()))
		must(t, err)
		must(t, st.SetSetting(ctx, "who", st.JID()))
		must(t, st.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: f, Active: true}, []byte("secret of "+st.JID())))
	}
	_, err = a.LogMessage(ctx, store.LogEntry{Peer: "carol@example.org", Direction: store.Incoming, Body: "for alice"})
	must(t, err)
	must(t, a.SetTrust(ctx, "carol@example.org", store.OX, f, store.Verified))
	for _, st := range []*Account{a, b} {
		keys, err := st.ListKeys(ctx, "", "")
		must(t, err)
		if len(keys) != 1 || string(keys[0].Data) != st.JID() {
			t.Errorf("%s: keys %+v", st.JID(), keys)
		}
		if v, err := st.Setting(ctx, "who"); err != nil || v != st.JID() {
			t.Errorf("%s: setting %q, %v", st.JID(), v, err)
		}
		sec, err := st.OwnKeySecret(ctx, store.OTR, f)
		if err != nil || string(sec) != "secret of "+st.JID() {
			t.Errorf("%s: secret %q, %v", st.JID(), sec, err)
		}
	}
	if tr, _ := b.Trust(ctx, "carol@example.org", store.OX, f); tr != store.Blind {
		t.Errorf("bob's trust changed with alice's decision: %v", tr)
	}
	if msgs, err := b.Messages(ctx, "carol@example.org", 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("bob sees %d messages, %v", len(msgs), err)
	}
	// Each account has its own data key: alice's sealed secret in bob's
	// row does not open.
	aid, _ := s.accountID(ctx, a.JID())
	bid, _ := s.accountID(ctx, b.JID())
	_, err = s.pool.Exec(ctx, `UPDATE own_keys SET secret = (SELECT secret FROM own_keys WHERE account_id = $1)
		WHERE account_id = $2`, aid, bid)
	must(t, err)
	_, err = b.OwnKeySecret(ctx, store.OTR, f)
	wantErr(t, err, store.ErrCorrupt)
}

// waitFor polls the database until cond holds: the events awaited happen
// in another server process, which tells nobody.
func waitFor(t *testing.T, s *Store, what, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		must(t, s.pool.QueryRow(ctx, query, args...).Scan(&ok))
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitingForLock is true while a connection waits for an advisory lock of
// the given class on the account.
const waitingForLock = `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
	AND classid = $1 AND objid = $2 AND NOT granted)`

// twoHosts creates an account in s and returns another Store on the same
// database (another host, with its own pool) and the account's id.
func twoHosts(t *testing.T, s *Store, url, account string) (*Store, int64) {
	t.Helper()
	a, err := s.Create(ctx, account, storetest.Options(storetest.Passphrase))
	must(t, err)
	a.Close()
	id, err := s.accountID(ctx, account)
	must(t, err)
	return open(t, url, nil), id
}

func testLockExclusive(t *testing.T, s *Store, url string) {
	other, id := twoHosts(t, s, url, "served@example.org")

	l, err := s.TryLockAccount(ctx, "served@example.org")
	must(t, err)
	_, err = other.TryLockAccount(ctx, "served@example.org")
	wantErr(t, err, store.ErrLocked)
	_, err = s.TryLockAccount(ctx, "served@example.org") // another connection of the same host
	wantErr(t, err, store.ErrLocked)
	_, err = other.TryLockAccount(ctx, "nobody@example.org")
	wantErr(t, err, store.ErrNoStore)

	// LockAccount waits until the holder releases.
	got := make(chan *Lock)
	go func() {
		l2, err := other.LockAccount(ctx, "served@example.org")
		if err != nil {
			t.Error(err)
		}
		got <- l2
	}()
	waitFor(t, s, "the second host waits for the lock", waitingForLock, int64(lockServe), int64(lockKey(id)))
	select {
	case <-got:
		t.Fatal("LockAccount returned while the lock was held")
	default:
	}
	l.Release()
	l.Release()
	l2 := <-got
	if l2 == nil {
		t.FailNow()
	}
	defer l2.Release()
	_, err = s.TryLockAccount(ctx, "served@example.org")
	wantErr(t, err, store.ErrLocked)

	// A waiting LockAccount gives up with its context.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.LockAccount(cctx, "served@example.org"); err == nil {
		t.Error("LockAccount succeeded while the lock was held")
	}
	// Writes of the account are not blocked by the serving lock.
	b, err := other.Open(ctx, "served@example.org", storetest.Options(storetest.Passphrase))
	must(t, err)
	defer b.Close()
	must(t, b.SetSetting(ctx, "k", "v"))
}

func testLockKilled(t *testing.T, s *Store, url string) {
	other, id := twoHosts(t, s, url, "failover@example.org")
	l, err := s.TryLockAccount(ctx, "failover@example.org")
	must(t, err)
	defer l.Release()
	_, err = other.TryLockAccount(ctx, "failover@example.org")
	wantErr(t, err, store.ErrLocked)

	// The holding connection is killed (as if its host died).
	var killed bool
	must(t, s.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
		AND classid = $1 AND objid = $2 AND granted`, int64(lockServe), int64(lockKey(id))).Scan(&killed))
	if !killed {
		t.Fatal("no backend holding the lock was found")
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder was not told that its lock is lost")
	}
	l2, err := other.TryLockAccount(ctx, "failover@example.org")
	must(t, err)
	l2.Release()
}

// A transaction outside the account lock conflicts with a write: the
// write fails with a serialisation failure, is run again on fresh data,
// and its result accounts for the other transaction.
func testRetry(t *testing.T, s *Store) {
	a, err := s.Create(ctx, "retry@example.org", storetest.Options(storetest.Passphrase))
	must(t, err)
	defer a.Close()
	id, _ := s.accountID(ctx, a.JID())
	f := strings.Repeat("E", 40)
	_, err = a.RecordSeenKey(ctx, "carol@example.org", store.OX, strings.Repeat("D", 40), nil)
	must(t, err)

	// An administrator's SERIALIZABLE transaction inserts key E, not yet
	// committed.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT count(*) FROM contact_keys WHERE account_id = $1 AND contact = 'carol@example.org'`, id)
	must(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO contact_keys (account_id, contact, mechanism, fingerprint, trust, first_seen, last_seen, seq)
		VALUES ($1, 'carol@example.org', 'ox', $2, 'verified', 1, 1, 1000)`, id, f)
	must(t, err)

	// The store records the same key: its insert waits for the
	// administrator's transaction.
	before := s.retries.Load()
	type result struct {
		seen store.Seen
		err  error
	}
	done := make(chan result)
	go func() {
		seen, err := a.RecordSeenKey(ctx, "carol@example.org", store.OX, f, []byte("data"))
		done <- result{seen, err}
	}()
	waitFor(t, s, "the store's insert waits", `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO contact_keys%')`)
	must(t, tx.Commit(ctx))
	r := <-done
	must(t, r.err)
	if s.retries.Load() == before {
		t.Error("the write was not retried")
	}
	// Run again, it found the administrator's key: not new, verified.
	if r.seen.New || r.seen.Key.Trust != store.Verified || string(r.seen.Key.Data) != "data" {
		t.Errorf("after the retry: %+v", r.seen)
	}
	evs, err := a.KeyEvents(ctx, "carol@example.org", store.OX)
	must(t, err)
	if len(evs) != 1 {
		t.Errorf("%d key events, want 1 (the retried write left none)", len(evs))
	}
}

// A write waits for another writer of the account for at most the busy
// timeout, then fails with ErrLocked.
func testWriteLockTimeout(t *testing.T, s *Store) {
	opts := storetest.Options(storetest.Passphrase)
	opts.BusyTimeout = 100 * time.Millisecond
	a, err := s.Create(ctx, "busy@example.org", opts)
	must(t, err)
	defer a.Close()
	id, _ := s.accountID(ctx, a.JID())
	tx, err := s.pool.Begin(ctx)
	must(t, err)
	_, err = tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockWrite, lockKey(id))
	must(t, err)
	err = a.SetSetting(ctx, "k", "v")
	wantErr(t, err, store.ErrLocked)
	// Reads do not wait.
	if _, err := a.Settings(ctx); err != nil {
		t.Errorf("read while locked: %v", err)
	}
	must(t, tx.Rollback(ctx))
	must(t, a.SetSetting(ctx, "k", "v"))
}

func testMigrations(t *testing.T, url string) {
	// Hosts starting together on an empty schema apply each migration
	// once.
	cfg := &Config{Schema: "fresh"}
	var wg sync.WaitGroup
	stores := make([]*Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); stores[i], errs[i] = Open(ctx, url, cfg) }()
	}
	wg.Wait()
	for i, err := range errs {
		must(t, err)
		defer stores[i].Close()
	}
	s := stores[0]
	if v, err := s.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() {
		t.Fatalf("schema version %d, %v", v, err)
	}
	a, err := s.Create(ctx, "m@example.org", storetest.Options(storetest.Passphrase))
	must(t, err)
	a.Close()

	// A newer schema is refused and left as it is.
	_, err = s.pool.Exec(ctx, `UPDATE meta SET value = $1 WHERE key = 'schema_version'`, fmt.Sprint(LatestSchemaVersion()+1))
	must(t, err)
	_, err = Open(ctx, url, cfg)
	wantErr(t, err, store.ErrNewerSchema)
	if jids, err := s.Accounts(ctx); err != nil || len(jids) != 1 {
		t.Errorf("accounts after a refused open: %q, %v", jids, err)
	}
}

// A writer whose connection is killed half-way through a write leaves
// none of it: the key row written before the kill is gone with its
// transaction, and the store goes on working on other connections.
func testKilledWriter(t *testing.T, s *Store) {
	a, err := s.Create(ctx, "crash@example.org", storetest.Options(storetest.Passphrase))
	must(t, err)
	defer a.Close()
	f := strings.Repeat("C", 40)

	// Hold key_events, so the write stops after inserting the key row.
	tx, err := s.pool.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `LOCK TABLE key_events IN EXCLUSIVE MODE`)
	must(t, err)
	done := make(chan error)
	go func() {
		_, err := a.RecordSeenKey(ctx, "carol@example.org", store.OX, f, []byte("data"))
		done <- err
	}()
	waitFor(t, s, "the write waits half-way", `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO key_events%')`)
	var killed bool
	must(t, s.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO key_events%'`).Scan(&killed))
	if !killed {
		t.Fatal("the writer's backend was not found")
	}
	if err := <-done; err == nil {
		t.Fatal("the killed write reported success")
	}
	must(t, tx.Rollback(ctx))

	keys, err := a.ListKeys(ctx, "carol@example.org", "")
	must(t, err)
	evs, err := a.KeyEvents(ctx, "carol@example.org", "")
	must(t, err)
	if len(keys) != 0 || len(evs) != 0 {
		t.Fatalf("a killed write left %d keys and %d events", len(keys), len(evs))
	}
	seen, err := a.RecordSeenKey(ctx, "carol@example.org", store.OX, f, []byte("data"))
	if err != nil || !seen.New || seen.Key.Trust != store.Blind {
		t.Fatalf("writing again: %+v, %v", seen, err)
	}
}
