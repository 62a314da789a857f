package otr

// Tests of the OTR mechanism without a server: two or more mechanisms
// whose protocol messages are carried by an in-memory network that plays
// the pipeline's part (detection, Open, what the user would be shown).
// The flows over a real Prosody are in otr_integration_test.go.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/otr/otrtest"

	"golang.org/x/text/language"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/store"
	"github.com/balcony-im/balcony/xmltree"
)

// testKeys are the DSA keys of the OTR engine's libotr test file.
var testKeys = otrtest.Keys

func testKey(t testing.TB, i int) *engine.PrivateKey {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	if i >= len(keys) {
		t.Fatalf("only %d test keys", len(keys))
	}
	return keys[i]
}

// memNet carries stanzas between in-memory OTR mechanisms.
type memNet struct {
	t     *testing.T
	mu    sync.Mutex
	queue []memStanza
	sides map[string]*memSide
	sent  chan struct{} // signalled (without blocking) whenever a side sends
}

type memStanza struct {
	from, to jid.JID
	st       *xmltree.Element
	origin   client.Origin
}

// memSide is one resource with its OTR mechanism and what its user saw.
type memSide struct {
	net      *memNet
	jid      jid.JID
	o        *Mechanism
	st       *store.Store
	messages []*client.MessageEvent
	notices  []*client.OpenError
	events   []*client.SecurityEvent
	sent     []*xmltree.Element // every protocol stanza it sent
}

func newMemNet(t *testing.T) *memNet {
	return &memNet{t: t, sides: map[string]*memSide{}, sent: make(chan struct{}, 1)}
}

func (n *memNet) add(full string, key *engine.PrivateKey, cfg Config) *memSide {
	n.t.Helper()
	j := jid.MustParse(full)
	if cfg.Store == nil {
		st, err := store.Create(n.t.TempDir(), store.Options{Unencrypted: true})
		if err != nil {
			n.t.Fatal(err)
		}
		n.t.Cleanup(func() { st.Close() })
		cfg.Store = st
	}
	if s, ok := cfg.Store.(*store.Store); ok && cfg.InstanceTag == 0 {
		tag, err := s.OTRInstanceTag(context.Background())
		if err != nil {
			n.t.Fatal(err)
		}
		cfg.InstanceTag = tag
	}
	cfg.Key = key
	if cfg.Policy == engine.PolicyNever {
		// The tests are about conversations: the zero policy (OTR
		// disabled) is tested on its own.
		cfg.Policy = DefaultPolicy
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = time.Hour
	}
	o, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	s := &memSide{net: n, jid: j, o: o}
	s.st, _ = cfg.Store.(*store.Store)
	o.sendFn = func(_ context.Context, to jid.JID, sts []*xmltree.Element) error {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, st := range sts {
			s.sent = append(s.sent, st)
			n.queue = append(n.queue, memStanza{from: j, to: to, st: st})
		}
		select {
		case n.sent <- struct{}{}:
		default:
		}
		return nil
	}
	n.t.Cleanup(o.Shutdown)
	n.sides[full] = s
	return s
}

// english fills the texts of events as a client in English would.
func english(evs []*client.SecurityEvent) []*client.SecurityEvent {
	for _, e := range evs {
		e.Text = eme.Texts(language.English, append([]eme.Message{e.Message}, e.Notes...)...)
	}
	return evs
}

// englishWarnings fills the texts of warnings as a client in English would.
func englishWarnings(s client.Security) client.Security {
	for i := range s.Warnings {
		s.Warnings[i].Text = s.Warnings[i].Message.String()
	}
	return s
}

// deliver hands one stanza to its recipient as the pipeline would.
func (n *memNet) deliver(m memStanza) {
	n.t.Helper()
	to := n.sides[m.to.String()]
	if to == nil {
		return // nobody there: lost, as for an offline resource
	}
	st := m.st.Copy()
	st.SetAttr("from", m.from.String())
	det, err := eme.Detect(st.Marshal(""))
	if err != nil {
		n.t.Fatal(err)
	}
	in := &client.Incoming{Stanza: st, From: m.from, To: m.to, Origin: m.origin, Detection: det, Time: time.Now()}
	if !det.Encrypted && !det.Control {
		body := st.ChildText(client.NSClient, "body")
		var sec client.Security
		if det.OTR == eme.OTRWhitespaceTag && !m.origin.Copy() {
			opened, err := to.o.Open(context.Background(), in)
			if err != nil {
				n.t.Fatalf("whitespace-tagged message: %v", err)
			}
			to.events = append(to.events, english(opened.Events)...)
			body = opened.Body
			sec.Warnings = opened.Security.Warnings
		}
		to.messages = append(to.messages, &client.MessageEvent{From: m.from, Body: body, Security: englishWarnings(sec), Origin: m.origin})
		return
	}
	opened, err := to.o.Open(context.Background(), in)
	if err != nil {
		var oe *client.OpenError
		if !errors.As(err, &oe) {
			n.t.Fatalf("Open returned %T %v, want *OpenError", err, err)
		}
		to.notices = append(to.notices, oe)
		return
	}
	to.events = append(to.events, english(opened.Events)...)
	if len(opened.Replies) > 0 {
		n.t.Fatal("the OTR mechanism returned replies for the pipeline; it sends them itself")
	}
	if !opened.Silent {
		to.messages = append(to.messages, &client.MessageEvent{From: m.from, Body: opened.Body, Security: englishWarnings(opened.Security), Origin: m.origin})
	}
}

