package esession

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// keyParty is a party that signs with the named test key ("" for none)
// and keeps a trust store.
func keyParty(t testing.TB, jid, key string, c Config) (*party, *MemoryKeys) {
	t.Helper()
	ks := &MemoryKeys{}
	if key != "" {
		c.Key = testKey(t, key)
	}
	if c.Keys == nil {
		c.Keys = ks
	}
	return newParty(t, jid, c), ks
}

func alertsOf(res Result) []KeyAlertKind {
	var out []KeyAlertKind
	for _, e := range res.Events {
		if a, ok := e.(KeyAlert); ok {
			out = append(out, a.Kind)
		}
	}
	return out
}

// beforeEstablished checks that every KeyAlert comes before Established.
func beforeEstablished(t testing.TB, res Result) {
	t.Helper()
	est := false
	for _, e := range res.Events {
		switch e.(type) {
		case Established:
			est = true
		case KeyAlert:
			if est {
				t.Error("a key alert after Established")
			}
		}
	}
}

func TestPublicKeySessions(t *testing.T) {
	for _, kt := range []string{"rsa", "dsa"} {
		t.Run(kt, func(t *testing.T) {
			a, aks := keyParty(t, aliceJID, kt+"_alice", Config{})
			b, bks := keyParty(t, bobJID, kt+"_bob", Config{})
			sa, m1, _ := a.m.Start(bobJID, nil)
			req := eventOf[RequestReceived](t, deliver(t, m1, aliceJID, b.m, true))
			r2, err := req.Session.Accept()
			if err != nil {
				t.Fatal(err)
			}
			r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
			r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
			beforeEstablished(t, r4)
			if k := alertsOf(r4); !slices.Equal(k, []KeyAlertKind{KeyNew}) {
				t.Errorf("bob's alerts %v", k)
			}
			eb := eventOf[Established](t, r4)
			if !eb.PeerKey.Equal(testKey(t, kt+"_alice").Public()) || eb.Verified {
				t.Errorf("bob: %+v", eb)
			}
			r5 := deliver(t, r4.Out[0], bobJID, a.m, true)
			beforeEstablished(t, r5)
			ea := eventOf[Established](t, r5)
			if !ea.PeerKey.Equal(testKey(t, kt+"_bob").Public()) || ea.Verified || ea.SAS != eb.SAS {
				t.Errorf("alice: %+v", ea)
			}
			p := sa.Params()
			if p.InitiatorKey != IdentifyKey || p.ResponderKey != IdentifyKey || p.SignAlg != testKey(t, kt+"_alice").Public().algorithm() {
				t.Errorf("params %+v", p)
			}
			o, _ := sa.Seal(els(t, "<body>signed</body>")...)
			if body, _ := eventOf[Message](t, deliver(t, o, aliceJID, b.m, true)).Body(); body != "signed" {
				t.Errorf("body %q", body)
			}
			closeBoth(t, sa, req.Session)

			// The users verify each other's keys: the next session is
			// verified without a SAS, and identifies by fingerprint.
			aks.Associate(bobBare, ea.PeerKey, true)
			bks.Associate(aliceBar, eb.PeerKey, true)
			sa2, sb2, ea2, eb2 := negotiate(t, a, b)
			if !ea2.Verified || !eb2.Verified || !sa2.Verified() || !sb2.Verified() {
				t.Errorf("second session not verified: %+v %+v", ea2, eb2)
			}
			if p := sa2.Params(); p.ResponderKey != IdentifyHash || p.InitiatorKey != IdentifyKey {
				t.Errorf("second session params %+v", p)
			}
		})
	}
}

