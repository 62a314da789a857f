package otr

import (
	"bytes"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
)

func TestAKEBothInitiators(t *testing.T) {
	for _, pol := range []Policy{PolicyManual, AllowV3, AllowV2, PolicyOpportunistic} {
		for _, first := range []string{"alice", "bob"} {
			d := newDuo(t, Config{Policy: pol}, Config{Policy: pol})
			s := d.a
			if first == "bob" {
				s = d.b
			}
			d.ake(s)
			if d.a.count(EventGoneSecure) != 1 || d.b.count(EventGoneSecure) != 1 {
				t.Fatalf("policy %#x, %s first: gone-secure events %d/%d", pol, first, d.a.count(EventGoneSecure), d.b.count(EventGoneSecure))
			}
			want := 3
			if pol == AllowV2 {
				want = 2
			}
			if v := d.a.conv.ProtocolVersion(); v != want {
				t.Fatalf("policy %#x: version %d, want %d", pol, v, want)
			}
			if want == 2 && (d.a.conv.TheirInstanceTag() != 0 || d.b.conv.TheirInstanceTag() != 0) {
				t.Fatal("v2 session has instance tags")
			}
			d.sendPrivately(d.a, "hello bob")
			d.sendPrivately(d.b, "hello alice")
			d.noErrors()
		}
	}
}

func TestAKEVersionNegotiation(t *testing.T) {
	// v3-only and v2-only have nothing in common: the query is shown as text.
	d := newDuo(t, Config{Policy: AllowV3}, Config{Policy: AllowV2})
	q, _ := d.a.conv.StartAKE()
	if !bytes.HasPrefix(q[0], []byte("?OTRv3?")) {
		t.Fatalf("query %q", q[0])
	}
	d.deliver(d.a, q)
	if d.b.conv.auth.state != authNone || len(d.b.texts) != 1 || !strings.HasPrefix(d.b.texts[0], "?OTRv3?") {
		t.Fatalf("bob: auth %d, texts %q", d.b.conv.auth.state, d.b.texts)
	}
	// v2+v3 against v2-only: version 2.
	d = newDuo(t, Config{Policy: PolicyManual}, Config{Policy: AllowV2})
	d.ake(d.a)
	if d.a.conv.ProtocolVersion() != 2 {
		t.Fatalf("version %d", d.a.conv.ProtocolVersion())
	}
	// PolicyNever passes everything through untouched.
	n := newSide(t, "never", aliceKey(t), Config{})
	r, err := n.conv.Receive([]byte("?OTRv23?"))
	if err != nil || string(r.Plaintext) != "?OTRv23?" || len(r.ToSend) != 0 {
		t.Fatalf("PolicyNever Receive: %q %v", r.Plaintext, err)
	}
	m, err := n.conv.Send([]byte("hi"))
	if err != nil || len(m) != 1 || string(m[0]) != "hi" {
		t.Fatalf("PolicyNever Send: %q %v", m, err)
	}
	if _, err := n.conv.StartAKE(); err != ErrDisabled {
		t.Fatalf("PolicyNever StartAKE: %v", err)
	}
}

func TestAKEByWhitespaceTag(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyOpportunistic}, Config{Policy: PolicyOpportunistic})
	msgs, err := d.a.conv.Send([]byte("hi there"))
	if err != nil || len(msgs) != 1 || !bytes.Contains(msgs[0], wsBase) {
		t.Fatalf("first plaintext not tagged: %q %v", msgs, err)
	}
	d.deliver(d.a, msgs)
	if len(d.b.texts) != 1 || d.b.texts[0] != "hi there" || d.b.enc[0] {
		t.Fatalf("bob shows %q", d.b.texts)
	}
	d.checkSecure()
	d.sendPrivately(d.b, "now private")
	d.noErrors()

	// Without WhitespaceStartAKE the tag is stripped and nothing starts.
	d = newDuo(t, Config{Policy: PolicyOpportunistic}, Config{Policy: PolicyManual})
	d.send(d.a, "tagged")
	if d.b.conv.State() != Plaintext || d.b.conv.auth.state != authNone || d.b.texts[0] != "tagged" {
		t.Fatal("manual policy started an AKE on a whitespace tag")
	}
	// Bob replied in plaintext: Alice stops tagging.
	d.send(d.b, "plain reply")
	msgs, _ = d.a.conv.Send([]byte("again"))
	if bytes.Contains(msgs[0], wsBase) {
		t.Fatal("still tagging after a plaintext reply")
	}
	if d.a.has(EventUnencrypted) {
		t.Fatal("a plaintext message in plaintext state was flagged")
	}
}

