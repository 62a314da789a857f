package otr

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// fuzzTemplate is a session established once; fresh copies of Bob's side
// are rebuilt from it for every input, so that the target is deterministic
// and cheap.
type fuzzTemplate struct {
	res      akeResult // Bob's view
	priv     []byte
	secbytes []byte
	bobTag   uint32
	aliceTag uint32
	seeds    [][]byte // messages Alice sent to Bob right after the AKE
}

var (
	fuzzOnce sync.Once
	fuzzTmpl *fuzzTemplate
)

func makeFuzzTemplate(t testing.TB) *fuzzTemplate {
	fuzzOnce.Do(func() {
		d := newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
		q, _ := d.a.conv.StartAKE()
		d.deliver(d.a, q)
		b := d.b.conv
		s := b.sess
		tm := &fuzzTemplate{bobTag: b.ourTag, aliceTag: b.theirTag}
		tm.priv = bytes.Clone(s.ourPrev.priv)
		tm.res = akeResult{version: s.version, ours: &dhKeyPair{id: s.ourPrev.id, pub: s.ourPrev.pub},
			theirDH: s.theirCur.pub, theirKeyID: s.theirCur.id, theirKey: s.theirKey, ssid: s.ssid}
		var err error
		if tm.secbytes, err = sharedSecret(s.theirCur.pub, s.ourPrev.priv); err != nil {
			t.Fatal(err)
		}
		a := d.a.conv
		var msgs [][]byte
		add := func(m [][]byte, err error) {
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, m...)
		}
		add(a.Send([]byte("hello <b>bob</b>")))
		add(a.StartSMP("question?", []byte("secret")))
		_, m, err := a.ExtraSymmetricKey(7, []byte("use"))
		add(m, err)
		add(a.AbortSMP())
		add(a.Heartbeat())
		add(a.End())
		tm.seeds = append(tm.seeds, msgs...)
		frags, err := fragmentMessage(msgs[0], 120, 3, a.ourTag, b.ourTag)
		if err != nil {
			t.Fatal(err)
		}
		tm.seeds = append(tm.seeds, frags...)
		tm.seeds = append(tm.seeds, d.a.sent...)
		tm.seeds = append(tm.seeds, d.b.sent...)
		fuzzTmpl = tm
	})
	if fuzzTmpl == nil {
		t.Fatal("fuzz template failed")
	}
	return fuzzTmpl
}

// fresh returns Bob's Conversation just after the AKE.
func (tm *fuzzTemplate) fresh(t testing.TB) *Conversation {
	c, err := NewConversation(Config{PrivateKey: bobKey(t), Policy: PolicyManual, InstanceTag: tm.bobTag})
	if err != nil {
		t.Fatal(err)
	}
	res := tm.res
	ours := *res.ours
	ours.priv = bytes.Clone(tm.priv)
	res.ours = &ours
	res.secbytes = bytes.Clone(tm.secbytes)
	if err := c.goEncrypted(new(Received), &res, tm.aliceTag); err != nil {
		t.Fatal(err)
	}
	return c
}

func FuzzReceive(f *testing.F) {
	tm := makeFuzzTemplate(f)
	for _, s := range tm.seeds {
		f.Add(s)
	}
	for _, s := range []string{
		"?OTRv23?", "?OTR?v2?", "?OTR Error: oops", "plain", "hi" + string(wsBase) + string(wsV3),
		"?OTR|00000100|00000000,00001,00002,?OTR:AAMC,", "?OTR,1,1,?OTRv2?,", "?OTR:AAID.",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		check := func(r *Received, err error) {
			if r == nil {
				t.Fatal("nil Received")
			}
			if err != nil && !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if r.Encrypted && r.Plaintext == nil {
				t.Fatal("encrypted without plaintext")
			}
		}
		// a fresh conversation in plaintext
		p, err := NewConversation(Config{PrivateKey: aliceKey(t), Policy: PolicyOpportunistic, InstanceTag: 0x100})
		if err != nil {
			t.Fatal(err)
		}
		check(p.Receive(msg))
		// Bob just after the AKE
		c := tm.fresh(t)
		r, err := c.Receive(msg)
		check(r, err)
		if err != nil && c.State() != Encrypted {
			t.Fatal("a rejected message changed the state")
		}
		// a second message after the first, as an attacker could send
		check(c.Receive(msg))
	})
}

// TestFuzzTemplate checks that the fuzz seeds reach the decryption path.
func TestFuzzTemplate(t *testing.T) {
	tm := makeFuzzTemplate(t)
	r, err := tm.fresh(t).Receive(tm.seeds[0])
	if err != nil || string(r.Plaintext) != "hello <b>bob</b>" || !r.Encrypted {
		t.Fatalf("seed not accepted by a fresh copy: %q %v", r.Plaintext, err)
	}
	// and again by another copy: copies do not share state
	r, err = tm.fresh(t).Receive(tm.seeds[0])
	if err != nil || !r.Encrypted {
		t.Fatalf("second copy: %v", err)
	}
	var smp bool
	for _, s := range tm.seeds {
		r, _ := tm.fresh(t).Receive(s)
		for _, e := range r.Events {
			smp = smp || e.Kind == EventSMPQuestion
		}
	}
	if !smp {
		t.Fatal("no seed reaches SMP")
	}
}