func TestKeyAlerts(t *testing.T) {
	// Bob's store associates another key with Alice: a changed key.
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{})
	b, bks := keyParty(t, bobJID, "rsa_bob", Config{})
	bks.Associate(aliceBar, testKey(t, "rsa_mallory").Public(), true)
	_, _, _, eb := runNegotiation(t, a, b, false)
	if k := alertsOf(eb); !slices.Equal(k, []KeyAlertKind{KeyChanged}) {
		t.Errorf("changed key: %v", k)
	}
	if eventOf[Established](t, eb).Verified {
		t.Error("verified with a changed key")
	}
	// Alice identifies without a key although Bob knows one for her.
	c, _ := keyParty(t, aliceJID, "", Config{})
	_, _, _, eb = runNegotiation(t, c, b, false)
	if k := alertsOf(eb); !slices.Equal(k, []KeyAlertKind{KeyMissing}) {
		t.Errorf("missing key: %v", k)
	}
	// Alice's key is associated with another JID.
	d, dks := keyParty(t, bobJID, "rsa_bob", Config{})
	dks.Associate("carol@example.net", testKey(t, "rsa_alice").Public(), true)
	_, _, _, eb = runNegotiation(t, a, d, false)
	if k := alertsOf(eb); !slices.Equal(k, []KeyAlertKind{KeyNew, KeyOtherJID}) {
		t.Errorf("key of another JID: %v", k)
	}
	for _, e := range eb.Events {
		if ka, ok := e.(KeyAlert); ok && ka.Kind == KeyOtherJID && strings.Join(ka.OtherJIDs, ",") != "carol@example.net" {
			t.Errorf("other JIDs %v", ka.OtherJIDs)
		}
	}
}

func TestKeyNegotiationLimits(t *testing.T) {
	// Different key types cannot both sign with the one algorithm.
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{})
	b, _ := keyParty(t, bobJID, "dsa_bob", Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobJID, nil)
	r2 := deliver(t, m1, aliceJID, b.m, true)
	_, err := deliverErr(t, r2.Out[0], bobJID, a.m, true)
	var ne *NegotiationError
	if !errors.As(err, &ne) || !slices.Contains(ne.Fields, "sign_algs") {
		t.Errorf("mixed key types: %v", err)
	}
	// A responder that requires a key refuses a keyless initiator.
	c, _ := keyParty(t, aliceJID, "", Config{})
	d, _ := keyParty(t, bobJID, "rsa_bob", Config{AutoAccept: true, RequirePeerKey: true})
	_, m1, _ = c.m.Start(bobJID, nil)
	r := deliver(t, m1, aliceJID, d.m, true)
	if pe := eventOf[PeerError](t, deliver(t, r.Out[0], bobJID, c.m, true)); !slices.Contains(pe.Err.Fields, "init_pubkey") {
		t.Errorf("keyless initiator: %+v", pe.Err)
	}
	if _, err := NewManager(&Config{RequirePeerKey: true}); err == nil {
		t.Error("RequirePeerKey without Keys accepted")
	}
}

// forgeIdentity3 builds a message 3 with a public-key identity whose
// signature is made with signer while the KeyValue claims claimKey.
func forgeIdentity3(t testing.TB, sa *Session, m3 Outbound, claimKey *PublicKey, signer *PrivateKey) Outbound {
	t.Helper()
	sa.mu.Lock()
	defer sa.mu.Unlock()
	n := sa.neg
	f, err := parseFeature(m3.Payload[0], NSFeatureNeg, "feature")
	if err != nil {
		t.Fatal(err)
	}
	nf := &form.Form{Type: f.form.Type}
	for _, fl := range f.form.Fields {
		if fl.Var != "identity" && fl.Var != "mac" && fl.Var != "FORM_TYPE" {
			nf.Fields = append(nf.Fields, fl)
		}
	}
	nf = ssnForm(form.TypeResult, nf.Fields...)
	formA2 := sa.normalize(nf)
	kA := deriveKeys(&n.k, true, n.st.keyLen(sa.cfg.cv))
	macA := sigmaMAC(&kA.ks, n.nB, n.nA, mpi(n.e), claimKey.normalized(), n.formA, formA2)
	sig, err := signer.sign(randReader(), n.st.signAlg, macA[:])
	if err != nil {
		t.Fatal(err)
	}
	pt := append(claimKey.normalized(), "<SignatureValue>"+b64.EncodeToString(sig)+"</SignatureValue>"...)
	c := n.ca
	id, m := hideIdentity(&kA, &c, pt, sa.cfg.cv)
	all := append(slices.Clone(nf.Fields[1:]), field("identity", b64.EncodeToString(id)), field("mac", b64.EncodeToString(m[:])))
	m3.Payload = []*xmltree.Element{feature(ssnForm(form.TypeResult, all...))}
	return m3
}

