package esession

import (
	"bytes"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

const (
	aliceJID = "alice@example.org/pda"
	bobJID   = "bob@example.com/laptop"
	bobBare  = "bob@example.com"
	aliceBar = "alice@example.org"
)

type party struct {
	m       *Manager
	jid     string
	secrets *MemorySecrets
}

func newParty(t testing.TB, jid string, c Config) *party {
	t.Helper()
	p := &party{jid: jid, secrets: &MemorySecrets{}}
	if c.Secrets == nil {
		c.Secrets = p.secrets
	}
	m, err := NewManager(&c)
	if err != nil {
		t.Fatal(err)
	}
	p.m = m
	return p
}

func eventOf[T Event](t testing.TB, res Result) T {
	t.Helper()
	for _, e := range res.Events {
		if v, ok := e.(T); ok {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T event in %#v", zero, res.Events)
	return zero
}

// negotiate runs a complete encrypted negotiation from a to b, with b
// accepting by hand, and returns both sessions.
func negotiate(t testing.TB, a, b *party) (*Session, *Session, Established, Established) {
	t.Helper()
	sa, sb, ra, rb := runNegotiation(t, a, b, true)
	eb := eventOf[Established](t, rb)
	ea := eventOf[Established](t, ra)
	if sa.State() != StateActive || sb.State() != StateActive {
		t.Fatalf("states %v %v", sa.State(), sb.State())
	}
	return sa, sb, ea, eb
}

// runNegotiation runs a 4-message negotiation from a to b, b accepting by
// hand or automatically, and returns both sessions and the results of the
// last message each side received.
func runNegotiation(t testing.TB, a, b *party, byHand bool) (*Session, *Session, Result, Result) {
	t.Helper()
	sa, m1, err := a.m.Start(b.jid, nil)
	if err != nil {
		t.Fatal(err)
	}
	auto := b.m.cfg.autoAccept
	b.m.cfg.autoAccept = !byHand
	r2 := deliver(t, m1, a.jid, b.m, true)
	b.m.cfg.autoAccept = auto
	sb := b.m.Session(a.jid, m1.Thread)
	if byHand {
		req := eventOf[RequestReceived](t, r2)
		if !req.Offer.Encrypted || req.Offer.Problem != nil {
			t.Fatalf("offer %+v", req.Offer)
		}
		if r2, err = sb.Accept(); err != nil {
			t.Fatalf("Accept: %v %#v", err, r2)
		}
	}
	next := func(r Result, from string, m *Manager) Result {
		t.Helper()
		if len(r.Out) != 1 {
			t.Fatalf("%s sent %d stanzas: %#v", from, len(r.Out), r)
		}
		return deliver(t, r.Out[0], from, m, true)
	}
	r3 := next(r2, b.jid, a.m)
	r4 := next(r3, a.jid, b.m)
	return sa, sb, next(r4, b.jid, a.m), r4
}

// wipeProbe remembers a session's secret-holding structures so a test can
// check that they were cleared when the session ended.
type wipeProbe struct {
	s   *Session
	ch  *channel
	neg *negotiation
	x   []byte    // the DH secret, held by the negotiation
	set []recvSet // the channel's key sets, with their DH secrets
}

func probe(s *Session) wipeProbe {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := wipeProbe{s: s, ch: s.ch, neg: s.neg}
	if s.ch != nil {
		p.set = s.ch.rk.sets
	} else if s.neg != nil {
		p.x = s.neg.x
	}
	return p
}

func (p wipeProbe) check(t testing.TB) {
	t.Helper()
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step != stepEnded || s.ch != nil || s.neg != nil || s.haveRS || s.rs != [32]byte{} {
		t.Errorf("session not wiped: step %v ch %v neg %v haveRS %v", s.step, s.ch != nil, s.neg != nil, s.haveRS)
	}
	if !allZero(p.x) {
		t.Error("DH secret not cleared")
	}
	for _, rs := range p.set {
		if !allZero(rs.x) || rs.kc != [32]byte{} || rs.km != [32]byte{} {
			t.Error("a key set not cleared")
		}
	}
	if c := p.ch; c != nil {
		if c.send.kc != [32]byte{} || c.send.km != [32]byte{} || c.recv.kc != [32]byte{} || c.recv.km != [32]byte{} || c.send.block != nil || c.recv.block != nil {
			t.Error("channel keys not cleared")
		}
	}
	if n := p.neg; n != nil {
		if n.k != [32]byte{} || len(n.xs) != 0 || !allZero(n.x) || !allZero(n.nA) || !allZero(n.nB) {
			t.Error("negotiation secrets not cleared")
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestEncryptedSession(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, sb, ea, eb := negotiate(t, a, b)
	if ea.SAS == "" || ea.SAS != eb.SAS || len(ea.SAS) != 5 {
		t.Fatalf("SAS %q %q", ea.SAS, eb.SAS)
	}
	if ea.Verified || eb.Verified || ea.SecretMatched || ea.ContinuityBroken {
		t.Errorf("first session: %+v", ea)
	}
	if sa.Params().Group != 14 || sa.Params().Security != "e2e" || sa.Params().Logging != "may" {
		t.Errorf("params %+v", sa.Params())
	}
	if sb.Peer() != aliceJID || sa.Peer() != bobJID {
		t.Errorf("bound to %q and %q", sb.Peer(), sa.Peer())
	}
	// Both directions; counters advance by one per full or partial block.
	for i, msg := range []string{"hi", strings.Repeat("x", 16), strings.Repeat("é", 40), ""} {
		for _, dir := range []struct {
			from, to *Session
			fromJID  string
			m        *Manager
		}{{sa, sb, aliceJID, b.m}, {sb, sa, bobJID, a.m}} {
			content := "<body>" + msg + "</body>"
			before := dir.from.ch.send.ctr
			o, err := dir.from.Seal(els(t, content)...)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Encrypted || o.Type != "chat" || bytes.Contains(payloadXML(o), []byte(msg+"<")) && msg != "" {
				t.Fatalf("stanza %d not encrypted: %s", i, o.Payload)
			}
			want := before
			want.add(uint64((len(content) + 15) / 16))
			if dir.from.ch.send.ctr != want {
				t.Errorf("counter advanced to %x, want %x", dir.from.ch.send.ctr, want)
			}
			r := deliver(t, o, dir.fromJID, dir.m, true)
			got := eventOf[Message](t, r)
			if body, ok := got.Body(); !ok || body != msg {
				t.Errorf("received %q (%v), want %q", body, ok, msg)
			}
			if dir.to.ch.recv.ctr != want {
				t.Error("receiver counter out of step")
			}
		}
	}
	// Encrypted terminate and encrypted acknowledgement (XEP-0217 §6).
	pa, pb := probe(sa), probe(sb)
	rt, err := sa.Terminate()
	if err != nil || len(rt.Out) != 1 || !rt.Out[0].Encrypted || bytes.Contains(payloadXML(rt.Out[0]), []byte("terminate")) {
		t.Fatalf("terminate %v %#v", err, rt)
	}
	if _, err := sa.Seal(els(t, "<body>late</body>")...); !errors.Is(err, ErrState) {
		t.Errorf("Seal after terminate: %v", err)
	}
	if pa.ch.send.block != nil || pa.ch.send.km != [32]byte{} {
		t.Error("sending keys kept after terminate")
	}
	// A message Bob sent before seeing the terminate is still readable.
	inflight, _ := sb.Seal(els(t, "<body>crossing</body>")...)
	ack := deliver(t, rt.Out[0], aliceJID, b.m, true)
	tb := eventOf[Terminated](t, ack)
	if !tb.ByPeer || tb.Err != nil || len(ack.Out) != 1 || !ack.Out[0].Encrypted {
		t.Fatalf("bob on terminate: %+v %#v", tb, ack)
	}
	pb.check(t)
	if m := eventOf[Message](t, deliver(t, inflight, bobJID, a.m, true)); m.Content == nil {
		t.Error("in-flight message lost")
	}
	done := deliver(t, ack.Out[0], bobJID, a.m, true)
	if ta := eventOf[Terminated](t, done); ta.ByPeer || ta.Err != nil {
		t.Errorf("alice on ack: %+v", ta)
	}
	pa.check(t)
	// The thread is spent: anything more is rejected.
	eventOf[Rejected](t, deliver(t, inflight, bobJID, a.m, true))
	if _, err := sa.Terminate(); !errors.Is(err, ErrEnded) {
		t.Errorf("second Terminate: %v", err)
	}
}

func TestRetainedSecretChain(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, sb, ea, _ := negotiate(t, a, b)
	if ea.Verified || sa.Verified() {
		t.Fatal("verified without a SAS comparison")
	}
	if err := sa.ConfirmSAS(); err != nil {
		t.Fatal(err)
	}
	if err := sb.ConfirmSAS(); err != nil {
		t.Fatal(err)
	}
	if !sa.Verified() || !sb.Verified() {
		t.Fatal("ConfirmSAS did not verify")
	}
	closeBoth(t, sa, sb)

	// Second session: the retained secret matches and the chain is verified.
	sa2, sb2, ea2, eb2 := negotiate(t, a, b)
	if !ea2.SecretMatched || !eb2.SecretMatched || !ea2.Verified || !eb2.Verified || !sa2.Verified() || !sb2.Verified() {
		t.Fatalf("second session: %+v %+v", ea2, eb2)
	}
	for _, p := range []struct {
		s    *MemorySecrets
		peer string
	}{{a.secrets, bobBare}, {b.secrets, aliceBar}} {
		list, _ := p.s.Lookup(p.peer)
		if len(list) != 1 || !list[0].Verified {
			t.Errorf("secrets for %s: %d, verified %v (the old one must be replaced)", p.peer, len(list), len(list) > 0 && list[0].Verified)
		}
	}
	closeBoth(t, sa2, sb2)

	// Bob loses his secrets (a reinstall, or a man in the middle): Alice
	// sees the continuity break and nobody is verified.
	b.secrets.Forget(aliceBar)
	sa3, sb3, ea3, eb3 := negotiate(t, a, b)
	if ea3.SecretMatched || ea3.Verified || !ea3.ContinuityBroken || eb3.ContinuityBroken || eb3.Verified || sa3.Verified() {
		t.Fatalf("after loss: %+v %+v", ea3, eb3)
	}
	closeBoth(t, sa3, sb3)

	// Only Alice confirms: the next session is verified for her only.
	sa4, sb4, _, _ := negotiate(t, a, b)
	if err := sa4.ConfirmSAS(); err != nil {
		t.Fatal(err)
	}
	closeBoth(t, sa4, sb4)
	_, _, ea5, eb5 := negotiate(t, a, b)
	if !ea5.SecretMatched || !eb5.SecretMatched || !ea5.Verified || eb5.Verified {
		t.Fatalf("one-sided confirmation: %+v %+v", ea5, eb5)
	}
}

func TestExpiredSecretIsNotUsed(t *testing.T) {
	now := timeAt(0)
	clock := func() timeT { return now }
	a := newParty(t, aliceJID, Config{Now: clock, SecretLifetime: hour})
	b := newParty(t, bobJID, Config{Now: clock, SecretLifetime: hour})
	sa, sb, _, _ := negotiate(t, a, b)
	closeBoth(t, sa, sb)
	now = timeAt(2 * hour)
	_, _, ea, eb := negotiate(t, a, b)
	if ea.SecretMatched || eb.SecretMatched {
		t.Errorf("expired secret matched: %+v %+v", ea, eb)
	}
}

func closeBoth(t testing.TB, ss ...*Session) {
	t.Helper()
	for _, s := range ss {
		s.Close()
	}
}

func TestAutoAcceptOnlySubscribed(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobBare, nil)
	r := deliver(t, m1, aliceJID, b.m, false)
	if len(r.Out) != 0 {
		t.Fatalf("answered an unsubscribed requester: %#v", r.Out)
	}
	if req := eventOf[RequestReceived](t, r); req.Subscribed {
		t.Error("Subscribed reported")
	}
	_, m1b, _ := a.m.Start(bobBare, nil)
	r = deliver(t, m1b, aliceJID, b.m, true)
	if len(r.Out) != 1 || len(r.Events) != 0 {
		t.Fatalf("subscribed requester not auto-accepted: %#v", r)
	}
	// Nor is a request that the server stored while Bob was offline.
	_, m1d, _ := a.m.Start(bobBare, nil)
	m1d.Payload = append(m1d.Payload, els(t, "<delay xmlns='urn:xmpp:delay' stamp='2007-05-30T12:00:00Z'/>")...)
	r = deliver(t, m1d, aliceJID, b.m, true)
	if len(r.Out) != 0 || !eventOf[RequestReceived](t, r).Delayed {
		t.Fatalf("delayed request: %#v", r)
	}
	// A request that cannot be accepted gets no automatic error either.
	req := rewriteForm(t, m1, func(f *form.Form) { f.Field("modp").Options = options("5") })
	req.Thread = "other"
	r = deliver(t, req, aliceJID, b.m, false)
	if len(r.Out) != 0 || eventOf[RequestReceived](t, r).Offer.Problem == nil {
		t.Fatalf("unsubscribed: %#v", r)
	}
}

func TestDecline(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, m1, _ := a.m.Start(bobBare, nil)
	pa := probe(sa)
	sb := eventOf[RequestReceived](t, deliver(t, m1, aliceJID, b.m, false)).Session
	o, err := sb.Decline("Sorry, can't chat now!")
	if err != nil {
		t.Fatal(err)
	}
	d := eventOf[Declined](t, deliver(t, o, bobJID, a.m, true))
	if d.Reason != "Sorry, can't chat now!" || sa.State() != StateEnded || sb.State() != StateEnded {
		t.Errorf("decline %+v, states %v %v", d, sa.State(), sb.State())
	}
	pa.check(t)
	if _, err := sb.Accept(); !errors.Is(err, ErrEnded) {
		t.Errorf("Accept after Decline: %v", err)
	}
}

func TestPlainSession(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	sa, m1, err := a.m.Start(bobBare, &StartOptions{Plain: true, Thread: "t1"})
	if err != nil || sa.Thread() != "t1" || !m1.NoStore || m1.NoCopy {
		t.Fatalf("%v %+v", err, m1)
	}
	r := deliver(t, m1, aliceJID, b.m, true)
	r2 := deliver(t, r.Out[0], bobJID, a.m, true)
	if eventOf[Established](t, r2).Encrypted || len(r2.Out) != 1 {
		t.Fatalf("alice: %#v", r2)
	}
	r3 := deliver(t, r2.Out[0], aliceJID, b.m, true)
	sb := eventOf[Established](t, r3).Session
	if sb.Params().Security != "c2s" || sa.Params().Security != "c2s" {
		t.Errorf("params %+v %+v", sa.Params(), sb.Params())
	}
	o, _ := sa.Seal(els(t, "<body>plain</body>")...)
	if o.Encrypted || string(payloadXML(o)) != "<body>plain</body>" {
		t.Errorf("plain seal %+v", o)
	}
	if r := deliver(t, o, aliceJID, b.m, true); !r.Unhandled {
		t.Errorf("plain message handled: %#v", r)
	}
	if err := sa.ConfirmSAS(); err == nil {
		t.Error("ConfirmSAS on a plain session")
	}
	// Renegotiation of logging (XEP-0155 §6).
	ro, err := sa.Renegotiate("may")
	if err != nil {
		t.Fatal(err)
	}
	rr := deliver(t, ro, aliceJID, b.m, true)
	if !eventOf[Renegotiated](t, rr).Accepted || len(rr.Out) != 1 {
		t.Fatalf("bob renegotiation: %#v", rr)
	}
	if !eventOf[Renegotiated](t, deliver(t, rr.Out[0], bobJID, a.m, true)).Accepted {
		t.Error("alice renegotiation")
	}
	// Bob moves to another resource (XEP-0155 §5).
	co, err := sb.Continue("phone")
	if err != nil {
		t.Fatal(err)
	}
	rc := deliver(t, co, bobJID, a.m, true)
	if mv := eventOf[Moved](t, rc); mv.To != "bob@example.com/phone" || sa.Peer() != "bob@example.com/phone" {
		t.Errorf("moved %+v peer %q", mv, sa.Peer())
	}
	if mv := eventOf[Moved](t, deliver(t, rc.Out[0], aliceJID, b.m, true)); mv.To != "bob@example.com/phone" || sb.State() != StateEnded {
		t.Errorf("bob after ack: %+v %v", mv, sb.State())
	}
	// Plain terminate with acknowledgement, to the new resource.
	rt, _ := sa.Terminate()
	if rt.Out[0].To != "bob@example.com/phone" || sa.State() != StateEnded {
		t.Errorf("terminate %+v", rt.Out[0])
	}
}

func TestPlainTerminateAck(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	sa, m1, _ := a.m.Start(bobJID, &StartOptions{Plain: true})
	r := deliver(t, m1, aliceJID, b.m, true)
	r2 := deliver(t, r.Out[0], bobJID, a.m, true)
	sb := eventOf[Established](t, deliver(t, r2.Out[0], aliceJID, b.m, true)).Session
	rt, _ := sb.Terminate()
	ack := deliver(t, rt.Out[0], bobJID, a.m, true)
	if !eventOf[Terminated](t, ack).ByPeer || len(ack.Out) != 1 || sa.State() != StateEnded {
		t.Fatalf("%#v", ack)
	}
	f := rewriteForm(t, ack.Out[0], func(*form.Form) {})
	if !bytes.Contains(payloadXML(f), []byte(`type="result"`)) {
		t.Errorf("ack is not a result form: %s", f.Payload)
	}
}

// rewriteForm parses an outbound negotiation message, lets edit change its
// form, and rebuilds it.
func rewriteForm(t testing.TB, o Outbound, edit func(*form.Form)) Outbound {
	t.Helper()
	local, ns := "feature", NSFeatureNeg
	if o.Payload[0].Name.Local == "init" {
		local, ns = "init", NSInit
	}
	pf, err := parseFeature(o.Payload[0], ns, local)
	if err != nil {
		t.Fatal(err)
	}
	f := pf.form
	nf := &form.Form{Type: f.Type, Fields: f.Fields}
	edit(nf)
	o.Payload = []*xmltree.Element{xmltree.New(ns, local).Append(nf.Element())}
	return o
}

func setValue(f *form.Form, v string, vals ...string) {
	if fl := f.Field(v); fl != nil {
		fl.Values = vals
		return
	}
	f.Fields = append(f.Fields, &form.Field{Var: v, Values: vals})
}

func TestRequestErrors(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	cases := []struct {
		name   string
		edit   func(*form.Form)
		cond   string
		fields []string
	}{
		{"weak groups only", func(f *form.Form) {
			f.Field("modp").Options = options("1", "2", "5")
			setValue(f, "dhhashes", "AA==", "AA==", "AA==")
		}, CondNotAcceptable, []string{"modp"}},
		{"unknown required field", func(f *form.Form) {
			f.Fields = append(f.Fields, &form.Field{Var: "urn:example:teleport", Required: true})
		}, CondFeatureNotImplemented, []string{"urn:example:teleport"}},
		{"required language", func(f *form.Form) {
			f.Fields = append(f.Fields, &form.Field{Var: "language", Type: form.ListSingle, Required: true, Options: options("en")})
		}, CondFeatureNotImplemented, []string{"language"}},
		{"three-message variant", func(f *form.Form) { setValue(f, "dhkeys", "AQ==") }, CondFeatureNotImplemented, []string{"dhkeys"}},
		{"bad cipher", func(f *form.Form) { setValue(f, "crypt_algs", "des-ctr") }, CondNotAcceptable, []string{"crypt_algs"}},
		{"public keys", func(f *form.Form) { setValue(f, "init_pubkey", "key") }, CondNotAcceptable, []string{"init_pubkey"}},
		{"disclosure", func(f *form.Form) { f.Field("disclosure").Options = options("enabled") }, CondNotAcceptable, []string{"disclosure"}},
		{"logging mustnot only", func(f *form.Form) { f.Field("logging").Options = options("mustnot") }, CondNotAcceptable, []string{"logging"}},
		{"version", func(f *form.Form) { f.Field("ver").Options = options("2.0") }, CondNotAcceptable, []string{"ver"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sa, m1, _ := a.m.Start(bobBare, &StartOptions{Thread: "t" + string(rune('a'+i))})
			req := rewriteForm(t, m1, c.edit)
			r, err := deliverErr(t, req, aliceJID, b.m, true)
			if err != nil || len(r.Out) != 1 || r.Out[0].Type != "error" {
				t.Fatalf("%v %#v", err, r)
			}
			if !bytes.Contains(payloadXML(r.Out[0]), []byte(`<feature xmlns="`+NSFeatureNeg+`"><x`)) {
				t.Errorf("request not echoed: %s", r.Out[0].Payload)
			}
			pe := eventOf[PeerError](t, deliver(t, r.Out[0], bobJID, a.m, true))
			if pe.Err.Condition != c.cond || strings.Join(pe.Err.Fields, ",") != strings.Join(c.fields, ",") {
				t.Errorf("error %+v, want %s %v", pe.Err, c.cond, c.fields)
			}
			if sa.State() != StateEnded {
				t.Error("alice session still live")
			}
		})
	}
	// A group list with a weak group first still selects 14.
	_, m1, _ := a.m.Start(bobBare, &StartOptions{Thread: "weak-first"})
	req := rewriteForm(t, m1, func(f *form.Form) {
		f.Field("modp").Options = options("5", "14")
		f.Field("dhhashes").Values = append([]string{"AA=="}, f.Field("dhhashes").Values...)
	})
	r := deliver(t, req, aliceJID, b.m, true)
	if len(r.Out) != 1 || !bytes.Contains(payloadXML(r.Out[0]), []byte(`<field var="modp"><value>14</value>`)) {
		t.Errorf("weak-first: %s", r.Out[0].Payload)
	}
}

func TestServiceUnavailable(t *testing.T) {
	b := newParty(t, bobJID, Config{})
	other := Outbound{To: bobJID, Thread: "x", Payload: []*xmltree.Element{feature(form.New(form.TypeForm, hidden("FORM_TYPE", "urn:example:other"), field("accept", "1")))}}
	r := deliver(t, other, aliceJID, b.m, true)
	if len(r.Out) != 1 || !bytes.Contains(payloadXML(r.Out[0]), []byte("<service-unavailable")) || !bytes.Contains(payloadXML(r.Out[0]), []byte(`code="503"`)) {
		t.Fatalf("%#v", r)
	}
	if r := deliver(t, other, aliceJID, b.m, false); len(r.Out) != 0 {
		t.Error("503 sent to an unsubscribed peer")
	}
	ne := parseError(r.Out[0].Payload[len(r.Out[0].Payload)-1])
	if ne.Condition != CondServiceUnavailable {
		t.Errorf("parsed %+v", ne)
	}
}

func TestBadAnswers(t *testing.T) {
	b := newParty(t, bobJID, Config{AutoAccept: true})
	g := modp.MustGroup(14)
	pm1 := new(big.Int).Sub(g.P(), big.NewInt(1))
	cases := []struct {
		name  string
		edit  func(*form.Form)
		field string
	}{
		{"d = p-1", func(f *form.Form) { setValue(f, "dhkeys", b64.EncodeToString(pm1.Bytes())) }, "dhkeys"},
		{"d = 1", func(f *form.Form) { setValue(f, "dhkeys", b64.EncodeToString([]byte{1})) }, "dhkeys"},
		{"d = p", func(f *form.Form) { setValue(f, "dhkeys", b64.EncodeToString(g.P().Bytes())) }, "dhkeys"},
		{"wrong nonce", func(f *form.Form) { setValue(f, "nonce", "AAAAAAAAAAAAAAAAAAAAAA==") }, "nonce"},
		{"group not offered", func(f *form.Form) { setValue(f, "modp", "5") }, "modp"},
		{"long counter", func(f *form.Form) { setValue(f, "counter", b64.EncodeToString(make([]byte, 17))) }, "counter"},
		{"counter over 2^128", func(f *form.Form) { setValue(f, "counter", b64.EncodeToString(append([]byte{1}, make([]byte, 16)...))) }, "counter"},
		{"security downgraded", func(f *form.Form) { setValue(f, "security", "c2s") }, "security"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newParty(t, aliceJID, Config{})
			sa, m1, _ := a.m.Start(bobJID, nil)
			pa := probe(sa)
			r := deliver(t, m1, aliceJID, b.m, true)
			bad := rewriteForm(t, r.Out[0], c.edit)
			r2, err := deliverErr(t, bad, bobJID, a.m, true)
			var ne *NegotiationError
			if !errors.As(err, &ne) || ne.Condition != CondNotAcceptable || !contains(ne.Fields, c.field) {
				t.Fatalf("error %v", err)
			}
			if len(r2.Out) != 1 || r2.Out[0].Type != "error" || !bytes.Contains(payloadXML(r2.Out[0]), []byte(`<field var="`+c.field+`"></field>`)) {
				t.Errorf("reply %#v", r2.Out)
			}
			pa.check(t)
		})
	}
}

// forgeMessage3 builds a message 3 as a malicious initiator would, using
// public value e and a guessed DH secret K.
func forgeMessage3(t testing.TB, m1, m2 Outbound, e *big.Int, k [32]byte) Outbound {
	t.Helper()
	f1, _ := parseFeature(m1.Payload[0], NSFeatureNeg, "feature")
	f2, _ := parseFeature(m2.Payload[0], NSFeatureNeg, "feature")
	nA, _ := b64.DecodeString(f1.form.Value("my_nonce"))
	nB, _ := b64.DecodeString(f2.form.Value("my_nonce"))
	cb, _ := b64.DecodeString(f2.form.Value("counter"))
	var ca counter
	new(big.Int).SetBytes(cb).FillBytes(ca[:])
	kA := deriveKeys(&k, true, 16)
	fields := []*form.Field{field("accept", "1"), field("nonce", b64.EncodeToString(nB)), field("dhkeys", b64.EncodeToString(mpi(e))), field("rshashes", "AAAA")}
	formA2 := ssnForm(form.TypeResult, fields...).Canonical()
	macA := sigmaMAC(&kA.ks, nB, nA, mpi(e), nil, f1.form.Canonical(), formA2)
	id, mA := hideIdentity(&kA, &ca, macA[:], conv{})
	fields = append(fields, field("identity", b64.EncodeToString(id[:])), field("mac", b64.EncodeToString(mA[:])))
	return Outbound{To: m2.To, Thread: m1.Thread, Payload: []*xmltree.Element{feature(ssnForm(form.TypeResult, fields...))}}
}

func TestBadMessage3(t *testing.T) {
	g := modp.MustGroup(14)
	pm1 := new(big.Int).Sub(g.P(), big.NewInt(1))
	one := big.NewInt(1)
	type tc struct {
		name string
		// commit, if set, replaces the hash commitment of message 1 with
		// H(MPI(e)) of this value.
		commit *big.Int
		make   func(t *testing.T, m1, m2, m3 Outbound) Outbound
	}
	cases := []tc{
		{"bad hash commitment", nil, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			// a different, valid e with a correctly computed identity for
			// it: only the commitment can catch it
			x, _ := modp.RandomExponent(randReader(), 32)
			e := g.Public(x)
			d := dValue(t, m2)
			z, _ := g.SharedSecret(d, x)
			return forgeMessage3(t, m1, m2, e, sharedSecret(z))
		}},
		{"e = p-1 (small subgroup)", pm1, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			// (p-1)^y is 1 or p-1: the forger guesses 1
			return forgeMessage3(t, m1, m2, pm1, sharedSecret(one))
		}},
		{"e = p-1 other guess", pm1, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			return forgeMessage3(t, m1, m2, pm1, sharedSecret(pm1))
		}},
		{"e = 1", one, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			return forgeMessage3(t, m1, m2, one, sharedSecret(one))
		}},
		{"bad M_A", nil, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			return rewriteForm(t, m3, func(f *form.Form) { setValue(f, "mac", flipB64(f.Value("mac"))) })
		}},
		{"bad identity", nil, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			return rewriteForm(t, m3, func(f *form.Form) { setValue(f, "identity", flipB64(f.Value("identity"))) })
		}},
		{"bad mac_A (form_A2 changed)", nil, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			// identity and M_A intact; only the MACed form differs
			return rewriteForm(t, m3, func(f *form.Form) { setValue(f, "rshashes", "AAAA") })
		}},
		{"wrong nonce", nil, func(t *testing.T, m1, m2, m3 Outbound) Outbound {
			return rewriteForm(t, m3, func(f *form.Form) { setValue(f, "nonce", "AAAA") })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newParty(t, aliceJID, Config{})
			b := newParty(t, bobJID, Config{AutoAccept: true})
			_, m1, _ := a.m.Start(bobJID, nil)
			if c.commit != nil {
				he := dhHash(c.commit)
				m1 = rewriteForm(t, m1, func(f *form.Form) { setValue(f, "dhhashes", b64.EncodeToString(he[:])) })
			}
			r2 := deliver(t, m1, aliceJID, b.m, true)
			sb := b.m.Session(aliceJID, m1.Thread)
			pb := probe(sb)
			m3 := deliver(t, r2.Out[0], bobJID, a.m, true).Out[0]
			bad := c.make(t, m1, r2.Out[0], m3)
			r4, err := deliverErr(t, bad, aliceJID, b.m, true)
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			if te := eventOf[Terminated](t, r4); !errors.Is(te.Err, ErrAuthentication) {
				t.Errorf("event %+v", te)
			}
			if len(r4.Out) != 1 || !bytes.Contains(payloadXML(r4.Out[0]), []byte("<feature-not-implemented")) {
				t.Errorf("reply %#v", r4.Out)
			}
			pb.check(t)
		})
	}
}

