package esession

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

// vector is one profile of testdata/esession-xep0217-group14.json.
type vector struct {
	Profile         string `json:"profile"`
	Group           int    `json:"group"`
	X               string `json:"x_hex"`
	Y               string `json:"y_hex"`
	NA              string `json:"N_A_b64"`
	NB              string `json:"N_B_b64"`
	CA              string `json:"C_A_hex"`
	CB              string `json:"C_B_hex"`
	E               string `json:"e_b64"`
	D               string `json:"d_b64"`
	He              string `json:"He_b64"`
	FormA           string `json:"form_A"`
	FormB           string `json:"form_B"`
	FormA2          string `json:"form_A2"`
	FormB2          string `json:"form_B2"`
	KDH             string `json:"K_dh_hex"`
	KCAProv         string `json:"KC_A_prov_hex"`
	KMAProv         string `json:"KM_A_prov_hex"`
	KSAProv         string `json:"KS_A_prov_hex"`
	MacA            string `json:"mac_A_hex"`
	IdentityA       string `json:"identity_A_b64"`
	MacFieldA       string `json:"mac_field_A_b64"`
	SAS             string `json:"SAS"`
	KFinal          string `json:"K_final_hex"`
	KCA             string `json:"KC_A_hex"`
	KMA             string `json:"KM_A_hex"`
	KCB             string `json:"KC_B_hex"`
	KMB             string `json:"KM_B_hex"`
	KSB             string `json:"KS_B_hex"`
	SRSHash         string `json:"srshash_b64"`
	MacB            string `json:"mac_B_hex"`
	IdentityB       string `json:"identity_B_b64"`
	MacFieldB       string `json:"mac_field_B_b64"`
	NewRS           string `json:"new_retained_secret_hex"`
	NextNA          string `json:"next_session_N_A_b64"`
	NextRSHash      string `json:"next_session_rshash_b64"`
	NextSRSHash     string `json:"next_session_srshash_b64"`
	CAAfterNeg      string `json:"C_A_after_negotiation_hex"`
	CBAfterNeg      string `json:"C_B_after_negotiation_hex"`
	StanzaPlaintext string `json:"stanza_plaintext"`
	StanzaC         string `json:"stanza_c"`
	CAAfterStanza   string `json:"C_A_after_stanza_hex"`
}

func loadVector(t testing.TB, profile string) vector {
	t.Helper()
	b, err := os.ReadFile("testdata/esession-xep0217-group14.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Profile == profile {
			return v
		}
	}
	t.Fatalf("no %q profile", profile)
	return vector{}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVectorFormulas checks every XEP-0217 formula against the "spec"
// and "gajim" profiles, one known-answer subtest each.
func TestVectorFormulas(t *testing.T) {
	for _, profile := range []string{"spec", "gajim"} {
		t.Run(profile, func(t *testing.T) { testVectorFormulas(t, profile) })
	}
}

