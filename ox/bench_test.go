package ox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/cputime"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/sign/ed25519"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// The benchmarks report their cost as a ratio to the primitive limit: the sum
// of the cryptographic primitives the operation cannot avoid, measured in the
// same run with the implementations go-crypto uses (circl for X25519 and
// Ed25519, the standard library for AES and the hashes). The limit is
// measured interleaved with the operation, so both see the same machine
// load and clock speed. Two ratios are reported: x-limit from wall time (the
// usual ns/op) and x-limit-cpu from process CPU time, which stays meaningful
// when other processes compete for the cores.
//
//	go test -run '^$' -bench . -benchtime 3s ./ox/

var (
	sinkBool    bool
	sinkBytes   []byte
	sinkElement *xmltree.Element
)

// primitives holds what one primitive set works on.
type primitives struct {
	sec, pub, peer, shared x25519.Key
	priv                   ed25519.PrivateKey
	pk                     ed25519.PublicKey
	msg, sig               []byte
	data, out, key, iv     []byte
}

func newPrimitives(n int) *primitives {
	p := new(primitives)
	rand.Read(p.sec[:])
	rand.Read(p.peer[:])
	x25519.KeyGen(&p.peer, &p.peer)
	_, p.priv, _ = ed25519.GenerateKey(rand.Reader)
	p.pk = p.priv.Public().(ed25519.PublicKey)
	p.msg = make([]byte, 32)
	p.sig = ed25519.Sign(p.priv, p.msg)
	p.data = make([]byte, n)
	p.out = make([]byte, n)
	p.key = make([]byte, 32)
	p.iv = make([]byte, aes.BlockSize)
	return p
}

// symmetric is AES-256-CFB with its key schedule, the SHA-1 MDC and the
// SHA-256 signature hash over the plaintext.
func (p *primitives) symmetric() {
	block, _ := aes.NewCipher(p.key)
	//lint:ignore SA1019 OpenPGP SEIPD v1 is CFB mode; this measures what go-crypto does.
	cipher.NewCFBEncrypter(block, p.iv).XORKeyStream(p.out, p.data)
	s1 := sha1.Sum(p.data)
	s2 := sha256.Sum256(p.data)
	sinkBytes = append(s1[:1], s2[:1]...)
}

// signcrypt is the limit for signing once and encrypting to r recipients: per
// recipient an ephemeral key (a base-point multiplication) and the shared
// secret (a scalar multiplication); one Ed25519 signature; the symmetric work.
func (p *primitives) signcrypt(r int) {
	for range r {
		x25519.KeyGen(&p.pub, &p.sec)
		sinkBool = x25519.Shared(&p.shared, &p.sec, &p.peer)
	}
	sinkBytes = ed25519.Sign(p.priv, p.msg)
	p.symmetric()
}

// open is the limit for decrypting and verifying: one scalar multiplication,
// one Ed25519 verification and the symmetric work.
func (p *primitives) open() {
	sinkBool = x25519.Shared(&p.shared, &p.sec, &p.peer)
	sinkBool = ed25519.Verify(p.pk, p.msg, p.sig)
	p.symmetric()
}

// meter runs a reference operation interleaved with the benchmarked one:
// after every few operations the timer stops and the reference runs as many
// times.
type meter struct {
	ref                    func()
	opCPU, refCPU, refWall time.Duration
	ops, refs              int
	blockStart             time.Duration
}

const interleave = 16

func (m *meter) start() { m.blockStart = cputime.Process() }

func (m *meter) after(b *testing.B, i int) {
	if i%interleave != interleave-1 {
		return
	}
	m.opCPU += cputime.Process() - m.blockStart
	m.ops += interleave
	b.StopTimer()
	m.runRef(interleave)
	b.StartTimer()
	m.blockStart = cputime.Process()
}

func (m *meter) runRef(n int) {
	w, c := time.Now(), cputime.Process()
	for range n {
		m.ref()
	}
	m.refCPU += cputime.Process() - c
	m.refWall += time.Since(w)
	m.refs += n
}

// report adds x-<unit> (wall time ratio), x-<unit>-cpu (CPU time ratio) and
// <unit>-us (the reference's wall time).
func (m *meter) report(b *testing.B, unit string) {
	b.StopTimer()
	if m.refs == 0 { // too few iterations to interleave
		m.runRef(interleave)
	}
	ref := float64(m.refWall.Nanoseconds()) / float64(m.refs)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ref, "x-"+unit)
	if m.ops > 0 && m.refCPU > 0 {
		opCPU := float64(m.opCPU.Nanoseconds()) / float64(m.ops)
		b.ReportMetric(opCPU/(float64(m.refCPU.Nanoseconds())/float64(m.refs)), "x-"+unit+"-cpu")
	}
	b.ReportMetric(ref/1e3, unit+"-us")
}

// benchFixture is shared by the benchmarks: two EdDSA keys and a message of
// 200 bytes of text.
type benchFixture struct {
	alice, bob *Key
	content    Content
	plainLen   int // typical content element size, padding included
}

var (
	benchOnce sync.Once
	bench     benchFixture
)

