package client

import (
	"testing"

	"mellium.im/xmpp/jid"
)

// When the stream is lost, only messages sealed with a session, whose
// receipt was asked for and has not come, are given up; each once.
func TestFatesSessionGone(t *testing.T) {
	var f fateState
	f.init()
	to := jid.MustParse("bob@example.org/phone")
	otrAsked := f.track("m1", to, 0, []string{"m1-frag"})
	f.bindTo(otrAsked, "urn:xmpp:otr:0", true, true)
	otrNoReceipt := f.track("m2", to, 0, nil)
	f.bindTo(otrNoReceipt, "urn:xmpp:otr:0", true, false)
	oxAsked := f.track("m3", to, 0, nil)
	f.bindTo(oxAsked, "urn:xmpp:openpgp:0", false, true)
	delivered := f.track("m4", to, 0, nil)
	f.bindTo(delivered, "urn:xmpp:otr:0", true, true)
	if !f.finish(delivered) {
		t.Fatal("finish")
	}
	gone := f.sessionGone()
	if len(gone) != 1 || gone[0] != otrAsked {
		t.Fatalf("given up %+v", gone)
	}
	if f.finish(otrAsked) {
		t.Error("a given-up message finished again")
	}
	if again := f.sessionGone(); len(again) != 0 {
		t.Errorf("given up twice: %+v", again)
	}
}
