package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	oxclient "github.com/balcony-im/balcony/client/ox"
	"github.com/balcony-im/balcony/ox"
)

// oxTestEnv points the command at a fresh configuration and data directory
// and adds the accounts (with an unreachable server: these tests stay
// offline).
func oxTestEnv(t *testing.T, accounts ...string) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("BALCONY_PASSPHRASE", "pass")
	t.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
	for _, a := range accounts {
		if _, e, code := runCmd(t, "account", "add", a, "--server", "127.0.0.1:1", "--offline"); code != 0 {
			t.Fatalf("account add %s: %s", a, e)
		}
	}
	return dir
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, e, code := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("balcony %s: exit %d\n%s%s", strings.Join(args, " "), code, out, e)
	}
	return out
}

func TestOXKeysOffline(t *testing.T) {
	dir := oxTestEnv(t, "alice@example.org", "bob@example.org")
	out := mustRun(t, "-a", "alice@example.org", "ox", "keygen", "--no-publish")
	if !regexp.MustCompile(`generated OpenPGP key [0-9A-F]{4}( [0-9A-F]{4}){9} \(EdDSA/Cv25519\)`).MatchString(out) || !strings.Contains(out, "balcony ox publish") {
		t.Fatalf("keygen: %q", out)
	}
	fpr := strings.TrimSpace(mustRun(t, "-a", "alice@example.org", "ox", "fingerprint"))
	if len(fpr) != 40 {
		t.Fatalf("fingerprint %q", fpr)
	}
	if _, e, code := runCmd(t, "-a", "alice@example.org", "ox", "keygen", "--no-publish"); code != exitError || !strings.Contains(e, "hint: ") {
		t.Fatalf("second keygen: %d %q", code, e)
	}

	// Public export, armored and binary: the same key.
	armored := mustRun(t, "-a", "alice@example.org", "ox", "export", "--armor")
	binary := mustRun(t, "-a", "alice@example.org", "ox", "export")
	for name, data := range map[string]string{"armored": armored, "binary": binary} {
		keys, err := ox.ParseKeys([]byte(data))
		if err != nil || len(keys) != 1 || keys[0].Fingerprint() != fpr || keys[0].Secret() {
			t.Fatalf("%s public export: %v %v", name, keys, err)
		}
	}
	if !strings.HasPrefix(armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("armor: %.40q", armored)
	}

	// Secret export: a new file, mode 0600, never overwritten.
	secretFile := filepath.Join(dir, "alice-secret.asc")
	_, e, code := runCmd(t, "-a", "alice@example.org", "ox", "export", "--secret", "--armor", "--output", secretFile)
	if code != 0 || !strings.Contains(e, "without passphrase protection") {
		t.Fatalf("secret export: %d %q", code, e)
	}
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	if _, _, code := runCmd(t, "-a", "alice@example.org", "ox", "export", "--secret", "--output", secretFile); code == 0 {
		t.Fatal("export overwrote an existing file")
	}
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ox.ParseKeys(secret)
	if err != nil || len(keys) != 1 || !keys[0].Secret() || keys[0].Locked() {
		t.Fatalf("secret export parses as %v %v", keys, err)
	}

	// Bob cannot take alice's key: the user ID names alice.
	if _, e, code := runCmd(t, "-a", "bob@example.org", "ox", "import", secretFile); code == 0 || !strings.Contains(e, "xmpp:bob@example.org") {
		t.Fatalf("import of another account's key: %d %q", code, e)
	}
	// A public key is not an own key.
	pubFile := filepath.Join(dir, "alice.pub")
	if err := os.WriteFile(pubFile, []byte(armored), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, e, code := runCmd(t, "-a", "alice@example.org", "ox", "import", pubFile); code == 0 || !strings.Contains(e, "public key") {
		t.Fatalf("import of a public key: %d %q", code, e)
	}
	// Importing a key the account has changes nothing.
	if out := mustRun(t, "-a", "alice@example.org", "ox", "import", secretFile); !strings.Contains(out, "already an own key") {
		t.Fatalf("re-import: %q", out)
	}

	// A second device of alice imports the exported key; it becomes active.
	// Its data directory has no store: commands say how to create one.
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data2"))
	if _, e, code := runCmd(t, "-a", "alice@example.org", "ox", "fingerprint"); code != 1 || !strings.Contains(e, "hint: create it with: balcony account add alice@example.org") {
		t.Fatalf("without a store: %d %q", code, e)
	}
	mustRun(t, "account", "add", "alice@example.org", "--server", "127.0.0.1:1", "--offline")
	out = mustRun(t, "-a", "alice@example.org", "ox", "import", secretFile)
	if !strings.Contains(out, "(active)") {
		t.Fatalf("import on a new device: %q", out)
	}
	if got := strings.TrimSpace(mustRun(t, "-a", "alice@example.org", "ox", "fingerprint")); got != fpr {
		t.Fatalf("fingerprint after import %s, want %s", got, fpr)
	}
	out = mustRun(t, "-a", "alice@example.org", "ox", "keys")
	if !strings.Contains(out, displayFingerprintForTest(fpr)) || !strings.Contains(out, "active") {
		t.Fatalf("ox keys: %q", out)
	}
}

func displayFingerprintForTest(f string) string {
	var parts []string
	for i := 0; i < len(f); i += 4 {
		parts = append(parts, f[i:i+4])
	}
	return strings.Join(parts, " ")
}

// A key protected by a passphrase, as GnuPG exports it, is unlocked on
// import with the passphrase from a file.
func TestOXImportProtectedKey(t *testing.T) {
	dir := oxTestEnv(t, "carol@example.org")
	k, err := ox.GenerateKey(mustJID(t, "carol@example.org"), ox.EdDSA25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	e, err := openpgp.ReadEntity(packetReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.EncryptPrivateKeys([]byte("key pass"), nil); err != nil {
		t.Fatal(err)
	}
	var locked bytes.Buffer
	if err := e.SerializePrivateWithoutSigning(&locked, nil); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "carol.key")
	passFile := filepath.Join(dir, "pass.txt")
	os.WriteFile(keyFile, locked.Bytes(), 0o600)
	os.WriteFile(passFile, []byte("wrong\n"), 0o600)
	if _, e, code := runCmd(t, "-a", "carol@example.org", "ox", "import", "--key-passphrase-file", passFile, keyFile); code == 0 || !strings.Contains(e, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %d %q", code, e)
	}
	if _, e, code := runCmd(t, "-a", "carol@example.org", "ox", "import", keyFile); code == 0 || !strings.Contains(e, "passphrase") {
		t.Fatalf("no passphrase: %d %q", code, e)
	}
	os.WriteFile(passFile, []byte("key pass\n"), 0o600)
	out := mustRun(t, "-a", "carol@example.org", "ox", "import", "--key-passphrase-file", passFile, keyFile)
	if !strings.Contains(out, "imported OpenPGP key") {
		t.Fatalf("import: %q", out)
	}
	if got := strings.TrimSpace(mustRun(t, "-a", "carol@example.org", "ox", "fingerprint")); got != k.Fingerprint() {
		t.Fatalf("fingerprint %s, want %s", got, k.Fingerprint())
	}
}

func TestOXForce(t *testing.T) {
	oxTestEnv(t, "alice@example.org")
	if out := mustRun(t, "ox", "force", "Bob@Example.org/phone", "on"); !strings.Contains(out, "bob@example.org: OX required") {
		t.Fatalf("force on: %q", out)
	}
	if out := mustRun(t, "policy", "bob@example.org"); !strings.Contains(out, "require:ox") {
		t.Fatalf("policy after force on: %q", out)
	}
	if out := mustRun(t, "ox", "force", "bob@example.org", "off"); !strings.Contains(out, "no longer required") {
		t.Fatalf("force off: %q", out)
	}
	if out := mustRun(t, "policy", "bob@example.org"); !strings.Contains(out, "default") {
		t.Fatalf("policy after force off: %q", out)
	}
	// Off leaves another policy alone.
	mustRun(t, "policy", "bob@example.org", "require")
	if out := mustRun(t, "ox", "force", "bob@example.org", "off"); !strings.Contains(out, "was not forced") {
		t.Fatalf("force off with another policy: %q", out)
	}
	if out := mustRun(t, "policy", "bob@example.org"); !strings.Contains(out, "bob@example.org require") {
		t.Fatalf("policy: %q", out)
	}
}

func TestOXUsage(t *testing.T) {
	oxTestEnv(t, "alice@example.org")
	for _, args := range [][]string{
		{"ox"},
		{"ox", "frobnicate"},
		{"ox", "force", "bob@example.org", "maybe"},
		{"ox", "force", "bob@example.org"},
		{"ox", "discover"},
		{"ox", "restore", "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"}, // never a code on the command line
		{"history"},
	} {
		if _, e, code := runCmd(t, args...); code != exitUsage || !strings.Contains(e, "balcony: error: ") {
			t.Errorf("balcony %s: exit %d, %q", strings.Join(args, " "), code, e)
		}
	}
	if out := mustRun(t, "help", "ox"); !strings.Contains(out, "Usage: balcony ox keygen") || !strings.Contains(out, "XEP-0373") {
		t.Fatalf("help ox: %q", out)
	}
	if out := mustRun(t, "help", "history"); !strings.Contains(out, "Usage: balcony history") {
		t.Fatalf("help history: %q", out)
	}
	// Without a key there is nothing to export, with a hint.
	if _, e, code := runCmd(t, "ox", "export", "--armor"); code != exitError || !strings.Contains(e, "hint: make one with: balcony ox keygen") {
		t.Fatalf("export without a key: %d %q", code, e)
	}
}

func TestOXKeygenRSA(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA key generation is slow")
	}
	oxTestEnv(t, "alice@example.org")
	if out := mustRun(t, "ox", "keygen", "--rsa", "--no-publish"); !strings.Contains(out, "(RSA-3072)") {
		t.Fatalf("keygen --rsa: %q", out)
	}
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func packetReader(b []byte) *packet.Reader { return packet.NewReader(bytes.NewReader(b)) }

func TestOXHints(t *testing.T) {
	for _, tc := range []struct {
		err  error
		hint string
	}{
		{fmt.Errorf("publish: %w", &client.StanzaError{Condition: "policy-violation"}), "probably as too large"},
		{fmt.Errorf("x: %w", oxclient.ErrNoOwnKey), "balcony ox keygen"},
		{fmt.Errorf("x: %w", ox.ErrDecrypt), "six groups of four characters"},
	} {
		var he *hintError
		if err := oxHint(tc.err); !errors.As(err, &he) || !strings.Contains(he.hint, tc.hint) {
			t.Errorf("%v: hint %v", tc.err, err)
		}
	}
	other := errors.New("something else")
	if oxHint(other) != other {
		t.Error("an unrelated error got a hint")
	}
}