func dValue(t testing.TB, m2 Outbound) *big.Int {
	f, err := parseFeature(m2.Payload[0], NSFeatureNeg, "feature")
	if err != nil {
		t.Fatal(err)
	}
	db, _ := b64.DecodeString(f.form.Value("dhkeys"))
	return new(big.Int).SetBytes(db)
}

func flipB64(s string) string {
	b, _ := b64.DecodeString(s)
	b[len(b)/2] ^= 0x01
	return b64.EncodeToString(b)
}

func TestBadMessage4(t *testing.T) {
	cases := map[string]func(f *form.Form){
		"bad M_B":                     func(f *form.Form) { setValue(f, "mac", flipB64(f.Value("mac"))) },
		"bad identity":                func(f *form.Form) { setValue(f, "identity", flipB64(f.Value("identity"))) },
		"bad mac_B (form_B2 changed)": func(f *form.Form) { setValue(f, "srshash", flipB64(f.Value("srshash"))) },
		"wrong nonce":                 func(f *form.Form) { setValue(f, "nonce", "AAAA") },
		"missing mac":                 func(f *form.Form) { f.Fields = f.Fields[:len(f.Fields)-1] },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			a := newParty(t, aliceJID, Config{})
			b := newParty(t, bobJID, Config{AutoAccept: true})
			sa, m1, _ := a.m.Start(bobJID, nil)
			r2 := deliver(t, m1, aliceJID, b.m, true)
			r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
			pa := probe(sa)
			r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
			sb := eventOf[Established](t, r4).Session
			// Bob sends encrypted content with message 4: it must be
			// ignored when message 4 does not verify.
			c, _ := sb.Seal(els(t, "<body>secret</body>")...)
			m4 := rewriteForm(t, r4.Out[0], edit)
			m4.Payload = append(m4.Payload, c.Payload...)
			r5, err := deliverErr(t, m4, bobJID, a.m, true)
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			for _, e := range r5.Events {
				if _, ok := e.(Message); ok {
					t.Error("content delivered from an unverified message 4")
				}
			}
			pa.check(t)
		})
	}
	// And the good case: message 4 with encrypted content is delivered.
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobJID, nil)
	r2 := deliver(t, m1, aliceJID, b.m, true)
	r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
	r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
	c, _ := eventOf[Established](t, r4).Session.Seal(els(t, "<body>with init</body>")...)
	m4 := r4.Out[0]
	m4.Payload = append(m4.Payload, c.Payload...)
	r5 := deliver(t, m4, bobJID, a.m, true)
	if body, _ := eventOf[Message](t, r5).Body(); body != "with init" {
		t.Errorf("body %q", body)
	}
}

