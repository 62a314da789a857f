package esession

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/balcony-im/balcony/esession/form"
)

// testdata/esession-vectors.json is written by testdata/esession_vectors.py,
// a second derivation of the formulas from the specification text in
// Python (standard library and the cryptography package), independent of
// this package. These tests check that the engine reproduces every value.

type pyVectors struct {
	XEP0217      []map[string]any             `json:"xep0217"`
	SigmaI       map[string]string            `json:"sigma_i"`
	SigmaR       map[string]string            `json:"sigma_r_keys_oss"`
	Rekey        map[string]string            `json:"rekey"`
	Fingerprints map[string]map[string]string `json:"fingerprints"`
	DSA          map[string]string            `json:"dsa_signature"`
	PEP          map[string]string            `json:"pep_print"`
}

func loadPy(t testing.TB, path string) pyVectors {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v pyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The Python derivation of the XEP-0217 vectors agrees with the committed
// vectors, which the engine reproduces (TestVectorFormulas,
// TestVectorFullFlow): the two derivations agree, field by field.
func TestPythonXEP0217Agrees(t *testing.T) {
	py := loadPy(t, "testdata/esession-vectors.json")
	b, err := os.ReadFile("testdata/esession-xep0217-group14.json")
	if err != nil {
		t.Fatal(err)
	}
	var committed []map[string]any
	if err := json.Unmarshal(b, &committed); err != nil {
		t.Fatal(err)
	}
	if len(py.XEP0217) != 2 || len(committed) != 2 {
		t.Fatalf("%d and %d profiles", len(py.XEP0217), len(committed))
	}
	for i := range committed {
		if !reflect.DeepEqual(py.XEP0217[i], committed[i]) {
			for k, v := range committed[i] {
				if !reflect.DeepEqual(py.XEP0217[i][k], v) {
					t.Errorf("%v %s: python %v, committed %v", committed[i]["profile"], k, py.XEP0217[i][k], v)
				}
			}
		}
	}
}

func pyHex(t testing.TB, v map[string]string, k string) []byte {
	t.Helper()
	if v[k] == "" {
		t.Fatalf("no %s", k)
	}
	return unhex(t, v[k])
}

// formValue returns a field of the form in a message's first payload.
func formOf(t testing.TB, o Outbound) *form.Form {
	t.Helper()
	p := wire(t, o.Payload[0])
	el := p.Elements()
	if len(el) != 1 {
		t.Fatalf("payload %s", p)
	}
	f, err := form.FromTree(el[0])
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPythonSigmaIFlow(t *testing.T) {
	v := loadPy(t, "testdata/esession-vectors.json").SigmaI
	aliceRand := &script{[][]byte{pyHex(t, v, "N_A_hex"), pyHex(t, v, "x_hex")}}
	bobRand := &script{[][]byte{pyHex(t, v, "N_B_hex"), pyHex(t, v, "C_A_hex"), pyHex(t, v, "y_hex")}}
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{Rand: aliceRand})
	b, _ := keyParty(t, bobJID, "rsa_bob", Config{Rand: bobRand, AutoAccept: true})
	sa, m1, err := a.m.Start(bobJID, &StartOptions{ThreeMessage: true, Thread: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(formOf(t, m1).Canonical()); got != v["form_A"] {
		t.Fatalf("form_A\n got %s\nwant %s", got, v["form_A"])
	}
	r2 := deliver(t, m1, aliceJID, b.m, true)
	f2 := formOf(t, r2.Out[0])
	if got := string(f2.CanonicalOmit("identity", "mac")); got != v["form_B"] {
		t.Fatalf("form_B\n got %s\nwant %s", got, v["form_B"])
	}
	if f2.Value("identity") != v["identity_B_b64"] || f2.Value("mac") != v["mac_field_B_b64"] {
		t.Errorf("Bob's identity %s mac %s", f2.Value("identity"), f2.Value("mac"))
	}
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	f3 := formOf(t, r3.Out[0])
	if got := string(f3.CanonicalOmit("identity", "mac")); got != v["form_A2"] {
		t.Errorf("form_A2\n got %s\nwant %s", got, v["form_A2"])
	}
	if f3.Value("identity") != v["identity_A_b64"] || f3.Value("mac") != v["mac_field_A_b64"] {
		t.Errorf("Alice's identity %s mac %s", f3.Value("identity"), f3.Value("mac"))
	}
	check := func(name string, got []byte, want string) {
		t.Helper()
		if hex.EncodeToString(got) != want {
			t.Errorf("%s\n got %x\nwant %s", name, got, want)
		}
	}
	check("C_A after", sa.ch.send.ctr[:], v["C_A_after_negotiation_hex"])
	check("C_B after", sa.ch.recv.ctr[:], v["C_B_after_negotiation_hex"])
	check("KC_A", sa.ch.send.kc[:16], v["KC_A_hex"])
	check("KM_B", sa.ch.recv.km[:], v["KM_B_hex"])
	o, _ := sa.Seal(els(t, "<body>Hello, Bob!</body>")...)
	c := wire(t, o.Payload[0])
	if c.ChildText(NSStanzaEncryption, "data") != v["stanza_data_b64"] || c.ChildText(NSStanzaEncryption, "mac") != v["stanza_mac_b64"] {
		t.Errorf("stanza %s", c)
	}
	m3 := r3.Out[0]
	m3.Payload = append(m3.Payload, o.Payload...)
	if body, _ := eventOf[Message](t, deliver(t, m3, aliceJID, b.m, true)).Body(); body != "Hello, Bob!" {
		t.Errorf("Bob read %q", body)
	}
	if len(aliceRand.chunks)+len(bobRand.chunks) != 0 {
		t.Error("randomness left unread")
	}

	// Re-keying (XEP-0200 §9) in this session, with a scripted x'.
	rk := loadPy(t, "testdata/esession-vectors.json").Rekey
	sb := b.m.Session(aliceJID, "t")
	for _, s := range []*Session{sa, sb} {
		s.ch.rk.enabled, s.ch.rk.freq, s.ch.rk.exchanged = true, 1, 1
	}
	sa.ch.rk.rand = &script{[][]byte{pyHex(t, rk, "x_hex")}}
	check("C before the key exchange", sa.ch.send.ctr[:], rk["C_hex"])
	o, _ = sa.Seal(els(t, "<body>new keys</body>")...)
	c = wire(t, o.Payload[0])
	if c.ChildText(NSStanzaEncryption, "data") != rk["stanza_data_b64"] || c.ChildText(NSStanzaEncryption, "key") != rk["e_b64"] ||
		c.ChildText(NSStanzaEncryption, "mac") != rk["stanza_mac_b64"] {
		t.Errorf("re-key stanza %s", c)
	}
	check("KC_init", sa.ch.send.kc[:16], rk["KC_init_hex"])
	check("KM_init", sa.ch.send.km[:], rk["KM_init_hex"])
	check("KC_acc", sa.ch.rk.sets[1].kc[:16], rk["KC_acc_hex"])
	check("KM_acc", sa.ch.rk.sets[1].km[:], rk["KM_acc_hex"])
	deliver(t, o, aliceJID, b.m, true)
	sa.ch.rk.enabled = false // no second exchange
	o, _ = sa.Seal(els(t, "<body>under the new key</body>")...)
	c = wire(t, o.Payload[0])
	if c.ChildText(NSStanzaEncryption, "data") != rk["next_data_b64"] || c.ChildText(NSStanzaEncryption, "mac") != rk["next_mac_b64"] {
		t.Errorf("stanza under the new key %s", c)
	}
	if body, _ := eventOf[Message](t, deliver(t, o, aliceJID, b.m, true)).Body(); body != "under the new key" {
		t.Errorf("Bob read %q after the key exchange", body)
	}
}

func TestPythonSigmaRKeysOSS(t *testing.T) {
	v := loadPy(t, "testdata/esession-vectors.json").SigmaR
	aliceRand := &script{[][]byte{pyHex(t, v, "N_A_hex"), pyHex(t, v, "x_hex"), {0}, pyHex(t, v, "decoy_hex")}}
	bobRand := &script{[][]byte{pyHex(t, v, "N_B_hex"), pyHex(t, v, "C_A_hex"), pyHex(t, v, "y_hex")}}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	var srs [32]byte
	copy(srs[:], pyHex(t, v, "SRS_hex"))
	pa, pb := &Password{}, &Password{}
	pa.Set(bobBare, v["OSS"])
	pb.Set(aliceBar, v["OSS"])
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{Rand: aliceRand, Now: clock, OtherSecrets: pa})
	b, _ := keyParty(t, bobJID, "rsa_bob", Config{Rand: bobRand, Now: clock, OtherSecrets: pb, AutoAccept: true})
	a.secrets.Replace(bobBare, nil, Secret{Value: srs, Created: now})
	b.secrets.Replace(aliceBar, nil, Secret{Value: srs, Created: now})
	sa, m1, err := a.m.Start(bobJID, &StartOptions{Thread: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(formOf(t, m1).Canonical()); got != v["form_A"] {
		t.Fatalf("form_A\n got %s\nwant %s", got, v["form_A"])
	}
	r2 := deliver(t, m1, aliceJID, b.m, true)
	if got := string(formOf(t, r2.Out[0]).Canonical()); got != v["form_B"] {
		t.Fatalf("form_B\n got %s\nwant %s", got, v["form_B"])
	}
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	f3 := formOf(t, r3.Out[0])
	if got := string(f3.CanonicalOmit("identity", "mac")); got != v["form_A2"] {
		t.Errorf("form_A2\n got %s\nwant %s", got, v["form_A2"])
	}
	if f3.Value("identity") != v["identity_A_b64"] || f3.Value("mac") != v["mac_field_A_b64"] || sa.SAS() != v["SAS"] {
		t.Errorf("Alice's identity %s mac %s SAS %s", f3.Value("identity"), f3.Value("mac"), sa.SAS())
	}
	r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
	f4 := formOf(t, r4.Out[0])
	if got := string(f4.CanonicalOmit("identity", "mac")); got != v["form_B2"] {
		t.Errorf("form_B2\n got %s\nwant %s", got, v["form_B2"])
	}
	if f4.Value("identity") != v["identity_B_b64"] || f4.Value("mac") != v["mac_field_B_b64"] {
		t.Errorf("Bob's identity %s mac %s", f4.Value("identity"), f4.Value("mac"))
	}
	est := eventOf[Established](t, deliver(t, r4.Out[0], bobJID, a.m, true))
	if !est.SecretMatched || !est.OtherSecret || !est.PeerKey.Equal(testKey(t, "rsa_bob").Public()) {
		t.Errorf("established %+v", est)
	}
	if hex.EncodeToString(sa.ch.send.kc[:16]) != v["KC_A_hex"] || hex.EncodeToString(sa.ch.recv.km[:]) != v["KM_B_hex"] {
		t.Error("final keys")
	}
	for _, s := range []*MemorySecrets{a.secrets, b.secrets} {
		peer := bobBare
		if s == b.secrets {
			peer = aliceBar
		}
		list, _ := s.Lookup(peer)
		if len(list) != 1 || hex.EncodeToString(list[0].Value[:]) != v["new_retained_secret_hex"] {
			t.Errorf("retained %+v", list)
		}
	}
	if len(aliceRand.chunks)+len(bobRand.chunks) != 0 {
		t.Error("randomness left unread")
	}
}

func TestPythonKeysAndSignatures(t *testing.T) {
	py := loadPy(t, "testdata/esession-vectors.json")
	for name, fp := range py.Fingerprints {
		k := testKey(t, name).Public()
		if string(k.normalized()) != fp["key_value"] {
			t.Errorf("%s KeyValue\n got %s\nwant %s", name, k.normalized(), fp["key_value"])
		}
		if got := k.Fingerprint(); hex.EncodeToString(got[:]) != fp["fingerprint_hex"] {
			t.Errorf("%s fingerprint %x", name, got)
		}
	}
	msg := pyHex(t, py.DSA, "message_hex")
	if !testKey(t, "dsa_alice").Public().verify(SignDSASHA256, msg, unb64(t, py.DSA["signature_b64"])) {
		t.Error("the Python DSA signature does not verify")
	}
	p := py.PEP
	if got := rsaPrint(p["begin"], p["end"], p["jid"], p["modulus"], p["exponent"]); got != p["print_b64"] {
		t.Errorf("XEP-0189 print %s", got)
	}
	begin, _ := time.Parse(time.RFC3339, p["begin"])
	end, _ := time.Parse(time.RFC3339, p["end"])
	el, err := (&PEPKey{Key: testKey(t, "rsa_bob").Public(), JID: p["jid"], Begin: begin, End: end}).Element()
	if err != nil || el.Child(NSPubKey, "rsakey").ChildText(NSPubKey, "print") != p["print_b64"] {
		t.Errorf("XEP-0189 payload %v %s", err, el)
	}
}

// TestPythonRegenerate runs the generator, when python3 with the
// cryptography package is there, and checks that it still writes the
// committed file (the randomised DSA signature apart, which is verified).
func TestPythonRegenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs python3")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if err := exec.Command(py, "-c", "import cryptography").Run(); err != nil {
		t.Skip("python3 without the cryptography package")
	}
	cmd := exec.Command(py, "esession_vectors.py")
	cmd.Dir = "testdata"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("generator: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/v.json", out, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, committed := loadPy(t, dir+"/v.json"), loadPy(t, "testdata/esession-vectors.json")
	if !testKey(t, "dsa_alice").Public().verify(SignDSASHA256, pyHex(t, fresh.DSA, "message_hex"), unb64(t, fresh.DSA["signature_b64"])) {
		t.Error("the new DSA signature does not verify")
	}
	fresh.DSA["signature_b64"] = committed.DSA["signature_b64"]
	if !reflect.DeepEqual(fresh, committed) {
		a, _ := json.Marshal(fresh)
		b, _ := json.Marshal(committed)
		t.Errorf("the generator writes other values than testdata/esession-vectors.json:\n%s\n%s", firstDiff(a, b), firstDiff(b, a))
	}
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return string(a[max(0, i-40):min(len(a), i+80)])
}