func testVectorFormulas(t *testing.T, profile string) {
	v := loadVector(t, profile)
	cv := conv{gajim: profile == "gajim"}
	g := modp.MustGroup(v.Group)
	x, y := unhex(t, v.X), unhex(t, v.Y)
	nA, nB := unb64(t, v.NA), unb64(t, v.NB)
	var ca counter
	copy(ca[:], unhex(t, v.CA))
	e := g.Public(x)
	d := g.Public(y)
	var k [32]byte
	copy(k[:], unhex(t, v.KDH))
	var kf [32]byte
	copy(kf[:], unhex(t, v.KFinal))
	check := func(t *testing.T, name string, got []byte, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s\n got %x\nwant %x", name, got, want)
		}
	}
	t.Run("e=g^x", func(t *testing.T) { check(t, "e", mpi(e), unb64(t, v.E)) })
	t.Run("d=g^y", func(t *testing.T) { check(t, "d", mpi(d), unb64(t, v.D)) })
	t.Run("He=SHA256(MPI(e))", func(t *testing.T) { h := dhHash(e); check(t, "He", h[:], unb64(t, v.He)) })
	t.Run("K=SHA256(d^x)", func(t *testing.T) {
		z, err := g.SharedSecret(d, x)
		if err != nil {
			t.Fatal(err)
		}
		ka := sharedSecret(z)
		z2, _ := g.SharedSecret(e, y)
		kb := sharedSecret(z2)
		check(t, "Alice K", ka[:], k[:])
		check(t, "Bob K", kb[:], k[:])
	})
	kAProv := deriveKeys(&k, true, cv.keyLen())
	t.Run("provisory keys", func(t *testing.T) {
		check(t, "KC_A", kAProv.cipherKey(), unhex(t, v.KCAProv))
		check(t, "KM_A", kAProv.km[:], unhex(t, v.KMAProv))
		check(t, "KS_A", kAProv.ks[:], unhex(t, v.KSAProv))
	})
	t.Run("C_B=C_A^2^127", func(t *testing.T) { cb := responderCounter(ca); check(t, "C_B", cb[:], unhex(t, v.CB)) })
	macA := sigmaMAC(&kAProv.ks, nB, nA, mpi(e), nil, []byte(v.FormA), []byte(v.FormA2))
	t.Run("mac_A", func(t *testing.T) { check(t, "mac_A", macA[:], unhex(t, v.MacA)) })
	c := ca
	id, mA := hideIdentity(&kAProv, &c, macA[:], cv)
	t.Run("identity_A and M_A", func(t *testing.T) {
		check(t, "ID_A", id[:], unb64(t, v.IdentityA))
		check(t, "M_A", mA[:], unb64(t, v.MacFieldA))
		check(t, "C_A after", c[:], unhex(t, v.CAAfterNeg))
		c2 := ca
		back, ok := revealIdentity(&kAProv, &c2, id, mA[:], cv)
		if !ok || !bytes.Equal(back, macA[:]) || c2 != c {
			t.Error("revealIdentity does not invert hideIdentity")
		}
		c3 := ca
		bad := mA
		bad[0] ^= 1
		if _, ok := revealIdentity(&kAProv, &c3, id, bad[:], cv); ok || c3 != ca {
			t.Error("revealIdentity accepted a bad MAC or moved the counter")
		}
	})
	t.Run("SAS", func(t *testing.T) {
		if got := sas28x5(mA[:], []byte(v.FormB), cv); got != v.SAS {
			t.Errorf("SAS %q, want %q", got, v.SAS)
		}
	})
	t.Run("K'=SHA256(K)", func(t *testing.T) {
		got := finalKey(&k, nil, nil)
		check(t, "K'", got[:], kf[:])
		if with := finalKey(&k, bytes.Repeat([]byte{1}, 32), nil); with == got {
			t.Error("the SRS does not change K'")
		}
	})
	kA, kB := deriveKeys(&kf, true, cv.keyLen()), deriveKeys(&kf, false, cv.keyLen())
	t.Run("final keys", func(t *testing.T) {
		check(t, "KC_A", kA.cipherKey(), unhex(t, v.KCA))
		check(t, "KM_A", kA.km[:], unhex(t, v.KMA))
		check(t, "KC_B", kB.cipherKey(), unhex(t, v.KCB))
		check(t, "KM_B", kB.km[:], unhex(t, v.KMB))
		check(t, "KS_B", kB.ks[:], unhex(t, v.KSB))
	})
	macB := sigmaMAC(&kB.ks, nA, nB, mpi(d), nil, []byte(v.FormB), []byte(v.FormB2))
	t.Run("mac_B, identity_B, M_B", func(t *testing.T) {
		check(t, "mac_B", macB[:], unhex(t, v.MacB))
		cb := responderCounter(ca)
		idB, mB := hideIdentity(&kB, &cb, macB[:], cv)
		check(t, "ID_B", idB[:], unb64(t, v.IdentityB))
		check(t, "M_B", mB[:], unb64(t, v.MacFieldB))
		check(t, "C_B after", cb[:], unhex(t, v.CBAfterNeg))
	})
	t.Run("retained secret", func(t *testing.T) {
		rs := newRetainedSecret(&kf)
		check(t, "new RS", rs[:], unhex(t, v.NewRS))
		rh := rsHash(unb64(t, v.NextNA), &rs)
		check(t, "next rshash", rh[:], unb64(t, v.NextRSHash))
		sh := srsHash(&rs)
		check(t, "next srshash", sh[:], unb64(t, v.NextSRSHash))
	})
	t.Run("XEP-0200 stanza", func(t *testing.T) {
		ch := &channel{pad: true, cv: cv}
		var c0 counter
		copy(c0[:], unhex(t, v.CAAfterNeg))
		ch.send.init(&kA, c0, cv)
		ch.recv.init(&kA, c0, cv)
		out, err := ch.seal([]byte(v.StanzaPlaintext))
		if err != nil {
			t.Fatal(err)
		}
		sameXML(t, out, v.StanzaC)
		check(t, "C_A after stanza", ch.send.ctr[:], unhex(t, v.CAAfterStanza))
		msg, err := ch.open(out)
		if err != nil {
			t.Fatal(err)
		}
		if pt := marshalContent(msg.Elements()); string(pt) != "<body>Hello, Bob!</body>" {
			t.Errorf("decrypted %q", pt)
		}
	})
}

