package ox

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/cputime"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/sign/ed25519"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/xmltree"
)

// BenchmarkOXArchive measures bulk decryption of a 10,000-message OX archive
// from 50 contacts, as "balcony history" runs it: archived stanzas (fallback
// body, EME tag, hints, origin-id, the <openpgp/> element) through
// a client.ArchiveReader in pages of client.HistoryPage with one shared opener, key cache
// and memo of sender keys, once with one worker and once with two.
//
// The primitive limit of one message is what decryption cannot avoid, with
// the implementations go-crypto uses: one X25519 scalar multiplication
// (circl), one Ed25519 verification (circl), AES-256-CFB, the SHA-1 MDC and
// the SHA-256 signature hash over the content element. After every page the
// limit runs for as many messages, on as many goroutines as there are
// workers, so both see the same machine load; x-limit-Nw is the wall time of
// the archive with N workers over that of the limit on N cores, and
// x-limit-cpu-Nw the same with process CPU time. speedup is the wall time
// with one worker over that with two; limit-speedup is the same for the
// primitives alone, the most two cores can give on this machine now. The
// key parses (keys-parsed) and the heap retained after a run are reported
// too.
//
//	go test -run '^$' -bench OXArchive -benchtime 3x ./client/
func BenchmarkOXArchive(b *testing.B) {
	a := buildOXArchive(b)
	bob := a.bob(b)
	ctx := context.Background()
	p := newOpenLimit(a.plainLen)
	var wall, cpu, limWall, limCPU [3]time.Duration
	parsed := 0
	limit := func(n, workers int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := p
				if w > 0 {
					q = newOpenLimit(a.plainLen)
				}
				for range n / workers {
					q.open()
				}
			}()
		}
		wg.Wait()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, w := range []int{1, 2} {
			bob.x.cache = engine.NewKeyCache(0)
			reader := bob.c.NewArchiveReader(w)
			for start := 0; start < len(a.msgs); start += client.HistoryPage {
				b.StopTimer()
				page := a.page(b, start)
				b.StartTimer()
				w0, c0 := time.Now(), cputime.Process()
				evs := reader.Open(ctx, page)
				wall[w] += time.Since(w0)
				cpu[w] += cputime.Process() - c0
				b.StopTimer()
				if bad := checkArchived(evs); bad != "" {
					b.Fatalf("message %d: %s", start, bad)
				}
				w0, c0 = time.Now(), cputime.Process()
				limit(len(page), w)
				limWall[w] += time.Since(w0)
				limCPU[w] += cputime.Process() - c0
				b.StartTimer()
			}
			parsed = bob.x.cache.Len()
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if bad := a.decrypt(ctx, b, bob.c, 2); bad != "" {
		b.Fatal(bad)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)

	b.ReportMetric(wall[1].Seconds()/float64(b.N), "s/archive-1w")
	b.ReportMetric(wall[2].Seconds()/float64(b.N), "s/archive-2w")
	b.ReportMetric(float64(wall[1])/float64(wall[2]), "speedup")
	b.ReportMetric(float64(limWall[1])/float64(limWall[2]), "limit-speedup")
	for _, w := range []int{1, 2} {
		b.ReportMetric(float64(wall[w])/float64(limWall[w]), fmt.Sprintf("x-limit-%dw", w))
		if limCPU[w] > 0 {
			b.ReportMetric(float64(cpu[w])/float64(limCPU[w]), fmt.Sprintf("x-limit-cpu-%dw", w))
		}
	}
	b.ReportMetric(float64(limWall[1].Nanoseconds())/float64(b.N*len(a.msgs))/1e3, "limit-us")
	b.ReportMetric(float64(parsed), "keys-parsed")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "retained-MiB")
}

// oxArchive is an archive of OX messages to Bob from many contacts. The
// messages are made once; Bob's client and store are made for each
// benchmark run (they belong to its *testing.B).
type oxArchive struct {
	bobKey   *engine.Key
	senders  []*engine.Key
	addrs    []jid.JID
	msgs     []client.ArchivedMessage // without the stanzas; see page
	raw      [][]byte                 // the stanzas, encoded
	plainLen int
}

const (
	oxArchiveSize    = 10000
	oxArchiveSenders = 50
	oxArchiveBob     = "bob@example.org/phone"
)

var (
	oxArchiveOnce sync.Once
	theOXArchive  *oxArchive
)

