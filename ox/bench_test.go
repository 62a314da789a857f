package ox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/cloudflare/circl/sign/ed25519"
	"mellium.im/xmpp/jid"
)

// The benchmarks report their cost as a ratio to the primitive limit: the sum
// of the cryptographic primitives the operation cannot avoid, measured in the
// same process with the same implementations go-crypto uses (circl for X25519
// and Ed25519, the standard library for AES and the hashes).

// limitMeter measures the primitive limit interleaved with the operation
// being benchmarked, so that both see the same machine load and clock speed:
// after every few operations the timer stops and the same number of
// primitive sets runs.
type limitMeter struct {
	prims func()
	total time.Duration
	count int
}

const interleave = 16

func (m *limitMeter) after(b *testing.B, i int) {
	if i%interleave != interleave-1 {
		return
	}
	b.StopTimer()
	start := time.Now()
	for range interleave {
		m.prims()
	}
	m.total += time.Since(start)
	m.count += interleave
	b.StartTimer()
}

// report adds the ratio of the operation to the limit, and the limit.
func (m *limitMeter) report(b *testing.B) {
	if m.count == 0 { // too few iterations to interleave: measure now
		b.StopTimer()
		start := time.Now()
		for range interleave {
			m.prims()
		}
		m.total, m.count = time.Since(start), interleave
	}
	limit := float64(m.total.Nanoseconds()) / float64(m.count)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/limit, "x-limit")
	b.ReportMetric(limit/1e3, "limit-us")
}

var sinkBool bool
var sinkBytes []byte

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

// benchFixture is shared by the benchmarks: two EdDSA keys and a message.
type benchFixture struct {
	alice, bob       *Key
	aliceJID, bobJID jid.JID
	content          Content
	plainLen         int
}

var (
	benchOnce sync.Once
	bench     benchFixture
)

func fixture(b *testing.B) *benchFixture {
	benchOnce.Do(func() {
		bench.aliceJID = jid.MustParse("alice@example.org")
		bench.bobJID = jid.MustParse("bob@example.net")
		var err error
		if bench.alice, err = GenerateKey(bench.aliceJID, EdDSA25519, nil); err != nil {
			panic(err)
		}
		if bench.bob, err = GenerateKey(bench.bobJID, EdDSA25519, nil); err != nil {
			panic(err)
		}
		text := strings.Repeat("Wherefore art thou? ", 10) // 200 bytes
		bench.content = Content{
			Kind:    Signcrypt,
			To:      []jid.JID{bench.bobJID},
			Payload: []byte("<body>" + text + "</body>"),
		}
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

// BenchmarkSigncrypt measures an IM message to one contact with encryption to
// self (2 recipients): content element with padding, sign, encrypt, Base64
// and the <openpgp/> element.
func BenchmarkSigncrypt(b *testing.B) {
	f := fixture(b)
	recipients := []*Key{f.bob.Public(), f.alice.Public()}
	p := newPrimitives(f.plainLen)
	m := &limitMeter{prims: func() { p.signcrypt(2) }}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		msg, err := Seal(f.content, f.alice, recipients, nil)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = Element{Data: msg}.Marshal()
		m.after(b, i)
	}
	m.report(b)
}

// BenchmarkOpen measures receiving that message: parse the <openpgp/>
// element, decrypt, verify, parse the content element and run every check.
func BenchmarkOpen(b *testing.B) {
	f := fixture(b)
	msg, err := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	if err != nil {
		b.Fatal(err)
	}
	el := Element{Data: msg}.Marshal()
	o, err := NewOpener([]*Key{f.bob}, nil)
	if err != nil {
		b.Fatal(err)
	}
	params := OpenParams{From: f.aliceJID, To: f.bobJID, SenderKeys: []*Key{f.alice.Public()}, Require: Signcrypt}
	p := newPrimitives(f.plainLen)
	m := &limitMeter{prims: p.open}
	b.ReportAllocs()
	b.ResetTimer()
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
	m.report(b)
}
