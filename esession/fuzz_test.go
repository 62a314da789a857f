package esession

import (
	"bytes"
	"errors"
	"testing"
)

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
// error and leaves the counter alone, or yields well-formed content.
func FuzzOpenC(f *testing.F) {
	a, _ := fuzzChannel()
	for _, m := range []string{"<body>Hello, Bob!</body>", "", "<body>x</body><active xmlns='http://jabber.org/protocol/chatstates'/>"} {
		c, err := a.seal([]byte(m))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c)
	}
	f.Add([]byte("<p:c xmlns:p='" + NSStanzaEncryption + "'>\n <p:data>AAAA</p:data>\n <p:mac>" + string(bytes.Repeat([]byte("A"), 43)) + "=</p:mac></p:c>"))
	f.Add([]byte("<c xmlns='" + NSStanzaEncryption + "'><data xmlns='" + NSStanzaEncryption + "'>AAAA</data><old>AAAA</old><mac>AAAA</mac></c>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, b := fuzzChannel()
		before := b.recv.ctr
		content, tops, err := b.open(in)
		if err != nil {
			if !errors.Is(err, ErrAuthentication) {
				t.Fatalf("error %v", err)
			}
			if b.recv.ctr != before {
				t.Fatal("counter moved on a failure")
			}
			return
		}
		var chk = b.chk
		if _, err := chk.Validate(content, nsClient, maxDepth, nil); err != nil {
			t.Fatalf("opened content does not validate: %q", content)
		}
		for _, tp := range tops {
			if tp.End > len(in)+len(content) || tp.Start > tp.End {
				t.Fatalf("bad span %+v", tp)
			}
		}
		if b.recv.ctr == before {
			t.Fatal("counter did not advance")
		}
	})
}

// FuzzReceive feeds arbitrary stanzas to a Manager with no session.
func FuzzReceive(f *testing.F) {
	a := newParty(f, aliceJID, Config{})
	_, m1, _ := a.m.Start(bobJID, nil)
	f.Add(m1.Stanza(), true)
	f.Add([]byte("<message from='a@b/c' type='error'><thread>t</thread><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"), true)
	f.Add([]byte("<message><thread>t</thread><feature xmlns='http://jabber.org/protocol/feature-neg'><x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE'><value>urn:xmpp:other</value></field></x></feature></message>"), true)
	f.Add([]byte("<message><body>hi</body></message>"), false)
	f.Fuzz(func(t *testing.T, raw []byte, subscribed bool) {
		in, err := ParseMessage(raw)
		if err != nil {
			return
		}
		in.From, in.Subscribed = aliceJID, subscribed
		b := newParty(t, bobJID, Config{AutoAccept: true})
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
		if _, perr := ParseMessage(o.Stanza()); perr != nil {
			t.Fatalf("engine produced an unparsable stanza: %v\n%s", perr, o.Stanza())
		}
	}
}

// FuzzNegotiation replaces the payload of one negotiation message (step
// 0 to 3 for messages 1 to 4) with arbitrary bytes. Every outcome must be
// clean: no panic, an error of the package's types, well-formed replies,
// and ended sessions wiped.
func FuzzNegotiation(f *testing.F) {
	a := newParty(f, aliceJID, Config{})
	b := newParty(f, bobJID, Config{AutoAccept: true})
	_, m1, _ := a.m.Start(bobJID, &StartOptions{Thread: "t"})
	r2 := deliver(f, m1, aliceJID, b.m, true)
	r3 := deliver(f, r2.Out[0], bobJID, a.m, true)
	r4 := deliver(f, r3.Out[0], aliceJID, b.m, true)
	for i, o := range []Outbound{m1, r2.Out[0], r3.Out[0], r4.Out[0]} {
		f.Add(o.Payload, uint8(i))
	}
	f.Fuzz(func(t *testing.T, payload []byte, step uint8) {
		step %= 4
		a := newParty(t, aliceJID, Config{})
		b := newParty(t, bobJID, Config{AutoAccept: true})
		sa, m1, _ := a.m.Start(bobJID, &StartOptions{Thread: "t"})
		msgs := []Outbound{m1}
		targets := []*party{b, a, b, a}
		froms := []string{aliceJID, bobJID, aliceJID, bobJID}
		for i := uint8(0); i < step; i++ {
			r := deliver(t, msgs[i], froms[i], targets[i].m, true)
			if len(r.Out) != 1 {
				t.Fatalf("step %d: %#v", i, r)
			}
			msgs = append(msgs, r.Out[0])
		}
		o := msgs[step]
		o.Payload = payload
		in, err := ParseMessage(o.Stanza())
		if err != nil {
			return
		}
		in.From, in.Subscribed = froms[step], true
		res, err := targets[step].m.Receive(in)
		checkResult(t, res, err)
		for _, s := range append(b.m.Sessions(), sa) {
			if s.State() == StateEnded {
				probe(s).check(t)
			}
		}
	})
}