// TestTamperedStanzas checks that every tampered, replayed or reordered
// <c/> ends the session on the receiving side with its keys wiped.
func TestTamperedStanzas(t *testing.T) {
	cases := map[string]func(t *testing.T, sa *Session) []Outbound{
		"bit flip in data": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>pay 10</body>")...)
			p := payloadXML(o)
			i := bytes.Index(p, []byte("<data>")) + 8
			if p[i] == 'A' {
				p[i] = 'B'
			} else {
				p[i] = 'A'
			}
			return []Outbound{withPayloadXML(t, o, p)}
		},
		"bad mac": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>x</body>")...)
			p := payloadXML(o)
			i := bytes.Index(p, []byte("<mac>")) + 6
			p[i] ^= 0x01
			return []Outbound{withPayloadXML(t, o, p)}
		},
		"replayed": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>once</body>")...)
			return []Outbound{o, o}
		},
		"reordered": func(t *testing.T, sa *Session) []Outbound {
			o1, _ := sa.Seal(els(t, "<body>1</body>")...)
			o2, _ := sa.Seal(els(t, "<body>2</body>")...)
			return []Outbound{o2, o1}
		},
		"dropped": func(t *testing.T, sa *Session) []Outbound {
			sa.Seal(els(t, "<body>lost</body>")...)
			o2, _ := sa.Seal(els(t, "<body>2</body>")...)
			return []Outbound{o2}
		},
		"mac removed": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>x</body>")...)
			p := payloadXML(o)
			i := bytes.Index(p, []byte("<mac>"))
			return []Outbound{withPayloadXML(t, o, append(p[:i:i], "</c>"...))}
		},
		"re-key element": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>x</body>")...)
			p := bytes.Replace(payloadXML(o), []byte("<mac>"), []byte("<key>AAAA</key><mac>"), 1)
			return []Outbound{withPayloadXML(t, o, p)}
		},
		"malformed plaintext": func(t *testing.T, sa *Session) []Outbound {
			return []Outbound{sealRaw(t, sa, "<body>unclosed")}
		},
		"plaintext with a DTD": func(t *testing.T, sa *Session) []Outbound {
			return []Outbound{sealRaw(t, sa, "<!DOCTYPE x [<!ENTITY a 'b'>]><body>&a;</body>")}
		},
		"data truncated": func(t *testing.T, sa *Session) []Outbound {
			o, _ := sa.Seal(els(t, "<body>0123456789abcdef0123456789</body>")...)
			p := bytes.Replace(payloadXML(o), []byte("</data>"), []byte("AAAA</data>"), 1)
			return []Outbound{withPayloadXML(t, o, p)}
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			a := newParty(t, aliceJID, Config{})
			b := newParty(t, bobJID, Config{})
			sa, sb, _, _ := negotiate(t, a, b)
			pb := probe(sb)
			var lastErr error
			var last Result
			for _, o := range mk(t, sa) {
				last, lastErr = deliverErr(t, o, aliceJID, b.m, true)
				if lastErr != nil {
					break
				}
			}
			if !errors.Is(lastErr, ErrAuthentication) {
				t.Fatalf("error %v", lastErr)
			}
			if te := eventOf[Terminated](t, last); !errors.Is(te.Err, ErrAuthentication) || te.Reason != "message authentication failed" {
				t.Errorf("event %+v", te)
			}
			if len(last.Out) != 1 || !bytes.Contains(payloadXML(last.Out[0]), []byte("<not-acceptable")) {
				t.Errorf("reply %#v", last.Out)
			}
			pb.check(t)
		})
	}
}