// pump delivers until no stanza is left.
func (n *memNet) pump() {
	n.t.Helper()
	for i := 0; ; i++ {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		if i > 200 {
			n.t.Fatal("the sides keep talking: protocol loop")
		}
		n.deliver(m)
	}
}

// drop discards everything in flight.
func (n *memNet) drop() {
	n.mu.Lock()
	n.queue = nil
	n.mu.Unlock()
}

// send seals a message from s to "to" and queues it.
func (s *memSide) send(to *memSide, body string) error {
	sealed, err := s.o.Seal(context.Background(), &client.Outgoing{To: to.jid, Body: body, ID: client.NewID()})
	if err != nil {
		return err
	}
	sts := sealed.Stanzas
	s.net.mu.Lock()
	for _, st := range sts {
		s.net.queue = append(s.net.queue, memStanza{from: s.jid, to: to.jid, st: st})
	}
	s.net.mu.Unlock()
	return nil
}

// sendPlain queues a plaintext message.
func (s *memSide) sendPlain(to *memSide, body string) {
	st := xmltree.New(client.NSClient, "message", "to", to.jid.String(), "type", "chat", "id", client.NewID())
	st.Append(xmltree.New(client.NSClient, "body").AppendText(body))
	s.net.mu.Lock()
	s.net.queue = append(s.net.queue, memStanza{from: s.jid, to: to.jid, st: st})
	s.net.mu.Unlock()
}

func (s *memSide) lastMessage(t *testing.T) *client.MessageEvent {
	t.Helper()
	if len(s.messages) == 0 {
		t.Fatalf("%s got no message", s.jid)
	}
	return s.messages[len(s.messages)-1]
}

func (s *memSide) hasEvent(kind client.SecurityKind) *client.SecurityEvent {
	for _, e := range s.events {
		if e.Kind == kind {
			return e
		}
	}
	return nil
}

func (s *memSide) status(peer *memSide) Status { return s.o.Status(context.Background(), peer.jid) }

// private runs an AKE started by a with b and checks both ends.
func private(t *testing.T, n *memNet, a, b *memSide) {
	t.Helper()
	if err := a.o.Start(context.Background(), b.jid); err != nil {
		t.Fatal(err)
	}
	n.pump()
	for _, x := range [][2]*memSide{{a, b}, {b, a}} {
		st := x[0].status(x[1])
		if st.State != StatePrivateUnverified && st.State != StatePrivateVerified {
			t.Fatalf("%s: state %v after the AKE, events %v", x[0].jid, st.State, kinds(x[0].events))
		}
		if want := x[1].o.Fingerprint().String(); st.Fingerprint != want {
			t.Fatalf("%s sees fingerprint %q, want %q", x[0].jid, st.Fingerprint, want)
		}
	}
}

func kinds(evs []*client.SecurityEvent) []string {
	var s []string
	for _, e := range evs {
		s = append(s, string(e.Kind))
	}
	return s
}

