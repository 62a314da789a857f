package otr

import (
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