func TestUnencryptedSiblingsStripped(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, _, _, _ := negotiate(t, a, b)
	o, _ := sa.Seal(els(t, "<body>real</body>")...)
	o.Payload = append(o.Payload, els(t, "<body>injected</body><html xmlns='http://jabber.org/protocol/xhtml-im'/>")...)
	r := deliver(t, o, aliceJID, b.m, true)
	m := eventOf[Message](t, r)
	if body, _ := m.Body(); body != "real" || bytes.Contains(marshalContent(m.Content), []byte("injected")) {
		t.Errorf("content %s", marshalContent(m.Content))
	}
	if strings.Join(m.Stripped, ",") != "body,html" {
		t.Errorf("stripped %v", m.Stripped)
	}
	// A plain message on the encrypted thread is flagged, not delivered
	// as part of the session.
	plain := Outbound{To: bobJID, Type: "chat", Thread: sa.Thread(), Payload: els(t, "<body>spoof</body>")}
	eventOf[Unencrypted](t, deliver(t, plain, aliceJID, b.m, true))
	// Stanzas from another resource of the peer are refused.
	o2, _ := sa.Seal(els(t, "<body>x</body>")...)
	if r := deliver(t, o2, "alice@example.org/other", b.m, true); len(r.Out) != 0 {
		t.Errorf("%#v", r)
	} else {
		eventOf[Rejected](t, r)
	}
}

