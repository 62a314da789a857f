package otr_test

// A real libotr 4.1 session over a real Prosody: libotr (the C helper of
// internal/libotrpeer) is the OTR side of a minimal XMPP client of ours
// that has no OTR mechanism, only a stub that hands it the raw bodies;
// the other side is a Balcony client with the OTR mechanism.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/client/otr"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/libotrpeer"
	"github.com/balcony-im/balcony/internal/prosodytest"
	engine "github.com/balcony-im/balcony/otr"
	"github.com/balcony-im/balcony/xmltree"
)

// rawOTR is a stub mechanism registered for the OTR namespace: it opens
// nothing and passes every OTR body on, untouched.
type rawOTR struct{ bodies chan string }

func (r *rawOTR) Namespace() string   { return eme.OTR }
func (r *rawOTR) Needs() client.Needs { return client.Needs{} }
func (r *rawOTR) Seal(context.Context, *client.Outgoing) (client.Sealed, error) {
	return client.Sealed{}, errors.New("rawOTR: sending goes through SendElement")
}
func (r *rawOTR) Open(_ context.Context, in *client.Incoming) (*client.Opened, error) {
	r.bodies <- in.Stanza.ChildText(client.NSClient, "body")
	return &client.Opened{Silent: true}, nil
}

// libotrXMPP is libotr behind a minimal XMPP client.
type libotrXMPP struct {
	t    *testing.T
	c    *client.Client
	peer *libotrpeer.Peer
	raw  *rawOTR
	to   jid.JID
	out  libotrpeer.Output // everything libotr did, accumulated
}

// transmit sends libotr's network messages as XEP-0364 asks: to the full
// JID, with the hints and <private/>; no EME tag, as libotr clients send.
func (l *libotrXMPP) transmit(out libotrpeer.Output) {
	l.t.Helper()
	l.out.Append(out)
	for _, m := range out.Net {
		st := xmltree.New(client.NSClient, "message", "to", l.to.String(), "type", "chat", "id", client.NewID())
		st.Append(xmltree.New(client.NSClient, "body").AppendText(string(m)))
		st.Append(xmltree.New(client.NSHints, "no-copy"), xmltree.New(client.NSHints, "no-permanent-store"), xmltree.New(client.NSCarbons, "private"))
		if err := l.c.SendElement(context.Background(), st); err != nil {
			l.t.Fatal(err)
		}
	}
}

// until passes what arrives to libotr, and transmits its answers, until
// done reports true for everything libotr did so far.
func (l *libotrXMPP) until(what string, done func(libotrpeer.Output) bool) {
	l.t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for !done(l.out) {
		select {
		case body := <-l.raw.bodies:
			l.transmit(l.peer.Receive([]byte(body)))
		case <-timer.C:
			l.t.Fatalf("libotr: timed out waiting for %s; events %v", what, l.out.Events)
		}
	}
}

