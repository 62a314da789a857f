package libotrpeer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file check the harness with libotr on both sides: two
// helper processes relayed through Go. They need no Go OTR engine.

// pair starts two libotr peers that know each other as buddies.
func pair(t *testing.T, a, b Options) (*Peer, *Peer) {
	t.Helper()
	a.Account, a.Buddy = "alice@example.org", "bob@example.org"
	b.Account, b.Buddy = "bob@example.org", "alice@example.org"
	return Start(t, a), Start(t, b)
}

// relay delivers msgs from `from` to `to`, then every reply in turn, until
// neither side has anything left to transmit. It returns everything each
// side output while receiving.
func relay(t *testing.T, from, to *Peer, msgs [][]byte) (outFrom, outTo Output) {
	t.Helper()
	type hop struct {
		dst *Peer
		msg []byte
	}
	var queue []hop
	for _, m := range msgs {
		queue = append(queue, hop{to, m})
	}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 1000 {
			t.Fatal("relay: messages keep bouncing")
		}
		h := queue[0]
		queue = queue[1:]
		out := h.dst.Receive(h.msg)
		other := from
		if h.dst == from {
			other = to
			outFrom.Append(out)
		} else {
			outTo.Append(out)
		}
		for _, m := range out.Net {
			queue = append(queue, hop{other, m})
		}
	}
	return outFrom, outTo
}

// secure runs an AKE started by a's query and checks both sides end up
// encrypted with the same session id.
func secure(t *testing.T, a, b *Peer) {
	t.Helper()
	q := a.StartAKE()
	if len(q.Net) != 1 || !bytes.HasPrefix(q.Net[0], []byte("?OTRv")) {
		t.Fatalf("query: Net = %q", q.Net)
	}
	outA, outB := relay(t, a, b, q.Net)
	if !outA.Has(KindGoneSecure) || !outB.Has(KindGoneSecure) {
		t.Fatalf("AKE: events a=%v b=%v", outA.Events, outB.Events)
	}
	sa, sb := a.State(), b.State()
	if sa.MsgState != Encrypted || sb.MsgState != Encrypted {
		t.Fatalf("states after AKE: %+v %+v", sa, sb)
	}
	if sa.Version != 3 || len(sa.SSID) != 8 || !bytes.Equal(sa.SSID, sb.SSID) {
		t.Fatalf("session ids differ or not v3: %+v %+v", sa, sb)
	}
	if sa.SSIDHalf == sb.SSIDHalf {
		t.Errorf("both sides show the same SSID half bold: %+v %+v", sa, sb)
	}
	if sa.TheirInstance != b.InstanceTag() || sb.TheirInstance != a.InstanceTag() {
		t.Errorf("instance tags: a sees %08x (b is %08x), b sees %08x (a is %08x)",
			sa.TheirInstance, b.InstanceTag(), sb.TheirInstance, a.InstanceTag())
	}
}

// say sends text from one peer and checks the other gets it encrypted.
func say(t *testing.T, from, to *Peer, text string) Output {
	t.Helper()
	out := from.Send([]byte(text))
	if len(out.Net) == 0 {
		t.Fatalf("send %q: nothing to transmit (events %v)", text, out.Events)
	}
	for _, m := range out.Net {
		if !bytes.HasPrefix(m, []byte("?OTR")) {
			t.Fatalf("send %q while encrypted produced a non-OTR message %q", text, m)
		}
	}
	_, got := relay(t, from, to, out.Net)
	if len(got.Messages) != 1 || string(got.Messages[0].Text) != text || !got.Messages[0].Encrypted {
		t.Fatalf("sent %q, delivered %+v", text, got.Messages)
	}
	return out
}

func TestVersion(t *testing.T) {
	p := Start(t, Options{})
	if v := p.Version(); !strings.HasPrefix(v, "4.1.") {
		t.Errorf("libotr version %q, want 4.1.x", v)
	}
	if tag := p.InstanceTag(); tag < 0x100 {
		t.Errorf("instance tag %#x is reserved", tag)
	}
	st := p.State()
	if st.MsgState != Plaintext || st.SSID != nil {
		t.Errorf("fresh peer state %+v", st)
	}
	fp := p.Fingerprint()
	if len(fp.Own) != 40 || fp.Peer != "" || fp.Trusted {
		t.Errorf("fresh peer fingerprints %+v", fp)
	}
}