// Every identity failure ends the negotiation on the receiving side with
// its keys wiped, answered with feature-not-implemented.
func TestBadPublicKeyIdentities(t *testing.T) {
	cases := map[string]func(t *testing.T, sa *Session, m3 Outbound) Outbound{
		"bad signature": func(t *testing.T, sa *Session, m3 Outbound) Outbound {
			return forgeIdentity3(t, sa, m3, testKey(t, "rsa_alice").Public(), testKey(t, "rsa_mallory"))
		},
		"signature over another MAC": func(t *testing.T, sa *Session, m3 Outbound) Outbound {
			return rewriteForm(t, forgeIdentity3(t, sa, m3, testKey(t, "rsa_alice").Public(), testKey(t, "rsa_alice")),
				func(f *form.Form) { setValue(f, "rshashes", "AAAA") })
		},
		"weak key": func(t *testing.T, sa *Session, m3 Outbound) Outbound {
			// a 1024-bit key, signed with correctly: refused for its size
			weak, err := rsa.GenerateKey(randReader(), 1024)
			if err != nil {
				t.Fatal(err)
			}
			return forgeIdentity3(t, sa, m3, &PublicKey{RSA: &weak.PublicKey}, &PrivateKey{RSA: weak})
		},
		"no signature": func(t *testing.T, sa *Session, m3 Outbound) Outbound {
			return rewriteForm(t, m3, func(f *form.Form) { setValue(f, "identity", flipB64(f.Value("identity"))) })
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			a, _ := keyParty(t, aliceJID, "rsa_alice", Config{})
			b, _ := keyParty(t, bobJID, "rsa_bob", Config{AutoAccept: true})
			sa, m1, _ := a.m.Start(bobJID, nil)
			r2 := deliver(t, m1, aliceJID, b.m, true)
			sb := b.m.Session(aliceJID, m1.Thread)
			pb := probe(sb)
			m3 := deliver(t, r2.Out[0], bobJID, a.m, true).Out[0]
			r4, err := deliverErr(t, mk(t, sa, m3), aliceJID, b.m, true)
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			if len(r4.Out) != 1 || !bytes.Contains(payloadXML(r4.Out[0]), []byte("<feature-not-implemented")) {
				t.Errorf("reply %#v", r4.Out)
			}
			if len(alertsOf(r4)) != 0 {
				t.Error("a key alert for a failed identity")
			}
			pb.check(t)
		})
	}
}

// The 'hash' method with a fingerprint the responder has no key for (the
// wrong key for the JID) ends the negotiation (XEP-0116 §6.2 step 4).
func TestUnknownFingerprint(t *testing.T) {
	a, aks := keyParty(t, aliceJID, "rsa_alice", Config{})
	b, _ := keyParty(t, bobJID, "rsa_bob", Config{AutoAccept: true})
	// Alice believes Bob's key is Mallory's: she asks for a fingerprint.
	aks.Associate(bobBare, testKey(t, "rsa_mallory").Public(), true)
	sa, m1, _ := a.m.Start(bobJID, nil)
	r2 := deliver(t, m1, aliceJID, b.m, true)
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	if sa.Params().ResponderKey != IdentifyHash {
		t.Fatalf("params %+v", sa.Params())
	}
	pa := probe(sa)
	r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
	r5, err := deliverErr(t, r4.Out[0], bobJID, a.m, true)
	if !errors.Is(err, ErrAuthentication) || sa.State() != StateEnded {
		t.Fatalf("error %v, state %v", err, sa.State())
	}
	eventOf[Terminated](t, r5)
	pa.check(t)
}