// TestVectorGajimProfileDiffers documents that the "gajim" profile is not
// what this engine computes: its keys are whole 32-byte HMACs (AES-256)
// and its counter starts at C+1. Only the parts both profiles share agree.
func TestVectorGajimProfileDiffers(t *testing.T) {
	spec, gajim := loadVector(t, "spec"), loadVector(t, "gajim")
	if spec.KDH != gajim.KDH || spec.KFinal != gajim.KFinal || spec.KMA != gajim.KMA {
		t.Error("profiles disagree on K, K' or KM_A")
	}
	var kf [32]byte
	copy(kf[:], unhex(t, gajim.KFinal))
	kA := deriveKeys(&kf, true, 16)
	if hex.EncodeToString(kA.cipherKey()) == gajim.KCA {
		t.Error("derived the gajim 32-byte cipher key")
	}
	if gajim.KCA[32:] != hex.EncodeToString(kA.cipherKey()) {
		t.Error("our AES key is not the last 16 bytes of the gajim profile's full HMAC")
	}
	if spec.SAS == gajim.SAS || spec.IdentityA == gajim.IdentityA {
		t.Error("profiles should differ on the identity and SAS")
	}
}

// sameXML checks that el is the element want serialises: the same names,
// attributes and text, whatever the quoting.
func sameXML(t testing.TB, el *xmltree.Element, want string) {
	t.Helper()
	w, err := xmltree.Parse([]byte(want), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, exp := form.AppendNormalized(nil, el, false), form.AppendNormalized(nil, w, false)
	if !bytes.Equal(got, exp) || el.Name != w.Name {
		t.Errorf("XML\n got %s\nwant %s", el.Marshal(""), want)
	}
}

// script is a Rand that returns chunks in order and fails when exhausted.
type script struct{ chunks [][]byte }

func (s *script) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	c := s.chunks[0]
	if len(p) != len(c) {
		// The engine reads each value in one call; a different size
		// means the consumption order changed.
		return 0, io.ErrShortBuffer
	}
	copy(p, c)
	s.chunks = s.chunks[1:]
	return len(p), nil
}

// TestVectorFullFlow runs both engines with scripted randomness and checks
// that every message they exchange reproduces the vector, in each profile.
func TestVectorFullFlow(t *testing.T) {
	for _, p := range []struct {
		name    string
		profile Profile
	}{{"spec", ProfileSpec}, {"gajim", ProfileGajim}} {
		t.Run(p.name, func(t *testing.T) { testVectorFullFlow(t, p.name, p.profile) })
	}
}