func TestIntegrationOTRLibotrPeer(t *testing.T) {
	if testing.Short() && !prosodytest.Required() {
		t.Skip("integration test skipped in -short mode")
	}
	libotrpeer.Build(t) // skips (or fails under BALCONY_REQUIRE_INTEROP=1) without libotr
	srv := prosodytest.Start(t)
	alice, libby := srv.AddUser(t, "alice", ""), srv.AddUser(t, "libby", "")
	a := clienttest.Connect(t, srv, alice, "balcony")
	ao := attachOTR(t, a, newOTRAccount(t, 4))
	lc := clienttest.Connect(t, srv, libby, "pidgin")
	raw := &rawOTR{bodies: make(chan string, 64)}
	if err := lc.Register(raw); err != nil {
		t.Fatal(err)
	}
	l := &libotrXMPP{t: t, c: lc, raw: raw, to: a.JID(), peer: libotrpeer.Start(t, libotrpeer.Options{
		Account: "123abc", Protocol: "-x", KeyFile: "../../otr/testdata/privkeys-libotr.txt", Buddy: "alice",
	})}
	libFpr, err := engine.ParseFingerprint(l.peer.Fingerprint().Own)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Discovery: libotr's opportunistic policy tags its first plaintext
	// message; Balcony shows it without the tag and starts the AKE.
	l.transmit(l.peer.Send([]byte("hello, anyone speaking OTR?")))
	m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" })
	if m.Body != "hello, anyone speaking OTR?" || m.Security.Encrypted() {
		t.Fatalf("alice got %+v", m)
	}
	l.until("the AKE", func(o libotrpeer.Output) bool { return o.Has(libotrpeer.KindGoneSecure) })
	sec := otrEvent(t, a, "otr-private", lc.JID())
	if sec.Fingerprint != libFpr.String() {
		t.Fatalf("alice sees fingerprint %s, libotr's is %s", sec.Fingerprint, libFpr)
	}
	ls := l.peer.State()
	st := ao.Status(ctx, lc.JID())
	if ls.MsgState != libotrpeer.Encrypted || st.SSID == "" || !strings.EqualFold(st.SSID, hexString(ls.SSID)) ||
		st.TheirInstance != l.peer.InstanceTag() || ls.TheirInstance != ao.InstanceTag() {
		t.Fatalf("libotr %+v, balcony %+v", ls, st)
	}
	if got := l.peer.Fingerprint().Peer; !strings.EqualFold(got, ao.Fingerprint().Hex()) {
		t.Fatalf("libotr sees %s, ours is %s", got, ao.Fingerprint().Hex())
	}

	// Messages both ways; libotr's HTML is shown as text.
	l.transmit(l.peer.Send([]byte(`<FONT COLOR="#000000">fish &amp; chips &lt;3</FONT>`)))
	m = clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" })
	if m.Body != "fish & chips <3" || m.Security.Mechanism != eme.OTR || m.Security.Fingerprint != libFpr.String() {
		t.Fatalf("alice got %+v", m)
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: lc.JID(), Body: "hi from balcony"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	l.until("balcony's message", func(o libotrpeer.Output) bool { return hasMessage(o, "hi from balcony") })

	// SMP started by libotr with a question, answered in Balcony.
	l.transmit(l.peer.StartSMPQuestion("favourite colour?", []byte("blue")))
	q := otrEvent(t, a, "otr-smp-question", lc.JID())
	if !strings.Contains(q.Text, "favourite colour?") {
		t.Fatalf("question %q", q.Text)
	}
	if err := ao.AnswerSMP(ctx, lc.JID(), []byte("blue")); err != nil {
		t.Fatal(err)
	}
	l.until("SMP success", func(o libotrpeer.Output) bool { return o.HasSMP(libotrpeer.SMPSuccess) })
	otrEvent(t, a, "otr-smp-succeeded", lc.JID())
	if st := ao.Status(ctx, lc.JID()); st.State != otr.StatePrivateVerified {
		t.Fatalf("state after SMP: %v", st.State)
	}

	// SMP started in Balcony with a wrong answer from libotr: both fail.
	l.out = libotrpeer.Output{}
	if err := ao.StartSMP(ctx, lc.JID(), "", []byte("green")); err != nil {
		t.Fatal(err)
	}
	l.until("the SMP request", func(o libotrpeer.Output) bool { return o.HasSMP(libotrpeer.SMPAskForSecret) })
	l.transmit(l.peer.RespondSMP([]byte("red")))
	l.until("the SMP result", func(o libotrpeer.Output) bool { return o.HasSMP(libotrpeer.SMPFailure) })
	otrEvent(t, a, "otr-smp-failed", lc.JID())

	// A manual start while private refreshes the keys with libotr.
	oldSSID := ao.Status(ctx, lc.JID()).SSID
	if err := ao.Start(ctx, lc.JID()); err != nil {
		t.Fatal(err)
	}
	l.until("the refresh", func(o libotrpeer.Output) bool {
		return o.Has(libotrpeer.KindGoneSecure) || o.Has(libotrpeer.KindStillSecure)
	})
	otrEvent(t, a, "otr-verified", lc.JID()) // the fingerprint was verified by the first SMP
	if st := ao.Status(ctx, lc.JID()); st.SSID == oldSSID || !strings.EqualFold(st.SSID, hexString(l.peer.State().SSID)) {
		t.Fatalf("after the refresh: ssid %s (was %s), libotr %x", st.SSID, oldSSID, l.peer.State().SSID)
	}
	l.transmit(l.peer.Send([]byte("after the refresh")))
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "after the refresh" || !m.Security.Verified {
		t.Fatalf("alice got %+v", m)
	}

	// The libotr client restarts as a new OTR instance (a new instance
	// tag, the same key) behind the same resource, and asks for a private
	// conversation while Balcony still holds the old one: the new instance
	// is answered, and becomes the conversation.
	oldTag := l.peer.InstanceTag()
	l.peer.Close()
	l.peer = libotrpeer.Start(t, libotrpeer.Options{
		Account: "123abc", Protocol: "-x", KeyFile: "../../otr/testdata/privkeys-libotr.txt", Buddy: "alice",
	})
	if l.peer.InstanceTag() == oldTag {
		t.Fatal("the restarted libotr kept its instance tag")
	}
	l.out = libotrpeer.Output{}
	l.transmit(l.peer.StartAKE())
	l.until("the AKE with the new instance", func(o libotrpeer.Output) bool { return o.Has(libotrpeer.KindGoneSecure) })
	otrEvent(t, a, "otr-verified", lc.JID())
	if st := ao.Status(ctx, lc.JID()); st.TheirInstance != l.peer.InstanceTag() || !strings.EqualFold(st.SSID, hexString(l.peer.State().SSID)) {
		t.Fatalf("after libotr's restart: %+v", st)
	}
	if _, err := a.Send(ctx, &client.Outgoing{To: lc.JID(), Body: "hello new instance"}, eme.OTR); err != nil {
		t.Fatal(err)
	}
	l.until("the message to the new instance", func(o libotrpeer.Output) bool { return hasMessage(o, "hello new instance") })
	l.transmit(l.peer.Send([]byte("new instance here")))
	if m := clienttest.WaitFor(t, a, func(m *client.MessageEvent) bool { return m.Body != "" }); m.Body != "new instance here" {
		t.Fatalf("alice got %+v", m)
	}

	// libotr ends the conversation: Balcony shows it and refuses to send.
	l.transmit(l.peer.End())
	otrEvent(t, a, "otr-finished", lc.JID())
	if _, err := a.Send(ctx, &client.Outgoing{To: lc.JID(), Body: "x"}, eme.OTR); !errors.Is(err, engine.ErrFinished) {
		t.Fatalf("send after the peer ended: %v", err)
	}
	noOTRInArchive(t, a, libby.JID)
	noOTRInArchive(t, lc, alice.JID)
}

func hasMessage(o libotrpeer.Output, text string) bool {
	for _, m := range o.Messages {
		if m.Encrypted && bytes.Equal(m.Text, []byte(text)) {
			return true
		}
	}
	return false
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}
