package otr

import (
	"bufio"
	"bytes"
	"crypto/dsa" //lint:ignore SA1019 crypto/dsa is the reference the tests compare against
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	testKeysOnce sync.Once
	testKeys     []AccountKey
	testKeysErr  error
)

// loadTestKeys returns the keys of testdata/privkeys-libotr.txt, written by
// libotr 4.1.1's otrl_privkey_generate.
func loadTestKeys(t testing.TB) []AccountKey {
	t.Helper()
	testKeysOnce.Do(func() {
		var data []byte
		data, testKeysErr = os.ReadFile("testdata/privkeys-libotr.txt")
		if testKeysErr == nil {
			testKeys, testKeysErr = ParseLibotrPrivateKeys(data)
		}
	})
	if testKeysErr != nil || len(testKeys) < 5 {
		t.Fatalf("test keys: %v", testKeysErr)
	}
	return testKeys
}

func accountKey(t testing.TB, account string) *PrivateKey {
	for _, k := range loadTestKeys(t) {
		if k.Account == account {
			return k.Key
		}
	}
	t.Fatalf("no test key for %q", account)
	return nil
}

func aliceKey(t testing.TB) *PrivateKey { return accountKey(t, "alice@example.org") }
func bobKey(t testing.TB) *PrivateKey   { return accountKey(t, "bob@example.net/laptop") }

func TestLibotrKeyFile(t *testing.T) {
	data, err := os.ReadFile("testdata/privkeys-libotr.txt")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseLibotrPrivateKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	// fingerprints as libotr's otrl_privkey_fingerprint printed them:
	// "account protocol FP1 FP2 FP3 FP4 FP5"; account names contain spaces
	fps, err := os.ReadFile("testdata/privkeys-libotr.fingerprints")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(fps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		n := len(f)
		fp := strings.Join(f[n-5:], " ")
		want[fp] = f[n-6]
	}
	if len(want) != len(keys) {
		t.Fatalf("%d fingerprints, %d keys", len(want), len(keys))
	}
	for _, k := range keys {
		fp := k.Key.Public().Fingerprint().String()
		if proto, ok := want[fp]; !ok || proto != k.Protocol {
			t.Errorf("account %q: fingerprint %s (protocol %q) not among libotr's", k.Account, fp, k.Protocol)
		}
	}
	names := map[string]bool{}
	for _, k := range keys {
		names[k.Account] = true
	}
	for _, n := range []string{"alice@example.org", "bob@example.net/laptop", "jörg \"j\" \\x@例え.jp", "a\\b", "a b", "a\tb", "a-b.c/d_e:f*g+h=i", "a'b", "123abc"} {
		if !names[n] {
			t.Errorf("account %q missing", n)
		}
	}
	out, err := MarshalLibotrPrivateKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Errorf("export differs from the file libotr wrote:\n%s", out)
	}
}

func TestLibotrKeyFileErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/privkeys-libotr.txt")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"empty":        "",
		"unclosed":     string(data[:len(data)-3]),
		"trailing":     string(data) + "x",
		"not privkeys": "(pubkeys)",
		"bad hex":      strings.Replace(string(data), "(q #00", "(q #0G", 1),
		"wrong x":      strings.Replace(string(data), "(x #00", "(x #01", 1),
		"no dsa":       "(privkeys (account (name a) (protocol b) (private-key (rsa (n #01#)))))",
		"deep":         strings.Repeat("(", 100),
	} {
		if _, err := ParseLibotrPrivateKeys([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// the other atom forms of libgcrypt's S-expressions parse too
	k := loadTestKeys(t)[0].Key
	canon := "(privkeys (account (name 5:a\"b c) (protocol |cHJwbA==|) (private-key (dsa (p #" + gcryHex(k.p) +
		"#) (q #" + gcryHex(k.q) + "#)(g #" + gcryHex(k.g) + "#)(y #" + gcryHex(k.y) + "#)(x #" + gcryHex(k.x) + "#)))))"
	got, err := ParseLibotrPrivateKeys([]byte(canon))
	if err != nil || len(got) != 1 || got[0].Account != "a\"b c" || got[0].Protocol != "prpl" || !got[0].Key.Public().Equal(k.Public()) {
		t.Fatalf("canonical forms: %v %+v", err, got)
	}
	got, err = ParseLibotrPrivateKeys([]byte(strings.Replace(canon, "5:a\"b c", `"\x41\101\"\\\n"`, 1)))
	if err != nil || got[0].Account != "AA\"\\\n" {
		t.Fatalf("escapes: %v %+v", err, got)
	}
}

func FuzzLibotrKeyFile(f *testing.F) {
	data, err := os.ReadFile("testdata/privkeys-libotr.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data[:bytes.Index(data, []byte(" (account\n(name \"bob"))])
	f.Add([]byte(`(privkeys (account (name "a\x41") (protocol 3:abc) (private-key (dsa (p |AQ==|)))))`))
	f.Fuzz(func(t *testing.T, in []byte) {
		keys, err := ParseLibotrPrivateKeys(in)
		if err != nil {
			return
		}
		out, err := MarshalLibotrPrivateKeys(keys)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseLibotrPrivateKeys(out)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("re-parse: %v", err)
		}
		for i := range keys {
			if again[i].Account != keys[i].Account || again[i].Protocol != keys[i].Protocol || !again[i].Key.Public().Equal(keys[i].Key.Public()) {
				t.Fatalf("entry %d differs", i)
			}
		}
	})
}

