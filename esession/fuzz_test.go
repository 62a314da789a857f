package esession

import (
	"bytes"
	"errors"
	"flag"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/fuzzmin"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

// The fuzz targets that negotiate use cheapGroup, so that an input costs
// a parse and a state change, not a 2048-bit exponentiation, and
// FuzzNegotiation replays only the receiving party. Their seeds are whole
// negotiation messages of a kilobyte or more, which the fuzzer would
// minimise for a minute each time it finds a new interesting input (its
// exec counter standing still meanwhile); TestMain lowers that default.

// TestMain lets the fuzzer explore: see internal/fuzzmin.
func TestMain(m *testing.M) {
	flag.Parse()
	fuzzmin.Default(fuzzMinimizeExecs)
	os.Exit(m.Run())
}

// fuzzMinimizeExecs is the default -fuzzminimizetime of the package's
// targets, whose inputs are kilobyte messages or keys: a thousand
// executions, a second or less.
const fuzzMinimizeExecs = 1000

// cheapGroup is a Diffie-Hellman group over a 64-bit safe prime that calls
// itself group 14, so that fuzz inputs reach the parsers and the state
// machine without paying a 2048-bit exponentiation each (which, with the
// fuzzer's coverage instrumentation, takes seconds). It is for fuzzing
// only: the messages look the same, the arithmetic is worthless.
type cheapGroup struct{ p, pm1 *big.Int }

var cheap = sync.OnceValue(func() *cheapGroup {
	// the first safe prime p = 2q+1 above 2^63, found by search
	q := new(big.Int).Lsh(big.NewInt(1), 62)
	one := big.NewInt(1)
	for {
		q.Add(q, one)
		p := new(big.Int).Lsh(q, 1)
		p.Add(p, one)
		if q.ProbablyPrime(20) && p.ProbablyPrime(20) {
			return &cheapGroup{p: p, pm1: new(big.Int).Sub(p, one)}
		}
	}
})

func (g *cheapGroup) ID() int { return 14 }

func (g *cheapGroup) Public(x []byte) *big.Int {
	return new(big.Int).Exp(big.NewInt(2), new(big.Int).SetBytes(x), g.p)
}

func (g *cheapGroup) CheckElement(y *big.Int) error {
	if y == nil || y.Cmp(big.NewInt(2)) < 0 || y.Cmp(g.pm1) >= 0 {
		return modp.ErrRange
	}
	return nil
}

func (g *cheapGroup) SharedSecret(y *big.Int, x []byte) (*big.Int, error) {
	if err := g.CheckElement(y); err != nil {
		return nil, err
	}
	z := new(big.Int).Exp(y, new(big.Int).SetBytes(x), g.p)
	if z.Cmp(big.NewInt(1)) <= 0 {
		return nil, modp.ErrRange
	}
	return z, nil
}

// cheapParty is newParty with the cheap group.
func cheapParty(t testing.TB, jid string, c Config) *party {
	t.Helper()
	p := newParty(t, jid, c)
	p.m.cfg.groups = []dhGroup{cheap()}
	return p
}

func fuzzChannel() (*channel, *channel) {
	var k [32]byte
	copy(k[:], "fuzz fuzz fuzz fuzz fuzz fuzz fu")
	ka, kb := deriveKeys(&k, true, 16), deriveKeys(&k, false, 16)
	var c counter
	c[0] = 0xff
	c[15] = 0xfe // wraps during the first stanza
	a := &channel{pad: true}
	a.send.init(&ka, c, conv{})
	a.recv.init(&kb, responderCounter(c), conv{})
	b := &channel{pad: true}
	b.send.init(&kb, responderCounter(c), conv{})
	b.recv.init(&ka, c, conv{})
	return a, b
}

// FuzzOpenC feeds arbitrary <c/> elements to the receiving side of a
// channel. Whatever the input, opening either fails with the one opaque
// error and leaves the counter alone, or yields parsed content and
// advances the counter.
func FuzzOpenC(f *testing.F) {
	a, _ := fuzzChannel()
	for _, m := range []string{"<body>Hello, Bob!</body>", "", "<body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/>"} {
		c, err := a.seal([]byte(m))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.Marshal(""))
	}
	f.Add([]byte("<p:c xmlns:p='" + NSStanzaEncryption + "'>\n <p:data>AAAA</p:data>\n <p:mac>" + string(bytes.Repeat([]byte("A"), 43)) + "=</p:mac></p:c>"))
	f.Add([]byte("<c xmlns='" + NSStanzaEncryption + "'><data xmlns='" + NSStanzaEncryption + "'>AAAA</data><old>AAAA</old><mac>AAAA</mac></c>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		el, err := xmltree.Parse(in, nil)
		if err != nil {
			return
		}
		_, b := fuzzChannel()
		before := b.recv.ctr
		msg, err := b.open(el)
		if err != nil {
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			if b.recv.ctr != before {
				t.Fatal("counter moved on a failure")
			}
			return
		}
		if msg.Name.Space != nsClient || msg.Name.Local != "message" {
			t.Fatalf("opened content is %v", msg.Name)
		}
		if b.recv.ctr == before {
			t.Fatal("counter did not advance")
		}
	})
}