func TestOTRMemoryConversation(t *testing.T) {
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	if alice.o.Usable(context.Background(), bob.jid) {
		t.Fatal("usable before the AKE")
	}
	private(t, n, alice, bob)
	if !alice.o.Usable(context.Background(), bob.jid) || alice.o.Usable(context.Background(), bob.jid.Bare()) {
		t.Fatal("Usable after the AKE")
	}
	if alice.hasEvent("otr-private") == nil || bob.hasEvent("otr-private") == nil {
		t.Fatalf("events alice %v bob %v", kinds(alice.events), kinds(bob.events))
	}
	a, b := alice.status(bob), bob.status(alice)
	if a.SSID == "" || a.SSID != b.SSID || a.Version != 3 || a.TheirInstance != bob.o.InstanceTag() || b.TheirInstance != alice.o.InstanceTag() {
		t.Fatalf("status alice %+v bob %+v", a, b)
	}

	if err := alice.send(bob, "hello <b>bob</b> &amp; co"); err != nil {
		t.Fatal(err)
	}
	n.pump()
	m := bob.lastMessage(t)
	if m.Body != "hello bob & co" || m.Security.Mechanism != eme.OTR || m.Security.Verified ||
		m.Security.Fingerprint != alice.o.Fingerprint().String() || m.Security.State() != "unverified" {
		t.Fatalf("bob got %+v", m)
	}
	// Every stanza on the wire is an OTR message addressed to the full JID;
	// queries are the query string alone (XEP-0364 §2).
	for _, st := range append(alice.sent, bob.sent...) {
		to := jid.MustParse(st.AttrValue("to"))
		body := st.ChildText(client.NSClient, "body")
		k, _ := eme.ClassifyOTR(body)
		if k == eme.OTRNone || to.Resourcepart() == "" || k == eme.OTRQuery && body != "?OTRv23?" {
			t.Fatalf("sent %s", st)
		}
	}
	if _, err := alice.o.Seal(context.Background(), &client.Outgoing{To: bob.jid, Type: "groupchat", Body: "x"}); err == nil {
		t.Fatal("OTR in a group chat")
	}

	// SMP with a question: bob answers, both sides end verified.
	if err := alice.o.StartSMP(context.Background(), bob.jid, "where did we meet?", []byte("at the lake")); err != nil {
		t.Fatal(err)
	}
	n.pump()
	q := bob.hasEvent("otr-smp-question")
	if q == nil || !strings.Contains(q.Text, `“where did we meet?”`) {
		t.Fatalf("bob's events %v", kinds(bob.events))
	}
	if err := bob.o.AnswerSMP(context.Background(), alice.jid, []byte("at the lake")); err != nil {
		t.Fatal(err)
	}
	n.pump()
	for _, s := range []*memSide{alice, bob} {
		if s.hasEvent("otr-smp-succeeded") == nil {
			t.Fatalf("%s: events %v", s.jid, kinds(s.events))
		}
	}
	if st := alice.status(bob); st.State != StatePrivateVerified || st.Trust != "verified" {
		t.Fatalf("alice's status after SMP %+v", st)
	}
	tr, err := alice.st.Trust(context.Background(), "bob@example.net", store.OTR, strings.ToUpper(bob.o.Fingerprint().Hex()))
	if err != nil || tr != store.Verified {
		t.Fatalf("stored trust %v, %v", tr, err)
	}
	if err := bob.send(alice, "now verified"); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if m := alice.lastMessage(t); m.Body != "now verified" || !m.Security.Verified {
		t.Fatalf("alice got %+v", m)
	}

	// SMP with different secrets fails on both sides and verifies nothing.
	carol := n.add("carol@example.com/x", testKey(t, 5), Config{})
	private(t, n, carol, bob)
	if err := carol.o.StartSMP(context.Background(), bob.jid, "", []byte("one")); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if bob.hasEvent("otr-smp-request") == nil {
		t.Fatalf("bob's events %v", kinds(bob.events))
	}
	if err := bob.o.AnswerSMP(context.Background(), carol.jid, []byte("two")); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if carol.hasEvent("otr-smp-failed") == nil || carol.status(bob).State != StatePrivateUnverified || bob.status(carol).State != StatePrivateUnverified {
		t.Fatalf("carol %v, states %v %v", kinds(carol.events), carol.status(bob).State, bob.status(carol).State)
	}
	if err := bob.o.AnswerSMP(context.Background(), carol.jid, []byte("x")); !errors.Is(err, engine.ErrNoSMP) {
		t.Fatalf("answering without a request: %v", err)
	}

	// The peer ends: finished, nothing sent by mistake, until End.
	if err := bob.o.End(context.Background(), alice.jid); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if alice.hasEvent("otr-finished") == nil || alice.status(bob).State != StateFinished {
		t.Fatalf("alice: %v %v", kinds(alice.events), alice.status(bob).State)
	}
	if err := alice.send(bob, "still there?"); !errors.Is(err, engine.ErrFinished) {
		t.Fatalf("sending in the finished state: %v", err)
	}
	if err := alice.o.End(context.Background(), bob.jid); err != nil {
		t.Fatal(err)
	}
	if err := alice.send(bob, "still there?"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("sending after End: %v", err)
	}
}