func buildOXArchive(b *testing.B) *oxArchive {
	oxArchiveOnce.Do(func() {
		bobJID := jid.MustParse(oxArchiveBob)
		a := &oxArchive{bobKey: mustKey(b, bobJID)}
		text := strings.Repeat("Wherefore art thou? ", 10)
		for i := range oxArchiveSenders {
			j := jid.MustParse(fmt.Sprintf("contact%d@example.org/res", i))
			a.addrs = append(a.addrs, j)
			a.senders = append(a.senders, mustKey(b, j))
		}
		// Decorated as Balcony's pipeline decorates OX messages.
		decorator := newOXPeerKey(b, "decorator@example.org", Config{}, mustKey(b, jid.MustParse("decorator@example.org"))).c.Pipeline()
		stamp := time.Now()
		for i := range oxArchiveSize {
			s := i % oxArchiveSenders
			content := engine.Content{Kind: engine.Signcrypt, To: []jid.JID{bobJID.Bare()}, Time: stamp,
				Payload: []*xmltree.Element{xmltree.New(client.NSClient, "body").AppendText(text)}}
			msg, err := engine.Seal(content, a.senders[s], []*engine.Key{a.bobKey.Public(), a.senders[s].Public()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			st := xmltree.New(client.NSClient, "message", "from", a.addrs[s].String(), "to", bobJID.String(), "type", "chat", "id", client.NewID())
			st.Append(engine.Element{Data: msg}.Element())
			if err := decorator.Decorate(st, &client.Outgoing{Body: text}, eme.OX); err != nil {
				b.Fatal(err)
			}
			a.msgs = append(a.msgs, client.ArchivedMessage{ID: client.NewID(), Stamp: stamp, Message: st})
			a.raw = append(a.raw, st.Marshal(""))
		}
		// The mean size of the decrypted content element.
		opener, err := engine.NewOpener([]*engine.Key{a.bobKey}, nil)
		if err != nil {
			b.Fatal(err)
		}
		total := 0
		for i := range 20 {
			s := i % oxArchiveSenders
			data, _ := engine.ParseElement(a.msgs[i].Message.Child(engine.NS, "openpgp"))
			op, err := opener.Open(data, engine.OpenParams{From: a.addrs[s], To: bobJID, SenderKeys: []*engine.Key{a.senders[s]}, Time: stamp})
			if err != nil {
				b.Fatal(err)
			}
			x, _ := op.Content.Marshal()
			total += len(x)
		}
		a.plainLen = total / 20
		// Keep the encoded stanzas only: pages are parsed as they are
		// decrypted, as when they come from the server, so that the
		// garbage collector does not scan 10,000 trees all the time.
		for i := range a.msgs {
			a.msgs[i].Message = nil
		}
		theOXArchive = a
	})
	return theOXArchive
}

// page returns the archived messages from start on, one page, with their
// stanzas parsed (the client parses them as they arrive).
func (a *oxArchive) page(b *testing.B, start int) []client.ArchivedMessage {
	end := min(start+client.HistoryPage, len(a.msgs))
	page := make([]client.ArchivedMessage, end-start)
	for i := range page {
		page[i] = a.msgs[start+i]
		st, err := xmltree.Parse(a.raw[start+i], nil)
		if err != nil {
			b.Fatal(err)
		}
		page[i].Message = st
	}
	return page
}

// bob returns Bob's device with the senders' keys recorded (blindly
// trusted, which the benchmark counts as verified).
func (a *oxArchive) bob(b *testing.B) *oxPeer {
	bob := newOXPeerKey(b, oxArchiveBob, Config{BlindTrust: true}, a.bobKey)
	for i, k := range a.senders {
		bob.learn(b, a.addrs[i], k)
	}
	return bob
}

// decrypt runs the archive through OX page by page, as History does, and
// returns a description of the first message that was not a verified OX
// message, or "".
func (a *oxArchive) decrypt(ctx context.Context, b *testing.B, c *client.Client, workers int) string {
	reader := c.NewArchiveReader(workers)
	for start := 0; start < len(a.msgs); start += client.HistoryPage {
		page := a.page(b, start)
		if bad := checkArchived(reader.Open(ctx, page)); bad != "" {
			return fmt.Sprintf("page at %d: %s", start, bad)
		}
	}
	return ""
}

// checkArchived describes the first event that is not a verified OX
// message of the archive, or returns "".
func checkArchived(evs []client.Event) string {
	for i, ev := range evs {
		m, ok := ev.(*client.MessageEvent)
		if !ok || !m.Security.Verified || len(m.Security.Warnings) > 0 || !strings.HasPrefix(m.Body, "Wherefore") {
			if n, ok := ev.(*client.NoticeEvent); ok {
				return fmt.Sprintf("%d: notice %s: %s", i, n.Reason, n.Text)
			}
			return fmt.Sprintf("%d: %#v", i, ev)
		}
	}
	return ""
}

// openLimit holds the inputs of the primitives of one decryption.
type openLimit struct {
	sec, peer, shared x25519.Key
	pk                ed25519.PublicKey
	msg, sig          []byte
	data, out, key    []byte
	iv                []byte
}

func newOpenLimit(n int) *openLimit {
	p := new(openLimit)
	rand.Read(p.sec[:])
	rand.Read(p.peer[:])
	x25519.KeyGen(&p.peer, &p.peer)
	pk, priv, _ := ed25519.GenerateKey(rand.Reader)
	p.pk = pk
	p.msg = make([]byte, 32)
	p.sig = ed25519.Sign(priv, p.msg)
	p.data, p.out = make([]byte, n), make([]byte, n)
	p.key, p.iv = make([]byte, 32), make([]byte, aes.BlockSize)
	return p
}

var (
	sinkOK    bool
	sinkBytes []byte
)

// open is the primitive limit of one decryption with verification.
func (p *openLimit) open() {
	sinkOK = x25519.Shared(&p.shared, &p.sec, &p.peer)
	sinkOK = ed25519.Verify(p.pk, p.msg, p.sig)
	block, _ := aes.NewCipher(p.key)
	//lint:ignore SA1019 OpenPGP SEIPD v1 is CFB mode; this measures what go-crypto does.
	cipher.NewCFBDecrypter(block, p.iv).XORKeyStream(p.out, p.data)
	s1 := sha1.Sum(p.data)
	s2 := sha256.Sum256(p.data)
	sinkBytes = append(s1[:1], s2[:1]...)
}
