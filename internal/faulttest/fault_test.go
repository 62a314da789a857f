package faulttest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/internal/storeoutbox"
)

var (
	faultN      = flag.Int("fault.n", 100, "messages each way per mechanism and server")
	faultReport = flag.String("fault.report", "", "append the figures to this file")
	faultLog    = flag.String("fault.log", "", "write each client's debug log to ACCOUNT.log in this directory")
)

// sentMsg is one message of the fault test as its sender saw it.
type sentMsg struct {
	body   string
	id     string
	failed bool // Send returned an error: its sender was told at once
	held   bool
}

// tally is what became of the messages of one direction.
type tally struct {
	sent, delivered, duplicated, lost, failed int
	// falseFail: delivered, and yet reported failed to the sender (a
	// receipt lost with a session: the sender was told it may not have
	// been read).
	falseFail int
	// wrong: delivered with another security than the one sent with.
	wrong int
	// notices: messages of the sender the recipient could not read.
	notices     int
	noticeTexts []string // the first few, for the log
	lostIDs     []string // the first few lost, with what the recipient made of them
	falseIDs    []string // the first few delivered but reported failed
	// lostAt counts the lost messages by the last fate their sender
	// learnt ("none", "queued", "sent", "acked"): where they were lost.
	lostAt map[string]int
}

// TestFault sends -fault.n messages each way between two clients, in the
// clear, with OX, with OTR and with OMEMO 2, through each real server,
// while a fault proxy between each client and the server cuts the
// connections at random moments (now, or after a random number of bytes:
// mid-stanza) and the server is restarted once. Every message must be
// delivered exactly once or reported failed to its sender (an error from
// Send, or a FateFailed).
func TestFault(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: not in -short mode")
	}
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		for _, m := range []struct{ name, ns string }{{"plaintext", ""}, {"ox", eme.OX}, {"otr", eme.OTR}, {"omemo", eme.OMEMO2}} {
			t.Run(m.name, func(t *testing.T) { runFault(t, srv, m.name, m.ns, *faultN) })
		}
	})
}