func TestOTRMemorySealNeverPlaintext(t *testing.T) {
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	if err := alice.send(bob, "secret"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	_, err := alice.o.Seal(context.Background(), &client.Outgoing{To: bob.jid.Bare(), Body: "x"})
	if !errors.Is(err, ErrFullJID) {
		t.Fatalf("bare JID: %v", err)
	}
	if err := alice.o.Start(context.Background(), bob.jid.Bare()); !errors.Is(err, ErrFullJID) {
		t.Fatalf("Start with a bare JID: %v", err)
	}
	n.pump()
	if len(bob.messages)+len(bob.notices) != 0 {
		t.Fatal("something was sent")
	}

	// "always": the message is held, a query goes out, the message follows
	// the AKE, even to a resource never seen.
	carol := n.add("carol@example.com/x", testKey(t, 5), Config{Policy: engine.PolicyAlways, AutoStart: AutoStartAlways})
	if err := carol.send(bob, "held until private"); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	first := n.queue[0].st.ChildText(client.NSClient, "body")
	n.mu.Unlock()
	if k, _ := eme.ClassifyOTR(first); k != eme.OTRQuery {
		t.Fatalf("carol sent %q, want a query", first)
	}
	n.pump()
	if m := bob.lastMessage(t); m.Body != "held until private" || m.Security.Mechanism != eme.OTR {
		t.Fatalf("bob got %+v", m)
	}

	// "known" with a policy requiring encryption: no query to an unseen
	// resource, the message is refused.
	dave := n.add("dave@example.com/y", testKey(t, 6), Config{Policy: engine.PolicyAlways})
	if err := dave.send(bob, "x"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("unseen resource with AutoStartKnown: %v", err)
	}
}

func TestOTRMemoryWhitespaceTag(t *testing.T) {
	const tag = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20" + "\x20\x20\x09\x09\x20\x20\x09\x09"
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	manual := n.add("carol@example.com/x", testKey(t, 5), Config{Policy: engine.PolicyManual, AutoStart: AutoStartNever})

	// Opportunistic: the tag is discovery; bob starts the AKE.
	alice.sendPlain(bob, "hello"+tag)
	n.pump()
	if m := bob.messages[0]; m.Body != "hello" || m.Security.Encrypted() {
		t.Fatalf("bob got %+v", m)
	}
	if bob.status(alice).State != StatePrivateUnverified || !bob.status(alice).Known {
		t.Fatalf("bob did not start OTR on the whitespace tag: %+v", bob.status(alice))
	}

	// Manual: shown, announced once, nothing sent.
	alice.sendPlain(manual, "hi carol"+tag)
	alice.sendPlain(manual, "still there?"+tag)
	n.pump()
	if m := manual.lastMessage(t); m.Body != "still there?" {
		t.Fatalf("carol got %q", m.Body)
	}
	if len(manual.events) != 1 || manual.events[0].Kind != KindAvailable || len(manual.sent) != 0 {
		t.Fatalf("carol: events %v, sent %d", kinds(manual.events), len(manual.sent))
	}
	// A manual start is still possible, and answered.
	private(t, n, manual, alice)
}

func TestOTRMemoryCopiesNeverFed(t *testing.T) {
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	bob2 := n.add("bob@example.net/phone", testKey(t, 3), Config{})
	private(t, n, alice, bob)

	sealed, err := alice.o.Seal(context.Background(), &client.Outgoing{To: bob.jid, Body: "for the desk only"})
	if err != nil {
		t.Fatal(err)
	}
	sts := sealed.Stanzas
	query, _ := alice.o.newConv()
	q, _ := query.StartAKE()
	queryStanza := otrStanza(bob2.jid, "q1", q[0])
	for _, origin := range []client.Origin{{Carbon: client.CarbonReceived}, {Carbon: client.CarbonSent}, {Archived: true, Delayed: true}} {
		before := len(bob2.notices)
		n.deliver(memStanza{from: alice.jid, to: bob2.jid, st: sts[0], origin: origin})
		if len(bob2.notices) != before+1 || bob2.notices[before].Reason != eme.ReasonNoKey {
			t.Fatalf("%+v: notices %v", origin, bob2.notices)
		}
		// An OTR start inside a copy is silently ignored.
		n.deliver(memStanza{from: alice.jid, to: bob2.jid, st: queryStanza, origin: origin})
	}
	n.pump()
	if len(bob2.messages) != 0 || len(bob2.events) != 0 || len(bob2.sent) != 0 || len(bob2.o.Sessions(context.Background())) != 0 {
		t.Fatalf("copies changed bob's phone: messages %d events %v sent %d sessions %v",
			len(bob2.messages), kinds(bob2.events), len(bob2.sent), bob2.o.Sessions(context.Background()))
	}
	// The live message still opens at the desk: the copies did not use up
	// its counter.
	n.deliver(memStanza{from: alice.jid, to: bob.jid, st: sts[0]})
	if m := bob.lastMessage(t); m.Body != "for the desk only" {
		t.Fatalf("desk got %q", m.Body)
	}
	// Fragmented copies give one notice per message.
	for i, body := range []string{"?OTR|0000abcd|00001234,00001,00002,AAAA,", "?OTR|0000abcd|00001234,00002,00002,BBBB.,"} {
		st := otrStanza(bob2.jid, client.NewID(), []byte(body))
		before := len(bob2.notices)
		n.deliver(memStanza{from: alice.jid, to: bob2.jid, st: st, origin: client.Origin{Archived: true}})
		if got := len(bob2.notices) - before; got != 1-i {
			t.Fatalf("fragment %d of an archived message: %d notices", i+1, got)
		}
	}
}

func TestOTRMemoryStaleSessionReAKE(t *testing.T) {
	for _, tc := range []struct {
		name  string
		auto  AutoStart
		reAKE bool
	}{{"known", AutoStartKnown, true}, {"never", AutoStartNever, false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet(t)
			alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
			bob := n.add("bob@example.net/desk", testKey(t, 3), Config{AutoStart: tc.auto})
			private(t, n, alice, bob)
			// Bob's client loses its OTR state (a restart the server did
			// not notice); alice still has the session.
			bob.o.Shutdown()
			bob.sent = nil
			if err := alice.send(bob, "can you read this?"); err != nil {
				t.Fatal(err)
			}
			n.mu.Lock()
			m := n.queue[0]
			n.queue = n.queue[1:]
			n.mu.Unlock()
			n.deliver(m)
			if len(bob.notices) != 1 || bob.notices[0].Reason != eme.ReasonNoSession {
				t.Fatalf("bob's notices %v", bob.notices)
			}
			var sawError, sawQuery bool
			for _, st := range bob.sent {
				switch k, _ := eme.ClassifyOTR(st.ChildText(client.NSClient, "body")); k {
				case eme.OTRError:
					sawError = true
				case eme.OTRQuery:
					sawQuery = true
				}
			}
			if !sawError || sawQuery != tc.reAKE {
				t.Fatalf("bob sent error %v query %v, want error and query %v", sawError, sawQuery, tc.reAKE)
			}
			n.pump()
			if alice.hasEvent("otr-error") == nil {
				t.Fatalf("alice was not told: %v", kinds(alice.events))
			}
			// Either side's policy restarted the session (alice's
			// opportunistic policy answers the error with a query).
			if st := bob.status(alice); st.State != StatePrivateUnverified {
				t.Fatalf("bob's state after the re-AKE: %v", st.State)
			}
			if err := alice.send(bob, "again"); err != nil {
				t.Fatal(err)
			}
			n.pump()
			if got := bob.lastMessage(t); got.Body != "again" {
				t.Fatalf("bob got %q", got.Body)
			}
		})
	}
}

