package omemo_test

import (
	"testing"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/servertest"
)

// TestReplayedMessageShownOnce: OMEMO is Replayable (a message the
// server acknowledged just before it lost the session is sent again as
// it was). The recipient reads the first copy and drops the second
// without a word, message or notice, in both generations.
func TestReplayedMessageShownOnce(t *testing.T) {
	srv := servertest.StartProsody(t)
	alice := connect(t, srv, srv.AddUser(t, "alice", ""), devOptions{})
	bob := connect(t, srv, srv.AddUser(t, "bob", ""), devOptions{})
	ctx := ctxT(t)
	for _, g := range gens {
		m := alice.d.Mechanism(g)
		if !m.Needs().Replayable {
			t.Fatalf("%v is not replayable", g)
		}
		// A session first, so that the replayed message is a plain
		// ratchet message (a key exchange is tested by the fault test).
		alice.send(t, bob.bare, g, "first, "+g.String())
		bob.message(t, alice.bare, "first, "+g.String())
		bob.send(t, alice.bare, g, "reply, "+g.String())
		alice.message(t, bob.bare, "reply, "+g.String())

		sealed, err := m.Seal(ctx, &client.Outgoing{To: bob.bare, Type: "chat", ID: client.NewID(), Body: "once, " + g.String()})
		if err != nil || len(sealed.Stanzas) != 1 {
			t.Fatalf("Seal: %+v, %v", sealed, err)
		}
		st := sealed.Stanzas[0]
		st.SetAttr("to", bob.bare.String())
		for range 2 {
			if err := alice.c.SendElement(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		bob.message(t, alice.bare, "once, "+g.String())
		// A marker after both copies: nothing may come between.
		alice.send(t, bob.bare, g, "marker, "+g.String())
		bob.message(t, alice.bare, "marker, "+g.String())
	}
	bob.noMessages(t)
}