func TestAKEByQuery(t *testing.T) {
	for _, initiator := range []string{"alice", "bob"} {
		t.Run(initiator, func(t *testing.T) {
			a, b := pair(t, Options{Policy: PolicyManual}, Options{Policy: PolicyManual})
			if initiator == "bob" {
				a, b = b, a
			}
			secure(t, a, b)
			fa, fb := a.Fingerprint(), b.Fingerprint()
			if fa.Peer != fb.Own || fb.Peer != fa.Own || fa.Own == fb.Own {
				t.Errorf("fingerprints do not cross-match: %+v %+v", fa, fb)
			}
			if fa.Trusted || fb.Trusted {
				t.Errorf("fingerprints trusted without verification: %+v %+v", fa, fb)
			}
		})
	}
}

func TestMessagesBothWays(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	for i := range 6 {
		out := say(t, a, b, fmt.Sprintf("ping %d", i))
		// A v3 data message starts with version 3, type 3: "\x00\x03\x03".
		if !bytes.HasPrefix(out.Net[0], []byte("?OTR:AAMD")) {
			t.Errorf("not a v3 data message: %.20q", out.Net[0])
		}
		say(t, b, a, fmt.Sprintf("pong %d", i))
	}
	// Several messages in one direction without an answer.
	for i := range 3 {
		say(t, a, b, fmt.Sprintf("more %d", i))
	}
}

func TestArbitraryBytes(t *testing.T) {
	var all []byte
	for c := 1; c < 256; c++ {
		all = append(all, byte(c))
	}
	a, b := pair(t, Options{Policy: PolicyManual}, Options{Policy: PolicyManual})
	// In plaintext libotr leaves the message alone and the driver sends
	// it unchanged.
	out := a.Send(all)
	if len(out.Net) != 1 || !bytes.Equal(out.Net[0], all) {
		t.Fatalf("plaintext send changed the message: %q", out.Net)
	}
	got := b.Receive(all)
	if len(got.Messages) != 1 || !bytes.Equal(got.Messages[0].Text, all) || got.Messages[0].Encrypted {
		t.Fatalf("plaintext receive: %+v", got.Messages)
	}
	secure(t, a, b)
	say(t, a, b, string(all))
}

func TestFragments(t *testing.T) {
	const mms = 140
	a, b := pair(t, Options{FragmentSize: mms}, Options{FragmentSize: mms})
	q := a.StartAKE()
	outA, outB := relay(t, a, b, q.Net)
	if !outA.Has(KindGoneSecure) || !outB.Has(KindGoneSecure) {
		t.Fatalf("fragmented AKE failed: %v %v", outA.Events, outB.Events)
	}
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	for _, dir := range []struct{ from, to *Peer }{{a, b}, {b, a}} {
		out := say(t, dir.from, dir.to, long)
		if len(out.Net) < 2 {
			t.Fatalf("a %d-byte message was not fragmented", len(long))
		}
		for i, m := range out.Net {
			if len(m) > mms {
				t.Errorf("fragment %d is %d bytes, over %d", i, len(m), mms)
			}
			want := fmt.Sprintf(",%05d,%05d,", i+1, len(out.Net))
			if !bytes.HasPrefix(m, []byte("?OTR|")) || !bytes.Contains(m, []byte(want)) {
				t.Errorf("fragment %d: %q lacks a v3 header with %s", i, m, want)
			}
		}
	}
}