func testVectorFullFlow(t *testing.T, name string, profile Profile) {
	v := loadVector(t, name)
	gajim := profile == ProfileGajim
	decoy := unb64(t, "uwtQZltWvGsvwlnmkhnp+rXzouAJe8BWi8k+9Rqktak=") // the vector's form_A2 rshash
	aliceRand := &script{[][]byte{make([]byte, 16), unb64(t, v.NA), unhex(t, v.X), {0}, decoy}}
	bobRand := &script{[][]byte{unb64(t, v.NB), unhex(t, v.CA), unhex(t, v.Y), unb64(t, v.SRSHash)}}
	alice, err := NewManager(&Config{Rand: aliceRand, MustNotLog: true, Secrets: &MemorySecrets{}, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := NewManager(&Config{Rand: bobRand, MustNotLog: true, AutoAccept: true, Secrets: &MemorySecrets{}, Profile: profile})
	formOf := func(payload []*xmltree.Element, local string) *form.Form {
		t.Helper()
		ns := NSFeatureNeg
		if local == "init" {
			ns = NSInit
		}
		pf, err := parseFeature(wire(t, payload[0]), ns, local)
		if err != nil {
			t.Fatalf("%v\n%s", err, payload)
		}
		return pf.form
	}
	sa, m1, err := alice.Start("bob@example.com/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(formOf(m1.Payload, "feature").Normalize(gajim)); got != v.FormA {
		t.Fatalf("message 1 form_A\n got %s\nwant %s", got, v.FormA)
	}
	r2 := deliver(t, m1, "alice@example.org/pda", bob, true)
	if len(r2.Out) != 1 {
		t.Fatalf("bob sent %d stanzas, events %#v", len(r2.Out), r2.Events)
	}
	if got := string(formOf(r2.Out[0].Payload, "feature").Normalize(gajim)); got != v.FormB {
		t.Fatalf("message 2 form_B\n got %s\nwant %s", got, v.FormB)
	}
	r3 := deliver(t, r2.Out[0], "bob@example.com/laptop", alice, true)
	if len(r3.Out) != 1 {
		t.Fatalf("alice sent %d stanzas: %#v", len(r3.Out), r3.Events)
	}
	f3 := formOf(r3.Out[0].Payload, "feature")
	if got := string(f3.Normalize(gajim, "identity", "mac")); got != v.FormA2 {
		t.Errorf("message 3 form_A2\n got %s\nwant %s", got, v.FormA2)
	}
	if f3.Value("identity") != v.IdentityA || f3.Value("mac") != v.MacFieldA {
		t.Errorf("message 3 identity %s mac %s", f3.Value("identity"), f3.Value("mac"))
	}
	if sa.SAS() != v.SAS {
		t.Errorf("alice SAS %q, want %q", sa.SAS(), v.SAS)
	}
	r4 := deliver(t, r3.Out[0], "alice@example.org/pda", bob, true)
	if len(r4.Out) != 1 {
		t.Fatalf("bob sent %d stanzas: %#v", len(r4.Out), r4.Events)
	}
	f4 := formOf(r4.Out[0].Payload, "init")
	if got := string(f4.Normalize(gajim, "identity", "mac")); got != v.FormB2 {
		t.Errorf("message 4 form_B2\n got %s\nwant %s", got, v.FormB2)
	}
	if f4.Value("identity") != v.IdentityB || f4.Value("mac") != v.MacFieldB {
		t.Errorf("message 4 identity %s mac %s", f4.Value("identity"), f4.Value("mac"))
	}
	sb := bob.Session("alice@example.org", sa.Thread())
	if sb.SAS() != v.SAS || sb.State() != StateActive {
		t.Errorf("bob SAS %q state %v", sb.SAS(), sb.State())
	}
	r5 := deliver(t, r4.Out[0], "bob@example.com/laptop", alice, true)
	if sa.State() != StateActive || len(r5.Events) != 1 {
		t.Fatalf("alice state %v events %#v", sa.State(), r5.Events)
	}
	o, err := sa.Seal(els(t, "<body>Hello, Bob!</body>")...)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Payload) != 1 {
		t.Errorf("stanza %s", payloadXML(o))
	} else {
		sameXML(t, o.Payload[0], v.StanzaC)
	}
	r6 := deliver(t, o, "alice@example.org/pda", bob, true)
	if len(r6.Events) != 1 {
		t.Fatalf("events %#v", r6.Events)
	}
	msg, ok := r6.Events[0].(Message)
	if !ok {
		t.Fatalf("event %#v", r6.Events[0])
	}
	if body, _ := msg.Body(); body != "Hello, Bob!" {
		t.Errorf("body %q", body)
	}
	// Both retained the vector's new secret.
	for name, m := range map[string]*Manager{"alice": alice, "bob": bob} {
		peer := "bob@example.com"
		if name == "bob" {
			peer = "alice@example.org"
		}
		list, _ := m.cfg.secrets.Lookup(peer)
		if len(list) != 1 || hex.EncodeToString(list[0].Value[:]) != v.NewRS || list[0].Verified {
			t.Errorf("%s retained %+v", name, list)
		}
	}
	if len(aliceRand.chunks) != 0 || len(bobRand.chunks) != 0 {
		t.Error("randomness left unread")
	}
}

// In the gajim profile a received stanza MAC over the counter's MPI (what
// Gajim sends) is accepted as well as one over its 16 bytes, and the two
// differ only when the counter's top byte is zero.
func TestGajimStanzaMACCounter(t *testing.T) {
	var k [32]byte
	k[0] = 9
	cv := conv{gajim: true}
	ks := deriveKeys(&k, true, cv.keyLen())
	var c counter
	c[1], c[15] = 0x42, 0x07 // top byte zero
	for _, mpiMAC := range []bool{false, true} {
		snd := &channel{pad: true, cv: cv}
		snd.send.init(&ks, c, cv)
		out, err := snd.seal([]byte("<body>x</body>"))
		if err != nil {
			t.Fatal(err)
		}
		if mpiMAC {
			// recompute the MAC as Gajim sends it
			macIn := appendMACInput(nil, "data", out.ChildText(NSStanzaEncryption, "data"))
			sum := hmacSHA256(ks.km[:], macIn, mpiBytes(c[:]))
			mac := out.Child(NSStanzaEncryption, "mac")
			mac.Children = []xmltree.Node{xmltree.CharData(b64.EncodeToString(sum[:]))}
		}
		for _, gajim := range []bool{true, false} {
			rcv := &channel{pad: true, cv: conv{gajim: gajim}}
			rcv.recv.init(&ks, c, cv)
			_, err := rcv.open(out)
			if want := !mpiMAC || gajim; (err == nil) != want {
				t.Errorf("MPI MAC %v, gajim receiver %v: %v", mpiMAC, gajim, err)
			}
		}
	}
}
