package ox

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"
)

func TestGenerateKey(t *testing.T) {
	k := keys(t)
	a := k.alice
	if ids := a.UserIDs(); len(ids) != 1 || ids[0] != "xmpp:alice@example.org" {
		t.Errorf("user IDs %q", ids)
	}
	if len(a.Fingerprint()) != 40 || strings.ToUpper(a.Fingerprint()) != a.Fingerprint() || a.String() != a.Fingerprint() {
		t.Errorf("fingerprint %q", a.Fingerprint())
	}
	if a.Fingerprint() == k.alice2.Fingerprint() {
		t.Error("two generated keys share a fingerprint")
	}
	e := a.entity
	if e.PrimaryKey.Version != 4 || e.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoEdDSA ||
		len(e.Subkeys) != 1 || e.Subkeys[0].PublicKey.PubKeyAlgo != packet.PubKeyAlgoECDH {
		t.Errorf("algorithms %v / %v", e.PrimaryKey.PubKeyAlgo, e.Subkeys[0].PublicKey.PubKeyAlgo)
	}
	if a.Algorithm() != "EdDSA/Cv25519" || EdDSA25519.String() != "EdDSA/Cv25519" || RSA3072.String() != "RSA-3072" {
		t.Errorf("algorithm %s", a.Algorithm())
	}
	if _, ok := a.Expires(); ok {
		t.Error("generated key expires")
	}
	if !a.Created().Equal(t0.Add(-time.Hour)) {
		t.Errorf("created %v", a.Created())
	}
	if !a.Secret() || a.Locked() || a.Public().Secret() || a.Public().Fingerprint() != a.Fingerprint() {
		t.Error("secret/public")
	}
	if p := a.Public(); p.Public() != p {
		t.Error("Public of a public key should return it")
	}
	if ids := a.KeyIDs(); len(ids) != 2 || ids[0] != e.PrimaryKey.KeyId {
		t.Errorf("key IDs %x", ids)
	}
	if addrs := a.Addresses(t0); len(addrs) != 1 || !addrs[0].Equal(aliceJID) {
		t.Errorf("addresses %v", addrs)
	}
	if err := a.ValidFor(jid.MustParse("alice@example.org/phone"), t0); err != nil {
		t.Error(err)
	}
	if err := a.ValidFor(bobJID, t0); !errors.Is(err, ErrUserID) {
		t.Errorf("ValidFor(bob) = %v", err)
	}
	var ke *KeyError
	if err := a.ValidFor(bobJID, t0); !errors.As(err, &ke) || ke.Fingerprint != a.Fingerprint() {
		t.Errorf("not a *KeyError: %v", err)
	}
	if err := a.CanEncrypt(t0); err != nil {
		t.Error(err)
	}
	// Not valid before it was made.
	if err := a.ValidFor(aliceJID, t0.Add(-2*time.Hour)); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("before creation: %v", err)
	}
	if _, err := GenerateKey(jid.JID{}, EdDSA25519, nil); err == nil {
		t.Error("empty JID accepted")
	}
	if _, err := GenerateKey(aliceJID, Algorithm(9), nil); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