func fixture(b *testing.B) *benchFixture {
	benchOnce.Do(func() {
		var err error
		if bench.alice, err = GenerateKey(aliceJID, EdDSA25519, nil); err != nil {
			panic(err)
		}
		if bench.bob, err = GenerateKey(bobJID, EdDSA25519, nil); err != nil {
			panic(err)
		}
		text := strings.Repeat("Wherefore art thou? ", 10)
		bench.content = Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Payload: []*xmltree.Element{body(text)}}
		c := bench.content
		c.Time = time.Now()
		c.Rpad = strings.Repeat("x", (1+maxRpad)/2) // the mean padding length
		x, err := c.Marshal()
		if err != nil {
			panic(err)
		}
		bench.plainLen = len(x)
	})
	return &bench
}

func (f *benchFixture) params() OpenParams {
	return OpenParams{From: aliceJID, To: bobJID, SenderKeys: []*Key{f.alice.Public()}, Require: Signcrypt}
}

// BenchmarkSigncrypt measures an IM message to one contact with encryption to
// self (2 recipients): content element with padding, sign, encrypt, Base64
// and the <openpgp/> element.
func BenchmarkSigncrypt(b *testing.B) {
	f := fixture(b)
	recipients := []*Key{f.bob.Public(), f.alice.Public()}
	p := newPrimitives(f.plainLen)
	m := &meter{ref: func() { p.signcrypt(2) }}
	b.ReportAllocs()
	b.ResetTimer()
	m.start()
	for i := range b.N {
		msg, err := Seal(f.content, f.alice, recipients, nil)
		if err != nil {
			b.Fatal(err)
		}
		sinkElement = Element{Data: msg}.Element()
		m.after(b, i)
	}
	m.report(b, "limit")
}

// BenchmarkOpen measures receiving that message: parse the <openpgp/>
// element, decrypt, verify, parse the content element and run every check.
func BenchmarkOpen(b *testing.B) {
	f := fixture(b)
	msg, err := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	if err != nil {
		b.Fatal(err)
	}
	el := Element{Data: msg}.Element()
	o, err := NewOpener([]*Key{f.bob}, nil)
	if err != nil {
		b.Fatal(err)
	}
	params := f.params()
	p := newPrimitives(f.plainLen)
	m := &meter{ref: p.open}
	b.ReportAllocs()
	b.ResetTimer()
	m.start()
	for i := range b.N {
		data, err := ParseElement(el)
		if err != nil {
			b.Fatal(err)
		}
		op, err := o.Open(data, params)
		if err != nil || !op.Verified {
			b.Fatal(err, op.Problems)
		}
		m.after(b, i)
	}
	m.report(b, "limit")
}

