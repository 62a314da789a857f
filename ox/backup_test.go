package ox

import (
	"bytes"
	"errors"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

func TestBackupCode(t *testing.T) {
	if len(BackupAlphabet) != 34 || strings.ContainsAny(BackupAlphabet, "0O") {
		t.Fatal("alphabet")
	}
	r := mrand.NewChaCha8([32]byte{3})
	counts := map[rune]int{}
	seen := map[string]bool{}
	const n = 400
	for range n {
		code, err := NewBackupCode(r)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidBackupCode(code) || len(code) != 29 || strings.Count(code, "-") != 5 {
			t.Fatalf("invalid code %q", code)
		}
		seen[code] = true
		for _, c := range strings.ReplaceAll(code, "-", "") {
			counts[c]++
		}
	}
	if len(seen) != n {
		t.Error("repeated codes")
	}
	// Every symbol appears, none far from the expected 24*n/34 ≈ 282.
	if len(counts) != 34 {
		t.Errorf("%d symbols used", len(counts))
	}
	for c, k := range counts {
		if k < 200 || k > 370 {
			t.Errorf("symbol %c appears %d times", c, k)
		}
	}
	if code, err := NewBackupCode(nil); err != nil || !ValidBackupCode(code) {
		t.Errorf("crypto/rand: %q %v", code, err)
	}
	if _, err := NewBackupCode(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("short random source")
	}
	// A source that only yields rejected bytes must not yield a code.
	if _, err := NewBackupCode(io.LimitReader(constReader(0xff), 1000)); err == nil {
		t.Error("biased source accepted")
	}
}

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestValidBackupCode(t *testing.T) {
	for code, ok := range map[string]bool{
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW":  true, // the XEP example
		"twnk-kd5y-mt3t-e1gs-drdb-kvtw":  false,
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVT0":  false,
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTO":  false,
		"TWNKKD5YMT3TE1GSDRDBKVTW":       false,
		"TWNK KD5Y MT3T E1GS DRDB KVTW":  false,
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW-": false,
		"TWNK-KD5Y-MT3T-E1GS-DRDBK-VTW":  false,
		"":                               false,
	} {
		if ValidBackupCode(code) != ok {
			t.Errorf("%q: %v", code, !ok)
		}
	}
	for in, want := range map[string]string{
		"twnk-kd5y-mt3t-e1gs-drdb-kvtw":      "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW",
		"TWNKKD5YMT3TE1GSDRDBKVTW":           "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW",
		" twnk kd5y mt3t e1gs drdb kvtw\n":   "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVT0":      "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB":           "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTWX":     "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTÜ":      "",
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVT\u0130": "",
	} {
		got, err := NormalizeBackupCode(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("%q: %q %v", in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBackupCode) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestBackupRoundTrip(t *testing.T) {
	k := keys(t)
	code := "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"
	// Two keys, as a backup that another device appended to.
	backup, err := SealBackup([]*Key{k.alice, k.alice2, k.alice}, code, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	restored, err := OpenBackup(backup, code)
	if err != nil {
		t.Fatal(err)
	}
	if len(restored) != 2 || restored[0].Fingerprint() != k.alice.Fingerprint() || restored[1].Fingerprint() != k.alice2.Fingerprint() {
		t.Fatalf("restored %v", restored)
	}
	for _, r := range restored {
		if !r.Secret() || r.Locked() {
			t.Errorf("%s: not an unlocked secret key", r)
		}
	}
	// The restored key works.
	msg := sealFor(t, imContent(bobJID), restored[1], k.bob, restored[0])
	if op, err := opener(t, restored[0]).Open(msg, OpenParams{From: aliceJID, To: bobJID, SenderKeys: []*Key{k.alice2}, Time: t0}); err != nil || !op.Verified {
		t.Fatalf("restored key: %v %+v", err, op)
	}

	// The wire format XEP-0373 §5.4 asks for: SKESK (AES-256, iterated and
	// salted S2K), SEIPD v1, binary literal data holding transferable secret
	// keys with S2K usage 0.
	packets := packet.NewReader(bytes.NewReader(backup))
	p, err := packets.Next()
	if err != nil {
		t.Fatal(err)
	}
	skesk, ok := p.(*packet.SymmetricKeyEncrypted)
	if !ok || skesk.Version != 4 || skesk.CipherFunc != packet.CipherAES256 {
		t.Fatalf("first packet %T %+v", p, p)
	}
	if p, err = packets.Next(); err != nil {
		t.Fatal(err)
	}
	if se, ok := p.(*packet.SymmetricallyEncrypted); !ok || !se.IntegrityProtected || se.Version != 1 {
		t.Fatalf("second packet %T %+v", p, p)
	}
	params, err := s2k.ParseIntoParams(bytes.NewReader(s2kBytes(t, backup)))
	if err != nil || params.Mode() != s2k.IteratedSaltedS2K {
		t.Errorf("S2K %v %v", params, err)
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(backup), nil, func([]openpgp.Key, bool) ([]byte, error) { return []byte(code), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	if md.LiteralData.Format != 'b' || md.IsSigned {
		t.Errorf("literal format %q, signed %v", md.LiteralData.Format, md.IsSigned)
	}
	assertUnprotected(t, plain, 4) // two primary keys and two subkeys
}

// s2kBytes returns the S2K specifier of the first (SKESK v4) packet.
func s2kBytes(t *testing.T, msg []byte) []byte {
	t.Helper()
	// new-format header, one-octet length: c3 len | 04 cipher | s2k...
	if msg[0] != 0xc3 {
		t.Fatalf("header % x", msg[:2])
	}
	return msg[4 : 2+int(msg[1])]
}

// assertUnprotected checks that the secret-key packets in a key block carry
// string-to-key usage 0 (RFC 4880 §5.5.3), as XEP-0373 §5.4 requires.
func assertUnprotected(t *testing.T, block []byte, want int) {
	t.Helper()
	n := 0
	for b := block; len(b) > 2; {
		if b[0]&0xc0 != 0xc0 || b[1] >= 192 {
			t.Fatalf("unexpected packet header % x", b[:2])
		}
		tag, body := b[0]&0x3f, b[2:2+int(b[1])]
		b = b[2+int(b[1]):]
		if tag != 5 && tag != 7 {
			continue
		}
		n++
		// version 4 | created (4) | algorithm | public key material | usage
		pubLen := publicMaterialLen(t, body[5], body[6:])
		if usage := body[6+pubLen]; usage != 0 {
			t.Errorf("secret key packet with S2K usage %d", usage)
		}
	}
	if n != want {
		t.Errorf("%d secret key packets, want %d", n, want)
	}
}

// publicMaterialLen returns the length of the public key fields for the
// algorithms Balcony generates: EdDSA (OID, MPI) and ECDH (OID, MPI, KDF).
func publicMaterialLen(t *testing.T, algo byte, b []byte) int {
	oid := 1 + int(b[0])
	mpiLen := 2 + (int(b[oid])<<8|int(b[oid+1])+7)/8
	switch algo {
	case 22:
		return oid + mpiLen
	case 18:
		return oid + mpiLen + 1 + int(b[oid+mpiLen])
	}
	t.Fatalf("algorithm %d", algo)
	return 0
}

func TestBackupErrors(t *testing.T) {
	k := keys(t)
	code := "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"
	if _, err := SealBackup([]*Key{k.alice}, "twnk-kd5y-mt3t-e1gs-drdb-kvtw", nil); !errors.Is(err, ErrBackupCode) {
		t.Errorf("lower-case code: %v", err)
	}
	if _, err := SealBackup(nil, code, nil); err == nil {
		t.Error("empty backup")
	}
	if _, err := SealBackup([]*Key{k.alice.Public()}, code, nil); !errors.Is(err, ErrNotSecret) {
		t.Errorf("public key: %v", err)
	}
	if _, err := SealBackup([]*Key{lockedKey(t, k.alice)}, code, nil); !errors.Is(err, ErrNotSecret) {
		t.Errorf("locked key: %v", err)
	}
	backup, err := SealBackup([]*Key{k.alice}, code, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The code is used verbatim: no case folding, no dropped dashes.
	for _, wrong := range []string{
		"TWNK-KD5Y-MT3T-E1GS-DRDB-KVTX",
		"twnk-kd5y-mt3t-e1gs-drdb-kvtw",
		"TWNKKD5YMT3TE1GSDRDBKVTW",
		"",
	} {
		if _, err := OpenBackup(backup, wrong); !errors.Is(err, ErrDecrypt) {
			t.Errorf("code %q: %v", wrong, err)
		}
	}
	// Every flip costs a full S2K run; sample the message.
	for i := 0; i < len(backup); i += len(backup)/8 + 1 {
		bad := bytes.Clone(backup)
		bad[i] ^= 0x01
		if keys, err := OpenBackup(bad, code); err == nil {
			t.Errorf("byte %d flipped: %d keys restored", i, len(keys))
		}
	}
	// A message encrypted to a public key is not a backup.
	if _, err := OpenBackup(sealFor(t, imContent(bobJID), k.alice, k.bob), code); !errors.Is(err, ErrDecrypt) {
		t.Errorf("public-key message: %v", err)
	}
	// A backup holding only a public key is refused.
	pub, _ := k.alice.MarshalPublic(true)
	var buf bytes.Buffer
	w, err := openpgp.SymmetricallyEncrypt(&buf, []byte(code), &openpgp.FileHints{IsBinary: true}, &packet.Config{S2KConfig: &s2k.Config{S2KCount: 65536}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pub)
	w.Close()
	if _, err := OpenBackup(buf.Bytes(), code); !errors.Is(err, ErrNotSecret) {
		t.Errorf("public key in backup: %v", err)
	}
}