func TestAKEByErrorMessage(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyManual | ErrorStartAKE}, Config{Policy: PolicyManual})
	d.deliver(d.b, [][]byte{[]byte("?OTR Error: You transmitted an unreadable encrypted message.")})
	e := d.a.event(EventError)
	if e == nil || e.Text != "You transmitted an unreadable encrypted message." {
		t.Fatalf("error event %+v", e)
	}
	d.checkSecure()
	// Without ErrorStartAKE only the event.
	d = newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	r, err := receiveOne(t, d.a, []byte("?OTR Error: oops"))
	if err != nil || len(r.ToSend) != 0 || !d.a.has(EventError) || r.Plaintext != nil {
		t.Fatalf("error message: %q %v %v", r.ToSend, err, r.Events)
	}
}

func TestSimultaneousCommits(t *testing.T) {
	for i := 0; i < 4; i++ {
		d := newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
		qa, _ := d.a.conv.StartAKE()
		qb, _ := d.b.conv.StartAKE()
		ra, _ := receiveOne(t, d.a, qb[0]) // Alice commits
		rb, _ := receiveOne(t, d.b, qa[0]) // Bob commits
		if d.a.conv.auth.state != authAwaitingDHKey || d.b.conv.auth.state != authAwaitingDHKey {
			t.Fatal("both should await a DH-Key")
		}
		aliceHigher := bytes.Compare(d.a.conv.auth.hashGx[:], d.b.conv.auth.hashGx[:]) > 0
		commitA, commitB := ra.ToSend[0], rb.ToSend[0]
		// the commits cross
		ra, _ = receiveOne(t, d.a, commitB)
		rb, _ = receiveOne(t, d.b, commitA)
		winner, loser := d.a, d.b
		wr, lr := ra, rb
		wantCommit := commitA
		if !aliceHigher {
			winner, loser, wr, lr, wantCommit = d.b, d.a, rb, ra, commitB
		}
		// the higher hash resends its commit; the lower answers with a DH-Key
		if len(wr.ToSend) != 1 || !bytes.Equal(wr.ToSend[0], wantCommit) || winner.conv.auth.state != authAwaitingDHKey {
			t.Fatal("winner did not resend its own commit")
		}
		if len(lr.ToSend) != 1 || loser.conv.auth.state != authAwaitingRevealSig {
			t.Fatal("loser did not answer with a DH-Key")
		}
		d.deliver(loser, lr.ToSend)
		d.deliver(winner, wr.ToSend)
		d.checkSecure()
		if d.a.count(EventGoneSecure) != 1 || d.b.count(EventGoneSecure) != 1 {
			t.Fatalf("gone secure %d/%d times", d.a.count(EventGoneSecure), d.b.count(EventGoneSecure))
		}
		d.sendPrivately(d.a, "ok")
		d.sendPrivately(d.b, "ok")
		d.noErrors()
	}
}

// akeSteps runs an AKE by hand: Bob commits, Alice answers, and so on.
type akeSteps struct {
	d                                   *duo
	commit, dhkey, revealSig, signature []byte
}

func startSteps(t *testing.T, pol Policy) *akeSteps {
	d := newDuo(t, Config{Policy: pol}, Config{Policy: pol})
	q, _ := d.a.conv.StartAKE()
	r, _ := receiveOne(t, d.b, q[0])
	s := &akeSteps{d: d, commit: r.ToSend[0]}
	r, _ = receiveOne(t, d.a, s.commit)
	s.dhkey = r.ToSend[0]
	return s
}

func (s *akeSteps) reveal(t *testing.T) {
	r, err := receiveOne(t, s.d.b, s.dhkey)
	if err != nil || len(r.ToSend) != 1 {
		t.Fatalf("DH-Key: %v", err)
	}
	s.revealSig = r.ToSend[0]
}

