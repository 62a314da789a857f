package omemo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/balcony-im/balcony/omemo/xeddsa"
)

// Each benchmark times every operation and, right before or after it, the
// cryptographic primitives the operation cannot avoid, called directly;
// the median of the per-iteration ratios is reported as x-limit, so load
// from other processes weighs on both sides alike.
//
//	ns/op        mean time of the operation
//	limit-ns/op  mean time of its primitives
//	x-limit      median of operation / primitives

type ratioTimer struct {
	opTotal, limTotal time.Duration
	ratios            []float64
}

// time runs op and primitives, alternating which goes first so that
// neither side always finds the caches warmed by the other.
func (r *ratioTimer) time(op, primitives func()) {
	first, second := op, primitives
	if len(r.ratios)%2 == 1 {
		first, second = primitives, op
	}
	t0 := time.Now()
	first()
	t1 := time.Now()
	second()
	t2 := time.Now()
	dOp, dLim := t1.Sub(t0), t2.Sub(t1)
	if len(r.ratios)%2 == 1 {
		dOp, dLim = dLim, dOp
	}
	r.opTotal += dOp
	r.limTotal += dLim
	r.ratios = append(r.ratios, float64(dOp)/float64(dLim))
}

func (r *ratioTimer) report(b *testing.B) {
	b.StopTimer()
	slices.Sort(r.ratios)
	n := float64(len(r.ratios))
	b.ReportMetric(float64(r.opTotal.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(r.limTotal.Nanoseconds())/n, "limit-ns/op")
	b.ReportMetric(r.ratios[len(r.ratios)/2], "x-limit")
}

// prims holds inputs for the primitive calls.
type prims struct {
	key    [32]byte
	iv     [16]byte
	ad     []byte
	pt     []byte
	bundle *checkedBundle
	priv   *ecdh.PrivateKey
	pub    *ecdh.PublicKey
	// Ciphertexts for the decryption primitives: key material, an
	// OMEMO 2 payload, a 0.3 payload with its tag.
	ct, pct, sealed []byte
}

// receive is the receiving side of one message: KDF_CK, the message
// keys, the MAC check, AES-CBC decryption of the key material and the
// payload's decryption.
func (p *prims) receive(g Generation) {
	p.hmac([]byte{1})
	p.hmac([]byte{2})
	p.hkdf(80)
	p.hmac(p.ad, p.pt[:materialLen(g)+48])
	p.cbcDec(p.ct)
	if g == V2 {
		p.hkdf(80)
		p.hmac(p.pct)
		p.cbcDec(p.pct)
		return
	}
	block, _ := aes.NewCipher(p.key[:16])
	gc, _ := cipher.NewGCM(block)
	_, _ = gc.Open(nil, p.iv[:12], p.sealed, nil)
}

func (p *prims) random(n int) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(err)
	}
}

// x25519 is one X25519 with crypto/ecdh and a ready private key: a single
// scalar multiplication, the standard library's fastest.
func (p *prims) x25519() { _, _ = p.priv.ECDH(p.pub) }

// x25519Gen is a key generation: 32 random bytes and a base point
// multiplication.
func (p *prims) x25519Gen() {
	if _, err := ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
}

func (p *prims) hkdf(n int) {
	out := make([]byte, n)
	readHKDF(p.key[:], p.key[:], "info", out)
}

func (p *prims) hmac(parts ...[]byte) { macOf(&p.key, 16, parts...) }

func (p *prims) cbc(n int) { cbcEncrypt(&p.key, &p.iv, p.pt[:n]) }

func (p *prims) cbcDec(ct []byte) { _, _ = cbcDecrypt(&p.key, &p.iv, ct) }

func (p *prims) gcm(n int) {
	block, _ := aes.NewCipher(p.key[:16])
	g, _ := cipher.NewGCM(block)
	g.Seal(nil, p.iv[:12], p.pt[:n], nil)
}

// ratchetEncrypt is the ratchet's share of one message: KDF_CK, the
// message keys, AES-CBC of the key material, the MAC.
func (p *prims) ratchetEncrypt(material int) {
	p.hmac([]byte{1})
	p.hmac([]byte{2})
	p.hkdf(80)
	p.cbc(material)
	p.hmac(p.ad, p.pt[:material+48])
}