func TestOTRMemoryPeerRestartsWithNewInstanceTag(t *testing.T) {
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{InstanceTag: 0x1111})
	private(t, n, alice, bob)
	// Bob comes back as a new OTR instance (same key, new tag) and starts.
	bob2 := n.add("bob@example.net/desk", testKey(t, 3), Config{InstanceTag: 0x2222})
	private(t, n, bob2, alice)
	if st := alice.status(bob2); st.TheirInstance != 0x2222 || st.Instances != 2 {
		t.Fatalf("alice's status %+v", st)
	}
	if err := alice.send(bob2, "to the new instance"); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if m := bob2.lastMessage(t); m.Body != "to the new instance" {
		t.Fatalf("bob2 got %q", m.Body)
	}
	if err := bob2.send(alice, "from the new instance"); err != nil {
		t.Fatal(err)
	}
	n.pump()
	if m := alice.lastMessage(t); m.Body != "from the new instance" {
		t.Fatalf("alice got %q", m.Body)
	}
	// And alice may start again herself: her query reaches the new
	// instance.
	private(t, n, alice, bob2)
}

func TestOTRMemoryLifetime(t *testing.T) {
	n := newMemNet(t)
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	carol := n.add("carol@example.com/x", testKey(t, 5), Config{})
	private(t, n, alice, bob)
	private(t, n, alice, carol)

	// Another resource of bob going offline changes nothing.
	if evs := alice.o.Presence(context.Background(), &client.PresenceEvent{From: jid.MustParse("bob@example.net/phone")}); len(evs) != 0 {
		t.Fatalf("events %v", kinds(evs))
	}
	evs := alice.o.Presence(context.Background(), &client.PresenceEvent{From: bob.jid})
	if len(evs) != 1 || evs[0].Kind != KindFinished || !evs[0].Peer.Equal(bob.jid) {
		t.Fatalf("events %v", evs)
	}
	if alice.status(bob).State != StatePlaintext || alice.status(carol).State != StatePrivateUnverified {
		t.Fatal("presence ended the wrong sessions")
	}
	if err := alice.send(bob, "x"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after bob went offline: %v", err)
	}

	// A bounce of one of our OTR messages ends the session too.
	if err := alice.send(carol, "x"); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	id := n.queue[len(n.queue)-1].st.AttrValue("id")
	n.mu.Unlock()
	n.drop()
	if evs := alice.o.MessageError(&client.ErrorEvent{From: carol.jid, ID: "unrelated", Condition: "service-unavailable"}); len(evs) != 0 {
		t.Fatal("a bounce of another message ended the session")
	}
	if evs := alice.o.MessageError(&client.ErrorEvent{From: carol.jid, ID: id, Condition: "service-unavailable"}); len(evs) != 1 {
		t.Fatalf("bounce: %v", evs)
	}

	// Our stream ending ends everything.
	private(t, n, alice, carol)
	evs = alice.o.StreamEnded()
	if len(evs) != 1 || alice.status(carol).State != StatePlaintext {
		t.Fatalf("stream end: %v, %v", kinds(evs), alice.status(carol).State)
	}
}

