package otr

import (
	"crypto/aes"
	"crypto/dsa" //lint:ignore SA1019 crypto/dsa is the reference for the DSA primitive limit
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/balcony-im/balcony/internal/modp"
)

// The benchmarks report each protocol operation as a ratio to the sum of
// the cryptographic primitives it cannot avoid, measured in the same run:
// every operation (or batch of fast ones) is immediately followed by its
// primitives, and the ratio of each such pair is recorded, so that load
// from other processes affects both sides of a ratio alike.
//
//	x-limit      median over the pairs of operation time / primitive time
//	limit-ns/op  mean time of the primitives
//	ns/op        mean time of the operation alone

// pairs accumulates paired timings.
type pairs struct {
	op, limit time.Duration
	ratios    []float64
}

func (p *pairs) add(op, limit time.Duration) {
	p.op += op
	p.limit += limit
	p.ratios = append(p.ratios, float64(op)/float64(limit))
}

func (p *pairs) report(b *testing.B) {
	n := float64(b.N)
	slices.Sort(p.ratios)
	b.ReportMetric(float64(p.op.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(p.limit.Nanoseconds())/n, "limit-ns/op")
	b.ReportMetric(p.ratios[len(p.ratios)/2], "x-limit")
}

func dsaKey(k *PrivateKey) *dsa.PrivateKey {
	return &dsa.PrivateKey{PublicKey: dsa.PublicKey{Parameters: dsa.Parameters{P: k.p, Q: k.q, G: k.g}, Y: k.y}, X: k.x}
}

// BenchmarkAKE measures a complete AKE between two Conversations, query
// included. Its primitive limit is 2 DH key generations and 2 shared
// secrets with 320-bit exponents (constant time, internal/modp), 2 DSA
// signatures and 2 verifications (crypto/dsa, the variable-time reference).
func BenchmarkAKE(b *testing.B) {
	ka, kb := aliceKey(b), bobKey(b)
	da, db := dsaKey(ka), dsaKey(kb)
	m := sha256.Sum256([]byte("M"))
	primitives := func() {
		x, _ := modp.RandomExponent(rand.Reader, dhExpLen)
		y, _ := modp.RandomExponent(rand.Reader, dhExpLen)
		gx, gy := group.Public(x), group.Public(y)
		if _, err := group.SharedSecret(gy, x); err != nil {
			b.Fatal(err)
		}
		if _, err := group.SharedSecret(gx, y); err != nil {
			b.Fatal(err)
		}
		for _, k := range []*dsa.PrivateKey{db, da} {
			r, s, err := dsa.Sign(rand.Reader, k, m[:])
			if err != nil || !dsa.Verify(&k.PublicKey, m[:], r, s) {
				b.Fatal("dsa")
			}
		}
	}
	ake := func() {
		a, err := NewConversation(Config{PrivateKey: ka, Policy: PolicyManual, InstanceTag: 0x100})
		if err != nil {
			b.Fatal(err)
		}
		c, err := NewConversation(Config{PrivateKey: kb, Policy: PolicyManual, InstanceTag: 0x101})
		if err != nil {
			b.Fatal(err)
		}
		msgs := [][]byte{a.QueryMessage()}
		from, to := a, c
		for len(msgs) > 0 {
			var next [][]byte
			for _, msg := range msgs {
				r, err := to.Receive(msg)
				if err != nil {
					b.Fatal(err)
				}
				next = append(next, r.ToSend...)
			}
			msgs, from, to = next, to, from
		}
		if a.State() != Encrypted || c.State() != Encrypted {
			b.Fatal("AKE failed")
		}
	}
	ake()
	primitives()
	b.ResetTimer()
	var p pairs
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ake()
		t1 := time.Now()
		primitives()
		p.add(t1.Sub(t0), time.Since(t1))
	}
	p.report(b)
}

