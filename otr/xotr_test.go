package otr

import (
	"bytes"
	"crypto/dsa" //lint:ignore SA1019 x/crypto/otr's keys are crypto/dsa keys
	"fmt"
	"strings"
	"testing"

	xotr "golang.org/x/crypto/otr"
)

// OTR version 2 interoperability with golang.org/x/crypto/otr, an
// independent implementation, in-process.

type xpeer struct {
	t      *testing.T
	ours   *side
	theirs *xotr.Conversation
	// what x/crypto/otr showed and reported
	texts   []string
	changes []xotr.SecurityChange
}

func newXPeer(t *testing.T, fragSize int) *xpeer {
	k := bobKey(t)
	priv := &xotr.PrivateKey{PrivateKey: dsa.PrivateKey{
		PublicKey: dsa.PublicKey{Parameters: dsa.Parameters{P: k.p, Q: k.q, G: k.g}, Y: k.y},
		X:         k.x,
	}}
	priv.PublicKey.PublicKey = priv.PrivateKey.PublicKey
	return &xpeer{
		t:      t,
		ours:   newSide(t, "alice", aliceKey(t), Config{Policy: PolicyManual, FragmentSize: fragSize}),
		theirs: &xotr.Conversation{PrivateKey: priv, FragmentSize: fragSize},
	}
}

// xotrPair returns two x/crypto/otr Conversations with an encrypted
// session between them.
func xotrPair(t testing.TB) (*xotr.Conversation, *xotr.Conversation) {
	mk := func(k *PrivateKey) *xotr.Conversation {
		priv := &xotr.PrivateKey{PrivateKey: dsa.PrivateKey{
			PublicKey: dsa.PublicKey{Parameters: dsa.Parameters{P: k.p, Q: k.q, G: k.g}, Y: k.y},
			X:         k.x,
		}}
		priv.PublicKey.PublicKey = priv.PrivateKey.PublicKey
		return &xotr.Conversation{PrivateKey: priv}
	}
	a, b := mk(aliceKey(t)), mk(bobKey(t))
	msgs := [][]byte{[]byte(xotr.QueryMessage)}
	from, to := a, b
	for len(msgs) > 0 {
		var next [][]byte
		for _, m := range msgs {
			_, _, _, send, err := to.Receive(m)
			if err != nil {
				t.Fatal(err)
			}
			next = append(next, send...)
		}
		msgs, from, to = next, to, from
	}
	if !a.IsEncrypted() || !b.IsEncrypted() {
		t.Fatal("x/crypto/otr AKE failed")
	}
	return a, b
}

func (x *xpeer) has(c xotr.SecurityChange) bool {
	for _, v := range x.changes {
		if v == c {
			return true
		}
	}
	return false
}

// relay delivers toTheirs to x/crypto/otr and toOurs to our engine and
// everything both reply, until quiet.
func (x *xpeer) relay(toTheirs, toOurs [][]byte) {
	x.t.Helper()
	for steps := 0; len(toTheirs)+len(toOurs) > 0; steps++ {
		if steps > 10000 {
			x.t.Fatal("messages keep bouncing")
		}
		if len(toTheirs) > 0 {
			m := toTheirs[0]
			toTheirs = toTheirs[1:]
			x.ours.sent = append(x.ours.sent, m)
			out, enc, change, send, err := x.theirs.Receive(m)
			if err != nil {
				x.t.Fatalf("x/crypto/otr rejects our %.30q: %v", m, err)
			}
			if out != nil && (enc || !bytes.HasPrefix(m, []byte("?OTR"))) {
				x.texts = append(x.texts, string(out))
			}
			if change != xotr.NoChange {
				x.changes = append(x.changes, change)
			}
			toOurs = append(toOurs, send...)
			continue
		}
		m := toOurs[0]
		toOurs = toOurs[1:]
		r, err := receiveOne(x.t, x.ours, m)
		if err != nil {
			x.t.Fatalf("we reject x/crypto/otr's %.30q: %v (%v)", m, err, r.Events)
		}
		toTheirs = append(toTheirs, r.ToSend...)
	}
}

func (x *xpeer) secure() {
	x.t.Helper()
	c := x.ours.conv
	if c.State() != Encrypted || !x.theirs.IsEncrypted() || c.ProtocolVersion() != 2 {
		x.t.Fatalf("not secure: ours %v v%d, theirs %v", c.State(), c.ProtocolVersion(), x.theirs.IsEncrypted())
	}
	if c.SSID() != x.theirs.SSID {
		x.t.Fatalf("SSID %x vs %x", c.SSID(), x.theirs.SSID)
	}
	if !bytes.Equal(x.theirs.TheirPublicKey.Fingerprint(), fpBytes(c.key.Fingerprint())) {
		x.t.Fatal("x/crypto/otr sees another fingerprint")
	}
	if c.TheirKey().Fingerprint() != bobKey(x.t).Fingerprint() {
		x.t.Fatal("we see another fingerprint")
	}
}

func fpBytes(f Fingerprint) []byte { return f[:] }

func (x *xpeer) toThem(text string) {
	x.t.Helper()
	msgs, err := x.ours.conv.Send([]byte(text))
	if err != nil {
		x.t.Fatal(err)
	}
	n := len(x.texts)
	x.relay(msgs, nil)
	if len(x.texts) != n+1 || x.texts[n] != text {
		x.t.Fatalf("x/crypto/otr shows %q, want %q", x.texts[n:], text)
	}
}