func (p *prims) payload(g Generation) {
	if g == V2 {
		p.random(32)
		p.hkdf(80)
		p.cbc(len(benchText))
		p.hmac(p.pt[:len(benchText)+16])
		return
	}
	p.random(28)
	p.gcm(len(benchText))
}

// benchText is a typical XEP-0420 envelope with a short message.
var benchText = []byte(`<envelope xmlns='urn:xmpp:sce:1'><content><body xmlns='jabber:client'>See you at eight?</body></content><rpad>ab12cd34</rpad><from jid='alice@example.org'/></envelope>`)

func materialLen(g Generation) int {
	if g == V2 {
		return material2Len
	}
	return material03Len
}

func newPrims(b *testing.B, bundle *Bundle) *prims {
	p := &prims{ad: make([]byte, 66), pt: make([]byte, 512)}
	_, _ = rand.Read(p.key[:])
	c, err := bundle.check(bundle.Generation)
	if err != nil {
		b.Fatal(err)
	}
	p.bundle = c
	if p.priv, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		b.Fatal(err)
	}
	if p.pub, err = ecdh.X25519().NewPublicKey(c.spk[:]); err != nil {
		b.Fatal(err)
	}
	p.ct = cbcEncrypt(&p.key, &p.iv, p.pt[:materialLen(bundle.Generation)])
	p.pct = cbcEncrypt(&p.key, &p.iv, benchText)
	block, _ := aes.NewCipher(p.key[:16])
	gc, _ := cipher.NewGCM(block)
	p.sealed = gc.Seal(nil, p.iv[:12], benchText, nil)
	return p
}

// BenchmarkSessionSetup: building a session from a bundle and encrypting
// the first message (payload, X3DH, ratchet initialisation, key
// exchange). Primitives: the signed pre-key signature check (Ed25519, or
// XEdDSA for 0.3), the Ed25519-to-X25519 map of the identity (OMEMO 2),
// two X25519 key generations, five X25519, HKDF for X3DH and KDF_RK, the
// ratchet's message encryption and the payload encryption.
func BenchmarkSessionSetup(b *testing.B) {
	for _, g := range generations {
		b.Run(g.String(), func(b *testing.B) {
			alice := newDevice(b, g, "alice@example.org", "alice")
			alice.m.cfg.Rand = rand.Reader
			bob := newDevice(b, g, "bob@example.org", "bob")
			r := bob.recipient(b)
			p := newPrims(b, r.Bundle)
			var ik [32]byte
			copy(ik[:], r.Bundle.IdentityKey[len(r.Bundle.IdentityKey)-32:])
			var rt ratioTimer
			for b.Loop() {
				if err := alice.m.DeleteSession(bob.addr); err != nil {
					b.Fatal(err)
				}
				rt.time(func() {
					if _, err := alice.m.Encrypt(benchText, []Recipient{r}); err != nil {
						b.Fatal(err)
					}
				}, func() {
					if g == V2 {
						ed25519.Verify(r.Bundle.IdentityKey, r.Bundle.SignedPreKey, r.Bundle.SignedPreKeySignature)
						_, _ = xeddsa.EdwardsToMontgomery(ik[:])
					} else {
						xeddsa.VerifyLibsignal(&ik, r.Bundle.SignedPreKey, r.Bundle.SignedPreKeySignature)
					}
					p.random(4)
					p.x25519Gen()
					p.x25519Gen()
					for range 5 {
						p.x25519()
					}
					p.hkdf(32)
					p.hkdf(64)
					p.ratchetEncrypt(materialLen(g))
					p.payload(g)
				})
			}
			rt.report(b)
		})
	}
}