func TestThreeMessage(t *testing.T) {
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{})
	b, _ := keyParty(t, bobJID, "rsa_bob", Config{})
	sa, m1, err := a.m.Start(bobJID, &StartOptions{ThreeMessage: true})
	if err != nil {
		t.Fatal(err)
	}
	f1, _ := parseFeature(m1.Payload[0], NSFeatureNeg, "feature")
	if f1.form.Field("dhkeys") == nil || f1.form.Field("dhhashes") != nil || f1.form.Field("sas_algs") != nil {
		t.Errorf("message 1 is not a 3-message request: %s", payloadXML(m1))
	}
	req := eventOf[RequestReceived](t, deliver(t, m1, aliceJID, b.m, true))
	if !req.Offer.ThreeMessage {
		t.Error("offer does not say 3 messages")
	}
	r2, err := req.Session.Accept()
	if err != nil || len(r2.Out) != 1 {
		t.Fatal(err)
	}
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	beforeEstablished(t, r3)
	ea := eventOf[Established](t, r3)
	if sa.State() != StateActive || ea.SAS != "" || !ea.PeerKey.Equal(testKey(t, "rsa_bob").Public()) || len(r3.Out) != 1 {
		t.Fatalf("alice after message 2: %+v", ea)
	}
	// Message 3 may carry content.
	c, _ := sa.Seal(els(t, "<body>first</body>")...)
	m3 := r3.Out[0]
	m3.Payload = append(m3.Payload, c.Payload...)
	r4 := deliver(t, m3, aliceJID, b.m, true)
	beforeEstablished(t, r4)
	if eb := eventOf[Established](t, r4); !eb.PeerKey.Equal(testKey(t, "rsa_alice").Public()) || !req.Session.Params().ThreeMessage {
		t.Errorf("bob: %+v", eb)
	}
	if body, _ := eventOf[Message](t, r4).Body(); body != "first" {
		t.Errorf("body %q", body)
	}
	o, _ := req.Session.Seal(els(t, "<body>reply</body>")...)
	if body, _ := eventOf[Message](t, deliver(t, o, bobJID, a.m, true)).Body(); body != "reply" {
		t.Errorf("reply %q", body)
	}

	// A responder without a key only does 4 messages (XEP-0116 §4.2).
	d := newParty(t, bobJID, Config{AutoAccept: true})
	_, m1, _ = a.m.Start(bobJID, &StartOptions{ThreeMessage: true})
	r := deliver(t, m1, aliceJID, d.m, true)
	if pe := eventOf[PeerError](t, deliver(t, r.Out[0], bobJID, a.m, true)); pe.Err.Condition != CondFeatureNotImplemented || !slices.Contains(pe.Err.Fields, "dhkeys") {
		t.Errorf("keyless responder: %+v", pe.Err)
	}
	if _, _, err := newParty(t, aliceJID, Config{}).m.Start(bobJID, &StartOptions{ThreeMessage: true}); err == nil {
		t.Error("3 messages without a key")
	}
}

func TestThreeMessageBadIdentity(t *testing.T) {
	for _, who := range []string{"responder", "initiator"} {
		t.Run(who, func(t *testing.T) {
			a, _ := keyParty(t, aliceJID, "rsa_alice", Config{})
			b, _ := keyParty(t, bobJID, "rsa_bob", Config{AutoAccept: true})
			sa, m1, _ := a.m.Start(bobJID, &StartOptions{ThreeMessage: true})
			r2 := deliver(t, m1, aliceJID, b.m, true)
			sb := b.m.Session(aliceJID, m1.Thread)
			if who == "responder" {
				pa := probe(sa)
				bad := rewriteForm(t, r2.Out[0], func(f *form.Form) { setValue(f, "mac", flipB64(f.Value("mac"))) })
				if _, err := deliverErr(t, bad, bobJID, a.m, true); !errors.Is(err, ErrAuthentication) {
					t.Fatalf("error %v", err)
				}
				pa.check(t)
				return
			}
			pb := probe(sb)
			r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
			bad := rewriteForm(t, r3.Out[0], func(f *form.Form) { setValue(f, "identity", flipB64(f.Value("identity"))) })
			if _, err := deliverErr(t, bad, aliceJID, b.m, true); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			pb.check(t)
		})
	}
}