func TestAKERetransmissions(t *testing.T) {
	s := startSteps(t, PolicyManual)
	a, b := s.d.a, s.d.b
	// The same commit again: the same DH-Key again.
	r, _ := receiveOne(t, a, s.commit)
	if len(r.ToSend) != 1 || !bytes.Equal(r.ToSend[0], s.dhkey) {
		t.Fatal("DH-Key not retransmitted identically")
	}
	s.reveal(t)
	// The same DH-Key again: the same Reveal-Signature again.
	r, _ = receiveOne(t, b, s.dhkey)
	if len(r.ToSend) != 1 || !bytes.Equal(r.ToSend[0], s.revealSig) {
		t.Fatal("Reveal-Signature not retransmitted identically")
	}
	// A different DH-Key in AWAITING_SIG is ignored.
	other := startSteps(t, PolicyManual)
	r, err := receiveOne(t, b, other.dhkey)
	if err != nil || len(r.ToSend) != 0 || b.conv.auth.state != authAwaitingSig {
		t.Fatalf("foreign DH-Key: %q %v", r.ToSend, err)
	}
	r, _ = receiveOne(t, a, s.revealSig)
	if len(r.ToSend) != 1 {
		t.Fatal("no Signature message")
	}
	// A retransmitted Reveal-Signature after the AKE is ignored.
	r2, err := receiveOne(t, a, s.revealSig)
	if err != nil || len(r2.ToSend) != 0 {
		t.Fatalf("late Reveal-Signature: %q %v", r2.ToSend, err)
	}
	receiveOne(t, b, r.ToSend[0])
	s.d.checkSecure()
	// A DH-Key when no AKE is running is ignored.
	r, err = receiveOne(t, b, s.dhkey)
	if err != nil || len(r.ToSend) != 0 {
		t.Fatal("DH-Key outside an AKE answered")
	}
}

func TestAKENewCommitWhileAwaitingRevealSig(t *testing.T) {
	s := startSteps(t, PolicyManual)
	a, b := s.d.a, s.d.b
	// Bob restarts: a new commit. Alice resends her DH-Key, using the new commit.
	q, _ := a.conv.StartAKE()
	r, _ := receiveOne(t, b, q[0])
	commit2 := r.ToSend[0]
	r, _ = receiveOne(t, a, commit2)
	if len(r.ToSend) != 1 || !bytes.Equal(r.ToSend[0], s.dhkey) {
		t.Fatal("DH-Key not retransmitted for the new commit")
	}
	s.reveal(t)
	r, err := receiveOne(t, a, s.revealSig)
	if err != nil || len(r.ToSend) != 1 {
		t.Fatalf("Reveal-Signature for the new commit: %v", err)
	}
	receiveOne(t, b, r.ToSend[0])
	s.d.checkSecure()
}

func TestAKECommitWhileAwaitingSig(t *testing.T) {
	s := startSteps(t, PolicyManual)
	s.reveal(t)
	b := s.d.b
	// Bob, awaiting the Signature, gets a commit: new DH-Key, AWAITING_REVEALSIG.
	other := newSide(t, "carol", aliceKey(t), Config{Policy: PolicyManual})
	q, _ := b.conv.StartAKE()
	r, _ := receiveOne(t, other, q[0])
	commit := r.ToSend[0]
	// carol is a second instance of Alice's account for Bob: route through a
	// fresh conversation, as Bob's is bound to Alice's instance.
	r, _ = receiveOne(t, b, commit)
	if len(r.Events) != 1 || r.Events[0].Kind != EventOtherInstance {
		t.Fatalf("commit from another instance: %+v", r.Events)
	}
	// from the same instance (Alice restarting) it is answered
	q, _ = b.conv.StartAKE()
	r, _ = receiveOne(t, s.d.a, q[0])
	r, _ = receiveOne(t, b, r.ToSend[0])
	if len(r.ToSend) != 1 || b.conv.auth.state != authAwaitingRevealSig {
		t.Fatalf("commit in AWAITING_SIG: state %d", b.conv.auth.state)
	}
}