func TestSecondAnswerFromAnotherResource(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b1 := newParty(t, bobJID, Config{AutoAccept: true})
	b2 := newParty(t, "bob@example.com/phone", Config{AutoAccept: true})
	sa, m1, _ := a.m.Start(bobBare, nil) // to the bare JID: both resources get it
	r1 := deliver(t, m1, aliceJID, b1.m, true)
	r2 := deliver(t, m1, aliceJID, b2.m, true)
	r3 := deliver(t, r1.Out[0], bobJID, a.m, true)
	if sa.Peer() != bobJID || len(r3.Out) != 1 {
		t.Fatalf("not bound to the first responder: %q", sa.Peer())
	}
	pa := probe(sa)
	r4, err := deliverErr(t, r2.Out[0], "bob@example.com/phone", a.m, true)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("second answer: %v", err)
	}
	eventOf[Terminated](t, r4)
	pa.check(t)
	to := map[string]bool{}
	for _, o := range r4.Out {
		to[o.To] = true
	}
	if !to[bobJID] || !to["bob@example.com/phone"] {
		t.Errorf("cancels sent to %v", to)
	}
	// Bob's first resource drops its half-open session on the cancel.
	for _, o := range r4.Out {
		if o.To == bobJID {
			deliver(t, o, aliceJID, b1.m, true)
		}
	}
	if s := b1.m.Session(aliceBar, sa.Thread()); s.State() != StateEnded {
		t.Errorf("bob/laptop state %v", s.State())
	}
	// Message 3 arriving after the abort is refused.
	eventOf[Rejected](t, deliver(t, r3.Out[0], aliceJID, b1.m, true))

	// Once active, a replayed message 2 ends the session too.
	c := newParty(t, aliceJID, Config{})
	d := newParty(t, bobJID, Config{AutoAccept: true})
	sc, m1c, _ := c.m.Start(bobJID, nil)
	rc := deliver(t, m1c, aliceJID, d.m, true)
	rc3 := deliver(t, rc.Out[0], bobJID, c.m, true)
	rc4 := deliver(t, rc3.Out[0], aliceJID, d.m, true)
	deliver(t, rc4.Out[0], bobJID, c.m, true)
	if _, err := deliverErr(t, rc.Out[0], bobJID, c.m, true); !errors.Is(err, ErrAuthentication) || sc.State() != StateEnded {
		t.Errorf("replayed message 2: %v %v", err, sc.State())
	}
}