func TestGenerateKeyParentheses(t *testing.T) {
	// RFC 7622 allows parentheses in a localpart; RFC 4880 user ID helpers
	// treat them as comment delimiters.
	j := jid.MustParse("romeo(montague)@example.net/orchard")
	k, err := GenerateKey(j, EdDSA25519, &Config{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if ids := k.UserIDs(); len(ids) != 1 || ids[0] != "xmpp:romeo(montague)@example.net" {
		t.Fatalf("user IDs %q", ids)
	}
	pub, err := k.MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := again[0].ValidFor(j, t0); err != nil {
		t.Error(err)
	}
}

func TestGenerateKeyRSA(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-3072 key generation is slow; the RSA path is also covered by the GnuPG interoperability test data")
	}
	k, err := GenerateKey(aliceJID, RSA3072, &Config{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if k.Algorithm() != "RSA-3072" {
		t.Errorf("algorithm %s", k.Algorithm())
	}
	msg := sealFor(t, imContent(bobJID), k, keys(t).bob, k)
	p := bobParams(keys(t))
	p.SenderKeys = []*Key{k.Public()}
	op, err := opener(t, keys(t).bob).Open(msg, p)
	if err != nil || !op.Verified {
		t.Fatalf("%v %+v", err, op)
	}
	op, err = opener(t, k).Open(msg, p)
	if err != nil || !op.Verified || op.DecryptedWith != k {
		t.Fatalf("to self: %v %+v", err, op)
	}
}

func TestParseKeysFormats(t *testing.T) {
	k := keys(t)
	pub, err := k.alice.MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := k.bob.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	armoredPub, err := Armor(pub)
	if err != nil || !bytes.HasPrefix(armoredPub, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		t.Fatalf("%v %s", err, armoredPub)
	}
	armoredSec, err := Armor(sec)
	if err != nil || !bytes.HasPrefix(armoredSec, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) {
		t.Fatalf("%v %s", err, armoredSec)
	}
	for name, tc := range map[string]struct {
		data   []byte
		secret bool
		fprs   []string
	}{
		"binary public":  {pub, false, []string{k.alice.Fingerprint()}},
		"binary secret":  {sec, true, []string{k.bob.Fingerprint()}},
		"armored public": {append([]byte("\n  "), armoredPub...), false, []string{k.alice.Fingerprint()}},
		"armored secret": {armoredSec, true, []string{k.bob.Fingerprint()}},
		"keyring":        {append(bytes.Clone(pub), sec...), false, []string{k.alice.Fingerprint(), k.bob.Fingerprint()}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseKeys(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.fprs) {
				t.Fatalf("%d keys", len(got))
			}
			for i, g := range got {
				if g.Fingerprint() != tc.fprs[i] {
					t.Errorf("key %d: %s", i, g.Fingerprint())
				}
			}
			if got[len(got)-1].Secret() != (tc.secret || name == "keyring") {
				t.Errorf("secret = %v", got[len(got)-1].Secret())
			}
		})
	}
	// Secret export round trip keeps the key usable.
	ks, _ := ParseKeys(sec)
	msg := sealFor(t, imContent(bobJID), k.alice, k.bob)
	if op, err := opener(t, ks[0]).Open(msg, bobParams(k)); err != nil || !op.Verified {
		t.Fatalf("parsed secret key: %v", err)
	}
	if _, err := k.alice.Public().MarshalSecret(); !errors.Is(err, ErrNotSecret) {
		t.Errorf("MarshalSecret of public key: %v", err)
	}

	msgArmor, err := Armor(msg)
	if err != nil || !bytes.HasPrefix(msgArmor, []byte("-----BEGIN PGP MESSAGE-----")) {
		t.Errorf("message armor: %v", err)
	}
	if _, err := Armor([]byte("x")); err == nil {
		t.Error("Armor of non-OpenPGP data")
	}
	if _, err := Armor(nil); err == nil {
		t.Error("Armor of nothing")
	}
}

func TestParseKeysErrors(t *testing.T) {
	k := keys(t)
	pub, _ := k.alice.MarshalPublic(true)
	armoredMsg, _ := Armor(sealFor(t, imContent(bobJID), k.alice, k.bob))
	v6, err := openpgp.NewEntity("xmpp:alice@example.org", "", "", &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519})
	if err != nil {
		t.Fatal(err)
	}
	var v6buf bytes.Buffer
	if err := v6.Serialize(&v6buf); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":         nil,
		"garbage":       []byte("hello"),
		"truncated":     pub[:len(pub)-5],
		"armored msg":   armoredMsg,
		"broken armor":  []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"),
		"v6 key":        v6buf.Bytes(),
		"trailing junk": append(bytes.Clone(pub), 0xff, 0xff),
		"too large":     make([]byte, MaxKeySize+1),
	} {
		if _, err := ParseKeys(data); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := ParseKeys(v6buf.Bytes()); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("v6: %v", err)
	}
}