func TestSMP(t *testing.T) {
	for _, tc := range []struct {
		name           string
		question       string
		secret, answer string
		wantSuccess    bool
	}{
		{"question/success", "Where did we meet?", "in Paris", "in Paris", true},
		{"question/failure", "Where did we meet?", "in Paris", "in Rome", false},
		{"secret/success", "", "correct horse", "correct horse", true},
		{"secret/failure", "", "correct horse", "battery staple", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t, Options{}, Options{})
			secure(t, a, b)
			var start Output
			if tc.question != "" {
				start = a.StartSMPQuestion(tc.question, []byte(tc.secret))
			} else {
				start = a.StartSMP([]byte(tc.secret))
			}
			_, outB := relay(t, a, b, start.Net)
			ev := outB.SMPEvents()
			switch {
			case len(ev) != 1:
				t.Fatalf("responder events %v", outB.Events)
			case tc.question != "" && (ev[0].SMP != SMPAskForAnswer || string(ev[0].Question) != tc.question):
				t.Fatalf("responder events %v", outB.Events)
			case tc.question == "" && (ev[0].SMP != SMPAskForSecret || ev[0].Question != nil):
				t.Fatalf("responder events %v", outB.Events)
			}
			outB, outA := relay(t, b, a, b.RespondSMP([]byte(tc.answer)).Net)
			want, notWant := SMPFailure, SMPSuccess
			if tc.wantSuccess {
				want, notWant = notWant, want
			}
			if !outA.HasSMP(SMPInProgress) || !outA.HasSMP(want) || !outB.HasSMP(want) ||
				outA.HasSMP(notWant) || outB.HasSMP(notWant) {
				t.Fatalf("want %s: a %v, b %v", want, outA.Events, outB.Events)
			}
			// libotr trusts the key after a successful SMP, but the
			// responder to a question does not: the asker chose the
			// answer, so it proves nothing to the responder.
			fa, fb := a.Fingerprint(), b.Fingerprint()
			if fa.Trusted != tc.wantSuccess || fb.Trusted != (tc.wantSuccess && tc.question == "") {
				t.Errorf("trust after SMP: initiator %v, responder %v", fa.Trusted, fb.Trusted)
			}
			// SMP TLVs ride in data messages flagged IGNORE_UNREADABLE
			// with an empty body: nothing is shown to the user.
			if len(outA.Messages)+len(outB.Messages) != 0 {
				t.Errorf("SMP delivered messages: %+v %+v", outA.Messages, outB.Messages)
			}
			if !outA.HasTLV(3) || !outA.HasTLV(5) || !outB.HasTLV(4) {
				t.Errorf("SMP TLVs: a %v, b %v", outA.TLVs, outB.TLVs)
			}
		})
	}
}

func TestSMPAbort(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	start := a.StartSMP([]byte("x"))
	relay(t, a, b, start.Net)
	abort := b.AbortSMP()
	outB, outA := relay(t, b, a, abort.Net)
	if !outA.HasSMP(SMPAbort) || !outA.HasTLV(6) {
		t.Fatalf("abort not seen: %v %v", outA.Events, outA.TLVs)
	}
	if a.State().SMPExpect != 1 || b.State().SMPExpect != 1 {
		t.Errorf("SMP state not reset after abort: %+v %+v", a.State(), b.State())
	}
	_ = outB
	// A fresh SMP works after the abort.
	start = a.StartSMP([]byte("y"))
	relay(t, a, b, start.Net)
	outB, outA = relay(t, b, a, b.RespondSMP([]byte("y")).Net)
	if !outA.HasSMP(SMPSuccess) || !outB.HasSMP(SMPSuccess) {
		t.Fatalf("SMP after abort: %v %v", outA.Events, outB.Events)
	}
}

func TestDisconnect(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	end := a.End()
	if len(end.Net) != 1 {
		t.Fatalf("END sent %d messages", len(end.Net))
	}
	if st := a.State(); st.MsgState != Plaintext {
		t.Errorf("after END our state is %s", st.MsgState)
	}
	got := b.Receive(end.Net[0])
	if !got.HasTLV(1) || len(got.Messages) != 0 {
		t.Fatalf("disconnect: TLVs %v, messages %+v", got.TLVs, got.Messages)
	}
	if st := b.State(); st.MsgState != Finished {
		t.Fatalf("after the peer's END the state is %s", st.MsgState)
	}
	// FINISHED refuses to send.
	out := b.Send([]byte("are you there?"))
	if len(out.Net) != 0 || !out.HasMsg(MsgConnectionEnded) {
		t.Fatalf("send in FINISHED: Net %q, events %v", out.Net, out.Events)
	}
	// Ending it on b's side too returns to plaintext; a new AKE works.
	if out := b.End(); len(out.Net) != 0 {
		t.Errorf("END in FINISHED transmitted %q", out.Net)
	}
	secure(t, b, a)
}

