package ox

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// Interoperability with GnuPG 2.2, the OpenPGP implementation behind
// Profanity and the old Gajim plugin. The tests run gpg in a throw-away
// home directory and stop its agent afterwards. Without gpg they skip,
// unless BALCONY_REQUIRE_INTEROP=1 makes that a failure.

type gpgHome struct {
	t   testing.TB
	dir string
}

func newGPG(t testing.TB) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("BALCONY_REQUIRE_INTEROP") == "1" {
			t.Fatalf("gpg not found and BALCONY_REQUIRE_INTEROP=1: %v", err)
		}
		t.Skip("gpg not found (install GnuPG, or set BALCONY_REQUIRE_INTEROP=1 to fail instead of skipping)")
	}
	dir, err := os.MkdirTemp("", "oxgpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		// Stop the agent this home started, then remove it.
		exec.Command("gpgconf", "--homedir", dir, "--kill", "all").Run()
		os.RemoveAll(dir)
	})
	return g
}

// run runs gpg with stdin and returns its output and status lines.
func (g *gpgHome) run(stdin []byte, args ...string) (stdout []byte, status []string) {
	g.t.Helper()
	out, status, err := g.try(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, strings.Join(status, "\n"))
	}
	return out, status
}

func (g *gpgHome) try(stdin []byte, args ...string) ([]byte, []string, error) {
	base := []string{"--homedir", g.dir, "--batch", "--no-tty", "--quiet", "--pinentry-mode", "loopback",
		"--trust-model", "always", "--status-fd", "2", "--no-auto-key-locate"}
	if !containsArg(args, "--passphrase") {
		base = append(base, "--passphrase", "")
	}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var status []string
	sc := bufio.NewScanner(&errb)
	for sc.Scan() {
		status = append(status, sc.Text())
	}
	return out.Bytes(), status, err
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func hasStatus(status []string, prefix string) bool {
	for _, s := range status {
		if strings.HasPrefix(s, "[GNUPG:] "+prefix) {
			return true
		}
	}
	return false
}

// generate makes a key in gpg and returns its fingerprint.
func (g *gpgHome) generate(uid, algo string) string {
	g.t.Helper()
	g.run(nil, "--quick-generate-key", uid, algo, "default", "never")
	out, _ := g.run(nil, "--with-colons", "--list-keys", uid)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s", uid)
	return ""
}

func (g *gpgHome) importKey(k *Key, secret bool) {
	g.t.Helper()
	var b []byte
	var err error
	if secret {
		b, err = k.MarshalSecret()
	} else {
		b, err = k.MarshalPublic(true)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	g.run(b, "--import")
}

func TestGPGDecryptsOurMessage(t *testing.T) {
	g := newGPG(t)
	k := keys(t)
	g.importKey(k.bob, true)
	g.importKey(k.alice, false)
	c := imContent(bobJID)
	c.Time = time.Now().Truncate(time.Second)
	msg, err := Seal(c, k.alice, []*Key{k.bob, k.alice}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, status := g.run(msg, "--decrypt")
	for _, want := range []string{"DECRYPTION_OKAY", "GOODSIG " + keyIDHex(k.alice) + " xmpp:alice@example.org", "VALIDSIG " + k.alice.Fingerprint()} {
		if !hasStatus(status, want) {
			t.Errorf("no %q in\n%s", want, strings.Join(status, "\n"))
		}
	}
	// Both recipients are listed.
	if n := strings.Count(strings.Join(status, "\n"), "ENC_TO "); n != 2 {
		t.Errorf("%d ENC_TO lines", n)
	}
	got, err := ParseContent(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Kind != Signcrypt || !got.Time.Equal(c.Time) || payloadXML(t, got.Payload) != `<body xmlns="jabber:client">Wherefore art thou?</body>` {
		t.Errorf("gpg decrypted %s", out)
	}
}

func keyIDHex(k *Key) string {
	return fmt.Sprintf("%016X", k.entity.PrimaryKey.KeyId)
}

func TestWeOpenGPGMessages(t *testing.T) {
	g := newGPG(t)
	k := keys(t)
	g.importKey(k.bob, false)
	romeoJID := jid.MustParse("romeo@example.net")
	romeoFpr := g.generate("xmpp:romeo@example.net", "future-default")
	pub, _ := g.run(nil, "--export", "--export-options", "export-minimal", romeoFpr)
	romeo, err := ParseKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	if romeo[0].Fingerprint() != romeoFpr || romeo[0].Algorithm() != "EdDSA/Cv25519" {
		t.Fatalf("gpg key %s %s", romeo[0].Fingerprint(), romeo[0].Algorithm())
	}
	now := time.Now()
	if err := romeo[0].ValidFor(romeoJID, now); err != nil {
		t.Fatal(err)
	}

	o, err := NewOpener([]*Key{k.bob}, nil)
	if err != nil {
		t.Fatal(err)
	}
	params := OpenParams{From: romeoJID, To: bobJID, SenderKeys: romeo, Require: 0}
	content := func(kind Kind) []byte {
		c := Content{Kind: kind, To: []jid.JID{bobJID}, Time: now, Rpad: "abc", Payload: []*xmltree.Element{body("from gpg")}}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		kind     Kind
		args     []string
		verified bool
	}{
		{"signcrypt", Signcrypt, []string{"--sign", "--encrypt", "-r", k.bob.Fingerprint(), "-u", romeoFpr}, true},
		{"signcrypt text mode", Signcrypt, []string{"--textmode", "--sign", "--encrypt", "-r", k.bob.Fingerprint(), "-u", romeoFpr}, true},
		{"signcrypt compressed", Signcrypt, []string{"--compress-algo", "zlib", "--sign", "--encrypt", "-r", k.bob.Fingerprint(), "-u", romeoFpr}, true},
		{"sign", Sign, []string{"--sign", "-u", romeoFpr}, true},
		{"crypt", Crypt, []string{"--encrypt", "-r", k.bob.Fingerprint()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, _ := g.run(content(tc.kind), tc.args...)
			op, err := o.Open(msg, params)
			if err != nil {
				t.Fatal(err)
			}
			if op.Verified != tc.verified || len(op.Problems) != 0 || op.Content.Kind != tc.kind {
				t.Fatalf("%+v", op)
			}
			if tc.verified && op.Signer.Fingerprint() != romeoFpr {
				t.Errorf("signer %s", op.Signer)
			}
			children := EffectiveChildren(op.Content.Payload, nil)
			if len(children) != 1 || !strings.Contains(childXML(t, children[0].Element), "from gpg") {
				t.Errorf("%+v", children)
			}
		})
	}

	// A key whose primary key only certifies, with separate signing and
	// encryption subkeys: the signature is made by the subkey.
	mercutioFpr := g.generate("xmpp:mercutio@example.net", "ed25519")
	g.run(nil, "--quick-set-expire", mercutioFpr, "never")
	g.run(nil, "--quick-add-key", mercutioFpr, "ed25519", "sign", "never")
	pub, _ = g.run(nil, "--export", mercutioFpr)
	mercutio, err := ParseKeys(pub)
	if err != nil || len(mercutio[0].KeyIDs()) != 2 {
		t.Fatalf("%v %v", err, mercutio)
	}
	msg, _ := g.run(content(Signcrypt), "--sign", "--encrypt", "-r", k.bob.Fingerprint(), "-u", mercutioFpr)
	op, err := o.Open(msg, OpenParams{From: jid.MustParse("mercutio@example.net"), To: bobJID, SenderKeys: mercutio, Require: Signcrypt})
	if err != nil || !op.Verified || op.SignerKeyID == mercutio[0].entity.PrimaryKey.KeyId {
		t.Fatalf("signing subkey: %v %+v", err, op)
	}

	// An RSA key made by gpg.
	julietFpr := g.generate("xmpp:juliet@example.org", "rsa3072")
	g.run(nil, "--quick-add-key", julietFpr, "rsa3072", "encr", "never")
	pub, _ = g.run(nil, "--export", julietFpr)
	juliet, err := ParseKeys(pub)
	if err != nil || juliet[0].Algorithm() != "RSA-3072" {
		t.Fatalf("%v %v", err, juliet)
	}
	msg, _ = g.run(content(Signcrypt), "--sign", "--encrypt", "-r", k.bob.Fingerprint(), "-u", julietFpr)
	op, err = o.Open(msg, OpenParams{From: jid.MustParse("juliet@example.org/balcony"), To: bobJID, SenderKeys: juliet, Require: Signcrypt})
	if err != nil || !op.Verified {
		t.Fatalf("RSA: %v %+v", err, op)
	}
	// And we encrypt to it; gpg decrypts.
	g.importKey(k.alice, false)
	c := imContent(jid.MustParse("juliet@example.org"))
	msg, err = Seal(c, k.alice, []*Key{juliet[0], k.alice}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, status := g.run(msg, "--decrypt"); !hasStatus(status, "DECRYPTION_OKAY") || !hasStatus(status, "GOODSIG") {
		t.Errorf("gpg on a message to an RSA key:\n%s", strings.Join(status, "\n"))
	}
}

func TestGPGImportsOurBackup(t *testing.T) {
	g := newGPG(t)
	k := keys(t)
	code, err := NewBackupCode(nil)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := SealBackup([]*Key{k.alice, k.bob}, code, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, status := g.run(backup, "--passphrase", code, "--decrypt")
	if !hasStatus(status, "DECRYPTION_OKAY") {
		t.Fatalf("%s", strings.Join(status, "\n"))
	}
	_, status = g.run(plain, "--import")
	if !hasStatus(status, "IMPORT_OK") {
		t.Fatalf("%s", strings.Join(status, "\n"))
	}
	out, _ := g.run(nil, "--with-colons", "--list-secret-keys")
	for _, key := range []*Key{k.alice, k.bob} {
		if !strings.Contains(string(out), "fpr:::::::::"+key.Fingerprint()+":") {
			t.Errorf("secret key %s not imported:\n%s", key, out)
		}
	}
	// The imported secret key works in gpg: it decrypts a message to Bob.
	msg := sealFor(t, imContent(bobJID), k.alice, k.bob)
	if _, status := g.run(msg, "--decrypt"); !hasStatus(status, "DECRYPTION_OKAY") {
		t.Errorf("imported key does not decrypt:\n%s", strings.Join(status, "\n"))
	}
	// A wrong code fails in gpg too.
	if _, _, err := g.try(backup, "--passphrase", "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA", "--decrypt"); err == nil {
		t.Error("gpg accepted a wrong code")
	}
}

func TestWeOpenGPGBackup(t *testing.T) {
	g := newGPG(t)
	fpr := g.generate("xmpp:romeo@example.net", "future-default")
	secret, _ := g.run(nil, "--export-secret-keys", fpr)
	code := "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"
	backup, _ := g.run(secret, "--symmetric", "--cipher-algo", "AES256", "--passphrase", code)
	keys, err := OpenBackup(backup, code)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Fingerprint() != fpr || !keys[0].Secret() || keys[0].Locked() {
		t.Fatalf("%v locked=%v", keys, keys[0].Locked())
	}
	if err := keys[0].ValidFor(jid.MustParse("romeo@example.net"), time.Now()); err != nil {
		t.Error(err)
	}
}

// The fixture below was made once with GnuPG 2.2.40 (see
// TestRegenerateGPGFixture) so that interoperability with a real peer is
// tested even where gpg is not installed: Bob's key is Balcony's, Romeo's key
// and the signed and encrypted message are GnuPG's, time.txt is when it was
// made.

func TestGPGFixture(t *testing.T) {
	bobKeys, err := ParseKeys(readTestdata(t, "gpg/bob-secret.asc"))
	if err != nil {
		t.Fatal(err)
	}
	romeo, err := ParseKeys(readTestdata(t, "gpg/romeo-public.asc"))
	if err != nil {
		t.Fatal(err)
	}
	when, err := ParseTime(strings.TrimSpace(string(readTestdata(t, "gpg/time.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	msg := readTestdata(t, "gpg/romeo-to-bob.pgp")
	o, err := NewOpener(bobKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	op, err := o.Open(msg, OpenParams{
		From: jid.MustParse("romeo@example.net/orchard"), To: jid.MustParse("bob@example.net"),
		SenderKeys: romeo, Require: Signcrypt, Time: when,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !op.Verified || len(op.Problems) != 0 || op.Signer.Fingerprint() != romeo[0].Fingerprint() {
		t.Fatalf("%+v", op)
	}
	if p := payloadXML(t, op.Content.Payload); !strings.Contains(p, "made by GnuPG") {
		t.Errorf("payload %s", p)
	}
	// The same message, opened as if forwarded to someone else, fails the
	// recipient check.
	op, _ = o.Open(msg, OpenParams{From: jid.MustParse("romeo@example.net"), To: jid.MustParse("carol@example.com"), SenderKeys: romeo, Time: when})
	if op.Verified || !problemsIs(op, ErrRecipient) {
		t.Errorf("%+v", op)
	}
}

// TestRegenerateGPGFixture rewrites testdata/gpg when
// BALCONY_OX_REGENERATE_GPG=1 is set.
func TestRegenerateGPGFixture(t *testing.T) {
	if os.Getenv("BALCONY_OX_REGENERATE_GPG") != "1" {
		t.Skip("set BALCONY_OX_REGENERATE_GPG=1 to regenerate the GnuPG fixture")
	}
	g := newGPG(t)
	now := time.Now().Truncate(time.Second)
	bob, err := GenerateKey(bobJID, EdDSA25519, &Config{Now: func() time.Time { return now.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	g.importKey(bob, false)
	romeoFpr := g.generate("xmpp:romeo@example.net", "future-default")
	romeoPub, _ := g.run(nil, "--armor", "--export", "--export-options", "export-minimal", romeoFpr)
	c := Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Time: now, Rpad: "gpg-fixture",
		Payload: []*xmltree.Element{body("Signed and encrypted, made by GnuPG.")}}
	plain, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := g.run(plain, "--sign", "--encrypt", "-r", bob.Fingerprint(), "-u", romeoFpr)
	romeoSecret, _ := g.run(nil, "--export-secret-keys", romeoFpr)
	backup, _ := g.run(romeoSecret, "--symmetric", "--cipher-algo", "AES256", "--passphrase", backupFixtureCode)
	sec, _ := bob.MarshalSecret()
	bobArmored, _ := Armor(sec)
	dir := filepath.Join("testdata", "gpg")
	os.MkdirAll(dir, 0o755)
	for name, data := range map[string][]byte{
		"bob-secret.asc":   bobArmored,
		"romeo-public.asc": romeoPub,
		"romeo-to-bob.pgp": msg,
		"backup.pgp":       backup,
		"time.txt":         []byte(FormatTime(now) + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %s (message %s)", dir, hex.EncodeToString(msg[:8]))
}