func TestFingerprintFormat(t *testing.T) {
	var f Fingerprint
	for i := range f {
		f[i] = byte(i * 13)
	}
	if s := f.String(); s != "000D1A27 34414E5B 6875828F 9CA9B6C3 D0DDEAF7" {
		t.Errorf("String = %q", s)
	}
	if h := f.Hex(); h != "000d1a2734414e5b6875828f9ca9b6c3d0ddeaf7" {
		t.Errorf("Hex = %q", h)
	}
	for _, s := range []string{f.String(), f.Hex(), strings.ToUpper(f.Hex())} {
		g, err := ParseFingerprint(s)
		if err != nil || g != f {
			t.Errorf("ParseFingerprint(%q) = %x, %v", s, g, err)
		}
	}
	if _, err := ParseFingerprint("00"); err == nil {
		t.Error("short fingerprint accepted")
	}
}

func TestKeyMarshalBinary(t *testing.T) {
	k := aliceKey(t)
	b, _ := k.MarshalBinary()
	var k2 PrivateKey
	if err := k2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) || k2.x.Cmp(k.x) != 0 || k2.Fingerprint() != k.Fingerprint() {
		t.Fatal("private key round trip differs")
	}
	pb, _ := k.Public().MarshalBinary()
	var p PublicKey
	if err := p.UnmarshalBinary(pb); err != nil || !p.Equal(k.Public()) {
		t.Fatal("public key round trip differs")
	}
	if !bytes.Equal(pb[:2], []byte{0, 0}) {
		t.Fatal("type bytes")
	}
	if err := p.UnmarshalBinary(pb[:len(pb)-1]); err == nil {
		t.Fatal("truncated key accepted")
	}
	bad := append([]byte{}, b...)
	bad[len(bad)-1] ^= 1
	if err := k2.UnmarshalBinary(bad); err == nil {
		t.Fatal("mismatched x accepted")
	}
}

func TestSignVerify(t *testing.T) {
	k := aliceKey(t)
	m := sha256.Sum256([]byte("message"))
	sig, err := k.sign(rand.Reader, m[:])
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().verify(m[:], sig[:]) {
		t.Fatal("own signature rejected")
	}
	// crypto/dsa agrees (it uses the whole 32-byte value mod q, as OTR requires)
	dk := dsa.PublicKey{Parameters: dsa.Parameters{P: k.p, Q: k.q, G: k.g}, Y: k.y}
	r, s := new(big.Int).SetBytes(sig[:20]), new(big.Int).SetBytes(sig[20:])
	if !dsa.Verify(&dk, m[:], r, s) {
		t.Fatal("crypto/dsa rejects our signature")
	}
	dpriv := dsa.PrivateKey{PublicKey: dk, X: k.x}
	r, s, err = dsa.Sign(rand.Reader, &dpriv, m[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig2 [40]byte
	r.FillBytes(sig2[:20])
	s.FillBytes(sig2[20:])
	if !k.Public().verify(m[:], sig2[:]) {
		t.Fatal("crypto/dsa signature rejected")
	}
	for i := 0; i < len(sig); i += 7 {
		bad := sig
		bad[i] ^= 0x40
		if k.Public().verify(m[:], bad[:]) {
			t.Fatalf("tampered signature (byte %d) accepted", i)
		}
	}
	m[0] ^= 1
	if k.Public().verify(m[:], sig[:]) {
		t.Fatal("signature over another message accepted")
	}
	var zero [40]byte
	if k.Public().verify(m[:], zero[:]) {
		t.Fatal("zero signature accepted")
	}
}

func TestGenerateKey(t *testing.T) {
	if testing.Short() {
		t.Skip("key generation takes about a second")
	}
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.p.BitLen() != 1024 || k.q.BitLen() != 160 || !k.p.ProbablyPrime(10) || !k.q.ProbablyPrime(10) {
		t.Fatalf("bad parameters: %d/%d bits", k.p.BitLen(), k.q.BitLen())
	}
	if new(big.Int).Exp(k.g, k.q, k.p).Cmp(big.NewInt(1)) != 0 || k.g.Cmp(big.NewInt(1)) == 0 {
		t.Fatal("g does not have order q")
	}
	m := sha256.Sum256(nil)
	sig, err := k.sign(rand.Reader, m[:])
	if err != nil || !k.Public().verify(m[:], sig[:]) {
		t.Fatal("generated key cannot sign")
	}
}