// BenchmarkDataMessage measures one data message one way, encrypted and
// encoded by Send, then decoded, authenticated and decrypted by Receive, in
// a steady one-way stream (no key rotation). Its primitive limit is
// AES-128-CTR twice and HMAC-SHA1 twice over the same lengths, with keys
// already expanded, as a minimal implementation would need, using the same
// CTR routine as the engine.
func BenchmarkDataMessage(b *testing.B) {
	d := newDuo(b, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	d.ake(d.a)
	text := []byte("A typical instant message, a sentence or two long, with an emoji 🙂 and some <b>HTML</b>.")
	send := func() {
		msgs, err := d.a.conv.Send(text)
		if err != nil {
			b.Fatal(err)
		}
		r, err := d.b.conv.Receive(msgs[0])
		if err != nil || len(r.Plaintext) != len(text) {
			b.Fatal(err)
		}
	}
	send()
	// the primitives over the same sizes as a real message
	msgs, _ := d.a.conv.Send(text)
	macLenIn := len(parseDataMsg(b, msgs[0]).authenticated)
	d.b.conv.Receive(msgs[0])
	var key [16]byte
	block, _ := aes.NewCipher(key[:])
	hs := hmac.New(sha1.New, key[:])
	hr := hmac.New(sha1.New, key[:])
	macIn := make([]byte, macLenIn)
	ct := make([]byte, len(text))
	pt := make([]byte, len(text))
	var iv [16]byte
	var sum [20]byte
	var tmp [32]byte
	primitives := func() {
		iv[7]++
		xorCTR(block, &iv, ct, text, &tmp)
		hs.Reset()
		hs.Write(macIn)
		hs.Sum(sum[:0])
		hr.Reset()
		hr.Write(macIn)
		hr.Sum(sum[:0])
		xorCTR(block, &iv, pt, ct, &tmp)
	}
	const batch = 64
	b.ResetTimer()
	var p pairs
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			send()
		}
		t1 := time.Now()
		for i := 0; i < n; i++ {
			primitives()
		}
		p.add(t1.Sub(t0), time.Since(t1))
		done += n
	}
	p.report(b)
}

// BenchmarkRatchetRoundTrip measures a round trip of data messages that
// each acknowledge the other side's newest DH key, so that both sides
// rotate keys on every message. The primitive limit of one ratcheting
// message is 3 modular exponentiations with 320-bit exponents (a new key
// pair and the new shared secret on each side), so 6 per round trip.
func BenchmarkRatchetRoundTrip(b *testing.B) {
	d := newDuo(b, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	d.ake(d.a)
	text := []byte("ping")
	hop := func(from, to *side) {
		msgs, err := from.conv.Send(text)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.conv.Receive(msgs[0]); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip := func() {
		hop(d.a, d.b)
		hop(d.b, d.a)
	}
	for i := 0; i < 3; i++ {
		roundTrip()
	}
	before := d.a.conv.sess.ourKeyID
	roundTrip()
	if d.a.conv.sess.ourKeyID != before+1 {
		b.Fatal("keys do not rotate every round trip")
	}
	px, _ := modp.RandomExponent(rand.Reader, dhExpLen)
	peer := group.Public(px)
	primitives := func() {
		for i := 0; i < 2; i++ {
			x, _ := modp.RandomExponent(rand.Reader, dhExpLen)
			group.Public(x)
			if _, err := group.SharedSecret(peer, x); err != nil {
				b.Fatal(err)
			}
			if _, err := group.SharedSecret(peer, x); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	var p pairs
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		roundTrip()
		t1 := time.Now()
		primitives()
		p.add(t1.Sub(t0), time.Since(t1))
	}
	p.report(b)
}

// BenchmarkSign compares our constant-time DSA signature with crypto/dsa's
// variable-time one.
func BenchmarkSign(b *testing.B) {
	k := aliceKey(b)
	dk := dsaKey(k)
	m := sha256.Sum256(nil)
	b.ResetTimer()
	var p pairs
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := k.sign(rand.Reader, m[:]); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, _, err := dsa.Sign(rand.Reader, dk, m[:]); err != nil {
			b.Fatal(err)
		}
		p.add(t1.Sub(t0), time.Since(t1))
	}
	p.report(b)
}

// BenchmarkDataMessageVsXCrypto pairs our one-way data message with
// golang.org/x/crypto/otr's (protocol version 2, same text) in the same
// run: x-xcrypto is the median ratio. With the anchors measured on an idle
// machine (x/crypto/otr 6.25 us, libotr 2.64 us per message), our time
// relative to libotr is about x-xcrypto * 2.37.
func BenchmarkDataMessageVsXCrypto(b *testing.B) {
	d := newDuo(b, Config{Policy: PolicyManual}, Config{Policy: PolicyManual})
	d.ake(d.a)
	xa, xb := xotrPair(b)
	text := []byte("A typical instant message, a sentence or two long, with an emoji 🙂 and some <b>HTML</b>.")
	ours := func() {
		msgs, err := d.a.conv.Send(text)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.b.conv.Receive(msgs[0]); err != nil {
			b.Fatal(err)
		}
	}
	theirs := func() {
		msgs, err := xa.Send(text)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, _, err := xb.Receive(msgs[0]); err != nil {
			b.Fatal(err)
		}
	}
	ours()
	theirs()
	const batch = 64
	b.ResetTimer()
	var p pairs
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			ours()
		}
		t1 := time.Now()
		for i := 0; i < n; i++ {
			theirs()
		}
		p.add(t1.Sub(t0), time.Since(t1))
		done += n
	}
	slices.Sort(p.ratios)
	b.ReportMetric(float64(p.op.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(p.limit.Nanoseconds())/float64(b.N), "xcrypto-ns/op")
	b.ReportMetric(p.ratios[len(p.ratios)/2], "x-xcrypto")
}