// BenchmarkGoCryptoOpen measures go-crypto alone on the same message (no
// XML, no checks): the floor under BenchmarkOpen.
func BenchmarkGoCryptoOpen(b *testing.B) {
	f := fixture(b)
	msg, err := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ring := openpgp.EntityList{f.bob.entity, f.alice.Public().entity}
	p := newPrimitives(f.plainLen)
	m := &meter{ref: p.open}
	b.ReportAllocs()
	b.ResetTimer()
	m.start()
	for i := range b.N {
		md, err := openpgp.ReadMessage(bytes.NewReader(msg), ring, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes, _ = io.ReadAll(md.UnverifiedBody)
		if md.SignatureError != nil {
			b.Fatal(md.SignatureError)
		}
		m.after(b, i)
	}
	m.report(b, "limit")
}

// archive is a pre-built MAM archive for the bulk benchmark: messages from
// many contacts to Bob, each sender's key as the stored bytes a client would
// hand to a KeyCache.
type archive struct {
	bob      *Key
	senders  []jid.JID
	keyData  [][]byte
	msgs     [][]byte
	from     []int
	plainLen int
}

const (
	archiveSize    = 10000
	archiveSenders = 50
)

var (
	archiveOnce sync.Once
	theArchive  archive
)

func buildArchive(b *testing.B) *archive {
	archiveOnce.Do(func() {
		a := &theArchive
		f := fixture(b)
		a.bob, a.plainLen = f.bob, f.plainLen
		var keys []*Key
		for i := range archiveSenders {
			j := jid.MustParse(fmt.Sprintf("contact%d@example.org", i))
			k, err := GenerateKey(j, EdDSA25519, nil)
			if err != nil {
				panic(err)
			}
			pub, _ := k.MarshalPublic(true)
			a.senders, a.keyData, keys = append(a.senders, j), append(a.keyData, pub), append(keys, k)
		}
		for i := range archiveSize {
			s := i % archiveSenders
			c := f.content
			msg, err := Seal(c, keys[s], []*Key{a.bob, keys[s]}, nil)
			if err != nil {
				panic(err)
			}
			a.msgs, a.from = append(a.msgs, msg), append(a.from, s)
		}
	})
	return &theArchive
}

// decryptArchive opens every message with the given number of worker
// goroutines sharing one Opener and one KeyCache, as the client's MAM sync
// does, and returns the number of messages that did not verify.
func (a *archive) decrypt(o *Opener, cache *KeyCache, workers int) int64 {
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(a.msgs) {
					return
				}
				s := a.from[i]
				sender, err := cache.Parse(a.keyData[s])
				if err != nil {
					bad.Add(1)
					continue
				}
				op, err := o.Open(a.msgs[i], OpenParams{From: a.senders[s], To: bobJID, SenderKeys: sender, Require: Signcrypt})
				if err != nil || !op.Verified {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return bad.Load()
}

// BenchmarkArchive decrypts a 10,000-message archive with one worker, then
// with two, and reports the wall time per archive, the speedup, and for two
// workers the ratio to the primitive limit on two cores (half the per-message
// limit). Each sender key is parsed once (keys-parsed counts the parses).
// The speedup and x-limit-2w need two otherwise idle cores; x-limit-cpu and
// cpu-2w/1w stay meaningful on a busy machine.
func BenchmarkArchive(b *testing.B) {
	a := buildArchive(b)
	o, err := NewOpener([]*Key{a.bob}, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := newPrimitives(a.plainLen)
	m := &meter{ref: p.open}
	var wall, cpu [3]time.Duration
	var parsed int
	var before, after runtime.MemStats
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, w := range []int{1, 2} {
			cache := NewKeyCache(0)
			w0, c0 := time.Now(), cputime.Process()
			if bad := a.decrypt(o, cache, w); bad != 0 {
				b.Fatalf("%d messages did not verify", bad)
			}
			wall[w] += time.Since(w0)
			cpu[w] += cputime.Process() - c0
			parsed = cache.Len()
			b.StopTimer()
			m.runRef(1000)
			b.StartTimer()
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&before)
	a.decrypt(o, NewKeyCache(0), 2)
	runtime.GC()
	runtime.ReadMemStats(&after)

	n := float64(b.N * archiveSize)
	limitWall := float64(m.refWall.Nanoseconds()) / float64(m.refs)
	limitCPU := float64(m.refCPU.Nanoseconds()) / float64(m.refs)
	b.ReportMetric(wall[1].Seconds()/float64(b.N), "s/archive-1w")
	b.ReportMetric(wall[2].Seconds()/float64(b.N), "s/archive-2w")
	b.ReportMetric(float64(wall[1])/float64(wall[2]), "speedup")
	b.ReportMetric(float64(wall[1].Nanoseconds())/n/limitWall, "x-limit-1w")
	b.ReportMetric(float64(wall[2].Nanoseconds())/n/(limitWall/2), "x-limit-2w")
	b.ReportMetric(float64(cpu[2].Nanoseconds())/n/limitCPU, "x-limit-cpu")
	// CPU time per message with two workers relative to one: 1.0 means the
	// workers do not slow each other down (no lock contention), so the
	// speedup on two idle cores can reach 2.
	b.ReportMetric(float64(cpu[2])/float64(cpu[1]), "cpu-2w/1w")
	b.ReportMetric(float64(parsed), "keys-parsed")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "retained-MiB")
}

// BenchmarkGPGSigncrypt runs gpg as a process per message, as clients built
// on GnuPG do, for the same message as BenchmarkSigncrypt; x-ox is its cost
// relative to Seal.
func BenchmarkGPGSigncrypt(b *testing.B) {
	f := fixture(b)
	g := newGPG(b)
	g.importKey(f.alice, true)
	g.importKey(f.bob, false)
	c := f.content
	c.Time = time.Now()
	c.Rpad = strings.Repeat("x", (1+maxRpad)/2)
	plain, _ := c.Marshal()
	recipients := []*Key{f.bob.Public(), f.alice.Public()}
	m := &meter{ref: func() {
		msg, _ := Seal(f.content, f.alice, recipients, nil)
		sinkElement = Element{Data: msg}.Element()
	}}
	args := []string{"--sign", "--encrypt", "-r", f.bob.Fingerprint(), "-r", f.alice.Fingerprint(), "-u", f.alice.Fingerprint()}
	g.run(plain, args...) // start the agent outside the timed loop
	b.ResetTimer()
	m.start()
	for i := range b.N {
		sinkBytes, _ = g.run(plain, args...)
		m.after(b, i)
	}
	m.report(b, "ox")
}

// BenchmarkGPGOpen runs gpg --decrypt as a process per message; x-ox is its
// cost relative to ParseElement and Open.
func BenchmarkGPGOpen(b *testing.B) {
	f := fixture(b)
	g := newGPG(b)
	g.importKey(f.bob, true)
	g.importKey(f.alice, false)
	msg, err := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	if err != nil {
		b.Fatal(err)
	}
	el := Element{Data: msg}.Element()
	o, _ := NewOpener([]*Key{f.bob}, nil)
	params := f.params()
	m := &meter{ref: func() {
		data, _ := ParseElement(el)
		if op, err := o.Open(data, params); err != nil || !op.Verified {
			panic(err)
		}
	}}
	if _, status := g.run(msg, "--decrypt"); !hasStatus(status, "GOODSIG") {
		b.Fatal(status)
	}
	b.ResetTimer()
	m.start()
	for i := range b.N {
		sinkBytes, _ = g.run(msg, "--decrypt")
		m.after(b, i)
	}
	m.report(b, "ox")
}