func TestWhitespaceTag(t *testing.T) {
	a, b := pair(t, Options{Policy: PolicyOpportunistic}, Options{Policy: PolicyOpportunistic})
	out := a.Send([]byte("hello"))
	tag := "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20"
	v3 := "\x20\x20\x09\x09\x20\x20\x09\x09"
	if len(out.Net) != 1 || !bytes.HasPrefix(out.Net[0], []byte("hello"+tag)) || !bytes.Contains(out.Net[0], []byte(v3)) {
		t.Fatalf("tagged plaintext %q", out.Net)
	}
	got := b.Receive(out.Net[0])
	if len(got.Messages) != 1 || string(got.Messages[0].Text) != "hello" || got.Messages[0].Encrypted {
		t.Fatalf("tag not stripped: %+v", got.Messages)
	}
	if len(got.Net) != 1 || !bytes.HasPrefix(got.Net[0], []byte("?OTR:AAMC")) {
		t.Fatalf("whitespace tag did not start an AKE with a v3 DH-Commit: %q", got.Net)
	}
	outB, outA := relay(t, b, a, got.Net)
	if !outA.Has(KindGoneSecure) || !outB.Has(KindGoneSecure) {
		t.Fatalf("AKE: %v %v", outA.Events, outB.Events)
	}
	say(t, a, b, "now private")
}

func TestRequireEncryption(t *testing.T) {
	a, b := pair(t, Options{Policy: PolicyAlways}, Options{Policy: PolicyManual})
	out := a.Send([]byte("for your eyes only"))
	if !out.HasMsg(MsgEncryptionRequired) || len(out.Net) != 1 || !bytes.HasPrefix(out.Net[0], []byte("?OTRv")) {
		t.Fatalf("REQUIRE_ENCRYPTION: %q %v", out.Net, out.Events)
	}
	if bytes.Contains(out.Net[0], []byte("for your eyes only")) {
		t.Fatal("the message leaked in the query")
	}
	// libotr sends the held message once the AKE completes (without
	// the "[resent]" prefix and MSG_RESENT event it uses after an error).
	_, outB := relay(t, a, b, out.Net)
	if len(outB.Messages) != 1 || !outB.Messages[0].Encrypted ||
		string(outB.Messages[0].Text) != "for your eyes only" {
		t.Fatalf("held message not delivered encrypted: %+v", outB.Messages)
	}
}

func TestReAKE(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	say(t, a, b, "before")
	ssid := a.State().SSID
	outB, outA := relay(t, b, a, b.StartAKE().Net)
	// b asked and stays in its encrypted instance: still secure. a starts
	// the AKE from its master context (a query carries no instance tags),
	// and libotr copies the master's PLAINTEXT state into the instance
	// when the DH-Key arrives, so a reports gone_secure.
	if !outB.Has(KindStillSecure) || !outA.Has(KindGoneSecure) && !outA.Has(KindStillSecure) {
		t.Fatalf("re-AKE events: a %v, b %v", outA.Events, outB.Events)
	}
	sa, sb := a.State(), b.State()
	if !bytes.Equal(sa.SSID, sb.SSID) || bytes.Equal(sa.SSID, ssid) {
		t.Errorf("re-AKE session ids: old %x, a %x, b %x", ssid, sa.SSID, sb.SSID)
	}
	say(t, a, b, "after")
	say(t, b, a, "after too")
}

func TestSymkey(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	key, out := a.Symkey(0x01020304, []byte("file transfer 1"))
	got := b.Receive(out.Net[0])
	var ev *Event
	for i := range got.Events {
		if got.Events[i].Kind == KindSymkey {
			ev = &got.Events[i]
		}
	}
	if ev == nil || ev.Use != 0x01020304 || string(ev.UseData) != "file transfer 1" || !bytes.Equal(ev.Key, key[:]) {
		t.Fatalf("received symkey event %+v, want key %x", ev, key)
	}
	if key == [32]byte{} {
		t.Fatal("zero extra symmetric key")
	}
}

func TestInstanceTagFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instags")
	p := Start(t, Options{InstanceTagFile: path})
	tag := p.InstanceTag()
	p.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("instance tag file not written: %v", err)
	}
	q := Start(t, Options{InstanceTagFile: path})
	if got := q.InstanceTag(); got != tag {
		t.Fatalf("instance tag %08x reloaded as %08x", tag, got)
	}
	if r := Start(t, Options{}); r.InstanceTag() == tag {
		t.Fatalf("two fresh peers share instance tag %08x", tag)
	}
}

func TestReceiveForOtherInstance(t *testing.T) {
	a, b := pair(t, Options{}, Options{})
	secure(t, a, b)
	out := a.Send([]byte("to b"))
	c := Start(t, Options{Account: "bob@example.org", Buddy: "alice@example.org"})
	got := c.Receive(out.Net[0])
	if len(got.Messages) != 0 || !got.HasMsg(MsgRcvdForOtherInstance) {
		t.Fatalf("a third instance accepted b's message: %+v %v", got.Messages, got.Events)
	}
}

func TestRequestErrors(t *testing.T) {
	p := Start(t, Options{})
	for _, req := range [][]string{
		{"NOPE"},
		{"SEND", "not*base64"},
		{"SEND", "AA=="}, // a NUL byte cannot reach otrl_message_sending
		{"SEND"},
		{"POLICY", "x"},
		{"SMP", "YQ=="}, // not encrypted
		{"KEYLOAD", enc([]byte(filepath.Join(t.TempDir(), "missing")))},
	} {
		_, err := p.Do(req[0], req[1:]...)
		if _, ok := err.(*RequestError); !ok {
			t.Errorf("%q: err = %v, want a *RequestError", req, err)
		}
	}
	// The peer still works after errors.
	if out := p.Send([]byte("ok")); len(out.Net) != 1 {
		t.Errorf("send after errors: %q", out.Net)
	}
}

func TestKeyFileShared(t *testing.T) {
	k1 := KeyFile(t, "carol@example.org", "xmpp")
	k2 := KeyFile(t, "carol@example.org", "xmpp")
	k3 := KeyFile(t, "dave@example.org", "xmpp")
	if k1 != k2 || k1 == k3 {
		t.Fatalf("key files %q %q %q", k1, k2, k3)
	}
	p := Start(t, Options{Account: "carol@example.org", KeyFile: k1})
	q := Start(t, Options{Account: "carol@example.org", KeyFile: k2})
	if p.Fingerprint().Own != q.Fingerprint().Own {
		t.Fatal("the same key file gave different fingerprints")
	}
}

// fakeTB records Skip and Fatal instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestUnavailable(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, missing := probe()
	if !strings.Contains(missing, "gcc") {
		t.Fatalf("probe with an empty PATH: %q", missing)
	}

	t.Setenv(EnvRequire, "")
	f := &fakeTB{TB: t}
	unavailable(f, missing)
	if f.skipped == "" || f.failed != "" || !strings.Contains(f.skipped, "gcc") {
		t.Errorf("without %s: skipped %q, failed %q", EnvRequire, f.skipped, f.failed)
	}

	t.Setenv(EnvRequire, "1")
	f = &fakeTB{TB: t}
	unavailable(f, missing)
	if f.failed == "" || f.skipped != "" {
		t.Errorf("with %s=1: skipped %q, failed %q", EnvRequire, f.skipped, f.failed)
	}
}

func TestClose(t *testing.T) {
	p := Start(t, Options{})
	p.Close()
	if p.cmd.ProcessState == nil || !p.cmd.ProcessState.Exited() || p.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("helper not reaped cleanly: %v", p.cmd.ProcessState)
	}
	p.Close() // a second Close is harmless
}

func TestHelperDeath(t *testing.T) {
	Build(t) // skip here, not through the fake, when libotr is missing
	f := &fakeTB{TB: t}
	p := Start(f, Options{})
	if f.failed != "" || f.skipped != "" {
		t.Fatalf("Start: failed %q, skipped %q", f.failed, f.skipped)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// The call must notice the dead helper (not hang, not succeed).
	if _, err := p.Do("STATE"); err == nil {
		t.Fatal("a request to a dead helper succeeded")
	}
	if !strings.Contains(f.failed, "helper exited") && !strings.Contains(f.failed, "writing STATE") {
		t.Fatalf("failure message %q", f.failed)
	}
}