// fuzzStanza parses raw XML as the client's stream reader would and reads
// it as a message.
func fuzzStanza(raw []byte) *Inbound {
	st, err := xmltree.Parse(raw, nil)
	if err != nil {
		return nil
	}
	in, err := ParseStanza(st)
	if err != nil {
		return nil
	}
	return in
}

// FuzzReceive feeds arbitrary stanzas to a Manager with no session, which
// accepts requests from subscribed peers automatically.
func FuzzReceive(f *testing.F) {
	a := cheapParty(f, aliceJID, Config{})
	_, m1, _ := a.m.Start(bobJID, nil)
	f.Add(m1.Stanza().Marshal(""), true)
	_, m1p, _ := a.m.Start(bobJID, &StartOptions{Plain: true})
	f.Add(m1p.Stanza().Marshal(""), true)
	f.Add([]byte("<message xmlns='jabber:client' from='a@b/c' type='error'><thread>t</thread><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"), true)
	f.Add([]byte("<message xmlns='jabber:client'><thread>t</thread><feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE'><value>urn:xmpp:other</value></field></x></feature></message>"), true)
	f.Add([]byte("<message xmlns='jabber:client'><body>hi</body></message>"), false)
	f.Add([]byte("<presence xmlns='jabber:client'><c xmlns='"+NSStanzaEncryption+"'><data>AAAA</data><mac>AAAA</mac></c></presence>"), true)
	f.Add([]byte("<iq xmlns='jabber:client' type='get' id='1'><c xmlns='"+NSStanzaEncryption+"'><mac>AAAA</mac></c></iq>"), true)
	f.Fuzz(func(t *testing.T, raw []byte, subscribed bool) {
		in := fuzzStanza(raw)
		if in == nil {
			return
		}
		in.From, in.Subscribed = aliceJID, subscribed
		b := cheapParty(t, bobJID, Config{AutoAccept: true})
		res, err := b.m.Receive(in)
		checkResult(t, res, err)
		for _, s := range b.m.Sessions() {
			if s.State() == StateEnded {
				probe(s).check(t)
			}
			if !subscribed && len(res.Out) > 0 {
				t.Fatal("answered an unsubscribed peer")
			}
		}
	})
}

