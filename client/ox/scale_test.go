package ox

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/internal/e2ebench"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/store"
)

// Scale: one account that knows many contacts' OX keys. Keys live in the
// store; the mechanism holds parsed keys only in its bounded cache
// (engine.KeyCache, keyCacheSize entries), so its heap stays within
// scaleBudgetOXKey per parsed key however many contacts there are, and
// looking keys up starts no goroutine. BALCONY_BENCH=1 (set by
// scripts/bench.sh) runs 10,000 contacts, otherwise 300.

// scaleBudgetOXKey is the heap one parsed contact key may hold in the
// mechanism: an Ed25519/X25519 public key with its user ID and
// signatures; 6.7 KB measured.
const scaleBudgetOXKey = 8 << 10

// keyCacheSize is the default size of engine.KeyCache, which New uses.
const keyCacheSize = 1024

func TestScaleOXContactKeys(t *testing.T) {
	n := 300
	if os.Getenv("BALCONY_BENCH") == "1" {
		n = 10000
	}
	ctx := context.Background()
	alice := newOXPeer(t, "alice@example.org/laptop", Config{}, true)
	// The contacts' keys: generated, then recorded as a PEP fetch records
	// them (two committed writes each: this dominates the test's time).
	contacts := make([]jid.JID, n)
	start := time.Now()
	for i := range n {
		contacts[i] = jid.MustParse(fmt.Sprintf("c%d@example.net", i))
		k, err := engine.GenerateKey(contacts[i], engine.EdDSA25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := k.Public().MarshalPublic(true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.st.RecordSeenKey(ctx, contacts[i].String(), store.OX, k.Fingerprint(), data); err != nil {
			t.Fatal(err)
		}
		if err := alice.st.SetAnnouncedKeys(ctx, contacts[i].String(), store.OX, []string{k.Fingerprint()}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d contact keys generated and stored in %v", n, time.Since(start).Round(time.Millisecond))
	g0, h0 := runtime.NumGoroutine(), e2ebench.HeapAfterGC()
	rss0, _ := e2ebench.ProcStatus(0, "VmRSS")
	// Every key is looked up as a message to or from the contact would.
	for _, c := range contacts {
		sk, err := alice.x.loadKeys(ctx, c)
		if err != nil || len(sk.keys) != 1 {
			t.Fatalf("%s: %v, %v", c, sk, err)
		}
	}
	g1, h1 := runtime.NumGoroutine(), e2ebench.HeapAfterGC()
	rss1, _ := e2ebench.ProcStatus(0, "VmRSS")
	grew := int64(h1) - int64(h0)
	parsed := int64(min(n, keyCacheSize))
	t.Logf("%d contact keys: heap +%d KiB in all, %d bytes per known key, %d per parsed key (budget %d), RSS +%d KiB, goroutines %d -> %d",
		n, grew>>10, grew/int64(n), grew/parsed, scaleBudgetOXKey, (int64(rss1)-int64(rss0))>>10, g0, g1)
	if grew > parsed*scaleBudgetOXKey {
		t.Errorf("heap grew by %d bytes for %d parsed keys, budget %d each", grew, parsed, scaleBudgetOXKey)
	}
	if g1-g0 > 4 {
		t.Errorf("goroutines %d -> %d", g0, g1)
	}
	runtime.KeepAlive(alice)
}