func TestOTRMemoryMalformed(t *testing.T) {
	n := newMemNet(t)
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{})
	from := jid.MustParse("alice@example.org/home")
	st := xmltree.New(client.NSClient, "message", "from", from.String(), "type", "chat")
	st.Append(xmltree.New(client.NSClient, "body").AppendText("not OTR at all"))
	st.Append(xmltree.New(eme.NS, "encryption", "namespace", eme.OTR))
	det, err := eme.Detect(st.Marshal(""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bob.o.Open(context.Background(), &client.Incoming{Stanza: st, From: from, Detection: det})
	var oe *client.OpenError
	if !errors.As(err, &oe) || oe.Reason != eme.ReasonMalformed {
		t.Fatalf("tagged plaintext: %v", err)
	}
	// Plaintext with a whitespace tag and an EME tag would be shown as
	// encrypted by the pipeline: it is refused, live or copied.
	st = xmltree.New(client.NSClient, "message", "from", from.String(), "type", "chat")
	st.Append(xmltree.New(client.NSClient, "body").AppendText("trust me, this is private \x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20\x20\x20\x09\x09\x20\x20\x09\x09"))
	st.Append(xmltree.New(eme.NS, "encryption", "namespace", eme.OTR))
	det, _ = eme.Detect(st.Marshal(""))
	if !det.Encrypted || det.OTR != eme.OTRWhitespaceTag {
		t.Fatalf("detection %+v", det)
	}
	for _, origin := range []client.Origin{{}, {Carbon: client.CarbonReceived}, {Archived: true}} {
		opened, err := bob.o.Open(context.Background(), &client.Incoming{Stanza: st, From: from, Detection: det, Origin: origin})
		if !errors.As(err, &oe) || oe.Reason != eme.ReasonMalformed {
			t.Fatalf("%+v: tagged whitespace plaintext: %+v %v", origin, opened, err)
		}
	}
	// A corrupted data message from an unknown peer: a notice, no panic.
	st = otrStanza(bob.jid, "x", []byte("?OTR:AAMDAAAAAAAAAAA="+strings.Repeat("A", 40)+"."))
	det, _ = eme.Detect(st.Marshal(""))
	_, err = bob.o.Open(context.Background(), &client.Incoming{Stanza: st, From: from, Detection: det})
	if !errors.As(err, &oe) {
		t.Fatalf("garbage data message: %v", err)
	}
}

func TestOTRText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":                         "plain text",
		"a < b and c > d":                    "a < b and c > d",
		"I <3 you":                           "I <3 you",
		"AT&T & co":                          "AT&T & co",
		"<b>bold</b> and <i>it</i>":          "bold and it",
		"fish &amp; chips &lt;3":             "fish & chips <3",
		"<FONT COLOR=\"#ff0000\">red</FONT>": "red",
		"line<br>break<BR/>again<br />end":   "line\nbreak\nagain\nend",
		`<a href="https://example.org/">https://example.org/</a>`: "https://example.org/",
		`<a href="https://evil.example/">bank.example</a>`:        "bank.example (https://evil.example/)",
		`<a href="mailto:x@example.org">x@example.org</a>`:        "x@example.org",
		"<p>one</p><p>two</p>":                                    "one\ntwo",
		"<span>&#x1F600; &#233;</span>":                           "\U0001F600 é",
		"<script>alert(1)</script>":                               "<script>alert(1)</script>",
		"<b>unknown <blink>tag</blink></b>":                       "unknown <blink>tag</blink>",
		"<b>&lt;script&gt;</b>":                                   "<script>",
		"<!-- c --><i>x</i>":                                      "x",
		"<b":                                                      "<b",
		"tagged\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20\x20\x20\x09\x09\x20\x20\x09\x09": "tagged",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOTRFingerprintURI(t *testing.T) {
	f, err := engine.ParseFingerprint("AEA4D503298797D4A4FC823BC1D24524B4C54338")
	if err != nil {
		t.Fatal(err)
	}
	u := FingerprintURI(jid.MustParse("feste@allfools.lit/res"), f)
	if u != "xmpp:feste@allfools.lit?otr-fingerprint=AEA4D503298797D4A4FC823BC1D24524B4C54338" {
		t.Fatalf("URI %s", u)
	}
	for _, in := range []string{u, "xmpp:feste@allfools.lit?otr-fingerprint=aea4d503298797d4a4fc823bc1d24524b4c54338",
		"xmpp:fe%73te@allfools.lit?message;otr-fingerprint=AEA4D503298797D4A4FC823BC1D24524B4C54338#x"} {
		j, g, err := ParseFingerprintURI(in)
		if err != nil || j.String() != "feste@allfools.lit" || g != f {
			t.Errorf("ParseFingerprintURI(%q) = %v, %v, %v", in, j, g, err)
		}
	}
	for _, bad := range []string{"https://x", "xmpp:feste@allfools.lit", "xmpp:feste@allfools.lit?otr-fingerprint=XYZ", "xmpp:%zz@x?otr-fingerprint=AEA4D503298797D4A4FC823BC1D24524B4C54338"} {
		if _, _, err := ParseFingerprintURI(bad); err == nil {
			t.Errorf("ParseFingerprintURI(%q) succeeded", bad)
		}
	}
	if got := uriEscape("a b?c#d@e/f"); got != "a%20b%3Fc%23d@e/f" {
		t.Errorf("uriEscape = %q", got)
	}
}

func TestOTRBareQuery(t *testing.T) {
	for in, want := range map[string]string{
		"?OTRv23?\nAn Off-the-Record private conversation has been requested": "?OTRv23?",
		"?OTRv3?":        "?OTRv3?",
		"?OTR?v2? text":  "?OTR?v2?",
		"?OTR? text":     "?OTR?",
		"?OTR:AAMD.":     "?OTR:AAMD.",
		"?OTR Error: x":  "?OTR Error: x",
		"plain ?OTRv23?": "plain ?OTRv23?",
	} {
		if got := string(bareQuery([]byte(in))); got != want {
			t.Errorf("bareQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOTRFragmentIndex(t *testing.T) {
	for in, want := range map[string]int{
		"?OTR|0000abcd|00001234,00001,00002,AAAA,": 1,
		"?OTR|abcd|1234,3,3,AAAA.,":                3,
		"?OTR,2,4,piece,":                          2,
		"?OTR:AAMD.":                               0,
	} {
		k, _ := otrFragmentIndex(in)
		if k != want {
			t.Errorf("otrFragmentIndex(%q) = %d, want %d", in, k, want)
		}
	}
}

func TestOTRNeedsAndConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a key succeeded")
	}
	if _, err := New(Config{Key: testKey(t, 3), InstanceTag: 5}); err == nil {
		t.Fatal("instance tag below 0x100 accepted")
	}
	o, err := New(Config{Key: testKey(t, 3), Policy: DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if o.InstanceTag() < 0x100 || o.Namespace() != eme.OTR {
		t.Fatalf("tag %#x ns %s", o.InstanceTag(), o.Namespace())
	}
	if p, a := o.Policy(); p != DefaultPolicy || p&engine.SendWhitespaceTag != 0 || a != AutoStartKnown {
		t.Fatalf("default policy %v %v", p, a)
	}
	nd := o.Needs()
	if !nd.Private || nd.FallbackBody || strings.Join(nd.Hints, ",") != "no-copy,no-permanent-store" {
		t.Fatalf("needs %+v", nd)
	}
	// The pipeline puts all of XEP-0364 §3.3 on an OTR stanza.
	c, err := client.New(client.Config{JID: jid.MustParse("alice@example.org"), Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Register(o); err != nil {
		t.Fatal(err)
	}
	st := otrStanza(jid.MustParse("bob@example.net/desk"), "id1", []byte("?OTR:AAMD."))
	if err := c.Pipeline().Decorate(st, nil, eme.OTR); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]string{{client.NSHints, "no-copy"}, {client.NSHints, "no-permanent-store"}, {client.NSCarbons, "private"}, {eme.NS, "encryption"}} {
		if st.Child(want[0], want[1]) == nil {
			t.Errorf("decorated OTR stanza lacks %s %s: %s", want[0], want[1], st)
		}
	}
	if e := st.Child(eme.NS, "encryption"); e != nil && e.AttrValue("namespace") != eme.OTR {
		t.Errorf("EME namespace %q", e.AttrValue("namespace"))
	}
	if len(st.ChildrenNamed(client.NSClient, "body")) != 1 {
		t.Errorf("OTR stanza with a fallback body: %s", st)
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOTRMemoryHeartbeat(t *testing.T) {
	n := newMemNet(t)
	clock := &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	alice := n.add("alice@example.org/home", testKey(t, 4), Config{})
	bob := n.add("bob@example.net/desk", testKey(t, 3), Config{Now: clock.Now, HeartbeatEvery: 5 * time.Millisecond})
	private(t, n, alice, bob)
	if err := alice.send(bob, "are you there?"); err != nil {
		t.Fatal(err)
	}
	n.pump()
	// Drain signals of what was sent so far.
	select {
	case <-n.sent:
	default:
	}
	before := len(bob.sent)
	clock.advance(engine.HeartbeatInterval + time.Second)
	select {
	case <-n.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat after a minute of silence")
	}
	n.mu.Lock()
	hb := bob.sent[before:]
	n.mu.Unlock()
	if len(hb) != 1 {
		t.Fatalf("%d heartbeats", len(hb))
	}
	if k, _ := eme.ClassifyOTR(hb[0].ChildText(client.NSClient, "body")); k != eme.OTRData {
		t.Fatalf("heartbeat is %v", k)
	}
	msgs, notices := len(alice.messages), len(alice.notices)
	n.pump()
	if len(alice.messages) != msgs || len(alice.notices) != notices {
		t.Fatal("the heartbeat was shown")
	}
	// No second heartbeat without a new message from alice.
	clock.advance(2 * engine.HeartbeatInterval)
	bob.o.heartbeat()
	n.mu.Lock()
	again := len(bob.sent) - before
	n.mu.Unlock()
	if again != 1 {
		t.Fatalf("%d heartbeats in total, want 1", again)
	}
}

// The zero Policy means what it means in the engine, PolicyNever: the
// mechanism is registered but disabled, and enabled by a real policy.
func TestOTRZeroPolicyDisabled(t *testing.T) {
	o, err := New(Config{Key: testKey(t, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := o.Policy(); p != engine.PolicyNever {
		t.Fatalf("zero policy became %v", p)
	}
	c, err := client.New(client.Config{JID: jid.MustParse("alice@example.org/home"), Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Register(o); err != nil {
		t.Fatal(err)
	}
	if c.Pipeline().Enabled(eme.OTR) {
		t.Fatal("OTR enabled under PolicyNever")
	}
	st := otrStanza(jid.MustParse("alice@example.org/home"), "q1", []byte("?OTRv3?"))
	st.SetAttr("from", "bob@example.net/desk")
	ev := c.Pipeline().Receive(context.Background(), &client.Incoming{Stanza: st, From: jid.MustParse("bob@example.net/desk"), To: jid.MustParse("alice@example.org/home")})
	if n, ok := ev.(*client.NoticeEvent); !ok || n.Reason != eme.ReasonSessionRequested {
		t.Fatalf("query under PolicyNever: %#v", ev)
	}
	o.SetPolicy(DefaultPolicy, AutoStartKnown)
	if !c.Pipeline().Enabled(eme.OTR) {
		t.Fatal("SetPolicy(DefaultPolicy) did not enable OTR")
	}
	o.SetPolicy(engine.PolicyNever, AutoStartKnown)
	if c.Pipeline().Enabled(eme.OTR) {
		t.Fatal("SetPolicy(PolicyNever) did not disable OTR")
	}
}
