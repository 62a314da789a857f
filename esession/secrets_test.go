package esession

import (
	"bytes"
	"testing"
)

// A session whose retained secret was already replaced by a later session
// must not bring it back when its SAS is confirmed: the secret is used up,
// and storing it again (as verified) would let a second session continue
// from it.
func TestConfirmSASAfterSecretReplaced(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa1, sb1, _, _ := negotiate(t, a, b)
	// A second session starts before the first SAS was compared: it
	// matches the first session's secret and replaces it.
	sa2, sb2, ea2, _ := negotiate(t, a, b)
	if !ea2.SecretMatched {
		t.Fatal("the second session did not continue the first")
	}
	if err := sa1.ConfirmSAS(); err != nil {
		t.Fatal(err)
	}
	if !sa1.Verified() {
		t.Error("the confirmed session is not verified")
	}
	list, _ := a.secrets.Lookup(bobBare)
	if len(list) != 1 {
		t.Fatalf("%d secrets stored for one chain: the used-up secret came back", len(list))
	}
	if list[0].Verified {
		t.Error("the second session's secret was marked verified by the first session's SAS")
	}
	rs2 := sa2.rs
	if !bytes.Equal(list[0].Value[:], rs2[:]) {
		t.Error("the stored secret is not the second session's")
	}
	// Confirming the current session marks its secret, still one chain.
	if err := sa2.ConfirmSAS(); err != nil {
		t.Fatal(err)
	}
	list, _ = a.secrets.Lookup(bobBare)
	if len(list) != 1 || !list[0].Verified {
		t.Errorf("after confirming the second session: %d secrets, %+v", len(list), list)
	}
	closeBoth(t, sa1, sb1, sa2, sb2)
}

func TestMemorySecretsVerify(t *testing.T) {
	var m MemorySecrets
	v := [32]byte{1}
	other := [32]byte{2}
	if found, err := m.Verify("p", &v); err != nil || found {
		t.Fatalf("empty store: %v %v", found, err)
	}
	if list, _ := m.Lookup("p"); len(list) != 0 {
		t.Fatal("Verify inserted a secret")
	}
	m.Replace("p", nil, Secret{Value: v})
	if found, err := m.Verify("p", &other); err != nil || found {
		t.Fatalf("other value: %v %v", found, err)
	}
	if found, err := m.Verify("q", &v); err != nil || found {
		t.Fatalf("other peer: %v %v", found, err)
	}
	if found, err := m.Verify("p", &v); err != nil || !found {
		t.Fatalf("stored value: %v %v", found, err)
	}
	list, _ := m.Lookup("p")
	if len(list) != 1 || !list[0].Verified || list[0].Value != v {
		t.Errorf("after Verify: %+v", list)
	}
}

// Retained secrets expire after DefaultSecretLifetime unless configured
// otherwise: an expired secret is not used, and it is removed from the
// store.
func TestSecretDefaultLifetime(t *testing.T) {
	if DefaultSecretLifetime != 90*24*hour {
		t.Fatalf("DefaultSecretLifetime %v", DefaultSecretLifetime)
	}
	now := timeAt(0)
	clock := func() timeT { return now }
	a := newParty(t, aliceJID, Config{Now: clock})
	b := newParty(t, bobJID, Config{Now: clock})
	sa, sb, _, _ := negotiate(t, a, b)
	closeBoth(t, sa, sb)
	now = timeAt(89 * 24 * hour)
	sa, sb, ea, eb := negotiate(t, a, b)
	if !ea.SecretMatched || !eb.SecretMatched {
		t.Fatalf("a secret younger than the lifetime was not used: %+v %+v", ea, eb)
	}
	closeBoth(t, sa, sb)
	// The secret of the second session is now 91 days old.
	now = timeAt((89 + 91) * 24 * hour)
	_, _, ea, eb = negotiate(t, a, b)
	if ea.SecretMatched || eb.SecretMatched || ea.ContinuityBroken || eb.ContinuityBroken {
		t.Errorf("expired secret used, or reported as a broken chain: %+v %+v", ea, eb)
	}
	la, _ := a.secrets.Lookup(bobBare)
	lb, _ := b.secrets.Lookup(aliceBar)
	for i, list := range [][]Secret{la, lb} {
		if len(list) != 1 || !list[0].Created.Equal(now) {
			t.Errorf("side %d: the expired secret was not forgotten: %+v", i, list)
		}
	}
	// A negative lifetime keeps secrets for ever.
	c := newParty(t, aliceJID, Config{Now: clock, SecretLifetime: -1})
	d := newParty(t, bobJID, Config{Now: clock, SecretLifetime: -1})
	sc, sd, _, _ := negotiate(t, c, d)
	closeBoth(t, sc, sd)
	now = now.Add(10 * 365 * 24 * hour)
	if _, _, ec, _ := negotiate(t, c, d); !ec.SecretMatched {
		t.Error("a secret without expiry was not used")
	}
}

func TestMemorySecretsExpire(t *testing.T) {
	var m MemorySecrets
	m.Replace("p", nil, Secret{Value: [32]byte{1}, Created: timeAt(0)})
	m.Replace("p", nil, Secret{Value: [32]byte{2}, Created: timeAt(2 * hour)})
	m.Replace("q", nil, Secret{Value: [32]byte{3}, Created: timeAt(0)})
	if err := m.Expire("p", timeAt(hour)); err != nil {
		t.Fatal(err)
	}
	if list, _ := m.Lookup("p"); len(list) != 1 || list[0].Value != [32]byte{2} {
		t.Errorf("p: %+v", list)
	}
	if list, _ := m.Lookup("q"); len(list) != 1 {
		t.Errorf("q: %+v", list)
	}
}
