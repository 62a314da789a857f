package ox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/xmltree"
)

// oxPeer is one account with an OX key, offline: sealed stanzas are handed
// to the other peer's pipeline directly.
type oxPeer struct {
	c   *client.Client
	x   *Mechanism
	st  *store.Store
	key *engine.Key
	j   jid.JID
}

func newOXPeer(t testing.TB, addr string, cfg Config, withKey bool) *oxPeer {
	t.Helper()
	var k *engine.Key
	if withKey {
		k = mustKey(t, jid.MustParse(addr))
	}
	return newOXPeerKey(t, addr, cfg, k)
}

// newOXPeerKey makes a peer whose key pair is k (none if nil).
func newOXPeerKey(t testing.TB, addr string, cfg Config, k *engine.Key) *oxPeer {
	t.Helper()
	j := jid.MustParse(addr)
	c, err := client.New(client.Config{JID: j, Password: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		for range c.Events() {
		}
	}()
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &oxPeer{c: c, st: st, j: j}
	if k != nil {
		if err := StoreKey(context.Background(), st, k, true); err != nil {
			t.Fatal(err)
		}
		p.key = k
	}
	cfg.Store = st
	if p.x, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(p.x); err != nil {
		t.Fatal(err)
	}
	return p
}

// learn records other's key as announced by owner (as a PEP fetch would).
func (p *oxPeer) learn(t testing.TB, owner jid.JID, k *engine.Key) store.Seen {
	t.Helper()
	ctx := context.Background()
	data, err := k.Public().MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := p.st.RecordSeenKey(ctx, owner.Bare().String(), store.OX, k.Fingerprint(), data)
	if err != nil {
		t.Fatal(err)
	}
	var fprs []string
	keys, _ := p.st.ListKeys(ctx, owner.Bare().String(), store.OX)
	for _, r := range keys {
		fprs = append(fprs, r.Fingerprint)
	}
	if err := p.st.SetAnnouncedKeys(ctx, owner.Bare().String(), store.OX, fprs); err != nil {
		t.Fatal(err)
	}
	p.x.markFetched(owner.Bare().String())
	return seen
}

// seal seals body to "to" and decorates it as the pipeline does.
func (p *oxPeer) seal(t testing.TB, to jid.JID, body string) *xmltree.Element {
	t.Helper()
	out := &client.Outgoing{To: to, Type: "chat", ID: client.NewID(), Body: body}
	sealed, err := p.x.Seal(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	sts := sealed.Stanzas
	if len(sts) != 1 {
		t.Fatalf("%d stanzas", len(sts))
	}
	if err := p.c.Pipeline().Decorate(sts[0], out, eme.OX); err != nil {
		t.Fatal(err)
	}
	return sts[0]
}

// receive runs st through p's pipeline as a live message from "from".
func (p *oxPeer) receive(st *xmltree.Element, from, to jid.JID, origin client.Origin) client.Event {
	return p.c.Pipeline().Receive(context.Background(), &client.Incoming{Stanza: st, From: from, To: to, Origin: origin, Time: time.Now()})
}

func TestOXSealOpenRoundTrip(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org/laptop", Config{}, true)
	bob := newOXPeer(t, "bob@example.org/phone", Config{}, true)
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)

	st := alice.seal(t, bob.j.Bare(), "hello <bob> & co")
	// What goes on the wire (XEP-0374 §3.2): fallback body, store hint, EME.
	if st.Child(engine.NS, "openpgp") == nil || st.Child(client.NSHints, "store") == nil ||
		st.Child(eme.NS, "encryption") == nil || !strings.Contains(st.ChildText(client.NSClient, "body"), "encrypted") {
		t.Fatalf("sealed stanza lacks decorations: %s", st)
	}
	if strings.Contains(st.String(), "hello") {
		t.Fatal("plaintext on the wire")
	}
	ev := bob.receive(st, alice.j, bob.j, client.Origin{})
	m, ok := ev.(*client.MessageEvent)
	if !ok {
		t.Fatalf("got %#v", ev)
	}
	if m.Body != "hello <bob> & co" || m.Security.Mechanism != eme.OX || m.Security.Fingerprint != alice.key.Fingerprint() {
		t.Fatalf("message %+v", m)
	}
	// Alice's first key is trusted blindly: readable, not verified, no warning.
	if m.Security.Verified || m.Security.Trust != "blind" || len(m.Security.Warnings) != 0 || m.Security.State() != "unverified" {
		t.Fatalf("blind trust: %+v", m.Security)
	}
	if err := bob.st.SetTrust(context.Background(), "alice@example.org", store.OX, alice.key.Fingerprint(), store.Verified); err != nil {
		t.Fatal(err)
	}
	m = bob.receive(alice.seal(t, bob.j.Bare(), "again"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
	if !m.Security.Verified || m.Security.State() != "verified" {
		t.Fatalf("verified key: %+v", m.Security)
	}
	// Alice can read her own message (encrypted to self), as a sent carbon.
	own := alice.receive(alice.seal(t, bob.j.Bare(), "mine"), alice.j, bob.j, client.Origin{Carbon: client.CarbonSent}).(*client.MessageEvent)
	if own.Body != "mine" || !own.Security.Verified {
		t.Fatalf("own copy %+v", own)
	}
}

func TestOXBlindTrustOption(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	bob := newOXPeer(t, "bob@example.org", Config{BlindTrust: true}, true)
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)
	m := bob.receive(alice.seal(t, bob.j, "hi"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
	if !m.Security.Verified {
		t.Fatalf("BlindTrust: %+v", m.Security)
	}
}

func TestOXReceiverChecks(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org/a", Config{}, true)
	bob := newOXPeer(t, "bob@example.org/b", Config{}, true)
	carol := newOXPeer(t, "carol@example.org/c", Config{}, true)
	for _, p := range []*oxPeer{alice, bob, carol} {
		for _, q := range []*oxPeer{alice, bob, carol} {
			if p != q {
				p.learn(t, q.j, q.key)
			}
		}
	}
	notice := func(ev client.Event) *client.NoticeEvent {
		t.Helper()
		n, ok := ev.(*client.NoticeEvent)
		if !ok {
			t.Fatalf("got %#v, want a notice", ev)
		}
		return n
	}

	t.Run("forwarded to someone else", func(t *testing.T) {
		// Alice writes to carol, carol forwards the ciphertext to bob: the
		// <to/> names carol, the outer 'to' is bob. Bob cannot decrypt it
		// at all (not encrypted to him).
		st := alice.seal(t, carol.j.Bare(), "for carol")
		n := notice(bob.receive(st, alice.j, bob.j, client.Origin{}))
		if n.Reason != eme.ReasonNoKey {
			t.Fatalf("notice %+v", n)
		}
		// Carol herself receives a copy addressed (outer) to bob: she can
		// decrypt it, but <to/> does not match the outer 'to'.
		n = notice(carol.receive(st, alice.j, bob.j, client.Origin{}))
		if n.Reason != eme.ReasonVerificationFailed {
			t.Fatalf("notice %+v", n)
		}
	})

	t.Run("untrusted and undecided keys", func(t *testing.T) {
		ctx := context.Background()
		if err := bob.st.SetTrust(ctx, "alice@example.org", store.OX, alice.key.Fingerprint(), store.Untrusted); err != nil {
			t.Fatal(err)
		}
		m := bob.receive(alice.seal(t, bob.j, "x"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if m.Security.Verified || m.Security.Trust != "untrusted" || len(m.Security.Warnings) == 0 {
			t.Fatalf("untrusted: %+v", m.Security)
		}
		// Bob does not encrypt to a key he marked untrusted.
		if _, err := bob.x.Seal(ctx, &client.Outgoing{To: alice.j, Body: "x"}); !errors.Is(err, ErrNoContactKey) {
			t.Fatalf("sealing to an untrusted key: %v", err)
		}
		if err := bob.st.SetTrust(ctx, "alice@example.org", store.OX, alice.key.Fingerprint(), store.Undecided); err != nil {
			t.Fatal(err)
		}
		m = bob.receive(alice.seal(t, bob.j, "x"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if m.Security.Verified || m.Security.Trust != "undecided" || len(m.Security.Warnings) == 0 {
			t.Fatalf("undecided: %+v", m.Security)
		}
	})

	t.Run("crypt is refused", func(t *testing.T) {
		content := engine.Content{Kind: engine.Crypt, Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText("unsigned")}}
		msg, err := engine.Seal(content, nil, []*engine.Key{bob.key.Public()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := xmltree.New(client.NSClient, "message", "type", "chat")
		st.Append(engine.Element{Data: msg}.Element())
		if n := notice(bob.receive(st, alice.j, bob.j, client.Origin{})); n.Reason != eme.ReasonVerificationFailed {
			t.Fatalf("notice %+v", n)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		st := xmltree.New(client.NSClient, "message", "type", "chat")
		st.Append(xmltree.New(engine.NS, "openpgp").AppendText("bm90IGEgbWVzc2FnZQ=="))
		if n := notice(bob.receive(st, alice.j, bob.j, client.Origin{})); n.Reason != eme.ReasonMalformed {
			t.Fatalf("notice %+v", n)
		}
	})
}

// Payload children win over unencrypted siblings (XEP-0374 §2.2, pitfall:
// an attacker adds a cleartext element of the same name).
func TestOXPayloadPrecedence(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	bob := newOXPeer(t, "bob@example.org", Config{}, true)
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)
	out := &client.Outgoing{To: bob.j, Type: "chat", ID: "p1", Body: "real",
		Payload: []*xmltree.Element{xmltree.New("urn:xmpp:message-correct:0", "replace", "id", "good")}}
	sealed, err := alice.x.Seal(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	sts := sealed.Stanzas
	st := sts[0]
	if err := alice.c.Pipeline().Decorate(st, out, eme.OX); err != nil {
		t.Fatal(err)
	}
	st.Append(xmltree.New("urn:xmpp:message-correct:0", "replace", "id", "evil"))
	st.Append(xmltree.New("http://jabber.org/protocol/chatstates", "active"))
	m := bob.receive(st, alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
	if m.Body != "real" {
		t.Fatalf("body %q", m.Body)
	}
	var replace []string
	active := false
	for _, e := range m.Payload {
		switch e.Name.Local {
		case "replace":
			replace = append(replace, e.AttrValue("id"))
		case "active":
			active = true
		case "encryption", "store", "origin-id":
			t.Errorf("bookkeeping child %s delivered", e.Name.Local)
		}
	}
	// Unencrypted siblings are not authenticated: neither the extra
	// <replace/> nor the <active/> a server added is delivered.
	if len(replace) != 1 || replace[0] != "good" || active {
		t.Fatalf("payload: replace %v, unprotected active delivered %v", replace, active)
	}
}

// An unencrypted element with no protected counterpart (a correction or
// reply reference added on the path) never reaches the user.
func TestOXUnprotectedSiblingDropped(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	bob := newOXPeer(t, "bob@example.org", Config{}, true)
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)
	out := &client.Outgoing{To: bob.j, Type: "chat", ID: "p2", Body: "hello"}
	sealed, err := alice.x.Seal(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	sts := sealed.Stanzas
	st := sts[0]
	if err := alice.c.Pipeline().Decorate(st, out, eme.OX); err != nil {
		t.Fatal(err)
	}
	st.Append(xmltree.New("urn:xmpp:message-correct:0", "replace", "id", "evil"))
	st.Append(xmltree.New("urn:xmpp:reply:0", "reply", "id", "evil2"))
	m := bob.receive(st, alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
	if m.Body != "hello" || len(m.Payload) != 0 {
		t.Fatalf("body %q, payload %v", m.Body, m.Payload)
	}
}

func TestOXDisabledWithoutKey(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	bob := newOXPeer(t, "bob@example.org", Config{}, false)
	alice.learn(t, bob.j, mustKey(t, bob.j))
	n, ok := bob.receive(alice.seal(t, bob.j, "x"), alice.j, bob.j, client.Origin{}).(*client.NoticeEvent)
	if !ok || n.Reason != eme.ReasonNotEnabled || n.Hint != (eme.Hint{Action: eme.ActionEnable, Mechanism: eme.OX, Peer: n.From.String()}) {
		t.Fatalf("got %#v", n)
	}
	if _, err := bob.x.Seal(context.Background(), &client.Outgoing{To: alice.j, Body: "x"}); !errors.Is(err, ErrNoOwnKey) {
		t.Fatal(err)
	}
	for _, f := range bob.c.Features() {
		if f == engine.NSIM {
			t.Fatal("advertises the IM profile without a key")
		}
	}
	has := map[string]bool{}
	for _, f := range alice.c.Features() {
		has[f] = true
	}
	if !has[engine.NSIM] || !has[engine.FeatureNotify] {
		t.Fatalf("features %v", alice.c.Features())
	}
}

// payloadOf parses a fragment of payload children whose unqualified
// elements are in jabber:client.
func payloadOf(t testing.TB, fragment string) []*xmltree.Element {
	t.Helper()
	el, err := xmltree.Parse([]byte(`<payload xmlns="jabber:client">`+fragment+`</payload>`), nil)
	if err != nil {
		t.Fatalf("payload %q: %v", fragment, err)
	}
	return el.Elements()
}

func mustKey(t testing.TB, j jid.JID) *engine.Key {
	t.Helper()
	k, err := engine.GenerateKey(j, engine.EdDSA25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Whatever a user types arrives as typed, except for the characters XML
// cannot carry, which become U+FFFD on the way.
func FuzzOXBody(f *testing.F) {
	for _, s := range []string{"plain", "a < b & c > d", "line\r\nbreak\r", "tab\there \"quoted\" 'single'", "ünïcödé ✓", "]]>", "\x01\xff\uFFFE", "&amp;&#x41;"} {
		f.Add(s)
	}
	alice := newOXPeer(f, "alice@example.org", Config{}, true)
	bob := newOXPeer(f, "bob@example.org", Config{}, true)
	alice.learn(f, bob.j, bob.key)
	bob.learn(f, alice.j, alice.key)
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return
		}
		m, ok := bob.receive(alice.seal(t, bob.j, s), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if !ok || m.Body != xmlText(s) || len(m.Payload) != 0 {
			t.Fatalf("sent %q, got %#v", s, m)
		}
	})
}

// A <time/> stamp far from the reference time is reported, not hidden: the
// message stays readable (and verified as far as the signature goes) but
// carries a warning.
func TestOXTimeSkewWarning(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
	bob := newOXPeer(t, "bob@example.org", Config{Now: ahead}, true)
	alice.learn(t, bob.j, bob.key)
	bob.learn(t, alice.j, alice.key)
	if err := bob.st.SetTrust(context.Background(), "alice@example.org", store.OX, alice.key.Fingerprint(), store.Verified); err != nil {
		t.Fatal(err)
	}
	st := alice.seal(t, bob.j, "from the past")
	m := bob.c.Pipeline().Receive(context.Background(), &client.Incoming{Stanza: st, From: alice.j, To: bob.j, Time: ahead()}).(*client.MessageEvent)
	if m.Body != "from the past" || len(m.Security.Warnings) == 0 || m.Security.Warnings[0].Message.ID != eme.MsgOXStampSkewed || m.Security.State() != "warning" || m.Security.Verified {
		t.Fatalf("skewed message: %+v", m.Security)
	}
}

// XEP-0374 §2.2: a <body/> in jabber:server (or without a namespace of its
// own) inside the payload is the message text too.
func TestOXBodyNamespaces(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org", Config{}, true)
	bob := newOXPeer(t, "bob@example.org", Config{}, true)
	bob.learn(t, alice.j, alice.key)
	for _, payload := range []string{
		`<body xmlns="jabber:server">server body &amp; more</body>`,
		`<body xmlns="jabber:client">client body &amp; more</body>`,
		`<body>plain body &amp; more</body>`,
	} {
		content := engine.Content{Kind: engine.Signcrypt, To: []jid.JID{bob.j}, Payload: payloadOf(t, payload)}
		msg, err := engine.Seal(content, alice.key, []*engine.Key{bob.key.Public(), alice.key.Public()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := xmltree.New(client.NSClient, "message", "type", "chat")
		st.Append(engine.Element{Data: msg}.Element(), xmltree.New(client.NSClient, "body").AppendText("fallback"))
		m, ok := bob.receive(st, alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if !ok || !strings.HasSuffix(m.Body, "body & more") || len(m.Payload) != 0 {
			t.Errorf("payload %s: %#v", payload, m)
		}
	}
}

func TestOXGroupChatNotSupported(t *testing.T) {
	bob := newOXPeer(t, "bob@example.org", Config{}, true)
	st := xmltree.New(client.NSClient, "message", "type", "groupchat", "id", "g1")
	st.Append(xmltree.New(engine.NS, "openpgp").AppendText("AAAA"))
	_, err := bob.x.Open(context.Background(), &client.Incoming{Stanza: st, From: jid.MustParse("room@muc.example.org/alice"), To: bob.j})
	var oe *client.OpenError
	if !errors.As(err, &oe) || oe.Reason != eme.ReasonNotSupported || len(oe.Notes) != 1 || oe.Notes[0].ID != eme.MsgOXGroupChat {
		t.Fatalf("got %v", err)
	}
}

// sealUnsigned encrypts content to recipient without any signature, as an
// attacker who knows only the recipient's public key can.
func sealUnsigned(t testing.TB, content engine.Content, recipient *engine.Key) []byte {
	t.Helper()
	pub, err := recipient.Public().MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := openpgp.ReadKeyRing(bytes.NewReader(pub))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := content.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := openpgp.Encrypt(&buf, ents, nil, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// XEP-0373 §3.2: a <signcrypt/> must carry a valid signature by a key of
// the sender. Without one, or signed by a key the sender never announced,
// it is a forgery: a notice, never a message, and it never satisfies a
// policy that requires OX.
func TestOXForgeriesAreNotices(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org/a", Config{}, true)
	bob := newOXPeer(t, "bob@example.org/b", Config{}, true)
	bob.learn(t, alice.j, alice.key)
	alice.learn(t, bob.j, bob.key)
	bob.c.Pipeline().SetPolicy(alice.j, eme.Policy{Mode: eme.RequireEncryption, Mechanism: eme.OX})
	wrap := func(msg []byte) *xmltree.Element {
		st := xmltree.New(client.NSClient, "message", "type", "chat", "id", client.NewID())
		return st.Append(engine.Element{Data: msg}.Element())
	}
	content := engine.Content{Kind: engine.Signcrypt, To: []jid.JID{bob.j.Bare()}, Time: time.Now(), Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText("send the money")}}

	t.Run("unsigned signcrypt", func(t *testing.T) {
		ev := bob.receive(wrap(sealUnsigned(t, content, bob.key)), alice.j, bob.j, client.Origin{})
		n, ok := ev.(*client.NoticeEvent)
		if !ok {
			t.Fatalf("an unsigned <signcrypt/> was delivered: %#v", ev)
		}
		if n.Reason != eme.ReasonVerificationFailed {
			t.Fatalf("notice reason %q", n.Reason)
		}
	})
	t.Run("signed by a key never announced", func(t *testing.T) {
		mallory, err := engine.GenerateKey(alice.j, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := engine.Seal(content, mallory, []*engine.Key{bob.key.Public()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev := bob.receive(wrap(msg), alice.j, bob.j, client.Origin{})
		n, ok := ev.(*client.NoticeEvent)
		if !ok {
			t.Fatalf("a message signed by an unannounced key was delivered: %#v", ev)
		}
		if n.Reason != eme.ReasonVerificationFailed {
			t.Fatalf("notice reason %q", n.Reason)
		}
	})
	t.Run("genuine message satisfies the policy", func(t *testing.T) {
		m, ok := bob.receive(alice.seal(t, bob.j, "genuine"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if !ok || m.Body != "genuine" || len(m.Security.Warnings) != 0 || !m.Security.Authenticated {
			t.Fatalf("genuine message: %#v", m)
		}
	})
	t.Run("key no longer announced does not count as OX", func(t *testing.T) {
		// Alice retracted the key: an old message signed by it is still
		// shown (with a warning), but it does not satisfy require:ox.
		if err := bob.st.SetAnnouncedKeys(context.Background(), "alice@example.org", store.OX, nil); err != nil {
			t.Fatal(err)
		}
		m, ok := bob.receive(alice.seal(t, bob.j, "old key"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent)
		if !ok || m.Body != "old key" {
			t.Fatalf("got %#v", m)
		}
		var policy bool
		for _, w := range m.Security.Warnings {
			policy = policy || strings.HasPrefix(string(w.Message.ID), "policy-") && strings.Contains(w.Text, "requires")
		}
		if m.Security.Authenticated || m.Security.Verified || !policy {
			t.Fatalf("retracted key counted as OX: %+v", m.Security)
		}
	})
}

// A message that arrives while the sender's key list is being read (a
// notification of the list, another message's fetch) waits for that list:
// judged against the list before it, a message signed by the key just
// announced would be refused as a forgery (seen under load: a contact's
// first message after it announced its key was a "signed by a key not
// announced" notice).
func TestOXMessageWaitsForKeyListInProgress(t *testing.T) {
	// The fetch in progress is played by the test: it holds the contact's
	// fetch lock and marks the list fetched, as refresh does, and records
	// the key before it lets go.
	inProgress := func(t *testing.T, bob *oxPeer, owner jid.JID, record func()) func() {
		l := bob.x.keyLock(owner.Bare().String())
		l.Lock()
		bob.x.markFetched(owner.Bare().String())
		return func() {
			record()
			l.Unlock()
		}
	}
	t.Run("no key known yet", func(t *testing.T) {
		alice := newOXPeer(t, "alice@example.org/a", Config{}, true)
		bob := newOXPeer(t, "bob@example.org/b", Config{}, true)
		alice.learn(t, bob.j, bob.key)
		st := alice.seal(t, bob.j, "first")
		done := inProgress(t, bob, alice.j, func() { bob.learn(t, alice.j, alice.key) })
		got := make(chan client.Event, 1)
		go func() { got <- bob.receive(st, alice.j, bob.j, client.Origin{}) }()
		select {
		case ev := <-got:
			done()
			t.Fatalf("the message was judged while the key list was being read: %#v", ev)
		case <-time.After(300 * time.Millisecond): // bounded wait for the wrong outcome; the right one blocks
		}
		done()
		if m, ok := (<-got).(*client.MessageEvent); !ok || m.Body != "first" || !m.Security.Authenticated {
			t.Fatalf("got %#v", m)
		}
	})
	t.Run("signed by a key announced meanwhile", func(t *testing.T) {
		alice := newOXPeer(t, "alice@example.org/a", Config{}, true)
		bob := newOXPeer(t, "bob@example.org/b", Config{}, true)
		alice.learn(t, bob.j, bob.key)
		old, err := engine.GenerateKey(alice.j, engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		bob.learn(t, alice.j, old) // an older key of alice's, announced
		st := alice.seal(t, bob.j, "new key")
		done := inProgress(t, bob, alice.j, func() { bob.learn(t, alice.j, alice.key) })
		got := make(chan client.Event, 1)
		go func() { got <- bob.receive(st, alice.j, bob.j, client.Origin{}) }()
		done()
		if m, ok := (<-got).(*client.MessageEvent); !ok || m.Body != "new key" || !m.Security.Authenticated {
			t.Fatalf("got %#v", m)
		}
	})
}

// A message refused because the sender's key is unknown says so when the
// sender's key list could not be fetched for it (here: no connection), so
// the user is not left to think of a forgery only.
func TestOXRefusalNamesFailedKeyFetch(t *testing.T) {
	alice := newOXPeer(t, "alice@example.org/a", Config{}, true)
	bob := newOXPeer(t, "bob@example.org/b", Config{}, true)
	alice.learn(t, bob.j, bob.key)
	// The second message comes before a fetch is tried again (minRefetch):
	// it is judged without the list too, and says so.
	for _, body := range []string{"hello", "hello again"} {
		ev := bob.receive(alice.seal(t, bob.j, body), alice.j, bob.j, client.Origin{})
		n, ok := ev.(*client.NoticeEvent)
		if !ok {
			t.Fatalf("a message signed by a key bob could not fetch was delivered: %#v", ev)
		}
		if n.Reason != eme.ReasonVerificationFailed || !strings.Contains(n.Text, "key list could not be fetched") || !strings.Contains(n.Text, "not connected") {
			t.Fatalf("notice for %q: %+v", body, n)
		}
	}
	// Once the list is known, the same sender's messages are shown.
	bob.learn(t, alice.j, alice.key)
	if m, ok := bob.receive(alice.seal(t, bob.j, "again"), alice.j, bob.j, client.Origin{}).(*client.MessageEvent); !ok || m.Body != "again" {
		t.Fatalf("got %#v", m)
	}
}