func TestReAKE(t *testing.T) {
	for _, who := range []string{"alice", "bob"} {
		d := newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
		d.ake(d.a)
		d.sendPrivately(d.a, "one")
		d.sendPrivately(d.b, "two")
		old := d.a.conv.SSID()
		s := d.a
		if who == "bob" {
			s = d.b
		}
		// messages sent while the re-AKE is running still work
		q, _ := s.conv.StartAKE()
		r, _ := receiveOne(t, d.other(s), q[0])
		d.sendPrivately(d.a, "during")
		d.deliver(d.other(s), r.ToSend)
		if !d.a.has(EventRefreshed) || !d.b.has(EventRefreshed) || d.a.count(EventGoneSecure) != 1 {
			t.Fatal("re-AKE not reported as refreshed")
		}
		d.checkSecure()
		if d.a.conv.SSID() == old {
			t.Fatal("SSID unchanged")
		}
		// The first message of the new session reveals the MAC keys the old
		// one used for receiving.
		msgs := d.sendPrivately(d.a, "three")
		if m := parseDataMsg(t, msgs[0]); len(m.oldMACs) == 0 || len(m.oldMACs)%20 != 0 {
			t.Fatalf("old MAC keys not revealed after re-AKE: %d bytes", len(m.oldMACs))
		}
		d.sendPrivately(d.b, "four")
		d.noErrors()
	}
}

func parseDataMsg(t testing.TB, msg []byte) *dataMsg {
	t.Helper()
	bin, ok := decode(msg, nil)
	if !ok {
		t.Fatalf("not encoded: %.30q", msg)
	}
	h, _, ok := parseMessage(bin)
	var m dataMsg
	if !ok || h.typ != msgData || !m.unmarshal(bin, h.len()) {
		t.Fatal("not a data message")
	}
	return &m
}

// rewrite decodes an encoded message, applies f to its binary form and
// encodes it again.
func rewrite(t testing.TB, msg []byte, f func(bin []byte) []byte) []byte {
	t.Helper()
	bin, ok := decode(msg, nil)
	if !ok {
		t.Fatalf("not encoded: %.30q", msg)
	}
	return encode(f(bytes.Clone(bin)))
}