func (x *xpeer) toUs(text string) {
	x.t.Helper()
	msgs, err := x.theirs.Send([]byte(text))
	if err != nil {
		x.t.Fatal(err)
	}
	n := len(x.ours.texts)
	x.relay(nil, msgs)
	if len(x.ours.texts) != n+1 || x.ours.texts[n] != text || !x.ours.enc[n] {
		x.t.Fatalf("we show %q, want %q", x.ours.texts[n:], text)
	}
}

func TestXCryptoOTRv2(t *testing.T) {
	for _, who := range []string{"us", "them"} {
		for _, frag := range []int{0, 100} {
			t.Run(fmt.Sprintf("AKEBy%s_frag%d", who, frag), func(t *testing.T) {
				x := newXPeer(t, frag)
				if who == "us" {
					q, _ := x.ours.conv.StartAKE()
					x.relay(q, nil)
				} else {
					x.relay(nil, [][]byte{[]byte(xotr.QueryMessage)})
				}
				x.secure()
				if !x.ours.has(EventGoneSecure) || !x.has(xotr.NewKeys) {
					t.Fatal("no key events")
				}
				for i := 0; i < 5; i++ {
					x.toThem(fmt.Sprintf("ping %d", i))
					x.toUs(fmt.Sprintf("pong %d", i))
				}
				for i := 0; i < 3; i++ {
					x.toThem(strings.Repeat("long monologue ", 20))
				}
				for i := 0; i < 3; i++ {
					x.toUs("reply")
				}
				x.toThem("last")
				if frag > 0 {
					n := 0
					for _, m := range x.ours.sent {
						if len(m) > frag {
							t.Fatalf("we sent %d bytes", len(m))
						}
						if bytes.HasPrefix(m, []byte("?OTR,")) {
							n++
						}
					}
					if n == 0 {
						t.Fatal("no v2 fragments sent")
					}
				}
				// re-AKE started by x/crypto/otr
				x.ours.clear()
				x.relay(nil, [][]byte{[]byte(xotr.QueryMessage)})
				x.secure()
				if !x.ours.has(EventRefreshed) {
					t.Fatal("re-AKE not reported")
				}
				x.toThem("after re-AKE")
				x.toUs("after re-AKE too")
			})
		}
	}
}

func TestXCryptoOTRv2SMP(t *testing.T) {
	x := newXPeer(t, 0)
	q, _ := x.ours.conv.StartAKE()
	x.relay(q, nil)
	x.secure()
	for _, c := range []struct {
		question, ours, theirs string
		ok                     bool
	}{
		{"", "secret", "secret", true},
		{"Pet's name?", "Rex", "Rex", true},
		{"", "secret", "other", false},
	} {
		// started by us
		x.ours.clear()
		x.changes = nil
		start, err := x.ours.conv.StartSMP(c.question, []byte(c.ours))
		if err != nil {
			t.Fatal(err)
		}
		x.relay(start, nil)
		if !x.has(xotr.SMPSecretNeeded) || x.theirs.SMPQuestion() != c.question {
			t.Fatalf("x/crypto/otr after our SMP1: %v %q", x.changes, x.theirs.SMPQuestion())
		}
		ans, err := x.theirs.Authenticate("", []byte(c.theirs))
		if err != nil {
			t.Fatal(err)
		}
		x.relay(nil, ans)
		want, xwant := EventSMPSucceeded, xotr.SMPComplete
		if !c.ok {
			want, xwant = EventSMPFailed, xotr.SMPFailed
		}
		if !x.ours.has(want) || !x.has(xwant) {
			t.Fatalf("SMP by us, case %+v: ours %v theirs %v", c, x.ours.events, x.changes)
		}
		// started by them
		x.ours.clear()
		x.changes = nil
		start, err = x.theirs.Authenticate(c.question, []byte(c.theirs))
		if err != nil {
			t.Fatal(err)
		}
		x.relay(nil, start)
		kind := EventSMPSecretRequested
		if c.question != "" {
			kind = EventSMPQuestion
		}
		if e := x.ours.event(kind); e == nil || e.Text != c.question {
			t.Fatalf("our events after their SMP1: %v", x.ours.events)
		}
		ans, err = x.ours.conv.AnswerSMP([]byte(c.ours))
		if err != nil {
			t.Fatal(err)
		}
		x.relay(ans, nil)
		if !x.ours.has(want) || !x.has(xwant) {
			t.Fatalf("SMP by them, case %+v: ours %v theirs %v", c, x.ours.events, x.changes)
		}
	}
	x.toThem("after SMP")
}

func TestXCryptoOTRv2End(t *testing.T) {
	x := newXPeer(t, 0)
	x.relay(nil, [][]byte{[]byte(xotr.QueryMessage)})
	x.secure()
	x.relay(nil, x.theirs.End())
	if x.ours.conv.State() != Finished || !x.ours.has(EventPeerEnded) {
		t.Fatal("their End not seen")
	}
	x.ours.conv.End()
	q, _ := x.ours.conv.StartAKE()
	x.relay(q, nil)
	x.secure()
	end, err := x.ours.conv.End()
	if err != nil {
		t.Fatal(err)
	}
	x.relay(end, nil)
	if !x.has(xotr.ConversationEnded) || x.theirs.IsEncrypted() {
		t.Fatal("our End not seen")
	}
}
