package otr

import (
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// runSMP runs SMP started by s with question; the other side answers.
func runSMP(t *testing.T, d *duo, s *side, question, secret, answer string) {
	t.Helper()
	start, err := s.conv.StartSMP(question, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	to := d.other(s)
	n := len(to.events)
	d.deliver(s, start)
	ev := to.events[n:]
	wantKind := EventSMPSecretRequested
	if question != "" {
		wantKind = EventSMPQuestion
	}
	if len(ev) != 1 || ev[0].Kind != wantKind || ev[0].Text != question {
		t.Fatalf("responder events %+v", ev)
	}
	if !to.conv.SMPInProgress() || !s.conv.SMPInProgress() {
		t.Fatal("SMP not in progress")
	}
	ans, err := to.conv.AnswerSMP([]byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	d.deliver(to, ans)
	if s.conv.SMPInProgress() || to.conv.SMPInProgress() {
		t.Fatal("SMP still in progress after the exchange")
	}
}

func TestSMP(t *testing.T) {
	for _, pol := range []Policy{PolicyManual, AllowV2} {
		d := secureDuo(t, pol, pol)
		for i, c := range []struct {
			question, secret, answer string
			ok                       bool
		}{
			{"", "correct horse", "correct horse", true},
			{"Where did we meet?", "Paris", "Paris", true},
			{"", "correct horse", "battery staple", false},
			{"Where did we meet?", "Paris", "Rome", false},
			{"", "", "", true},
		} {
			for _, s := range []*side{d.a, d.b} {
				d.a.clear()
				d.b.clear()
				runSMP(t, d, s, c.question, c.secret, c.answer)
				want, not := EventSMPSucceeded, EventSMPFailed
				if !c.ok {
					want, not = not, want
				}
				for _, x := range []*side{d.a, d.b} {
					if x.count(want) != 1 || x.has(not) {
						t.Fatalf("policy %#x case %d started by %s: %s events %v", pol, i, s.name, x.name, x.events)
					}
				}
				d.noErrors()
			}
		}
		d.sendPrivately(d.a, "still talking")
	}
}

func TestSMPAbort(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	// the responder declines
	start, _ := d.a.conv.StartSMP("", []byte("x"))
	d.deliver(d.a, start)
	abort, err := d.b.conv.AbortSMP()
	if err != nil {
		t.Fatal(err)
	}
	d.deliver(d.b, abort)
	if !d.a.has(EventSMPAborted) || d.a.conv.SMPInProgress() || d.b.conv.SMPInProgress() {
		t.Fatal("abort by the responder")
	}
	if _, err := d.b.conv.AnswerSMP([]byte("x")); !errors.Is(err, ErrNoSMP) {
		t.Fatalf("AnswerSMP after abort: %v", err)
	}
	// the initiator aborts after message 2
	d.a.clear()
	start, _ = d.a.conv.StartSMP("", []byte("x"))
	d.deliver(d.a, start)
	ans, _ := d.b.conv.AnswerSMP([]byte("x"))
	abort, _ = d.a.conv.AbortSMP()
	d.deliver(d.a, abort)
	// message 2 arrives after the abort: out of order, aborted again
	d.deliver(d.b, ans)
	if !d.b.has(EventSMPAborted) || !d.a.has(EventSMPCheated) || d.a.conv.SMPInProgress() || d.b.conv.SMPInProgress() {
		t.Fatalf("abort by the initiator: alice %v bob %v", d.a.events, d.b.events)
	}
	// restarting while one is under way aborts the old one first
	d.a.clear()
	d.b.clear()
	start, _ = d.a.conv.StartSMP("", []byte("x"))
	d.deliver(d.a, start)
	restart, _ := d.a.conv.StartSMP("", []byte("y"))
	if len(restart) != 2 {
		t.Fatalf("restart sent %d messages, want abort + SMP1", len(restart))
	}
	d.deliver(d.a, restart)
	ans, _ = d.b.conv.AnswerSMP([]byte("y"))
	d.deliver(d.b, ans)
	if !d.a.has(EventSMPSucceeded) || !d.b.has(EventSMPSucceeded) {
		t.Fatalf("restarted SMP: alice %v bob %v", d.a.events, d.b.events)
	}
	// both start at once: both abort, then SMP works again
	d.a.clear()
	d.b.clear()
	sa, _ := d.a.conv.StartSMP("", []byte("z"))
	sb, _ := d.b.conv.StartSMP("", []byte("z"))
	d.deliver(d.a, sa)
	d.deliver(d.b, sb)
	if d.a.conv.SMPInProgress() || d.b.conv.SMPInProgress() {
		t.Fatal("crossed SMP starts did not abort")
	}
	d.a.clear()
	d.b.clear()
	runSMP(t, d, d.b, "", "z", "z")
	if !d.a.has(EventSMPSucceeded) {
		t.Fatal("SMP after crossed starts")
	}
	// not without a session
	x := newSide(t, "x", aliceKey(t), Config{Policy: PolicyManual})
	if _, err := x.conv.StartSMP("", nil); !errors.Is(err, ErrNotEncrypted) {
		t.Fatal(err)
	}
	if _, err := x.conv.AbortSMP(); !errors.Is(err, ErrNotEncrypted) {
		t.Fatal(err)
	}
	if _, err := d.a.conv.StartSMP("nul\x00", nil); err == nil {
		t.Fatal("NUL in question accepted")
	}
	if _, err := d.a.conv.StartSMP(strings.Repeat("?", 70000), nil); err == nil {
		t.Fatal("question too long for a TLV accepted")
	}
	if d.a.conv.SMPInProgress() {
		t.Fatal("refused SMP left state behind")
	}
}

func TestSMPEndsWithSession(t *testing.T) {
	d := secureDuo(t, PolicyManual, PolicyManual)
	start, _ := d.a.conv.StartSMP("", []byte("x"))
	d.deliver(d.a, start)
	end, _ := d.a.conv.End()
	d.deliver(d.a, end)
	if d.a.conv.SMPInProgress() || d.b.conv.SMPInProgress() {
		t.Fatal("SMP survived the end of the session")
	}
	if _, err := d.b.conv.AnswerSMP([]byte("x")); !errors.Is(err, ErrNotEncrypted) {
		t.Fatal(err)
	}
}

// sendSMP seals an SMP TLV from s as if its engine had produced it.
func sendSMP(t *testing.T, d *duo, s *side, typ uint16, v []byte) {
	t.Helper()
	msgs, _, err := s.conv.sealMessage(nil, []tlv{{typ: typ, value: v}}, flagIgnoreUnreadable)
	if err != nil {
		t.Fatal(err)
	}
	d.deliver(s, msgs)
}

// expectCheat checks that to reported a cheating peer and aborted, and, for
// the first case of each message (a full SMP costs hundreds of
// exponentiations), that SMP then works again.
func expectCheat(t *testing.T, d *duo, to *side, name string) {
	t.Helper()
	from := d.other(to)
	if !to.has(EventSMPCheated) || to.conv.SMPInProgress() || to.conv.smp.state != smpExpect1 ||
		!from.has(EventSMPAborted) || from.conv.SMPInProgress() || len(to.errs) != 0 {
		t.Fatalf("%s: %s events %v errors %v; %s events %v", name, to.name, to.events, to.errs, from.name, from.events)
	}
	d.a.clear()
	d.b.clear()
	key := name[:4]
	if recovered[key] {
		return
	}
	recovered[key] = true
	runSMP(t, d, d.a, "", "ok", "ok")
	if !d.a.has(EventSMPSucceeded) || !d.b.has(EventSMPSucceeded) {
		t.Fatalf("%s: SMP broken afterwards", name)
	}
	d.a.clear()
	d.b.clear()
}

// recovered records which messages' rejection was followed by a full SMP.
var recovered = map[string]bool{}

func TestSMPRejectsBadValues(t *testing.T) {
	clear(recovered)
	d := secureDuo(t, PolicyManual, PolicyManual)
	pm1 := new(big.Int).Sub(groupP, big.NewInt(1))
	bad := map[string]*big.Int{"0": big.NewInt(0), "1": big.NewInt(1), "p-1": pm1, "p": groupP, "non-residue": new(big.Int).Sub(groupP, big.NewInt(4))}
	msg1 := func() []*big.Int {
		var s smp
		v, err := s.step1(rand.Reader, make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := decodeSMP(v, 6)
		return m
	}
	// message 1: group elements, exponents, proofs, shape
	for name, v := range bad {
		for _, i := range []int{0, 3} { // g2a, g3a
			m := msg1()
			m[i] = v
			sendSMP(t, d, d.a, tlvSMP1, encodeSMP(m...))
			expectCheat(t, d, d.b, "SMP1 element "+name)
		}
	}
	for _, v := range []*big.Int{big.NewInt(0), groupQ, new(big.Int).Add(groupQ, big.NewInt(1))} {
		m := msg1()
		m[2] = v // D2
		sendSMP(t, d, d.a, tlvSMP1, encodeSMP(m...))
		expectCheat(t, d, d.b, "SMP1 exponent")
	}
	m := msg1()
	m[1] = new(big.Int).Add(m[1], big.NewInt(1)) // c2
	sendSMP(t, d, d.a, tlvSMP1, encodeSMP(m...))
	expectCheat(t, d, d.b, "SMP1 proof")
	sendSMP(t, d, d.a, tlvSMP1, encodeSMP(msg1()[:5]...))
	expectCheat(t, d, d.b, "SMP1 MPI count")
	sendSMP(t, d, d.a, tlvSMP1Q, encodeSMP(msg1()...)) // no NUL-terminated question... unless one happens to be there
	if !d.b.has(EventSMPCheated) && !d.b.has(EventSMPQuestion) {
		t.Fatal("SMP1Q without question")
	}
	d.b.conv.smp.reset()
	d.a.clear()
	d.b.clear()
	nm := encodeSMP(msg1()...)
	nm = append(nm[:4:4], append([]byte{0, 0, 0, byte(nm[7] + 1), 0}, nm[8:]...)...) // non-minimal first MPI
	sendSMP(t, d, d.a, tlvSMP1, nm)
	expectCheat(t, d, d.b, "SMP1 non-minimal MPI")

	// message 2: Alice starts, Bob's reply is altered
	for name, f := range map[string]func(m []*big.Int){
		"Pb out of range": func(m []*big.Int) { m[6] = big.NewInt(1) },
		"Qb out of range": func(m []*big.Int) { m[7] = pm1 },
		"g2b non-residue": func(m []*big.Int) { m[0] = bad["non-residue"] },
		"D5 out of range": func(m []*big.Int) { m[9] = groupQ },
		"D6 zero":         func(m []*big.Int) { m[10] = big.NewInt(0) },
		"cP wrong":        func(m []*big.Int) { m[8] = new(big.Int).Add(m[8], big.NewInt(1)) },
		"c3 wrong":        func(m []*big.Int) { m[4] = new(big.Int).Add(m[4], big.NewInt(1)) },
	} {
		start, _ := d.a.conv.StartSMP("", []byte("s"))
		d.deliver(d.a, start)
		v, err := d.b.conv.smp.step2(rand.Reader, make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := decodeSMP(v, 11)
		f(m)
		sendSMP(t, d, d.b, tlvSMP2, encodeSMP(m...))
		expectCheat(t, d, d.a, "SMP2 "+name)
	}
	// message 3: altered by Alice
	for name, f := range map[string]func(m []*big.Int){
		"Ra out of range": func(m []*big.Int) { m[5] = big.NewInt(0) },
		"Pa out of range": func(m []*big.Int) { m[0] = groupP },
		"D7 out of range": func(m []*big.Int) { m[7] = groupQ },
		"cR wrong":        func(m []*big.Int) { m[6] = new(big.Int).Add(m[6], big.NewInt(1)) },
	} {
		start, _ := d.a.conv.StartSMP("", []byte("s"))
		d.deliver(d.a, start)
		ans, _ := d.b.conv.AnswerSMP([]byte("s"))
		// deliver message 2 to Alice's engine by hand to catch message 3
		var v []byte
		for _, msg := range ans {
			r, err := d.a.conv.Receive(msg)
			if err != nil || len(r.ToSend) != 1 {
				t.Fatal(err)
			}
			_, tlvs := splitPlaintext(d.b.decryptPeek(t, r.ToSend[0]))
			v = tlvs[0].value
		}
		m, _ := decodeSMP(v, 8)
		f(m)
		sendSMP(t, d, d.a, tlvSMP3, encodeSMP(m...))
		expectCheat(t, d, d.b, "SMP3 "+name)
	}
	// message 4: altered by Bob
	for name, f := range map[string]func(m []*big.Int){
		"Rb out of range": func(m []*big.Int) { m[0] = pm1 },
		"D7 zero":         func(m []*big.Int) { m[2] = big.NewInt(0) },
		"cR wrong":        func(m []*big.Int) { m[1] = new(big.Int).Add(m[1], big.NewInt(1)) },
	} {
		start, _ := d.a.conv.StartSMP("", []byte("s"))
		d.deliver(d.a, start)
		ans, _ := d.b.conv.AnswerSMP([]byte("s"))
		var m3 [][]byte
		for _, msg := range ans {
			r, _ := d.a.conv.Receive(msg)
			m3 = r.ToSend
		}
		var v []byte
		for _, msg := range m3 {
			r, err := d.b.conv.Receive(msg)
			if err != nil || len(r.ToSend) != 1 {
				t.Fatal(err)
			}
			_, tlvs := splitPlaintext(d.a.decryptPeek(t, r.ToSend[0]))
			v = tlvs[0].value
		}
		// Alice has not seen message 4 yet; rewind Bob, who already finished
		m, _ := decodeSMP(v, 3)
		f(m)
		sendSMP(t, d, d.b, tlvSMP4, encodeSMP(m...))
		expectCheat(t, d, d.a, "SMP4 "+name)
	}
	// out of order: message 3 when expecting message 1
	sendSMP(t, d, d.a, tlvSMP3, encodeSMP(msg1()...))
	expectCheat(t, d, d.b, "out of order")
}
