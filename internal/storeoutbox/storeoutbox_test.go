package storeoutbox

import (
	"context"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/store"
)

// Messages of every deferrable mechanism come back with the namespace they
// were queued with (OMEMO's two generations share one store mechanism);
// those of a mechanism that cannot wait are refused.
func TestPutQueuedKeepsTheMechanism(t *testing.T) {
	ctx := context.Background()
	st, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := Store{S: st}
	to := jid.MustParse("romeo@montague.lit")
	mechs := []string{"", eme.OX, eme.OMEMO0, eme.OMEMO2}
	for i, ns := range mechs {
		if err := o.Put(ctx, &client.QueuedMessage{To: to, ID: "m" + string(rune('0'+i)), Type: "chat", Body: "hi", Mechanism: ns}); err != nil {
			t.Fatalf("%q: %v", ns, err)
		}
	}
	for _, ns := range []string{eme.OTR, eme.ESession} {
		if err := o.Put(ctx, &client.QueuedMessage{To: to, ID: "x", Type: "chat", Body: "hi", Mechanism: ns}); err == nil {
			t.Errorf("a message of %s was queued", ns)
		}
	}
	q, err := o.Queued(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != len(mechs) {
		t.Fatalf("%d queued, want %d", len(q), len(mechs))
	}
	for i, m := range q {
		if m.Mechanism != mechs[i] || m.Type != "chat" {
			t.Errorf("message %d: mechanism %q type %q, want %q chat", i, m.Mechanism, m.Type, mechs[i])
		}
	}
}
