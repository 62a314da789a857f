package client

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
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

// A receipt for a message sealed with a session says that every earlier
// one of that session's mechanism to the same contact, asking for a
// receipt and without one, was lost on the way (the server acknowledged
// it and never delivered it: seen with ejabberd after stream resumptions,
// about one OTR message in a thousand). Messages to others, of other
// mechanisms, not asking for a receipt, or later, are not concerned.
func TestFatesOvertaken(t *testing.T) {
	var f fateState
	f.init()
	bob := jid.MustParse("bob@example.org/phone")
	carol := jid.MustParse("carol@example.org/desk")
	const otr = "urn:xmpp:otr:0"
	track := func(id string, to jid.JID, mech string, bound, receipt bool) *tracked {
		m := f.track(id, to, 0, nil)
		f.bindTo(m, mech, bound, receipt)
		return m
	}
	lost := track("m1", bob, otr, true, true)
	track("m2", bob, otr, true, false)
	track("m3", bob, "urn:xmpp:openpgp:0", false, true)
	track("m4", carol, otr, true, true)
	confirmedEarlier := track("m5", bob, otr, true, true)
	f.finish(confirmedEarlier)
	confirmed := track("m6", bob.Bare(), otr, true, true)
	track("m7", bob, otr, true, true) // later: not overtaken
	f.finish(confirmed)
	got := f.overtaken(confirmed)
	if len(got) != 1 || got[0] != lost {
		t.Fatalf("overtaken %+v, want m1 only", got)
	}
	if plain := track("m8", bob, "", false, true); len(f.overtaken(plain)) != 0 {
		t.Error("a message without a session overtook others")
	}
}

// A message given up too soon (its session ended before its receipt came)
// is reported delivered after all when the receipt comes, once; a
// delivered one is not reported twice.
func TestFateCorrectedByLateReceipt(t *testing.T) {
	c := newTestClient(t)
	bob := jid.MustParse("bob@example.org/phone")
	m := c.fates.track("m1", bob, 0, nil)
	c.fates.bindTo(m, "urn:xmpp:otr:0", true, true)
	for _, g := range c.fates.sessionGone() {
		c.failBound(g, "before the recipient confirmed the message")
	}
	receipt := &ReceiptEvent{From: bob, ID: "m1"}
	c.observeFate(receipt)
	c.observeFate(receipt)
	c.Close()
	var fates []Fate
	for ev := range c.Events() {
		if f, ok := ev.(*FateEvent); ok && f.ID == "m1" {
			fates = append(fates, f.Fate)
		}
	}
	if len(fates) != 2 || fates[0] != FateFailed || fates[1] != FateDelivered {
		t.Fatalf("fates %v, want failed then delivered", fates)
	}
}

// When a mechanism's session with a contact ends, the messages sealed in
// it for that contact (that resource, or any for a bare JID) that asked
// for a receipt and have none are the ones it can no longer read.
func TestFatesSealedFor(t *testing.T) {
	var f fateState
	f.init()
	const otr = "urn:xmpp:otr:0"
	phone, desk := jid.MustParse("bob@example.org/phone"), jid.MustParse("bob@example.org/desk")
	track := func(id string, to jid.JID, mech string, bound, receipt bool) *tracked {
		m := f.track(id, to, 0, nil)
		f.bindTo(m, mech, bound, receipt)
		return m
	}
	a := track("m1", phone, otr, true, true)
	b := track("m2", desk, otr, true, true)
	track("m3", phone, otr, true, false)
	track("m4", phone, "urn:xmpp:openpgp:0", false, true)
	f.finish(track("m5", phone, otr, true, true))
	if got := f.sealedFor(otr, phone); len(got) != 1 || got[0] != a {
		t.Errorf("for the phone: %+v, want m1", got)
	}
	if got := f.sealedFor(otr, phone.Bare()); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("for every resource: %+v, want m1 and m2", got)
	}
}

// When the server loses the session (a resumption refused), the
// replayable messages it acknowledged within resendWindow before, whose
// receipt was asked for and has not come, are sent again, each once;
// not those confirmed, acknowledged earlier, sealed with a session or
// not waiting for a receipt.
func TestFatesInFlight(t *testing.T) {
	var f fateState
	f.init()
	to := jid.MustParse("bob@example.org")
	lost := time.Unix(1700000000, 0)
	stanza := func(id string) *xmltree.Element { return xmltree.New(NSClient, "message", "id", id) }
	send := func(id, mech string, bound, receipt, replay bool, acked time.Time) *tracked {
		tr := f.track(id, to, 0, nil)
		f.bindTo(tr, mech, bound, receipt)
		if replay {
			f.replayable(tr)
		}
		f.ackedAt(tr, stanza(id), acked)
		return tr
	}
	old := send("old", "", false, true, true, lost.Add(-resendWindow-time.Second))
	clear1 := send("clear", "", false, true, true, lost.Add(-2*time.Second))
	confirmed := send("confirmed", "", false, true, true, lost.Add(-time.Second))
	f.finish(confirmed)
	send("no-receipt", "", false, false, true, lost.Add(-time.Second))
	send("otr", "urn:xmpp:otr:0", true, true, false, lost.Add(-time.Second))
	send("omemo", "urn:xmpp:omemo:2", false, true, false, lost.Add(-time.Second))
	ox := send("ox", "urn:xmpp:openpgp:0", false, true, true, lost)
	got := f.inFlight(lost)
	var ids []string
	for _, u := range got {
		ids = append(ids, u.st.AttrValue("id"))
		if u.msg == nil {
			t.Errorf("%s sent again without its fate", u.st.AttrValue("id"))
		}
	}
	if len(got) != 2 || got[0].msg != clear1 || got[1].msg != ox {
		t.Fatalf("sent again: %v, want [clear ox]", ids)
	}
	if old.st != nil {
		t.Error("the stanza of a message acknowledged long before is still kept")
	}
	if again := f.inFlight(lost); len(again) != 0 {
		t.Errorf("sent again twice: %d", len(again))
	}
}

// A message whose fate is final (here: an error from its recipient) is
// not reported acked when the server's acknowledgement comes after it
// (late, after a resumption): the last fate its sender learnt was
// "acked", and the failure was lost (the fault test with OTR through
// ejabberd, traced by id).
func TestFateNotAckedAfterFinal(t *testing.T) {
	c := newTestClient(t)
	to := jid.MustParse("alice@example.org/home")
	failed := c.fates.track("m1", to, 0, nil)
	if !c.fates.finish(failed) {
		t.Fatal("finish")
	}
	c.fate(failed, FateFailed, func(e *FateEvent) { e.Condition = "not-acceptable" })
	marker := c.fates.track("marker", to, 0, nil)
	st := xmltree.New(NSClient, "message", "id", "m1")
	c.acked([]*unacked{{st: st, msg: failed}})
	c.fates.written(c, failed, true)
	c.fate(marker, FateAcked, nil)
	var fates []string
	for ev := range c.Events() {
		f, ok := ev.(*FateEvent)
		if !ok {
			continue
		}
		if f.ID == "marker" {
			break
		}
		fates = append(fates, f.Fate.String())
	}
	if len(fates) != 1 || fates[0] != "failed" {
		t.Fatalf("fates of the failed message: %v, want [failed]", fates)
	}
}
