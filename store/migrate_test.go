package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestEmbeddedMigrations(t *testing.T) {
	if LatestSchemaVersion() < 2 {
		t.Fatalf("LatestSchemaVersion() = %d; migration tests need at least two migrations", LatestSchemaVersion())
	}
	for i, m := range migrations {
		if m.Version != i+1 || m.Name == "" || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("migration %d: %+v", i, m)
		}
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("CREATE TABLE x (y);")}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"migrations/0001_a.sql": file, "migrations/0003_c.sql": file},
		"bad name": {"migrations/0001_a.sql": file, "migrations/2_b.sql": file},
		"zero":     {"migrations/0000_a.sql": file},
		"none":     {},
	} {
		if _, err := LoadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations accepted it", name)
		}
	}
}

// fixtures writes data that is valid at schema version v and checks that
// it is intact at the latest version. Each entry covers the tables that a
// migration introduced.
var fixtures = []struct {
	since int
	write func(t *testing.T, s *Store)
	check func(t *testing.T, s *Store)
}{
	{1, func(t *testing.T, s *Store) {
		must(t, s.SetAccount(ctx, Account{JID: "juliet@capulet.lit", Server: "capulet.lit:5223", DirectTLS: true}))
		must(t, s.SetPassword(ctx, []byte("balcony")))
		must(t, s.SetSetting(ctx, "ui.theme", "night"))
		_, err := s.Enqueue(ctx, "romeo@montague.lit", "wherefore art thou", OX)
		must(t, err)
		_, err = s.OTRInstanceTag(ctx)
		must(t, err)
		if v, err := s.SchemaVersion(ctx); err != nil || v >= 3 {
			// A new store: the same data through today's methods, in
			// the order version 1 would have listed it.
			must(t, err)
			for _, c := range "DEF1" {
				_, err := s.RecordSeenKey(ctx, map[bool]string{true: "romeo@montague.lit", false: "tybalt@capulet.lit"}[c == 'D'], OX, strings.Repeat(string(c), 40), []byte{1})
				must(t, err)
			}
			must(t, s.SetTrust(ctx, "romeo@montague.lit", OX, strings.Repeat("D", 40), Verified))
			for _, c := range "AC" {
				must(t, s.AddOwnKey(ctx, OwnKey{Mechanism: OTR, Fingerprint: strings.Repeat(string(c), 40), Active: c == 'C'}, []byte("dsa")))
			}
			must(t, s.ReplaceRetainedSecret(ctx, "romeo@montague.lit", nil, RetainedSecret{Value: []byte("older chain")}))
			must(t, s.ReplaceRetainedSecret(ctx, "romeo@montague.lit", nil, RetainedSecret{Value: []byte("srs"), Verified: true}))
			return
		}
		// Keys, own keys and retained secrets as version 1 wrote them,
		// with ties in time that version 1 broke by fingerprint or id.
		const ms = 1793534400000
		v1 := func(query string, args ...any) {
			t.Helper()
			if _, err := s.sq.db.ExecContext(ctx, query, args...); err != nil {
				t.Fatal(err)
			}
		}
		key := func(contact, fpr, trust string, seen int64) {
			v1(`INSERT INTO contact_keys (contact, mechanism, fingerprint, data, trust, first_seen, last_seen)
				VALUES (?, 'ox', ?, x'01', ?, ?, ?)`, contact, fpr, trust, seen, seen)
			v1(`INSERT INTO key_events (contact, mechanism, fingerprint, kind, new_trust, time) VALUES (?, 'ox', ?, 'first', ?, ?)`,
				contact, fpr, trust, seen)
		}
		key("romeo@montague.lit", strings.Repeat("D", 40), "verified", ms)
		key("tybalt@capulet.lit", strings.Repeat("F", 40), "blind", ms)
		key("tybalt@capulet.lit", strings.Repeat("E", 40), "undecided", ms)
		key("tybalt@capulet.lit", strings.Repeat("1", 40), "undecided", ms+1)
		for _, f := range []string{strings.Repeat("C", 40), strings.Repeat("A", 40)} {
			sealed, err := s.seal([]byte("dsa"), "own_keys", "otr", f)
			must(t, err)
			v1(`INSERT INTO own_keys (mechanism, fingerprint, public, secret, created, active) VALUES ('otr', ?, x'', ?, ?, ?)`,
				f, sealed, ms, f[0] == 'C')
		}
		for id, v := range []string{"srs", "older chain"} {
			sealed, err := s.seal([]byte(v), "retained_secrets", "romeo@montague.lit", fmt.Sprint(2-id))
			must(t, err)
			v1(`INSERT INTO retained_secrets (id, peer, secret, verified, created) VALUES (?, 'romeo@montague.lit', ?, ?, ?)`,
				2-id, sealed, v == "srs", ms)
		}
	}, func(t *testing.T, s *Store) {
		a, err := s.Account(ctx)
		must(t, err)
		if a != (Account{JID: "juliet@capulet.lit", Server: "capulet.lit:5223", DirectTLS: true}) {
			t.Errorf("account %+v", a)
		}
		pw, err := s.Password(ctx)
		if err != nil || string(pw) != "balcony" {
			t.Errorf("password %q, %v", pw, err)
		}
		if v, err := s.Setting(ctx, "ui.theme"); v != "night" || err != nil {
			t.Errorf("setting %q, %v", v, err)
		}
		sec, err := s.OwnKeySecret(ctx, OTR, strings.Repeat("C", 40))
		if err != nil || string(sec) != "dsa" {
			t.Errorf("own key secret %q, %v", sec, err)
		}
		if tr, err := s.Trust(ctx, "romeo@montague.lit", OX, strings.Repeat("D", 40)); tr != Verified || err != nil {
			t.Errorf("trust %v, %v", tr, err)
		}
		rs, err := s.RetainedSecrets(ctx, "romeo@montague.lit")
		if err != nil || len(rs) != 2 || string(rs[0].Value) != "srs" || !rs[0].Verified || string(rs[1].Value) != "older chain" {
			t.Errorf("retained secrets %+v, %v", rs, err)
		}
		// Ties keep the order version 1 listed them in.
		keys, err := s.ListKeys(ctx, "tybalt@capulet.lit", OX)
		must(t, err)
		if len(keys) != 3 || keys[0].Fingerprint[0] != 'E' || keys[1].Fingerprint[0] != 'F' || keys[2].Fingerprint[0] != '1' {
			t.Errorf("tybalt's keys %+v", keys)
		}
		own, err := s.OwnKeys(ctx, OTR)
		must(t, err)
		if len(own) < 2 || own[0].Fingerprint[0] != 'A' || own[1].Fingerprint[0] != 'C' || !own[1].Active {
			t.Errorf("own keys %+v", own)
		}
		ob, err := s.Outbox(ctx)
		if err != nil || len(ob) < 1 || ob[0].Body != "wherefore art thou" {
			t.Errorf("outbox %+v, %v", ob, err)
		}
	}},
	{2, func(t *testing.T, s *Store) {
		_, err := s.LogMessage(ctx, LogEntry{StanzaID: "m1", Peer: "romeo@montague.lit", Direction: Incoming, Mechanism: OX, Security: "verified", Body: "hello"})
		must(t, err)
	}, func(t *testing.T, s *Store) {
		msgs, err := s.Messages(ctx, "romeo@montague.lit", 0, 10)
		if err != nil || len(msgs) != 1 || msgs[0].Body != "hello" || msgs[0].StanzaID != "m1" {
			t.Errorf("messages %+v, %v", msgs, err)
		}
	}},
	{3, func(t *testing.T, s *Store) {
		for _, c := range "98" {
			_, err := s.RecordSeenKey(ctx, "benvolio@montague.lit", OTR, strings.Repeat(string(c), 40), nil)
			must(t, err)
		}
	}, func(t *testing.T, s *Store) {
		keys, err := s.ListKeys(ctx, "benvolio@montague.lit", OTR)
		if err != nil || len(keys) != 2 || keys[0].Fingerprint[0] != '9' || keys[1].Fingerprint[0] != '8' {
			t.Errorf("keys recorded after the migration: %+v, %v", keys, err)
		}
	}},
	{4, func(t *testing.T, s *Store) {
		for _, c := range "AB" {
			_, err := s.RecordSeenKey(ctx, "mercutio@montague.lit", OTR, strings.Repeat(string(c), 40), nil)
			must(t, err)
		}
	}, func(t *testing.T, s *Store) {
		pending, err := s.PendingKeyChanges(ctx)
		must(t, err)
		if !slices.ContainsFunc(pending, func(c KeyChange) bool { return c.Contact == "mercutio@montague.lit" }) {
			t.Errorf("pending key changes %+v", pending)
		}
	}},
	{5, func(t *testing.T, s *Store) {
		_, err := s.RecordSeenKey(ctx, "paris@verona.lit", OX, strings.Repeat("C", 40), []byte("old data"))
		must(t, err)
	}, func(t *testing.T, s *Store) {
		// Keys recorded before the migration have no publication date, so
		// their data is fetched again on the next key list.
		keys, err := s.ListKeys(ctx, "paris@verona.lit", OX)
		if err != nil || len(keys) != 1 || !keys[0].Published.IsZero() || string(keys[0].Data) != "old data" {
			t.Errorf("keys after the migration: %+v, %v", keys, err)
		}
		must(t, s.SetKeyPublished(ctx, "paris@verona.lit", OX, strings.Repeat("C", 40), time.Unix(1700000000, 0)))
	}},
	{6, func(t *testing.T, s *Store) {
		_, err := s.RecordSeenKey(ctx, "tybalt@capulet.lit", ESession, "dHliYWx0", nil)
		must(t, err)
	}, func(t *testing.T, s *Store) {
		// Keys recorded before the migration are found by fingerprint, and
		// offline secrets can be kept.
		jids, err := s.ContactsWithKey(ctx, ESession, "dHliYWx0")
		if err != nil || !slices.Equal(jids, []string{"tybalt@capulet.lit"}) {
			t.Errorf("contacts with the key: %q, %v", jids, err)
		}
		must(t, s.SaveOfflineSecrets(ctx, []byte("nonce-6"), []byte("secret"), time.Unix(1700000000, 0)))
		if got, err := s.OfflineSecrets(ctx, []byte("nonce-6")); err != nil || string(got) != "secret" {
			t.Errorf("offline secrets %q, %v", got, err)
		}
	}},
	{7, func(t *testing.T, s *Store) {
		_, err := s.RecordSeenKey(ctx, "paris@verona.lit", OMEMO, strings.Repeat("c", 64), []byte("ik"))
		must(t, err)
		_, err = s.LogMessage(ctx, LogEntry{StanzaID: "m6", Peer: "paris@verona.lit", Direction: Incoming, Mechanism: OMEMO, Body: "omemo"})
		must(t, err)
		must(t, s.UpdateMechanismState(ctx, OMEMO, map[string][]byte{"account": []byte("device")}, nil))
	}, func(t *testing.T, s *Store) {
		// The rebuilt tables kept their rows (and sealed values their
		// ids), and key events their keys.
		if evs, err := s.KeyEvents(ctx, "romeo@montague.lit", OX); err != nil || len(evs) == 0 || evs[0].Fingerprint != strings.Repeat("D", 40) {
			t.Errorf("key events of romeo after the rebuild: %+v, %v", evs, err)
		}
		keys, err := s.ListKeys(ctx, "paris@verona.lit", OMEMO)
		if err != nil || len(keys) != 1 || keys[0].Trust != Blind {
			t.Errorf("OMEMO keys: %+v, %v", keys, err)
		}
		if v, err := s.MechanismState(ctx, OMEMO, "account"); err != nil || string(v) != "device" {
			t.Errorf("mechanism state %q, %v", v, err)
		}
		msgs, err := s.Messages(ctx, "paris@verona.lit", 0, 10)
		if err != nil || len(msgs) != 1 || msgs[0].Mechanism != OMEMO || msgs[0].Body != "omemo" {
			t.Errorf("messages %+v, %v", msgs, err)
		}
	}},
	{8, func(t *testing.T, s *Store) {
		_, err := s.EnqueueMessage(ctx, OutboxMessage{To: "friar@verona.lit", Body: "the letter", MessageID: "letter-1", Receipt: true})
		must(t, err)
	}, func(t *testing.T, s *Store) {
		// Messages queued before the migration have no id and ask for no
		// receipt; the rest keep theirs.
		out, err := s.Outbox(ctx)
		must(t, err)
		var old, letter *OutboxMessage
		for i := range out {
			switch out[i].Body {
			case "wherefore art thou":
				old = &out[i]
			case "the letter":
				letter = &out[i]
			}
		}
		if old == nil || old.MessageID != "" || old.Receipt || letter == nil || letter.MessageID != "letter-1" || !letter.Receipt {
			t.Errorf("outbox after the migration: %+v", out)
		}
	}},
	{9, func(t *testing.T, s *Store) {
		_, err := s.EnqueueMessage(ctx, OutboxMessage{To: "friar@verona.lit", Body: "the second letter", Mechanism: OMEMO, Namespace: "urn:xmpp:omemo:2"})
		must(t, err)
	}, func(t *testing.T, s *Store) {
		// Messages queued before the migration have no namespace.
		out, err := s.Outbox(ctx)
		must(t, err)
		for _, m := range out {
			want := ""
			if m.Body == "the second letter" {
				want = "urn:xmpp:omemo:2"
			}
			if m.Namespace != want {
				t.Errorf("outbox after the migration: %+v", out)
			}
		}
	}},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// schemaSQL returns the schema of the database in dir, for comparison.
func schemaSQL(t *testing.T, dir string) []string {
	t.Helper()
	db := rawDB(t, dir)
	defer db.Close()
	rows, err := db.Query(`SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_schema ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		must(t, rows.Scan(&s))
		out = append(out, s)
	}
	must(t, rows.Err())
	return out
}

func TestMigrateFromEveryVersion(t *testing.T) {
	if len(fixtures) != LatestSchemaVersion() {
		t.Fatalf("%d fixtures for %d schema versions: add one for the new migration", len(fixtures), LatestSchemaVersion())
	}
	freshDir := t.TempDir()
	createDir(t, freshDir, testOptions(testPass)).Close()
	want := schemaSQL(t, freshDir)
	// A migration that rebuilds a table (7 rebuilds contact_keys) keeps
	// the indexes earlier ones made: every migration's CREATE INDEX is in
	// the final schema.
	for _, idx := range []string{"contact_keys_seq", "contact_keys_fingerprint", "key_events_key", "key_events_pending",
		"own_keys_one_active", "own_keys_seq", "messages_peer_time", "messages_stanza"} {
		if !slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, "index "+idx+": ") }) {
			t.Errorf("the index %s is missing from the schema:\n%s", idx, strings.Join(want, "\n"))
		}
	}

	for from := 0; from < LatestSchemaVersion(); from++ {
		t.Run(fmt.Sprintf("from%d", from), func(t *testing.T) {
			dir := t.TempDir()
			if from > 0 {
				opts := testOptions(testPass)
				opts.migrateTo = from
				s := createDir(t, dir, opts)
				v, err := s.SchemaVersion(ctx)
				if err != nil || v != from {
					t.Fatalf("fixture store at version %d, %v; want %d", v, err, from)
				}
				for _, f := range fixtures {
					if f.since <= from {
						f.write(t, s)
					}
				}
				must(t, s.Close())
			}
			var s *Store
			if from == 0 {
				s = createDir(t, dir, testOptions(testPass))
			} else {
				s = openDir(t, dir, testOptions(testPass))
			}
			v, err := s.SchemaVersion(ctx)
			if err != nil || v != LatestSchemaVersion() {
				t.Fatalf("after migration: version %d, %v", v, err)
			}
			for _, f := range fixtures {
				if f.since > from {
					f.write(t, s) // tables added by the migrations work
				}
			}
			for _, f := range fixtures {
				f.check(t, s)
			}
			must(t, s.Check(ctx))
			must(t, s.Close())
			if got := schemaSQL(t, dir); !slices.Equal(got, want) {
				t.Errorf("migrated schema differs from a fresh one:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestMigrationRollsBack(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(testPass)
	opts.migrateTo = 1
	s := createDir(t, dir, opts)
	must(t, s.SetSetting(ctx, "kept", "yes"))
	s.Close()

	broken := []Migration{migrations[0], {Version: 2, Name: "broken", SQL: `
		CREATE TABLE half_done (x INTEGER);
		INSERT INTO settings (key, value) VALUES ('kept', 'overwritten');
		SELECT no_such_function();`}}
	opts = testOptions(testPass)
	opts.migrations = broken
	if _, err := Open(dir, opts); err == nil || !strings.Contains(err.Error(), "0002_broken") {
		t.Fatalf("Open with a broken migration: %v", err)
	}
	db := rawDB(t, dir)
	var v, n int
	must(t, db.QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v))
	must(t, db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'`).Scan(&n))
	var kept string
	must(t, db.QueryRow(`SELECT value FROM settings WHERE key = 'kept'`).Scan(&kept))
	db.Close()
	if v != 1 || n != 0 || kept != "yes" {
		t.Errorf("after a failed migration: version %d, half_done tables %d, setting %q", v, n, kept)
	}
	// The real migrations still apply.
	s = openDir(t, dir, testOptions(testPass))
	if v, err := s.SchemaVersion(ctx); v != LatestSchemaVersion() || err != nil {
		t.Errorf("version %d, %v", v, err)
	}
}

