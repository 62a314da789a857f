package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/store"
)

// TestStoreSecrets runs the retained-secret adapter over a real encrypted
// store: the esession.RetainedSecrets semantics (replace the matching
// secret or start a new chain, the verified flag) survive reopening.
func TestStoreSecrets(t *testing.T) {
	dir := t.TempDir()
	kdf := store.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}
	open := func() *store.Store {
		st, err := store.Open(dir, store.Options{Passphrase: []byte("pass"), KDF: &kdf})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := store.Create(dir, store.Options{Passphrase: []byte("pass"), KDF: &kdf})
	if err != nil {
		t.Fatal(err)
	}
	a := storeSecrets{st}
	const peer = "bob@example.org"
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	one := esession.Secret{Created: created}
	for i := range one.Value {
		one.Value[i] = byte(i + 1)
	}
	if list, err := a.Lookup(peer); err != nil || len(list) != 0 {
		t.Fatalf("empty store: %v %v", list, err)
	}
	if err := a.Replace(peer, nil, one); err != nil {
		t.Fatal(err)
	}
	// Confirming the SAS marks the stored secret verified.
	if found, err := a.Verify(peer, &one.Value); err != nil || !found {
		t.Fatalf("Verify: %v %v", found, err)
	}
	// The next session replaces it by a new secret that inherits the flag.
	two := esession.Secret{Verified: true, Created: created.Add(time.Hour)}
	// No run of zeros: the check below looks for these bytes in the file,
	// whose pages hold 0xee followed by zeros by chance.
	for i := range two.Value {
		two.Value[i] = 0xee - byte(3*i)
	}
	if err := a.Replace(peer+"/phone", &one.Value, two); err != nil {
		t.Fatal(err)
	}
	// Confirming the first session once it was replaced inserts nothing.
	if found, err := a.Verify(peer, &one.Value); err != nil || found {
		t.Fatalf("Verify of a replaced secret: %v %v", found, err)
	}
	// Another client of the peer starts a chain of its own.
	other := esession.Secret{Created: created}
	other.Value[31] = 7
	if err := a.Replace(peer, nil, other); err != nil {
		t.Fatal(err)
	}
	// Expiry removes the secrets created before the limit only.
	if err := a.Expire(peer, created); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = open()
	defer st.Close()
	list, err := storeSecrets{st}.Lookup(peer)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d secrets, want 2: the replaced one must be gone", len(list))
	}
	found := map[[32]byte]esession.Secret{}
	for _, s := range list {
		found[s.Value] = s
	}
	if s, ok := found[two.Value]; !ok || !s.Verified || !s.Created.Equal(two.Created) {
		t.Fatalf("the chain's secret: %+v %v", s, ok)
	}
	if s, ok := found[other.Value]; !ok || s.Verified {
		t.Fatalf("the other chain: %+v %v", s, ok)
	}
	if _, ok := found[one.Value]; ok {
		t.Fatal("the old secret was kept")
	}
	// At rest the secrets are encrypted: their bytes are not in the file.
	raw := readAll(t, filepath.Join(dir, "balcony.db"))
	if bytes.Contains(raw, two.Value[:]) || bytes.Contains(raw, one.Value[:]) {
		t.Fatal("a retained secret is stored in the clear")
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.Bytes()
}