func TestOtherSecret(t *testing.T) {
	pa, pb := &Password{}, &Password{}
	pa.Set(bobBare, "correct horse")
	pb.Set(aliceBar, "correct horse")
	a := newParty(t, aliceJID, Config{OtherSecrets: pa})
	b := newParty(t, bobJID, Config{OtherSecrets: pb})
	sa, sb, ea, eb := negotiate(t, a, b)
	if !ea.OtherSecret || !eb.OtherSecret {
		t.Errorf("OSS not reported: %v %v", ea.OtherSecret, eb.OtherSecret)
	}
	o, _ := sa.Seal(els(t, "<body>with oss</body>")...)
	if body, _ := eventOf[Message](t, deliver(t, o, aliceJID, b.m, true)).Body(); body != "with oss" {
		t.Errorf("body %q", body)
	}
	closeBoth(t, sa, sb)

	// Different passwords: the negotiation fails at message 4.
	pb.Set(aliceBar, "battery staple")
	b.m.cfg.autoAccept = true
	sa, m1, _ := a.m.Start(bobJID, nil)
	r2 := deliver(t, m1, aliceJID, b.m, true)
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
	p := probe(sa)
	r5, err := deliverErr(t, r4.Out[0], bobJID, a.m, true)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("mismatched OSS: %v", err)
	}
	p.check(t)
	sb = b.m.Session(aliceJID, m1.Thread)
	eventOf[PeerError](t, deliver(t, r5.Out[0], aliceJID, b.m, true))
	if sb.State() != StateEnded {
		t.Error("bob's session survived the error")
	}
}

