package ox

import (
	"bytes"
	"crypto"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/cputime"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
	"mellium.im/xmpp/jid"
)

// A secret-key backup comes from the account's PEP service (XEP-0373
// §5.4), so OpenBackup reads remote data and derives a key from the code
// as each passphrase packet (SKESK, RFC 4880 §5.3) of it asks. The tests
// here build backups by hand: real ones, as GnuPG and Balcony write them,
// and hostile ones.

// testdata/gpg/backup.pgp was made with GnuPG 2.2.40: `gpg --symmetric
// --cipher-algo AES256` of the `--export-secret-keys` of a fresh key for
// xmpp:romeo@example.net, with backupFixtureCode, as
// TestRegenerateGPGFixture now does with its Romeo. GnuPG calibrates its
// iteration count, and chose the largest one (65011712).
const backupFixtureCode = "TWNK-KD5Y-MT3T-E1GS-DRDB-KVTW"

// opPacket frames body as an OpenPGP packet with a new-format header
// (RFC 4880 §4.2.2).
func opPacket(tag byte, body []byte) []byte {
	out := []byte{0xc0 | tag}
	switch n := len(body); {
	case n < 192:
		out = append(out, byte(n))
	case n < 8384:
		out = append(out, byte((n-192)>>8+192), byte(n-192))
	default:
		out = append(out, 0xff, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, body...)
}

// iteratedS2K is an iterated and salted S2K specifier with SHA-1, as
// GnuPG writes them, and the encoded count c (RFC 4880 §3.7.1.3).
func iteratedS2K(c byte) []byte {
	return []byte{3, 2, 1, 2, 3, 4, 5, 6, 7, 8, c}
}

// argon2S2K is an Argon2 S2K specifier (RFC 9580 §3.7.1.4): memory is
// 2^memExp KiB.
func argon2S2K(passes, parallelism, memExp byte) []byte {
	return append(append([]byte{4}, make([]byte, 16)...), passes, parallelism, memExp)
}

// hostileSKESK is a v4 SKESK with AES-256 whose encrypted session key is
// two bytes long: whatever key the S2K derives, it fails (a one-byte key
// fits no cipher), so go-crypto derives a key for the next one too.
func hostileSKESK(spec []byte) []byte {
	return opPacket(3, append(append([]byte{4, 9}, spec...), 0xa5, 0x5a))
}

// junkSEIPD is a SEIPD v1 packet of n bytes that nothing decrypts.
func junkSEIPD(n int) []byte {
	return opPacket(18, append([]byte{1}, bytes.Repeat([]byte{0x42}, n)...))
}

// sealRawBackup encrypts inner (the packets of the plaintext) as a backup:
// a SKESK with iterated S2K of the given count and a SEIPD v1.
func sealRawBackup(t testing.TB, inner []byte, count int) []byte {
	t.Helper()
	cfg := &packet.Config{
		DefaultCipher: packet.CipherAES256,
		S2KConfig:     &s2k.Config{S2KMode: s2k.IteratedSaltedS2K, Hash: crypto.SHA256, S2KCount: count},
	}
	var out bytes.Buffer
	key, err := packet.SerializeSymmetricKeyEncrypted(&out, []byte(backupFixtureCode), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := packet.SerializeSymmetricallyEncrypted(&out, packet.CipherAES256, false, packet.CipherSuite{}, key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// literal is a binary literal data packet holding data.
func literal(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := packet.SerializeLiteral(nopWriteCloser{&b}, true, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// compressed wraps packets in a ZLIB compressed data packet.
func compressed(t testing.TB, inner []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := packet.SerializeCompressed(nopWriteCloser{&b}, packet.CompressionZLIB, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	w.Close()
	return b.Bytes()
}

// backupCost runs OpenBackup once and returns its result, what it
// allocated and the CPU time the process spent meanwhile (all threads:
// Argon2 runs lanes in parallel).
func backupCost(data []byte) (keys []*Key, alloc uint64, cpu time.Duration, err error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := cputime.Process()
	keys, err = OpenBackup(data, backupFixtureCode)
	cpu = cputime.Process() - start
	runtime.ReadMemStats(&after)
	return keys, after.TotalAlloc - before.TotalAlloc, cpu, err
}

func backupSeeds(t testing.TB) map[string][]byte {
	k := keys(t)
	sec, err := k.alice.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	ours, err := SealBackup([]*Key{k.alice}, backupFixtureCode, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"GnuPG":             readTestdata(t, "gpg/backup.pgp"),
		"Balcony":           ours,
		"cheap S2K":         sealRawBackup(t, literal(t, sec), 65536),
		"compressed":        sealRawBackup(t, compressed(t, literal(t, sec)), 65536),
		"no SKESK":          junkSEIPD(64),
		"SKESK without key": append(opPacket(3, append([]byte{4, 9}, iteratedS2K(0)...)), junkSEIPD(64)...),
		"Argon2 SKESK":      append(hostileSKESK(argon2S2K(1, 1, 3)), junkSEIPD(64)...),
		"literal only":      literal(t, sec),
	}
}

// FuzzOpenBackup feeds arbitrary backups to OpenBackup. Whatever comes
// from the server, it must not panic, fail with one of its documented
// errors, return only secret keys, and allocate no more than the largest
// key derivations it allows plus a few times the input. The seeds derive
// their keys with the smallest iteration count, so that the fuzzer spends
// its time on the packets rather than on SHA-256 (GnuPG's and Balcony's
// own backups, at 65011712 and 16777216, are TestBackupSeeds' cases);
// mutations still reach the largest counts.
func FuzzOpenBackup(f *testing.F) {
	for name, b := range backupSeeds(f) {
		if name != "GnuPG" && name != "Balcony" {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, alloc, _, err := backupCost(data)
		// Two Argon2 derivations at the limit, and a few times the input.
		if limit := uint64(2*64<<20 + 8*len(data) + 8<<20); alloc > limit {
			t.Fatalf("OpenBackup allocated %d MiB for %d bytes", alloc>>20, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotSecret) &&
				!errors.Is(err, ErrKeyTooExpensive) && !strings.HasPrefix(err.Error(), "ox: backup: ") {
				t.Fatalf("undocumented error %T: %v", err, err)
			}
			if keys != nil {
				t.Fatal("keys returned with an error")
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("a backup without keys opened")
		}
		for _, k := range keys {
			if !k.Secret() {
				t.Fatalf("%s: public key restored", k)
			}
		}
	})
}

// The seeds open as they should: the real backups to their keys, the
// others to their errors.
func TestBackupSeeds(t *testing.T) {
	seeds := backupSeeds(t)
	for _, name := range []string{"GnuPG", "Balcony", "cheap S2K", "compressed"} {
		keys, err := OpenBackup(seeds[name], backupFixtureCode)
		if err != nil || len(keys) != 1 || !keys[0].Secret() || keys[0].Locked() {
			t.Fatalf("%s: %v %v", name, keys, err)
		}
	}
	romeo, _ := OpenBackup(seeds["GnuPG"], backupFixtureCode)
	if err := romeo[0].ValidFor(jid.MustParse("romeo@example.net"), romeo[0].Created().Add(time.Hour)); err != nil {
		t.Errorf("GnuPG's key: %v", err)
	}
	for _, name := range []string{"no SKESK", "SKESK without key", "Argon2 SKESK", "literal only"} {
		if _, err := OpenBackup(seeds[name], backupFixtureCode); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBackupCost bounds what OpenBackup spends on the worst backups a
// server can serve. Memory is counted exactly (Argon2 allocates the
// memory it is asked for, so allocation counts its work); time is CPU time
// compared with the dearest backup a real client writes (GnuPG's, one
// SKESK at the largest iteration count), measured in the same run.
func TestBackupCost(t *testing.T) {
	if testing.Short() {
		t.Skip("derives keys at the largest iteration count")
	}
	gnupg := readTestdata(t, "gpg/backup.pgp")
	runtime.GC()
	_, _, base, err := backupCost(gnupg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GnuPG's backup (one SKESK, count 65011712): %v CPU", base)

	many := func(n int, spec []byte) []byte {
		var b []byte
		for range n {
			b = append(b, hostileSKESK(spec)...)
		}
		return append(b, junkSEIPD(64)...)
	}
	sec, err := keys(t).alice.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	nested := literal(t, sec)
	for range 31 {
		nested = compressed(t, nested)
	}
	huge := make([]byte, 8<<20)
	mrandReader(2).Read(huge)
	for _, tc := range []struct {
		name     string
		data     []byte
		refused  bool          // before any key derivation
		maxAlloc uint64        // bytes
		maxCPU   time.Duration // 0: not checked
	}{
		// Argon2 asking for 256 MiB, or for 2 TiB (2^31 KiB), which no
		// allocator survives.
		{"Argon2 256 MiB", many(1, argon2S2K(1, 1, 18)), true, 1 << 20, 0},
		{"Argon2 2 TiB", many(1, argon2S2K(1, 1, 31)), true, 1 << 20, 0},
		{"Argon2 5 passes", many(1, argon2S2K(5, 1, 10)), true, 1 << 20, 0},
		// 64 passphrase packets, each tried in turn with 1 MiB of Argon2.
		{"64 Argon2 SKESKs", many(64, argon2S2K(1, 1, 10)), true, 1 << 20, 0},
		// 64 passphrase packets at the largest iteration count: a
		// quarter of a megabyte holds 15000 of them.
		{"64 iterated SKESKs", many(64, iteratedS2K(0xff)), true, 1 << 20, 0},
		// The most a backup may ask for: two derivations at the largest
		// iteration count, or two Argon2 ones at 64 MiB and four passes.
		{"2 iterated SKESKs", many(2, iteratedS2K(0xff)), false, 1 << 20, 3*base + 100*time.Millisecond},
		{"2 Argon2 SKESKs", many(2, argon2S2K(4, 4, 16)), false, 2*64<<20 + 4<<20, 0},
		// 8 MiB of keys behind the right code; 31 nested compressed
		// packets; a compressed 64 MiB of zeros.
		{"8 MiB literal", sealRawBackup(t, literal(t, huge), 65536), false, 8 << 20, 0},
		{"nested compression", sealRawBackup(t, nested, 65536), false, 8 << 20, 0},
		{"compression bomb", sealRawBackup(t, compressed(t, literal(t, make([]byte, 64<<20))), 65536), false, 8 << 20, 0},
	} {
		runtime.GC()
		_, alloc, cpu, err := backupCost(tc.data)
		t.Logf("%s (%d bytes): %v; allocated %.1f MiB, %v CPU", tc.name, len(tc.data), err, float64(alloc)/(1<<20), cpu)
		if err == nil {
			t.Errorf("%s: opened", tc.name)
		}
		if tc.refused != errors.Is(err, errBackupS2K) {
			t.Errorf("%s: refused for its cost: %v, want %v", tc.name, !tc.refused, tc.refused)
		}
		if alloc > tc.maxAlloc {
			t.Errorf("%s: allocated %d MiB, more than %d MiB", tc.name, alloc>>20, tc.maxAlloc>>20)
		}
		if tc.maxCPU > 0 && cpu > tc.maxCPU {
			t.Errorf("%s: %v CPU, more than %v (three times GnuPG's backup)", tc.name, cpu, tc.maxCPU)
		}
	}
}