func TestAKENegative(t *testing.T) {
	pBytes := groupP.Bytes()
	pm1 := new(big.Int).Sub(groupP, big.NewInt(1)).Bytes()
	t.Run("DHKeyOutOfRange", func(t *testing.T) {
		s := startSteps(t, PolicyManual)
		b := s.d.b
		for _, gy := range [][]byte{{}, {1}, pm1, pBytes, append([]byte{1}, pBytes...)} {
			h := header{version: 3, typ: msgDHKey, sender: s.d.a.conv.ourTag, receiver: b.conv.ourTag}
			bad := encode((&dhKey{gy: gy}).marshal(h))
			r, err := receiveOne(t, b, bad)
			if !isInvalid(err) || len(r.ToSend) != 0 || b.conv.auth.state != authAwaitingDHKey {
				t.Fatalf("g^y = %x: err %v, state %d", gy, err, b.conv.auth.state)
			}
		}
		// non-minimal MPI
		nm := rewrite(t, s.dhkey, func(bin []byte) []byte {
			n := len(bin) - 11 - 4
			out := append(bin[:11:11], 0, 0, 0, byte(n+1), 0)
			return append(out, bin[15:]...)
		})
		if _, err := receiveOne(t, b, nm); !isInvalid(err) {
			t.Fatalf("non-minimal MPI accepted: %v", err)
		}
		// and the genuine message still works
		s.reveal(t)
		r, _ := receiveOne(t, s.d.a, s.revealSig)
		receiveOne(t, b, r.ToSend[0])
		b.errs = nil // the rejected ones above
		s.d.checkSecure()
	})
	t.Run("CommittedGxOutOfRange", func(t *testing.T) {
		for _, gx := range []*big.Int{big.NewInt(1), new(big.Int).SetBytes(pm1), groupP} {
			s := startSteps(t, PolicyManual)
			a := s.d.a
			// forge Bob's commitment to gx and reveal it
			var rkey [16]byte
			mpi := appendMPIInt(nil, gx)
			enc := make([]byte, len(mpi))
			var iv [16]byte
			aesCTR(rkey[:], &iv, enc, mpi)
			hash := sha256.Sum256(mpi)
			h := header{version: 3, typ: msgDHCommit, sender: s.d.b.conv.ourTag}
			receiveOne(t, a, encode((&dhCommit{encGx: enc, hashGx: hash[:]}).marshal(h)))
			s.reveal(t)
			forged := rewrite(t, s.revealSig, func(bin []byte) []byte {
				copy(bin[11+4:], rkey[:])
				return bin
			})
			r, err := receiveOne(t, a, forged)
			if !isInvalid(err) || len(r.ToSend) != 0 || a.conv.State() != Plaintext || a.conv.auth.state != authAwaitingRevealSig {
				t.Fatalf("g^x = %x: err %v", gx, err)
			}
		}
	})
	t.Run("TamperedRevealSig", func(t *testing.T) {
		s := startSteps(t, PolicyManual)
		s.reveal(t)
		a := s.d.a
		for _, off := range []int{11 + 4 + 3, 11 + 20 + 4 + 10, -5} { // r, encrypted signature, MAC
			bad := rewrite(t, s.revealSig, func(bin []byte) []byte {
				i := off
				if i < 0 {
					i += len(bin)
				}
				bin[i] ^= 0x20
				return bin
			})
			r, err := receiveOne(t, a, bad)
			if !isInvalid(err) || len(r.ToSend) != 0 || a.conv.auth.state != authAwaitingRevealSig {
				t.Fatalf("offset %d: err %v state %d", off, err, a.conv.auth.state)
			}
		}
		r, err := receiveOne(t, a, s.revealSig)
		if err != nil {
			t.Fatal(err)
		}
		s.signature = r.ToSend[0]
		bad := rewrite(t, s.signature, func(bin []byte) []byte { bin[20] ^= 1; return bin })
		if _, err := receiveOne(t, s.d.b, bad); !isInvalid(err) || s.d.b.conv.auth.state != authAwaitingSig {
			t.Fatalf("tampered Signature: %v", err)
		}
		receiveOne(t, s.d.b, s.signature)
		a.errs, s.d.b.errs = nil, nil // the rejected ones above
		s.d.checkSecure()
	})
	t.Run("Truncated", func(t *testing.T) {
		s := startSteps(t, PolicyManual)
		s.reveal(t)
		for _, m := range [][]byte{s.commit, s.dhkey, s.revealSig} {
			bad := rewrite(t, m, func(bin []byte) []byte { return bin[:len(bin)-1] })
			to := s.d.a
			if bytes.Equal(m, s.dhkey) {
				to = s.d.b
			}
			r, err := receiveOne(t, to, bad)
			if !isInvalid(err) || len(r.Events) != 1 || r.Events[0].Kind != EventMalformed {
				t.Fatalf("truncated message: %v %+v", err, r.Events)
			}
		}
	})
}

func TestReflectedMessages(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyManual, FragmentSize: 100}, Config{Policy: PolicyManual})
	q, _ := d.b.conv.StartAKE()
	commit, _ := receiveOne(t, d.a, q[0])
	// Alice's own commit fragments, reflected back to her
	for _, m := range commit.ToSend {
		rr, err := receiveOne(t, d.a, m)
		if err != nil || len(rr.ToSend) != 0 || len(rr.Events) != 1 || rr.Events[0].Kind != EventOtherInstance {
			t.Fatalf("reflected fragment: %v %+v", err, rr.Events)
		}
	}
	if d.a.conv.auth.state != authAwaitingDHKey {
		t.Fatal("reflection changed the AKE state")
	}
	// and unfragmented
	whole := newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	q, _ = whole.b.conv.StartAKE()
	r, _ := receiveOne(t, whole.a, q[0])
	rr, err := receiveOne(t, whole.a, r.ToSend[0])
	if err != nil || len(rr.ToSend) != 0 || len(rr.Events) != 1 || rr.Events[0].Kind != EventOtherInstance {
		t.Fatalf("reflected commit: %v %+v", err, rr.Events)
	}
	// the genuine exchange still works
	d.deliver(d.a, commit.ToSend)
	d.checkSecure()
}
