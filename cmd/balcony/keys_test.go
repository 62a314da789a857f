package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/store"
)

// runCmd runs the command in-process and returns stdout, stderr and the
// exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestKeysAndTrust(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("BALCONY_CONFIG_DIR", filepath.Join(dir, "config"))
	t.Setenv("BALCONY_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("BALCONY_PASSPHRASE", "pass")
	t.Setenv("BALCONY_STORE_KDF", "time=1,memory=1024,threads=1")
	if _, e, code := runCmd(t, "account", "add", "alice@example.org", "--server", "127.0.0.1:1", "--offline"); code != 0 {
		t.Fatalf("account add: %s", e)
	}
	// No keys yet: the store was created by account add.
	out, e, code := runCmd(t, "keys")
	if code != 0 || !strings.Contains(out, "Own keys (alice@example.org)") {
		t.Fatalf("keys: %d %q %q", code, out, e)
	}

	kdf := store.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}
	st, err := store.Open(filepath.Join(dir, "data", "alice@example.org"), store.Options{Passphrase: []byte("pass"), KDF: &kdf})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const fp1 = "1357B01865B2503C18453D208CAC2A9678548E35"
	const fp2 = "67819B343B2AB70DED9320872C6464AF2A8E4C02"
	const otrFP = "AEA4D503298797D4A4FC823BC1D24524B4C54338"
	if _, err := st.RecordSeenKey(ctx, "bob@example.org", store.OX, fp1, nil); err != nil {
		t.Fatal(err)
	}
	seen, err := st.RecordSeenKey(ctx, "bob@example.org", store.OX, fp2, nil)
	if err != nil || seen.Change == nil {
		t.Fatalf("second key: %+v %v", seen, err)
	}
	if _, err := st.RecordSeenKey(ctx, "carol@example.org", store.OTR, otrFP, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.AddOwnKey(ctx, store.OwnKey{Mechanism: store.OTR, Fingerprint: otrFP, Public: []byte{1}, Active: true}, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, e, code = runCmd(t, "keys")
	if code != 0 {
		t.Fatalf("keys: %s", e)
	}
	for _, want := range []string{
		"!! bob@example.org has a new OX key 6781 9B34",
		"balcony trust --mechanism ox bob@example.org " + fp2,
		"OX  1357 B018 65B2 503C 1845 3D20 8CAC 2A96 7854 8E35  blind",
		"undecided",
		"xmpp:alice@example.org?otr-fingerprint=" + otrFP,
		"AEA4D503 29879 7D4A"[:8],
	} {
		if !strings.Contains(out, want) {
			t.Errorf("keys output lacks %q:\n%s", want, out)
		}
	}
	// An ambiguous prefix is refused; a unique one decides and acknowledges.
	if _, e, code := runCmd(t, "trust", "bob@example.org", "", "verified"); code == 0 || !strings.Contains(e, "no key") {
		t.Errorf("empty prefix: %d %s", code, e)
	}
	if _, e, code := runCmd(t, "trust", "bob@example.org", "6781 9b34", "maybe"); code != 2 || !strings.Contains(e, "unknown trust state") {
		t.Errorf("bad state: %d %s", code, e)
	}
	out, e, code = runCmd(t, "trust", "bob@example.org", "6781 9b34", "verified")
	if code != 0 || !strings.Contains(out, "is now verified") {
		t.Fatalf("trust: %d %q %q", code, out, e)
	}
	out, _, _ = runCmd(t, "keys", "--mechanism", "ox", "bob@example.org")
	if strings.Contains(out, "!!") || !strings.Contains(out, "verified") {
		t.Errorf("after trust:\n%s", out)
	}
	out, _, _ = runCmd(t, "keys", "--history", "bob@example.org")
	if !strings.Contains(out, "changed") || !strings.Contains(out, "trust") {
		t.Errorf("history:\n%s", out)
	}
}

func TestControlPathLength(t *testing.T) {
	short := t.TempDir()
	t.Setenv("BALCONY_DATA_DIR", short)
	a := &accountConfig{JID: "alice@example.org"}
	p, err := controlPath(a)
	if err != nil || p != filepath.Join(short, "alice@example.org", "control.sock") {
		t.Fatalf("short: %s %v", p, err)
	}
	long := filepath.Join(short, strings.Repeat("d", 120))
	t.Setenv("BALCONY_DATA_DIR", long)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	if _, err := controlPath(a); !errors.Is(err, errNoListener) {
		t.Fatalf("long, no listener: %v", err)
	}
	p2, cleanup, err := listenPath(a)
	if err != nil || len(p2) >= maxSocketPath || !strings.HasSuffix(p2, ".sock") {
		t.Fatalf("long: %s %v", p2, err)
	}
	defer cleanup()
	if got, err := controlPath(a); err != nil || got != p2 {
		t.Fatalf("dialled %q (%v), listener at %q", got, err, p2)
	}
	p3, cleanup3, err := listenPath(&accountConfig{JID: "bob@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup3()
	if p3 == p2 {
		t.Fatal("two accounts share a socket")
	}
}