func TestAlgorithmNegotiation(t *testing.T) {
	a := newParty(t, aliceJID, Config{Ciphers: []string{CipherAES256CTR, CipherAES128CTR}, Stanzas: []string{StanzaPresence, StanzaIQ}, RekeyFreq: 100})
	b := newParty(t, bobJID, Config{Ciphers: []string{CipherAES128CTR, CipherAES192CTR, CipherAES256CTR}, Stanzas: []string{StanzaIQ}, RekeyFreq: 50})
	sa, sb, _, _ := negotiate(t, a, b)
	for _, s := range []*Session{sa, sb} {
		p := s.Params()
		if p.Cipher != CipherAES256CTR || strings.Join(p.Stanzas, ",") != "message,iq" || p.RekeyFreq != 100 {
			t.Errorf("params %+v", p)
		}
	}
	if sa.ch.send.block.BlockSize() != 16 || sa.ch.send.kcLen != 32 {
		t.Error("not AES-256")
	}
	o, _ := sa.Seal(els(t, "<body>256</body>")...)
	if body, _ := eventOf[Message](t, deliver(t, o, aliceJID, b.m, true)).Body(); body != "256" {
		t.Errorf("body %q", body)
	}
	// A responder asking for more stanzas between key exchanges wins.
	c := newParty(t, bobJID, Config{Ciphers: []string{CipherAES256CTR}, RekeyFreq: 1000})
	sa2, _, _, _ := negotiate(t, a, c)
	if sa2.Params().RekeyFreq != 1000 {
		t.Errorf("rekey_freq %d", sa2.Params().RekeyFreq)
	}
	// Nothing in common: 406 on the field.
	d := newParty(t, bobJID, Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobJID, &StartOptions{Thread: "x"})
	m1 = rewriteForm(t, m1, func(f *form.Form) { f.Field("crypt_algs").Options = options(CipherAES192CTR) })
	r := deliver(t, m1, aliceJID, d.m, true)
	if pe := eventOf[PeerError](t, deliver(t, r.Out[0], bobJID, a.m, true)); strings.Join(pe.Err.Fields, ",") != "crypt_algs" {
		t.Errorf("no common cipher: %+v", pe.Err)
	}
	// An answer with less than the rekey_freq asked for is refused.
	e := newParty(t, bobJID, Config{Ciphers: []string{CipherAES256CTR}, AutoAccept: true})
	_, m1, _ = a.m.Start(bobJID, &StartOptions{Thread: "y"})
	r = deliver(t, m1, aliceJID, e.m, true)
	bad := rewriteForm(t, r.Out[0], func(f *form.Form) { setValue(f, "rekey_freq", "99") })
	var ne *NegotiationError
	if _, err := deliverErr(t, bad, bobJID, a.m, true); !errors.As(err, &ne) || !slices.Contains(ne.Fields, "rekey_freq") {
		t.Errorf("rekey_freq below the request: %v", err)
	}
	for _, c := range []Config{{Ciphers: []string{"twofish128-ctr"}}, {Ciphers: []string{"none"}}, {Stanzas: []string{"chat"}}} {
		if _, err := NewManager(&c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// XEP-0136 §9.1: the logging values offered and answered for each OTR
// preference, both tables of the specification.
func TestOTRTables(t *testing.T) {
	offered := map[OTRMode]string{
		OTRRequire: "mustnot", OTRPrefer: "mustnot,may", OTRApprove: "mustnot,may",
		OTRConcede: "may,mustnot", OTROppose: "may,mustnot", OTRForbid: "may",
	}
	for m, want := range offered {
		if got := strings.Join(m.offered(), ","); got != want {
			t.Errorf("%d offers %s, want %s", m, got, want)
		}
	}
	inits := [][]string{{"mustnot"}, {"mustnot", "may"}, {"may", "mustnot"}, {"may"}}
	answers := map[OTRMode][4]string{
		OTRRequire: {"mustnot", "mustnot", "mustnot", "fail"},
		OTRPrefer:  {"mustnot", "mustnot", "mustnot", "may"},
		OTRApprove: {"mustnot", "mustnot", "may", "may"},
		OTRConcede: {"mustnot", "mustnot", "may", "may"},
		OTROppose:  {"mustnot", "may", "may", "may"},
		OTRForbid:  {"fail", "may", "may", "may"},
	}
	for m, row := range answers {
		for i, opts := range inits {
			got, ok := m.answer(opts)
			if !ok {
				got = "fail"
			}
			if got != row[i] {
				t.Errorf("mode %d, offer %v: %s, want %s", m, opts, got, row[i])
			}
		}
	}
	// End to end: a requester that requires OTR and a responder that
	// forbids it fail; one that concedes agrees on mustnot, exposed on
	// both sessions.
	a := newParty(t, aliceJID, Config{OTR: OTRRequire})
	b := newParty(t, bobJID, Config{OTR: OTRConcede})
	sa, sb, _, _ := negotiate(t, a, b)
	if sa.Params().Logging != LoggingMustNot || sb.Params().Logging != LoggingMustNot {
		t.Errorf("logging %q %q", sa.Params().Logging, sb.Params().Logging)
	}
	c := newParty(t, bobJID, Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobJID, nil)
	r := deliver(t, m1, aliceJID, c.m, true)
	if pe := eventOf[PeerError](t, deliver(t, r.Out[0], bobJID, a.m, true)); strings.Join(pe.Err.Fields, ",") != "logging" {
		t.Errorf("require vs forbid: %+v", pe.Err)
	}
	// A request without a logging field is refused by a client that
	// requires OTR.
	d := newParty(t, bobJID, Config{OTR: OTRRequire, AutoAccept: true})
	_, m1, _ = newParty(t, aliceJID, Config{}).m.Start(bobJID, &StartOptions{Plain: true})
	m1 = rewriteForm(t, m1, func(f *form.Form) {
		f.Fields = slices.DeleteFunc(f.Fields, func(fl *form.Field) bool { return fl.Var == "logging" })
	})
	if r := deliver(t, m1, aliceJID, d.m, true); len(r.Out) != 1 || r.Out[0].Type != "error" {
		t.Errorf("no logging field: %#v", r.Out)
	}
}

func TestGajimProfileLimits(t *testing.T) {
	for _, c := range []Config{
		{Ciphers: []string{CipherAES256CTR}}, {Stanzas: []string{StanzaIQ}}, {RekeyFreq: 10},
		{Key: testKey(t, "rsa_alice")}, {Keys: &MemoryKeys{}},
	} {
		c.Profile = ProfileGajim
		if _, err := NewManager(&c); err == nil {
			t.Errorf("gajim profile with %+v accepted", c)
		}
	}
}