func TestEncryptedRenegotiateAndContinue(t *testing.T) {
	a := newParty(t, aliceJID, Config{OTR: OTRConcede})
	b := newParty(t, bobJID, Config{})
	sa, sb, _, _ := negotiate(t, a, b)
	// Renegotiation travels encrypted (XEP-0217 §6) and is accepted.
	ro, err := sa.Renegotiate(LoggingMustNot, LoggingMay)
	if err != nil || !ro.Encrypted || bytes.Contains(payloadXML(ro), []byte("renegotiate")) {
		t.Fatalf("Renegotiate: %v %s", err, payloadXML(ro))
	}
	rr := deliver(t, ro, aliceJID, b.m, true)
	if rn := eventOf[Renegotiated](t, rr); !rn.Accepted || len(rr.Out) != 1 || !rr.Out[0].Encrypted {
		t.Fatalf("bob renegotiation: %#v", rr)
	}
	if rn := eventOf[Renegotiated](t, deliver(t, rr.Out[0], bobJID, a.m, true)); !rn.Accepted || rn.Params.Logging != LoggingMay {
		t.Errorf("alice renegotiation: %+v", rn)
	}
	// Bob (OTRForbid) refuses mustnot only: renegotiate=0, encrypted.
	ro, _ = sa.Renegotiate(LoggingMustNot)
	rr = deliver(t, ro, aliceJID, b.m, true)
	if len(rr.Out) != 1 || !rr.Out[0].Encrypted || rr.Out[0].Type == "error" {
		t.Fatalf("refusal: %#v", rr.Out)
	}
	if rn := eventOf[Renegotiated](t, deliver(t, rr.Out[0], bobJID, a.m, true)); rn.Accepted {
		t.Error("refused renegotiation reported accepted")
	}
	exchange(t, sa, aliceJID, b.m, "still in step")

	// Bob moves to another resource; the session goes with him.
	cont, err := sb.Continue("phone")
	if err != nil || !cont.Encrypted {
		t.Fatalf("Continue: %v", err)
	}
	if _, err := sb.Seal(els(t, "<body>x</body>")...); !errors.Is(err, ErrState) {
		t.Errorf("Seal while moving: %v", err)
	}
	r := deliver(t, cont, bobJID, a.m, true)
	if mv := eventOf[Moved](t, r); mv.To != "bob@example.com/phone" || len(r.Out) != 1 || !r.Out[0].Encrypted || mv.Handover {
		t.Fatalf("%#v", r)
	}
	rb := deliver(t, r.Out[0], aliceJID, b.m, true)
	if mv := eventOf[Moved](t, rb); !mv.Handover || mv.To != "bob@example.com/phone" {
		t.Fatalf("bob on the acknowledgement: %+v", mv)
	}
	pb := probe(sb)
	state, err := sb.Handover()
	if err != nil {
		t.Fatal(err)
	}
	pb.check(t)
	phone := newParty(t, "bob@example.com/phone", Config{})
	sp, err := phone.m.Adopt(state)
	clear(state)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Peer() != aliceJID || sp.Thread() != sa.Thread() || sp.SAS() != sa.SAS() || sp.State() != StateActive {
		t.Fatalf("adopted %q %q", sp.Peer(), sp.Thread())
	}
	exchange(t, sa, aliceJID, phone.m, "to the phone")
	exchange(t, sp, "bob@example.com/phone", a.m, "from the phone")
	if _, err := phone.m.Adopt([]byte{1, 2, 3}); !errors.Is(err, ErrHandover) {
		t.Errorf("garbage adopted: %v", err)
	}

	// A continue form in the clear is not obeyed.
	plain := Outbound{To: aliceJID, Thread: sa.Thread(), Payload: []*xmltree.Element{feature(continueForm("evil", false))}}
	if _, err := deliverErr(t, plain, "bob@example.com/phone", a.m, true); !errors.Is(err, ErrAuthentication) {
		t.Errorf("plaintext continue: %v", err)
	}
	if sa.State() != StateEnded {
		t.Error("session survived a plaintext control form")
	}
}