// BenchmarkEncrypt3: one message to three devices with sessions.
// Primitives: the payload encryption and three ratchet encryptions.
func BenchmarkEncrypt3(b *testing.B) {
	for _, g := range generations {
		b.Run(g.String(), func(b *testing.B) {
			alice := newDevice(b, g, "alice@example.org", "alice")
			alice.m.cfg.Rand = rand.Reader
			var rs []Recipient
			for _, name := range []string{"bob1", "bob2", "bob3"} {
				d := newDevice(b, g, "bob@example.org", name)
				rs = append(rs, Recipient{Address: d.addr})
				msg, err := alice.m.Encrypt([]byte("x"), []Recipient{d.recipient(b)})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.m.Decrypt(incoming(b, msg, alice.addr, d.addr)); err != nil {
					b.Fatal(err)
				}
				reply, _ := d.m.EncryptEmpty([]Recipient{{Address: alice.addr}})
				if _, err := alice.m.Decrypt(incoming(b, reply, d.addr, alice.addr)); err != nil {
					b.Fatal(err)
				}
			}
			b0, _ := alice.m.Bundle()
			p := newPrims(b, b0)
			var rt ratioTimer
			for b.Loop() {
				rt.time(func() {
					if _, err := alice.m.Encrypt(benchText, rs); err != nil {
						b.Fatal(err)
					}
				}, func() {
					p.payload(g)
					for range 3 {
						p.ratchetEncrypt(materialLen(g))
					}
				})
			}
			rt.report(b)
		})
	}
}

// BenchmarkDecrypt: one message on an established receiving chain.
// Primitives: KDF_CK, the message keys, the MAC check, AES-CBC
// decryption of the key material and the payload's decryption.
func BenchmarkDecrypt(b *testing.B) {
	for _, g := range generations {
		b.Run(g.String(), func(b *testing.B) {
			alice := newDevice(b, g, "alice@example.org", "alice")
			bob := newDevice(b, g, "bob@example.org", "bob")
			msg, _ := alice.m.Encrypt([]byte("x"), []Recipient{bob.recipient(b)})
			if _, err := bob.m.Decrypt(incoming(b, msg, alice.addr, bob.addr)); err != nil {
				b.Fatal(err)
			}
			reply, _ := bob.m.EncryptEmpty([]Recipient{{Address: alice.addr}})
			if _, err := alice.m.Decrypt(incoming(b, reply, bob.addr, alice.addr)); err != nil {
				b.Fatal(err)
			}
			b0, _ := bob.m.Bundle()
			p := newPrims(b, b0)
			var rt ratioTimer
			for b.Loop() {
				b.StopTimer()
				m, err := alice.m.Encrypt(benchText, []Recipient{{Address: bob.addr}})
				if err != nil {
					b.Fatal(err)
				}
				in := incoming(b, m, alice.addr, bob.addr)
				b.StartTimer()
				rt.time(func() {
					if _, err := bob.m.Decrypt(in); err != nil {
						b.Fatal(err)
					}
				}, func() {
					p.receive(g)
				})
			}
			rt.report(b)
		})
	}
}

// BenchmarkSessionAccept: the receiving side of a session set-up: X3DH
// from a key exchange, the first DH ratchet step and the first message.
// Primitives: the identity's Ed25519-to-X25519 map (OMEMO 2), four X25519
// for X3DH, two for the ratchet step and one key generation, HKDF for X3DH
// and twice KDF_RK, the ratchet's decryption and the payload's.
func BenchmarkSessionAccept(b *testing.B) {
	for _, g := range generations {
		b.Run(g.String(), func(b *testing.B) {
			alice := newDevice(b, g, "alice@example.org", "alice")
			alice.m.cfg.Rand = rand.Reader
			bob := newDevice(b, g, "bob@example.org", "bob")
			bob.m.cfg.Rand = rand.Reader
			b0, _ := bob.m.Bundle()
			p := newPrims(b, b0)
			ik := alice.m.identityWire()
			var rt ratioTimer
			for b.Loop() {
				b.StopTimer()
				if err := alice.m.DeleteSession(bob.addr); err != nil {
					b.Fatal(err)
				}
				r := bob.recipient(b)
				msg, err := alice.m.Encrypt(benchText, []Recipient{r})
				if err != nil {
					b.Fatal(err)
				}
				in := incoming(b, msg, alice.addr, bob.addr)
				b.StartTimer()
				rt.time(func() {
					if _, err := bob.m.Decrypt(in); err != nil {
						b.Fatal(err)
					}
				}, func() {
					if g == V2 {
						_, _ = xeddsa.EdwardsToMontgomery(ik[:])
					}
					for range 6 {
						p.x25519()
					}
					p.x25519Gen()
					p.hkdf(32)
					p.hkdf(64)
					p.hkdf(64)
					p.receive(g)
				})
			}
			rt.report(b)
		})
	}
}
