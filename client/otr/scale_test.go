package otr

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/e2ebench"
	"github.com/balcony-im/balcony/store"
)

// Scale: many live conversations in one mechanism (one account). The
// memory an account holds per conversation, measured with the peers gone
// (their own state is theirs), stays within scaleBudgetOTR, and no
// conversation has a goroutine of its own. BALCONY_BENCH=1 (set by
// scripts/bench.sh) runs 1,000 conversations, otherwise 60.

// scaleBudgetOTR is the heap one live OTR conversation may hold: the
// AKE's and the data keys (DH 1536-bit values, MAC and AES keys, the
// peer's DSA key, counters, fragments) are a few KiB; 13 KB measured.
const scaleBudgetOTR = 32 << 10

func TestScaleOTRConversations(t *testing.T) {
	n := 60
	if os.Getenv("BALCONY_BENCH") == "1" {
		n = 1000
	}
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	net := newMemNet(t)
	alice := net.add("alice@example.org/home", keys[0], Config{})
	peerStore, err := store.Create(t.TempDir(), store.Options{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peerStore.Close() })
	tag, err := peerStore.OTRInstanceTag(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// One warm-up conversation, so that what every mechanism allocates
	// once (tables, the heartbeat) is in the baseline.
	warm := net.add("warm@example.org/desk", keys[1], Config{Store: peerStore, InstanceTag: tag})
	private(t, net, alice, warm)
	g0, h0 := runtime.NumGoroutine(), e2ebench.HeapAfterGC()
	rss0, _ := e2ebench.ProcStatus(0, "VmRSS")
	for i := range n {
		full := fmt.Sprintf("bob%d@example.org/desk", i)
		bob := net.add(full, keys[1+i%(len(keys)-1)], Config{Store: peerStore, InstanceTag: tag})
		private(t, net, alice, bob)
		// The peer leaves the test's view: its mechanism stops and only
		// the cleanup's reference is left, which holds nothing live.
		bob.o.mu.Lock()
		hb := bob.o.hbDone
		bob.o.mu.Unlock()
		bob.o.Shutdown()
		if hb != nil {
			<-hb // its heartbeat goroutine has returned
		}
		delete(net.sides, full)
		bob.o.mu.Lock()
		clear(bob.o.peers)
		bob.o.mu.Unlock()
	}
	if got := len(alice.o.Sessions(t.Context())); got < n {
		t.Fatalf("%d live conversations, want at least %d", got, n)
	}
	g1, h1 := runtime.NumGoroutine(), e2ebench.HeapAfterGC()
	rss1, _ := e2ebench.ProcStatus(0, "VmRSS")
	per := (int64(h1) - int64(h0)) / int64(n)
	t.Logf("%d OTR conversations: %d bytes of heap each (budget %d), RSS +%d KiB in all (peers included), goroutines %d -> %d",
		n, per, scaleBudgetOTR, (int64(rss1)-int64(rss0))>>10, g0, g1)
	if per > scaleBudgetOTR {
		t.Errorf("%d bytes per conversation, budget %d", per, scaleBudgetOTR)
	}
	// Goroutines that were ending when counted (the peers' heartbeats
	// and stores just stopped) are given a moment to go; one that stays
	// per conversation would keep the count n above the baseline.
	for deadline := time.Now().Add(5 * time.Second); g1-g0 > 16 && time.Now().Before(deadline); {
		runtime.Gosched()
		g1 = runtime.NumGoroutine()
	}
	if g1-g0 > 16 {
		t.Errorf("goroutines grew from %d to %d with %d conversations", g0, g1, n)
	}
	runtime.KeepAlive(alice)
}
