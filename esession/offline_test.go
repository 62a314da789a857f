package esession

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// offlinePair returns Alice, who publishes offline options, and Bob, who
// holds Alice's key, on a test clock.
func offlinePair(t testing.TB, now *time.Time) (*party, *party, *MemoryOffline, *MemoryKeys) {
	t.Helper()
	clock := func() time.Time { return *now }
	store := &MemoryOffline{}
	a, _ := keyParty(t, aliceJID, "rsa_alice", Config{Offline: store, Now: clock})
	b, bks := keyParty(t, bobJID, "rsa_bob", Config{Now: clock})
	bks.Associate(aliceBar, testKey(t, "rsa_alice").Public(), true)
	return a, b, store, bks
}

func TestOfflineSession(t *testing.T) {
	now := timeAt(0)
	a, b, store, _ := offlinePair(t, &now)
	opts, nonce, err := a.m.PublishOffline(OfflineOptions{Expires: now.Add(8 * hour), MatchResource: "pda"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := form.FromTree(wire(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	if f.Field("accept") != nil || f.Field("init_pubkey") != nil || f.Field("dhkeys") == nil || f.Value("match_resource") != "pda" ||
		slices.Contains(optionsOf(f.Field("stanzas")), StanzaIQ) || len(f.Field("signs").Values) != 1 {
		t.Fatalf("options %s", opts)
	}
	if data, _ := store.LoadOffline(nonce); len(data) == 0 {
		t.Fatal("secrets not stored")
	}
	// Bob, while Alice is offline.
	sb, o, err := b.m.StartOffline(aliceBar, wire(t, opts), els(t, "<body>Hello, Alice!</body>")...)
	if err != nil {
		t.Fatal(err)
	}
	if o.To != aliceBar+"/pda" || len(o.Payload) != 2 || o.Payload[0].Name.Local != "init" || !o.Encrypted {
		t.Fatalf("offline stanza to %s: %s", o.To, payloadXML(o))
	}
	if !sb.Offline() {
		t.Error("Bob's session does not say it is an offline session")
	}
	o2 := exchangeLater(t, sb)
	// Alice comes back and reads.
	now = now.Add(3 * hour)
	r, err := deliverErr(t, o, bobJID, a.m, true)
	if err != nil {
		t.Fatal(err)
	}
	beforeEstablished(t, r)
	est := eventOf[Established](t, r)
	if !est.Offline || !est.Session.Offline() || !est.PeerKey.Equal(testKey(t, "rsa_bob").Public()) || slices.Index(alertsOf(r), KeyNew) < 0 {
		t.Fatalf("established %+v, alerts %v", est, alertsOf(r))
	}
	if body, _ := eventOf[Message](t, r).Body(); body != "Hello, Alice!" {
		t.Errorf("body %q", body)
	}
	if body, _ := eventOf[Message](t, deliver(t, o2, bobJID, a.m, true)).Body(); body != "second" {
		t.Errorf("second body %q", body)
	}
	if _, err := est.Session.Seal(els(t, "<body>no</body>")...); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Alice sent in an offline session: %v", err)
	}
	// Bob terminates; Alice does not answer (XEP-0187 §3.5).
	rt, err := sb.Terminate()
	if err != nil {
		t.Fatal(err)
	}
	pa := probe(est.Session)
	rr := deliver(t, rt.Out[0], bobJID, a.m, true)
	if len(rr.Out) != 0 || est.Session.State() != StateEnded {
		t.Errorf("terminate: %#v", rr)
	}
	pa.check(t)
	// The same exchange again is a replay.
	a.m.Forget(bobJID, est.Session.Thread())
	r, err = deliverErr(t, o, bobJID, a.m, true)
	if rj := eventOf[Rejected](t, r); !strings.Contains(rj.Reason, "replayed") || !errors.Is(err, ErrAuthentication) || len(r.Out) != 0 {
		t.Errorf("replay: %+v %v", rj, err)
	}
	if len(a.m.Sessions()) != 0 {
		t.Error("a session for a replay")
	}
}

func exchangeLater(t *testing.T, s *Session) Outbound {
	t.Helper()
	o, err := s.Seal(els(t, "<body>second</body>")...)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOfflineFailures(t *testing.T) {
	now := timeAt(0)
	a, b, _, bks := offlinePair(t, &now)
	opts, _, err := a.m.PublishOffline(OfflineOptions{Expires: now.Add(hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Options changed on the way: the signature fails.
	f, _ := form.FromTree(wire(t, opts))
	nf := &form.Form{Type: f.Type, Fields: f.Fields}
	nf.Field("crypt_algs").Values = []string{CipherAES256CTR}
	if _, _, err := b.m.StartOffline(aliceBar, nf.Element()); !errors.Is(err, ErrOfflineSignature) {
		t.Errorf("changed options: %v", err)
	}
	// Signed by a key Bob does not hold for Alice.
	c, cks := keyParty(t, bobJID, "rsa_bob", Config{Now: func() time.Time { return now }})
	cks.Associate(aliceBar, testKey(t, "rsa_mallory").Public(), true)
	if _, _, err := c.m.StartOffline(aliceBar, wire(t, opts)); !errors.Is(err, ErrOfflineSignature) {
		t.Errorf("unknown signer: %v", err)
	}
	// A tampered identity: refused without an answer, no session.
	_, o, err := b.m.StartOffline(aliceBar, wire(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	bad := rewriteForm(t, o, func(f *form.Form) { setValue(f, "identity", flipB64(f.Value("identity"))) })
	r, err := deliverErr(t, bad, bobJID, a.m, true)
	if !errors.Is(err, ErrAuthentication) || len(r.Out) != 0 || len(a.m.Sessions()) != 0 {
		t.Errorf("tampered identity: %v %#v", err, r)
	}
	eventOf[Rejected](t, r)
	// Expired: Bob refuses to start, Alice discards.
	_, o, err = b.m.StartOffline(aliceBar, wire(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * hour)
	if _, _, err := b.m.StartOffline(aliceBar, wire(t, opts)); !errors.Is(err, ErrOfflineExpired) {
		t.Errorf("expired options used: %v", err)
	}
	if r, err := deliverErr(t, o, bobJID, a.m, true); !errors.Is(err, ErrOfflineExpired) || len(a.m.Sessions()) != 0 {
		t.Errorf("expired session read: %v %#v", err, r)
	}
	_ = bks
	// Unknown options, and a publisher without a key or store.
	a2, _, _, _ := offlinePair(t, &now)
	if r, _ := deliverErr(t, o, bobJID, a2.m, true); !strings.Contains(eventOf[Rejected](t, r).Reason, "unknown") {
		t.Error("unknown options not refused")
	}
	if _, _, err := newParty(t, aliceJID, Config{}).m.PublishOffline(OfflineOptions{Expires: now.Add(hour)}); err == nil {
		t.Error("published without a key")
	}
}

// FuzzOfflineInit feeds arbitrary offline session stanzas to a client
// that published options.
func FuzzOfflineInit(f *testing.F) {
	now := timeAt(0)
	a, b, _, _ := offlinePair(f, &now)
	a.m.cfg.groups, b.m.cfg.groups = []dhGroup{cheap()}, []dhGroup{cheap()}
	opts, nonce, err := a.m.PublishOffline(OfflineOptions{Expires: now.Add(hour)})
	if err != nil {
		f.Fatal(err)
	}
	_, o, err := b.m.StartOffline(aliceBar, wire(f, opts), els(f, "<body>x</body>")...)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payloadXML(o))
	data, _ := a.m.cfg.offline.LoadOffline(nonce)
	f.Fuzz(func(t *testing.T, payload []byte) {
		st, err := xmltree.Parse([]byte("<message xmlns='jabber:client'><thread>t</thread>"+string(payload)+"</message>"), nil)
		if err != nil {
			return
		}
		store := &MemoryOffline{}
		store.SaveOffline(nonce, data, now.Add(hour))
		c, _ := keyParty(t, aliceJID, "rsa_alice", Config{Offline: store, Now: func() time.Time { return now }})
		c.m.cfg.groups = []dhGroup{cheap()}
		in, err := ParseMessage(st)
		if err != nil {
			return
		}
		in.From = bobJID
		res, err := c.m.Receive(in)
		checkResult(t, res, err)
		if len(res.Out) != 0 {
			t.Fatal("answered an offline session")
		}
	})
}

// FuzzOfflineOptions feeds arbitrary published options to StartOffline.
func FuzzOfflineOptions(f *testing.F) {
	now := timeAt(0)
	a, _, _, _ := offlinePair(f, &now)
	a.m.cfg.groups = []dhGroup{cheap()}
	opts, _, err := a.m.PublishOffline(OfflineOptions{Expires: now.Add(hour)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(opts.Marshal(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		el, err := xmltree.Parse(in, nil)
		if err != nil {
			return
		}
		_, b, _, _ := offlinePair(t, &now)
		b.m.cfg.groups = []dhGroup{cheap()}
		s, o, err := b.m.StartOffline(aliceBar, el)
		if err != nil {
			return
		}
		if s.State() != StateActive || len(o.Payload) != 1 || o.Payload[0].Name.Local != "init" {
			t.Fatalf("started %v %s", s.State(), payloadXML(o))
		}
	})
}