// A terminate form in the clear for an encrypted session is
// unauthenticated: the spec profile refuses it and the session continues;
// only the gajim profile, whose peers send nothing else, obeys it.
func TestUnauthenticatedTerminate(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, sb, _, _ := negotiate(t, a, b)
	o := Outbound{To: aliceJID, Thread: sa.Thread(), Payload: []*xmltree.Element{feature(terminateForm(false))}}
	r, err := deliverErr(t, o, bobJID, a.m, true)
	if err != nil || len(r.Out) != 0 {
		t.Fatalf("%v %#v", err, r)
	}
	if rj := eventOf[Rejected](t, r); !strings.Contains(rj.Reason, "terminate") {
		t.Errorf("rejected %+v", rj)
	}
	if sa.State() != StateActive {
		t.Fatal("the spec profile obeyed a plaintext terminate")
	}
	m, _ := sb.Seal(els(t, "<body>still on</body>")...)
	if body, _ := eventOf[Message](t, deliver(t, m, bobJID, a.m, true)).Body(); body != "still on" {
		t.Errorf("body %q", body)
	}

	g := newParty(t, aliceJID, Config{Profile: ProfileGajim})
	h := newParty(t, bobJID, Config{Profile: ProfileGajim})
	sg, sh, _, _ := negotiate(t, g, h)
	pg := probe(sg)
	r = deliver(t, Outbound{To: aliceJID, Thread: sg.Thread(), Payload: []*xmltree.Element{feature(terminateForm(false))}}, bobJID, g.m, true)
	if te := eventOf[Terminated](t, r); !te.ByPeer || !strings.Contains(te.Reason, "unauthenticated") || len(r.Out) != 0 {
		t.Errorf("%#v", r)
	}
	pg.check(t)
	// And the gajim profile terminates in the clear, at once.
	sg2, sh2, _, _ := negotiate(t, g, h)
	rt, err := sh2.Terminate()
	if err != nil || len(rt.Out) != 1 || rt.Out[0].Encrypted || !bytes.Contains(payloadXML(rt.Out[0]), []byte("terminate")) || sh2.State() != StateEnded {
		t.Fatalf("gajim terminate %v %#v", err, rt)
	}
	eventOf[Terminated](t, deliver(t, rt.Out[0], bobJID, g.m, true))
	if sg2.State() != StateEnded {
		t.Error("gajim peer did not end")
	}
	closeBoth(t, sh)
}

func TestUnknownThreads(t *testing.T) {
	b := newParty(t, bobJID, Config{})
	r, err := b.m.Receive(&Inbound{From: aliceJID, Thread: "nope", C: xmltree.New(NSStanzaEncryption, "c")})
	if err != nil || eventOf[Rejected](t, r).Reason == "" {
		t.Errorf("%v %#v", err, r)
	}
	r, _ = b.m.Receive(&Inbound{From: aliceJID, Type: "chat"})
	if !r.Unhandled {
		t.Error("plain message without thread not left to the client")
	}
	if _, err := b.m.Receive(&Inbound{}); err == nil {
		t.Error("message without sender accepted")
	}
	a := newParty(t, aliceJID, Config{})
	_, m1, _ := a.m.Start(bobJID, nil)
	m1.Thread = ""
	if r := deliver(t, m1, aliceJID, b.m, true); len(r.Out) != 0 {
		t.Error("answered a request without thread")
	}
}

func TestConfigGroups(t *testing.T) {
	for _, g := range [][]int{{5}, {2}, {14, 14}, {19}, {1, 14}} {
		if _, err := NewManager(&Config{Groups: g}); err == nil {
			t.Errorf("groups %v accepted", g)
		}
	}
	// Offering 15 then 14 to a peer that accepts 14 only.
	if testing.Short() {
		t.Skip("3072-bit exponentiations")
	}
	a := newParty(t, aliceJID, Config{Groups: []int{15, 14}})
	b := newParty(t, bobJID, Config{Groups: []int{14}})
	sa, _, _, _ := negotiate(t, a, b)
	if sa.Params().Group != 14 {
		t.Errorf("group %d", sa.Params().Group)
	}
	c := newParty(t, bobJID, Config{Groups: []int{15, 14}})
	sa2, _, _, _ := negotiate(t, a, c)
	if sa2.Params().Group != 15 {
		t.Errorf("group %d", sa2.Params().Group)
	}
}