func checkResult(t *testing.T, res Result, err error) {
	t.Helper()
	var ne *NegotiationError
	if err != nil && !errors.Is(err, ErrAuthentication) && !errors.Is(err, ErrProtocol) && !errors.As(err, &ne) {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	for _, o := range res.Out {
		st, perr := xmltree.Parse(o.Stanza().Marshal(""), nil)
		if perr != nil {
			t.Fatalf("engine produced an unparsable stanza: %v\n%s", perr, o.Stanza().Marshal(""))
		}
		if _, perr := ParseMessage(st); perr != nil {
			t.Fatalf("engine produced a stanza it cannot read: %v\n%s", perr, o.Stanza().Marshal(""))
		}
	}
}

// negotiationScript is a negotiation between two parties whose randomness
// and clock are fixed, so that it runs the same every time: each message
// is known in advance, and one party can be brought to the point where it
// awaits message k+1 by replaying only what it received before, without
// the other party.
type negotiationScript struct {
	msgs [4]Outbound // messages 1 to 4
}

// scriptParty is a party of negotiationScript: the cheap group, a seeded
// random stream and a fixed clock.
func scriptParty(t testing.TB, jid string, seed uint64, c Config) *party {
	t.Helper()
	c.Rand = mrand.NewChaCha8([32]byte{byte(seed)})
	c.Now = func() time.Time { return timeAt(0) }
	return cheapParty(t, jid, c)
}

// scriptTargets, scriptFroms: who receives message k+1, and from whom.
var (
	scriptTargets = [4]string{bobJID, aliceJID, bobJID, aliceJID}
	scriptFroms   = [4]string{aliceJID, bobJID, aliceJID, bobJID}
)

func newNegotiationScript(t testing.TB) *negotiationScript {
	t.Helper()
	var sc negotiationScript
	a := scriptParty(t, aliceJID, 1, Config{})
	b := scriptParty(t, bobJID, 2, Config{AutoAccept: true})
	_, sc.msgs[0], _ = a.m.Start(bobJID, &StartOptions{Thread: "t"})
	parties := map[string]*party{aliceJID: a, bobJID: b}
	for k := 0; k < 3; k++ {
		r := deliver(t, sc.msgs[k], scriptFroms[k], parties[scriptTargets[k]].m, true)
		if len(r.Out) != 1 {
			t.Fatalf("message %d: %#v", k+2, r)
		}
		sc.msgs[k+1] = r.Out[0]
	}
	// The replay must give the same messages, or the fuzz target would
	// feed a party messages from another negotiation.
	for k := 0; k < 4; k++ {
		p, _, sent := sc.replay(t, k)
		if (sent == nil) != (k == 0) || sent != nil && !bytes.Equal(sent.Stanza().Marshal(""), sc.msgs[k-1].Stanza().Marshal("")) {
			t.Fatalf("the replay of %s is not deterministic: message %d differs", p.jid, k)
		}
	}
	return &sc
}

// replay returns the party that receives message k+1, brought to the
// point where it awaits it, with the session it started (if it is the
// initiator) and the last message it sent (nil if none).
func (sc *negotiationScript) replay(t testing.TB, k int) (*party, *Session, *Outbound) {
	t.Helper()
	var p *party
	var s *Session
	var sent *Outbound
	if scriptTargets[k] == aliceJID {
		p = scriptParty(t, aliceJID, 1, Config{})
		var m1 Outbound
		s, m1, _ = p.m.Start(bobJID, &StartOptions{Thread: "t"})
		sent = &m1
	} else {
		p = scriptParty(t, bobJID, 2, Config{AutoAccept: true})
	}
	for i := 0; i < k; i++ {
		if scriptTargets[i] != p.jid {
			continue
		}
		r := deliver(t, sc.msgs[i], scriptFroms[i], p.m, true)
		if len(r.Out) != 1 {
			t.Fatalf("replay of message %d: %#v", i+1, r)
		}
		sent = &r.Out[0]
	}
	return p, s, sent
}

// FuzzNegotiation replaces the payload of one negotiation message (step
// 0 to 3 for messages 1 to 4) with arbitrary XML. Every outcome must be
// clean: no panic, an error of the package's types, well-formed replies,
// and ended sessions wiped. Only the receiving party runs for an input,
// replaying what it received before from a scripted negotiation.
func FuzzNegotiation(f *testing.F) {
	sc := newNegotiationScript(f)
	var seeds [4][]byte
	for i, o := range sc.msgs {
		seeds[i] = payloadXML(o)
		f.Add(seeds[i], uint8(i))
	}
	f.Fuzz(func(t *testing.T, payload []byte, step uint8) {
		step %= 4
		st, err := xmltree.Parse([]byte("<message xmlns='jabber:client'>"+string(payload)+"</message>"), nil)
		if err != nil {
			return
		}
		o := sc.msgs[step]
		o.Payload = st.Elements()
		in, err := ParseMessage(o.Stanza())
		if err != nil {
			return
		}
		in.From, in.Subscribed = scriptFroms[step], true
		p, s, _ := sc.replay(t, int(step))
		res, err := p.m.Receive(in)
		checkResult(t, res, err)
		if bytes.Equal(payload, seeds[step]) {
			// The scripted message itself: the negotiation goes on.
			if err != nil || step < 3 && len(res.Out) != 1 || step == 3 && s.State() != StateActive {
				t.Fatalf("message %d of the script refused: %v %#v", step+1, err, res)
			}
		}
		sessions := p.m.Sessions()
		if s != nil {
			sessions = append(sessions, s)
		}
		for _, s := range sessions {
			if s.State() == StateEnded {
				probe(s).check(t)
			}
		}
	})
}

// FuzzOpenCRekey is FuzzOpenC for a channel that re-keys: <key/> and
// <new/> are parsed and, with a valid MAC, acted on.
func FuzzOpenCRekey(f *testing.F) {
	setup := func() (*channel, *channel) {
		a, b := fuzzChannel()
		g := cheap()
		st := &suite{group: g, rekeyFreq: 1, cipher: CipherAES128CTR}
		cfg := &config{rand: randReader(), now: func() time.Time { return timeAt(0) }, rekeyGrace: DefaultRekeyGrace}
		xa, xb := []byte{0x81, 1, 2, 3, 4, 5, 6, 7}, []byte{0x82, 7, 6, 5, 4, 3, 2, 1}
		a.startRekeying(cfg, st, xa, g.Public(xb))
		b.startRekeying(cfg, st, xb, g.Public(xa))
		a.rk.exchanged, b.rk.exchanged = 1, 1
		return a, b
	}
	a, _ := setup()
	for _, m := range []string{"<body>re-key</body>", ""} {
		c, err := a.seal([]byte(m)) // carries a <key/>: exchanged >= rekey_freq
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.Marshal(""))
	}
	f.Add([]byte("<c xmlns='" + NSStanzaEncryption + "'><new>1</new><key>AQ==</key><mac>" + string(bytes.Repeat([]byte("A"), 43)) + "=</mac></c>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		el, err := xmltree.Parse(in, nil)
		if err != nil {
			return
		}
		_, b := setup()
		before := b.recv.ctr
		if _, err := b.open(el); err != nil {
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			if b.recv.ctr != before {
				t.Fatal("counter moved on a failure")
			}
			return
		}
		if len(b.rk.sets) == 0 || b.recv.block == nil {
			t.Fatal("channel broken after a verified stanza")
		}
	})
}

// FuzzAdopt feeds arbitrary handover states to Manager.Adopt: they are
// refused with ErrHandover or give a working session.
func FuzzAdopt(f *testing.F) {
	a := cheapParty(f, aliceJID, Config{RekeyFreq: 5, Stanzas: []string{StanzaIQ}})
	b := cheapParty(f, bobJID, Config{RekeyFreq: 5, Stanzas: []string{StanzaIQ}})
	_, sb, _, _ := negotiate(f, a, b)
	cont, _ := sb.Continue("phone")
	r := deliver(f, cont, bobJID, a.m, true)
	deliver(f, r.Out[0], aliceJID, b.m, true)
	state, err := sb.Handover()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state)
	f.Fuzz(func(t *testing.T, state []byte) {
		m := cheapParty(t, "bob@example.com/phone", Config{})
		s, err := m.m.Adopt(state)
		if err != nil {
			if !errors.Is(err, ErrHandover) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if _, err := s.Seal(els(t, "<body>x</body>")...); err != nil && !errors.Is(err, ErrKeyExhausted) {
			t.Fatalf("adopted session cannot seal: %v", err)
		}
	})
}