func TestMarshalPublicMinimal(t *testing.T) {
	k := keys(t)
	// Bob certifies Alice's user ID: a third-party signature that minimal
	// export drops.
	e := rawEntity(t, "xmpp:alice@example.org", t0.Add(-time.Hour), 0)
	if err := e.SignIdentity("xmpp:alice@example.org", k.bob.entity, &packet.Config{Time: func() time.Time { return t0 }}); err != nil {
		t.Fatal(err)
	}
	a := mustKey(t, e)
	full, err := a.MarshalPublic(false)
	if err != nil {
		t.Fatal(err)
	}
	min, err := a.MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(min) >= len(full) {
		t.Fatalf("minimal %d bytes, full %d", len(min), len(full))
	}
	count := func(b []byte) int {
		ks, err := ParseKeys(b)
		if err != nil {
			t.Fatal(err)
		}
		return len(ks[0].entity.Identities["xmpp:alice@example.org"].Signatures)
	}
	if count(full) != 2 || count(min) != 1 {
		t.Errorf("signatures: full %d, minimal %d", count(full), count(min))
	}
	// No secret material in public exports.
	ks, _ := ParseKeys(full)
	if ks[0].Secret() {
		t.Error("public export holds a secret key")
	}
}

func TestUnlock(t *testing.T) {
	k := keys(t)
	locked := lockedKey(t, k.alice)
	if !locked.Locked() || !locked.Secret() {
		t.Fatal("not locked")
	}
	if _, err := locked.Unlock([]byte("wrong")); err == nil {
		t.Error("wrong passphrase accepted")
	}
	u, err := locked.Unlock([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Locked() || !locked.Locked() {
		t.Error("Unlock changed the receiver or did not unlock")
	}
	msg := sealFor(t, imContent(bobJID), u, k.bob)
	if op, err := opener(t, k.bob).Open(msg, bobParams(k)); err != nil || !op.Verified {
		t.Fatalf("unlocked key: %v", err)
	}
	if _, err := k.alice.Public().Unlock(nil); !errors.Is(err, ErrNotSecret) {
		t.Errorf("Unlock of public key: %v", err)
	}
}

func TestCanonicalFingerprint(t *testing.T) {
	const fpr = "1357B01865B2503C18453D208CAC2A9678548E35"
	for in, ok := range map[string]bool{
		fpr:                  true,
		strings.ToLower(fpr): true,
		"1357 B018 65B2 503C 1845  3D20 8CAC 2A96 7854 8E35": true,
		" " + fpr + "\n": true,
		fpr[:39]:         false,
		fpr + "0":        false,
		"G357B01865B2503C18453D208CAC2A9678548E35": false,
		"": false,
	} {
		got, gotOK := CanonicalFingerprint(in)
		if gotOK != ok || ok && got != fpr {
			t.Errorf("%q: %q %v", in, got, gotOK)
		}
	}
}

func TestKeyCache(t *testing.T) {
	k := keys(t)
	a, _ := k.alice.MarshalPublic(true)
	b, _ := k.bob.MarshalPublic(true)
	c := NewKeyCache(2)
	var wg sync.WaitGroup
	results := make([]*Key, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks, err := c.Parse(a)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = ks[0]
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r != results[0] {
			t.Fatal("concurrent parses of the same key returned different keys: parsed more than once")
		}
	}
	// The returned slice is a copy: changing it does not change the cache.
	ks, _ := c.Parse(a)
	ks[0] = nil
	if again, _ := c.Parse(a); again[0] != results[0] {
		t.Error("cache entry modified through a returned slice")
	}
	if _, err := c.Parse([]byte("bad")); err == nil {
		t.Error("bad key parsed")
	}
	if c.Len() != 2 {
		t.Errorf("Len %d", c.Len())
	}
	// Bounded: a third entry evicts the oldest.
	c.Parse(b)
	if c.Len() != 2 {
		t.Errorf("Len %d after eviction", c.Len())
	}
	if again, _ := c.Parse(a); again[0] == results[0] {
		t.Error("evicted entry still cached")
	}
}