// TestESessionUsage checks the command line without a server.
func TestESessionUsage(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("BALCONY_PASSPHRASE", "pass")
	t.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, e, code := runCmd(t, "account", "add", "alice@example.org", "--server", "127.0.0.1:1", "--offline"); code != 0 {
		t.Fatalf("account add: %s", e)
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout, or stderr when the code is not 0
	}{
		{[]string{"help", "esession"}, 0, "balcony esession confirm [--thread T] JID SAS"},
		{[]string{"esession"}, 2, "needs a subcommand"},
		{[]string{"esession", "frobnicate", "bob@example.org"}, 2, `unknown esession subcommand "frobnicate"`},
		{[]string{"esession", "start"}, 2, "needs a JID"},
		{[]string{"esession", "sas", "bob@example.org", "--wait", "1s"}, 2, "--wait is for"},
		{[]string{"esession", "accept", "bob@example.org", "--reason", "x"}, 2, "--reason is for esession decline"},
		{[]string{"esession", "start", "@@"}, 2, "invalid JID"},
		{[]string{"esession", "confirm", "bob@example.org"}, 2, "needs a JID and the SAS you compared"},
		{[]string{"esession", "sas", "--thread", "t", "bob@example.org"}, 2, "--thread is for esession confirm"},
		{[]string{"esession", "status"}, 1, "no balcony listen is running"},
		{[]string{"esession", "policy"}, 0, "esession policy: ask"},
		{[]string{"esession", "policy", "sometimes"}, 2, `unknown policy "sometimes"`},
		{[]string{"esession", "policy", "subscribed"}, 0, "esession policy: subscribed"},
		{[]string{"esession", "policy"}, 0, "esession policy: subscribed"},
		{[]string{"esession", "policy", "logging"}, 0, "esession policy logging: may"},
		{[]string{"esession", "policy", "logging", "mustnot"}, 0, "esession policy logging: mustnot (applies"},
		{[]string{"esession", "policy", "logging"}, 0, "esession policy logging: mustnot"},
		{[]string{"esession", "policy", "logging", "never"}, 2, `unknown logging policy "never"`},
		{[]string{"esession", "policy", "rekey"}, 0, "esession policy rekey: 1000"},
		{[]string{"esession", "policy", "rekey", "never"}, 0, "esession policy rekey: never (applies"},
		{[]string{"esession", "policy", "rekey", "4294967295"}, 2, `invalid rekey policy "4294967295"`},
		{[]string{"esession", "policy", "rekey", "1", "2"}, 2, "takes at most one argument"},
		{[]string{"esession", "policy", "offline"}, 0, "esession policy offline: off"},
		{[]string{"esession", "policy", "offline", "30s"}, 2, `invalid offline policy "30s"`},
		{[]string{"esession", "policy", "offline", "168h"}, 0, "esession policy offline: 168h (applies"},
		{[]string{"esession", "rekey"}, 2, "esession rekey needs a JID"},
		{[]string{"esession", "renegotiate", "bob@example.org"}, 2, "needs a JID and may or mustnot"},
		{[]string{"esession", "renegotiate", "bob@example.org", "sometimes"}, 2, "needs a JID and may or mustnot"},
		{[]string{"esession", "continue", "bob@example.org"}, 2, "needs a JID and the resource"},
		{[]string{"esession", "continue", "bob@example.org", "a/b"}, 2, "needs a JID and the resource"},
		{[]string{"esession", "handover", "bob@example.org"}, 2, "needs a JID and the file"},
		{[]string{"esession", "adopt", filepath.Join(dir, "missing")}, 1, "no such file"},
		{[]string{"esession", "keygen", "x"}, 2, "takes no arguments"},
		{[]string{"esession", "offline"}, 2, "needs publish, withdraw or start"},
		{[]string{"esession", "offline", "start"}, 2, "usage: balcony esession offline"},
		{[]string{"esession", "offline", "publish", "--valid", "1h", "x"}, 2, "usage: balcony esession offline"},
		{[]string{"esession", "sas", "--valid", "1h", "bob@example.org"}, 2, "--valid is for esession offline publish"},
		{[]string{"esession", "accept", "--keys", "bob@example.org"}, 2, "--keys is for esession start"},
		{[]string{"esession", "end", "--secret", "bob@example.org"}, 2, "--secret, --secret-file and --secret-env are for esession start and accept"},
		{[]string{"esession", "start", "--secret", "bob@example.org"}, 2, "no terminal to ask for the shared password on"},
		{[]string{"esession", "start", "--secret-env", "BALCONY_EMPTY_FOR_TEST", "--secret-file", filepath.Join(dir, "empty"), "bob@example.org"}, 2, "must not be empty"},
		{[]string{"esession", "rekey", "bob@example.org"}, 1, "no balcony listen is running"},
	} {
		out, e, code := runCmd(t, tc.args...)
		where := out
		if tc.code != 0 {
			where = e
		}
		if code != tc.code || !strings.Contains(where, tc.out) {
			t.Errorf("balcony %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, e, tc.code, tc.out)
		}
	}
}

// TestESessionKeyHint: an event about an Encrypted Sessions public key
// suggests balcony trust with the whole fingerprint; one with a SAS still
// suggests esession sas.
func TestESessionKeyHint(t *testing.T) {
	h := eme.Hint{Action: eme.ActionVerify, Mechanism: eme.ESession, Peer: "bob@example.org/desk"}
	const fpr = "pBvRd9bvWmm5PGAdrPSxxCj/0U7dSGvG0JumG9bbBLg="
	for _, tc := range []struct {
		fpr   string
		slash bool
		want  string
	}{
		{fpr, false, "balcony trust --mechanism esession bob@example.org " + fpr + " verified"},
		{fpr, true, "/trust " + fpr + " verified"},
		{"mf6dw", false, "balcony esession sas bob@example.org/desk"},
		{"mf6dw", true, "/esession sas"},
		{"pBvRd9bvWmm5PGAdrPSxxCj/0U7dSGvG0JumG9bbBL!=", false, "balcony esession sas bob@example.org/desk"},
	} {
		if got := hintCommand(h, tc.fpr, tc.slash); got != tc.want {
			t.Errorf("hintCommand(%q, slash %v) = %q, want %q", tc.fpr, tc.slash, got, tc.want)
		}
	}
}
