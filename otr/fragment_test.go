package otr

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestFragmentedConversation(t *testing.T) {
	for _, pol := range []Policy{PolicyManual, AllowV2} {
		for _, sizes := range [][2]int{{45, 61}, {61, 45}, {199, 1000}, {1000, 0}, {150, 151}} {
			t.Run(fmt.Sprintf("v%d_%d_%d", map[Policy]int{PolicyManual: 3, AllowV2: 2}[pol], sizes[0], sizes[1]), func(t *testing.T) {
				d := newDuo(t, Config{Policy: pol, FragmentSize: sizes[0]}, Config{Policy: pol, FragmentSize: sizes[1]})
				d.ake(d.a)
				long := strings.Repeat("fragment me, ", 40)
				d.sendPrivately(d.a, long)
				d.sendPrivately(d.b, long+"back")
				start, err := d.a.conv.StartSMP("q?", []byte("s"))
				if err != nil {
					t.Fatal(err)
				}
				d.deliver(d.a, start)
				ans, err := d.b.conv.AnswerSMP([]byte("s"))
				if err != nil {
					t.Fatal(err)
				}
				d.deliver(d.b, ans)
				if !d.a.has(EventSMPSucceeded) || !d.b.has(EventSMPSucceeded) {
					t.Fatal("SMP over fragments failed")
				}
				for i, s := range []*side{d.a, d.b} {
					size := sizes[i]
					frags := 0
					for _, m := range s.sent {
						if size > 0 && len(m) > size {
							t.Fatalf("%s sent %d bytes, limit %d", s.name, len(m), size)
						}
						if bytes.HasPrefix(m, []byte("?OTR|")) || bytes.HasPrefix(m, []byte("?OTR,")) {
							frags++
							if pol == AllowV2 != bytes.HasPrefix(m, []byte("?OTR,")) {
								t.Fatalf("fragment of the wrong version: %.20q", m)
							}
						}
					}
					if size > 0 && size < 1000 && frags == 0 {
						t.Fatalf("%s sent no fragments", s.name)
					}
					if size == 0 && frags != 0 {
						t.Fatalf("%s fragmented without need", s.name)
					}
				}
				d.noErrors()
			})
		}
	}
}

func TestFragmentInterleaving(t *testing.T) {
	d := newDuo(t, Config{Policy: PolicyManual, FragmentSize: 80}, Config{Policy: PolicyManual})
	d.ake(d.a)
	m1, _ := d.a.conv.Send([]byte(strings.Repeat("one ", 30)))
	m2, _ := d.a.conv.Send([]byte(strings.Repeat("two ", 30)))
	if len(m1) < 3 || len(m2) < 3 {
		t.Fatal("expected several fragments")
	}
	b := d.b
	// m1 starts, m2 restarts at k=1 and completes, m1's rest is discarded
	receiveOne(t, b, m1[0])
	receiveOne(t, b, m1[1])
	for _, f := range m2 {
		receiveOne(t, b, f)
	}
	for _, f := range m1[2:] {
		receiveOne(t, b, f)
	}
	if len(b.texts) != 1 || !strings.HasPrefix(b.texts[0], "two ") || len(b.errs) != 0 {
		t.Fatalf("interleaved: %q %v", b.texts, b.errs)
	}
	// an unfragmented message in between resets reassembly
	m3, _ := d.a.conv.Send([]byte(strings.Repeat("three ", 30)))
	receiveOne(t, b, m3[0])
	receiveOne(t, b, []byte("plain interruption"))
	for _, f := range m3[1:] {
		receiveOne(t, b, f)
	}
	if len(b.texts) != 2 || b.texts[1] != "plain interruption" {
		t.Fatalf("reset by plaintext: %q", b.texts)
	}
	// a fragment for another instance neither counts nor disturbs
	m4, _ := d.a.conv.Send([]byte(strings.Repeat("four ", 30)))
	receiveOne(t, b, m4[0])
	other := bytes.Replace(m4[1], []byte(fmt.Sprintf("|%08x,", b.conv.ourTag)), []byte(fmt.Sprintf("|%08x,", b.conv.ourTag+1)), 1)
	r, err := receiveOne(t, b, other)
	if err != nil || len(r.Events) != 1 || r.Events[0].Kind != EventOtherInstance {
		t.Fatalf("fragment for another instance: %v %+v", err, r.Events)
	}
	for _, f := range m4[1:] {
		receiveOne(t, b, f)
	}
	if len(b.texts) != 3 || !strings.HasPrefix(b.texts[2], "four ") {
		t.Fatalf("after a foreign fragment: %q", b.texts)
	}
	// a gap loses the message, and the next one arrives intact
	m5, _ := d.a.conv.Send([]byte(strings.Repeat("five ", 30)))
	for i, f := range m5 {
		if i != 1 {
			receiveOne(t, b, f)
		}
	}
	d.sendPrivately(d.a, "six")
	if len(b.texts) != 4 || b.texts[3] != "six" {
		t.Fatalf("after a gap: %q", b.texts)
	}
	// a bad fragment is reported
	r, err = receiveOne(t, b, []byte("?OTR|zz|0,1,2,abc,"))
	if !isInvalid(err) || len(r.Events) != 1 || r.Events[0].Kind != EventMalformed {
		t.Fatalf("bad fragment: %v %+v", err, r.Events)
	}
}

func TestFragmentedQuery(t *testing.T) {
	// libotr may fragment anything, queries included.
	d := newDuo(t, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	q := d.a.conv.QueryMessage()
	frags, err := fragmentMessage(q[:40], 50, 2, 0, 0)
	if err != nil || len(frags) < 2 {
		t.Fatal(err)
	}
	d.deliver(d.a, frags)
	d.checkSecure()
	// a fragment is never fragmented again: a reassembled fragment is rejected
	b := d.b
	tags := fmt.Sprintf("?OTR|%08x|%08x,", d.a.conv.ourTag, b.conv.ourTag)
	receiveOne(t, b, []byte(tags+"1,2,?OTR|100|,"))
	r, err := receiveOne(t, b, []byte(tags+"2,2,200,"))
	if !isInvalid(err) || len(r.Events) != 1 || r.Events[0].Kind != EventMalformed {
		t.Fatalf("fragment inside a fragment: %v %+v", err, r.Events)
	}
}

func TestFragmentSizeValidation(t *testing.T) {
	if _, err := NewConversation(Config{PrivateKey: aliceKey(t), FragmentSize: 36}); err == nil {
		t.Fatal("fragment size 36 accepted")
	}
	if _, err := NewConversation(Config{PrivateKey: aliceKey(t), FragmentSize: 37}); err != nil {
		t.Fatal(err)
	}
}