func runFault(t *testing.T, srv *servertest.Server, name, ns string, n int) {
	o := options{ox: ns == eme.OX, otr: ns == eme.OTR, omemo: ns == eme.OMEMO2, otrManual: true}
	o.otrKey = 4
	alice := newPeer(t, srv, srv.AddUser(t, "alice"+name, ""), o)
	o.otrKey = 3
	bob := newPeer(t, srv, srv.AddUser(t, "bob"+name, ""), o)
	subscribe(t, alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	switch ns {
	case eme.OX, eme.OMEMO2:
		// Each learns the other's key (OMEMO: builds its session) before
		// the faults start.
		for _, pair := range [][2]*peer{{alice, bob}, {bob, alice}} {
			if _, err := pair[0].c.Send(ctx, &client.Outgoing{To: pair[1].c.JID().Bare(), Body: "keys"}, ns); err != nil {
				t.Fatal(err)
			}
			pair[1].col.wait(t, "the first "+name+" message", has(func(m *client.MessageEvent) bool { return m.Body == "keys" }))
		}
	case eme.OTR:
		if !ensureOTR(ctx, alice, bob, true) {
			t.Fatal("no private OTR conversation")
		}
	}

	// Faults: a cut every 100-600 ms on one of the two connections, now
	// or after up to 3,000 bytes (in the middle of a stanza, mostly).
	stop := make(chan struct{})
	var cuts, midStanza, failures atomic.Int64
	var faults sync.WaitGroup
	faults.Add(1)
	go func() {
		defer faults.Done()
		for {
			t := time.NewTimer(time.Duration(100+rand.IntN(500)) * time.Millisecond)
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
			p := alice
			if rand.IntN(2) == 1 {
				p = bob
			}
			if rand.IntN(2) == 0 {
				p.proxy.Cut()
			} else {
				p.proxy.CutAfter(int64(1 + rand.IntN(3000)))
				midStanza.Add(1)
			}
			cuts.Add(1)
		}
	}()

	half := make(chan struct{}, 2)
	var senders sync.WaitGroup
	dirs := []struct {
		from, to  *peer
		key       string
		initiator bool
	}{{alice, bob, "alice->bob", true}, {bob, alice, "bob->alice", false}}
	sent := make([][]*sentMsg, len(dirs))
	for di, dir := range dirs {
		senders.Add(1)
		go func() {
			defer senders.Done()
			to := dir.to.c.JID().Bare()
			if ns == eme.OTR {
				to = dir.to.c.JID()
			}
			msgs := make([]*sentMsg, 0, n)
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for i := range n {
				if i == n/2 {
					half <- struct{}{}
				}
				<-tick.C
				if ns == eme.OTR {
					ensureOTR(ctx, dir.from, dir.to, dir.initiator)
				}
				m := &sentMsg{body: fmt.Sprintf("%s %s #%d", name, dir.key, i)}
				sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				res, err := dir.from.c.Send(sctx, &client.Outgoing{To: to, Body: m.body, Receipt: true}, ns)
				cancel()
				m.id, m.failed, m.held = res.ID, err != nil, res.Held
				if err != nil && failures.Add(1) <= 5 {
					t.Logf("%s: %v", m.body, err)
				}
				msgs = append(msgs, m)
			}
			sent[di] = msgs
		}()
	}
	// The server restarts once, half-way.
	<-half
	<-half
	srv.Restart(t)
	restarted := time.Now()
	senders.Wait()
	close(stop)
	faults.Wait()
	t.Logf("%d cuts (%d armed to fire after some bytes), a server restart at %s", cuts.Load(), midStanza.Load(), restarted.Format(time.TimeOnly))

	// Settle: every message delivered or reported failed, or 3 minutes.
	changed := make(chan struct{}, 1)
	alice.col.notify(changed)
	bob.col.notify(changed)
	settled := func() bool {
		for di, dir := range dirs {
			if count(sent[di], dir.from, dir.to, ns).lost > 0 {
				return false
			}
		}
		return true
	}
	giveUp := time.NewTimer(3 * time.Minute)
	defer giveUp.Stop()
wait:
	for !settled() {
		select {
		case <-changed:
		case <-giveUp.C:
			break wait
		}
	}
	// Late copies (a resend, the archive) would show as duplicates: wait
	// until neither side has received anything for 2 s.
	// (At most 30 s: some events, presence or protocol ones, may keep
	// coming; their types are logged.)
	noisy := time.Now().Add(30 * time.Second)
	for quiet := false; !quiet && time.Now().Before(noisy); {
		t := time.NewTimer(2 * time.Second)
		select {
		case <-changed:
		case <-t.C:
			quiet = true
		}
		t.Stop()
	}
	if time.Now().After(noisy) {
		evs := alice.col.snapshot()
		var last []string
		for _, ev := range evs[max(0, len(evs)-5):] {
			last = append(last, fmt.Sprintf("%T", ev))
		}
		t.Logf("events kept coming; alice's last: %v", last)
	}

	for di, dir := range dirs {
		key := dir.key
		tl := count(sent[di], dir.from, dir.to, ns)
		line := fmt.Sprintf("server=%s mechanism=%s direction=%s sent=%d delivered=%d duplicated=%d lost=%d reported-failed=%d delivered-but-reported-failed=%d unreadable-notices=%d cuts=%d restarts=1",
			srv.Name(), name, key, tl.sent, tl.delivered, tl.duplicated, tl.lost, tl.failed, tl.falseFail, tl.notices, cuts.Load())
		t.Log(line)
		if len(tl.falseIDs) > 0 {
			t.Logf("%s: delivered but reported failed: %v", key, tl.falseIDs)
		}
		for _, n := range tl.noticeTexts {
			t.Logf("%s: notice %s", key, n)
		}
		if *faultReport != "" {
			f, err := os.OpenFile(*faultReport, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				fmt.Fprintln(f, line)
				f.Close()
			}
		}
		if tl.lost != 0 {
			q, qerr := storeoutbox.Store{S: dir.from.st}.Queued(context.Background())
			t.Logf("%s lost messages %v; the sender's outbox holds %d (%v), connected %v; the sender's log ends:\n%s\nthe recipient's:\n%s",
				key, tl.lostIDs, len(q), qerr, dir.from.c.Connected(), dir.from.logTail(40), dir.to.logTail(40))
		}
		if tl.duplicated != 0 || tl.lost != 0 || tl.wrong != 0 {
			t.Errorf("%s: %d duplicated, %d lost (neither delivered nor reported failed; by the last fate their sender learnt: %v), %d with the wrong security",
				key, tl.duplicated, tl.lost, tl.lostAt, tl.wrong)
		}
		if tl.delivered == 0 {
			t.Errorf("%s: nothing delivered", key)
		}
	}
}

// ensureOTR waits (up to 15 s) for a private conversation from "from" to
// "to", which the initiator starts when there is none.
func ensureOTR(ctx context.Context, from, to *peer, initiator bool) bool {
	if from.otrPrivate(to.c.JID()) {
		return true
	}
	if initiator {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = from.otr.Start(sctx, to.c.JID())
		cancel()
	}
	return from.col.waitFor(15*time.Second, func([]client.Event) bool { return from.otrPrivate(to.c.JID()) })
}

// count tallies the messages sent from "from" to "to" with mechanism ns.
func count(msgs []*sentMsg, from, to *peer, ns string) tally {
	fromBare := from.c.JID().Bare()
	seen := map[string]int{}
	noticed := map[string]string{} // message id -> the recipient's notice
	tl := tally{sent: len(msgs)}
	for _, ev := range to.col.snapshot() {
		switch ev := ev.(type) {
		case *client.MessageEvent:
			if !ev.From.Bare().Equal(fromBare) || ev.Body == "" {
				continue
			}
			seen[ev.Body]++
			if ev.Security.Mechanism != ns {
				tl.wrong++
			}
		case *client.NoticeEvent:
			if ev.From.Bare().Equal(fromBare) {
				noticed[ev.ID] = fmt.Sprintf("%s, origin %+v", ev.Reason, ev.Origin)
				tl.notices++
				if len(tl.noticeTexts) < 5 {
					tl.noticeTexts = append(tl.noticeTexts, fmt.Sprintf("%s (%s): %s", ev.Reason, ev.ID, ev.Text))
				}
			}
		}
	}
	failed := map[string]bool{}
	last := map[string]string{}
	for _, ev := range from.col.snapshot() {
		f, ok := ev.(*client.FateEvent)
		if !ok || !f.To.Bare().Equal(to.c.JID().Bare()) {
			continue
		}
		last[f.ID] = f.Fate.String()
		// The last fate counts: a message given up too soon is reported
		// delivered when its receipt comes after all.
		failed[f.ID] = f.Fate == client.FateFailed
	}
	tl.lostAt = map[string]int{}
	for _, m := range msgs {
		reported := m.failed || (m.id != "" && !m.held && failed[m.id])
		switch k := seen[m.body]; {
		case k > 0:
			tl.delivered++
			tl.duplicated += k - 1
			if reported {
				tl.falseFail++
				if len(tl.falseIDs) < 5 {
					tl.falseIDs = append(tl.falseIDs, m.id)
				}
			}
		case reported:
			tl.failed++
		default:
			tl.lost++
			at := last[m.id]
			if at == "" {
				at = "none"
			}
			tl.lostAt[at]++
			if len(tl.lostIDs) < 5 {
				n := noticed[m.id]
				if n == "" {
					n = "none"
				}
				tl.lostIDs = append(tl.lostIDs, fmt.Sprintf("%s (held %v; the recipient's notice: %s)", m.id, m.held, n))
			}
		}
	}
	return tl
}
