package esession

import (
	"slices"
	"testing"

	"github.com/balcony-im/balcony/esession/form"
)

// requestForm returns the data form of a request.
func requestForm(t *testing.T, o Outbound) *form.Form {
	t.Helper()
	in, err := ParseMessage(wire(t, o.Stanza()))
	if err != nil || in.Feature == nil {
		t.Fatalf("not a request: %v", err)
	}
	f, err := form.FromTree(in.Feature.Elements()[0])
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSharePresence: temporary presence sharing (XEP-0155 §9.3, the
// "presence" field) is offered only by a client configured to share, and
// agreed only when both are; the agreed value is in Params on both sides,
// in encrypted and plain sessions, and survives a handover.
func TestSharePresence(t *testing.T) {
	for _, tc := range []struct {
		name       string
		aShare     bool
		bShare     bool
		plain      bool
		wantOffer  bool
		wantShared bool
	}{
		{"both", true, true, false, true, true},
		{"initiator only", true, false, false, true, false},
		{"responder only", false, true, false, false, false},
		{"neither", false, false, false, false, false},
		{"both plain", true, true, true, true, true},
		{"responder refuses plain", true, false, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newParty(t, aliceJID, Config{SharePresence: tc.aShare})
			b := newParty(t, bobJID, Config{SharePresence: tc.bShare, AutoAccept: true})
			sa, m1, err := a.m.Start(bobJID, &StartOptions{Plain: tc.plain})
			if err != nil {
				t.Fatal(err)
			}
			fl := requestForm(t, m1).Field("presence")
			if (fl != nil) != tc.wantOffer {
				t.Fatalf("presence field offered: %v", fl != nil)
			}
			if fl != nil && (fl.Required || !slices.Equal(fl.OptionValues(), []string{"may", "mustnot"})) {
				t.Fatalf("presence field %+v", fl)
			}
			r := deliver(t, m1, aliceJID, b.m, true)
			sb := b.m.Session(aliceJID, m1.Thread)
			for i := 0; sa.State() != StateActive || sb.State() != StateActive; i++ {
				if i > 4 || len(r.Out) != 1 {
					t.Fatalf("negotiation stuck: %#v", r)
				}
				from, to := bobJID, a.m
				if i%2 == 1 {
					from, to = aliceJID, b.m
				}
				r = deliver(t, r.Out[0], from, to, true)
			}
			if sa.Params().SharePresence != tc.wantShared || sb.Params().SharePresence != tc.wantShared {
				t.Fatalf("shared: alice %v, bob %v, want %v", sa.Params().SharePresence, sb.Params().SharePresence, tc.wantShared)
			}
			if tc.plain || !tc.wantShared {
				return
			}
			// The agreement moves with a handed-over session.
			co, err := sa.Continue("desk")
			if err != nil {
				t.Fatal(err)
			}
			rc := deliver(t, co, aliceJID, b.m, true)
			deliver(t, rc.Out[0], bobJID, a.m, true)
			state, err := sa.Handover()
			if err != nil {
				t.Fatal(err)
			}
			a2 := newParty(t, "alice@example.org/desk", Config{SharePresence: tc.aShare})
			s2, err := a2.m.Adopt(state)
			if err != nil {
				t.Fatal(err)
			}
			if !s2.Params().SharePresence {
				t.Fatal("presence sharing lost in the handover")
			}
		})
	}
}

// TestSharePresenceAnswerChecked: an answer with a presence value that
// was not offered fails the negotiation like any other field.
func TestSharePresenceAnswerChecked(t *testing.T) {
	a := newParty(t, aliceJID, Config{SharePresence: true})
	b := newParty(t, bobJID, Config{SharePresence: true, AutoAccept: true})
	_, m1, err := a.m.Start(bobJID, &StartOptions{Plain: true})
	if err != nil {
		t.Fatal(err)
	}
	r := deliver(t, m1, aliceJID, b.m, true)
	bad := rewriteForm(t, r.Out[0], func(f *form.Form) { setValue(f, "presence", "always") })
	r2 := deliver(t, bad, bobJID, a.m, true)
	if ev := eventOf[Terminated](t, r2); ev.Err == nil {
		t.Fatalf("answer with presence=always accepted: %#v", r2)
	}
}