func TestManagerLimits(t *testing.T) {
	a := newParty(t, aliceJID, Config{MaxSessions: 2})
	for i := range 2 {
		if _, _, err := a.m.Start(bobJID, &StartOptions{Thread: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.m.Start(bobJID, nil); err == nil {
		t.Error("third session accepted")
	}
	a.m.Session(bobJID, "a").Close()
	if _, _, err := a.m.Start(bobJID, nil); err != nil {
		t.Errorf("ended session not forgotten: %v", err)
	}
	if len(a.m.Sessions()) != 2 {
		t.Errorf("%d sessions", len(a.m.Sessions()))
	}
	if _, _, err := a.m.Start(bobJID, &StartOptions{Thread: "b"}); err == nil {
		t.Error("thread reused")
	}
	out := a.m.TerminateAll()
	if len(out) != 2 {
		t.Errorf("TerminateAll sent %d", len(out))
	}
	for _, s := range a.m.Sessions() {
		if s.State() != StateEnded {
			t.Error("session left live")
		}
	}
}

func TestPendingLimitPerPeer(t *testing.T) {
	a := newParty(t, aliceJID, Config{Groups: []int{14}})
	b := newParty(t, bobJID, Config{})
	for i := range maxPendingPerPeer + 2 {
		_, m1, err := a.m.Start(bobJID, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := deliver(t, m1, aliceJID, b.m, false)
		_, isReq := r.Events[0].(RequestReceived)
		if isReq != (i < maxPendingPerPeer) {
			t.Errorf("request %d: %#v", i, r.Events)
		}
	}
	// Another peer is not affected.
	c := newParty(t, "carol@example.net/x", Config{})
	_, m1, _ := c.m.Start(bobJID, nil)
	eventOf[RequestReceived](t, deliver(t, m1, "carol@example.net/x", b.m, false))
}

func TestDecoyRSHashes(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	counts := map[int]bool{}
	for i := range 24 {
		_, m1, _ := a.m.Start(bobJID, nil)
		r2 := deliver(t, m1, aliceJID, b.m, true)
		r3 := deliver(t, r2.Out[0], bobJID, a.m, true)
		pf, err := parseFeature(r3.Out[0].Payload[0], NSFeatureNeg, "feature")
		if err != nil {
			t.Fatal(err)
		}
		real := 0
		if i > 0 {
			real = 1 // the secret retained from the previous session
		}
		n := len(pf.form.Field("rshashes").Values)
		if n < real+1 || n > real+3 {
			t.Fatalf("%d rshashes with %d real", n, real)
		}
		counts[n-real] = true
		r4 := deliver(t, r3.Out[0], aliceJID, b.m, true)
		e := eventOf[Established](t, deliver(t, r4.Out[0], bobJID, a.m, true))
		if i > 0 && !e.SecretMatched {
			t.Fatal("the real rshash was not among the decoys")
		}
	}
	if len(counts) < 2 {
		t.Errorf("decoy count never varies: %v", counts)
	}
}

func TestOtherResourceCannotDisturb(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{})
	sa, _, _, _ := negotiate(t, a, b)
	for _, in := range []*Inbound{
		{From: "bob@example.com/evil", Thread: sa.Thread(), Feature: xmltree.New(NSFeatureNeg, "feature").AppendText("garbage")},
		{From: "bob@example.com/evil", Thread: sa.Thread(), Feature: feature(terminateForm(false))},
		{From: "bob@example.com/evil", Thread: sa.Thread(), Type: "error", Error: errorPayload(CondNotAcceptable, nil, nil)[0]},
		{From: "bob@example.com/evil", Thread: sa.Thread(), C: els(t, "<c xmlns='"+NSStanzaEncryption+"'><mac>AAAA</mac></c>")[0]},
	} {
		r, err := a.m.Receive(in)
		if err != nil || len(r.Out) != 0 {
			t.Errorf("%v %#v", err, r)
		}
		eventOf[Rejected](t, r)
	}
	if sa.State() != StateActive {
		t.Fatal("a stanza from another resource ended the session")
	}
}

func TestPlainProtocolViolation(t *testing.T) {
	a := newParty(t, aliceJID, Config{})
	b := newParty(t, bobJID, Config{AutoAccept: true})
	sa, m1, _ := a.m.Start(bobJID, &StartOptions{Plain: true})
	r := deliver(t, m1, aliceJID, b.m, true)
	deliver(t, r.Out[0], bobJID, a.m, true)
	// A second answer from the bound resource has no place any more.
	_, err := deliverErr(t, r.Out[0], bobJID, a.m, true)
	if !errors.Is(err, ErrProtocol) || sa.State() != StateEnded {
		t.Errorf("%v %v", err, sa.State())
	}
	if reason, err := sa.EndReason(); reason != "unexpected negotiation message" || !errors.Is(err, ErrProtocol) {
		t.Errorf("end reason %q %v", reason, err)
	}
}

// A request that spells the logging field the old way, "otr" with
// true/false (XEP-0155 before v0.14, as Gajim sent it), is answered in the
// same spelling (esessions pitfall 15).
func TestLegacyOTRLoggingField(t *testing.T) {
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"true"}, "true"},
		{[]string{"false"}, "false"},
	} {
		a := newParty(t, aliceJID, Config{})
		b := newParty(t, bobJID, Config{AutoAccept: true, MustNotLog: tc.want == "true"})
		_, m1, err := a.m.Start(bobJID, &StartOptions{Plain: true})
		if err != nil {
			t.Fatal(err)
		}
		m1 = rewriteForm(t, m1, func(f *form.Form) {
			fl := f.Field("logging")
			if fl == nil {
				t.Fatal("request without a logging field")
			}
			fl.Var = "otr"
			fl.Type = "list-single"
			fl.Options = nil
			for _, v := range tc.offer {
				fl.Options = append(fl.Options, form.Option{Value: v})
			}
		})
		r := deliver(t, m1, aliceJID, b.m, true)
		if len(r.Out) != 1 {
			t.Fatalf("offer %v: bob answered %d stanzas", tc.offer, len(r.Out))
		}
		rewriteForm(t, r.Out[0], func(f *form.Form) {
			if f.Field("logging") != nil {
				t.Errorf("offer %v: answer uses the new spelling", tc.offer)
			}
			if got := f.Value("otr"); got != tc.want {
				t.Errorf("offer %v: otr = %q, want %q", tc.offer, got, tc.want)
			}
		})
	}
}
