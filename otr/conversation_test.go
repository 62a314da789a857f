package otr

import (
	"errors"
	"testing"
)

func TestAKEByQuery(t *testing.T) {
	for _, pol := range []Policy{PolicyManual, AllowV3, AllowV2} {
		d := newDuo(t, Config{Policy: pol}, Config{Policy: pol})
		d.ake(d.a)
		if !d.a.has(EventGoneSecure) || !d.b.has(EventGoneSecure) {
			t.Fatal("no gone-secure events")
		}
		want := 3
		if pol == AllowV2 {
			want = 2
		}
		if d.a.conv.ProtocolVersion() != want {
			t.Fatalf("policy %#x: version %d", pol, d.a.conv.ProtocolVersion())
		}
		d.sendPrivately(d.a, "hello bob")
		d.sendPrivately(d.b, "hello alice")
		d.noErrors()
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source failed") }

func TestRandomnessFailure(t *testing.T) {
	if _, err := NewConversation(Config{PrivateKey: aliceKey(t), Rand: failingReader{}}); err == nil {
		t.Fatal("instance tag generated without randomness")
	}
	c, err := NewConversation(Config{PrivateKey: aliceKey(t), Policy: PolicyManual, InstanceTag: 0x100, Rand: failingReader{}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Receive([]byte("?OTRv3?"))
	if err == nil || errors.Is(err, ErrInvalidMessage) || len(r.ToSend) != 0 {
		t.Fatalf("AKE without randomness: %v %q", err, r.ToSend)
	}
	// a session whose random source fails later cannot send
	d := secureDuo(t, PolicyManual, PolicyManual)
	d.sendPrivately(d.b, "rotate")
	d.a.conv.rand = failingReader{}
	if m, err := d.a.conv.Send([]byte("x")); err == nil || m != nil {
		t.Fatalf("Send without randomness: %q %v", m, err)
	}
}