// Several stores (separate connections, as separate processes would have)
// upgrading the same old database at once apply each migration once.
func TestConcurrentMigration(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(testPass)
	opts.migrateTo = 1
	createDir(t, dir, opts).Close()

	const n = 4
	for _, err := range concurrently(n, func() error {
		s, err := Open(dir, testOptions(testPass))
		if err == nil {
			_, err = s.LogMessage(ctx, LogEntry{Peer: "a@b.c", Direction: Outgoing, Body: "x"})
			s.Close()
		}
		return err
	}) {
		if err != nil {
			t.Error(err)
		}
	}
	s := openDir(t, dir, testOptions(testPass))
	msgs, err := s.Messages(ctx, "a@b.c", 0, 10)
	if err != nil || len(msgs) != n {
		t.Errorf("%d messages, %v", len(msgs), err)
	}
}

// A wrong passphrase on an old store must not migrate it.
func TestWrongPassphraseDoesNotMigrate(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(testPass)
	opts.migrateTo = 1
	createDir(t, dir, opts).Close()
	before := snapshot(t, dir)
	_, err := Open(dir, testOptions("wrong"))
	wantErr(t, err, ErrWrongPassphrase)
	sameSnapshot(t, before, snapshot(t, dir))
	db := rawDB(t, dir)
	var v int
	must(t, db.QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v))
	if v != 1 {
		t.Errorf("schema version %d after a wrong passphrase, want 1", v)
	}
}

// Open needs the write lock to migrate; another process holding it longer
// than the busy timeout gives ErrLocked, and the store stays as it was.
func TestOpenLockedDuringMigration(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(testPass)
	opts.migrateTo = 1
	createDir(t, dir, opts).Close()

	conn, err := rawDB(t, dir).Conn(ctx)
	must(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	must(t, err)
	opts = testOptions(testPass)
	opts.BusyTimeout = 50 * time.Millisecond
	_, err = Open(dir, opts)
	wantErr(t, err, ErrLocked)
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	must(t, err)
	s := openDir(t, dir, testOptions(testPass))
	if v, err := s.SchemaVersion(ctx); err != nil || v != LatestSchemaVersion() {
		t.Errorf("version %d, %v", v, err)
	}
}
