package esession

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/xmltree"
)

func TestKeyValueRoundTrip(t *testing.T) {
	for _, name := range []string{"rsa_alice", "dsa_alice"} {
		t.Run(name, func(t *testing.T) {
			k := testKey(t, name).Public()
			kv := wire(t, k.KeyValue())
			if kv.Name.Space != NSXMLDSig {
				t.Errorf("namespace %q", kv.Name.Space)
			}
			back, err := ParseKeyValue(kv)
			if err != nil {
				t.Fatal(err)
			}
			if !back.Equal(k) || back.Fingerprint() != k.Fingerprint() {
				t.Error("the key changed on the way")
			}
			// The normalised form has no namespace and parses too.
			norm := k.normalized()
			if bytes.Contains(norm, []byte("xmlns")) || !bytes.HasPrefix(norm, []byte("<KeyValue><")) {
				t.Errorf("normalised %s", norm)
			}
			el, err := xmltree.Parse(norm, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := ParseKeyValue(el); err != nil || !again.Equal(k) {
				t.Errorf("normalised form: %v", err)
			}
			// Sign and verify; a changed message or signature fails.
			msg := []byte("mac to sign")
			sig, err := testKey(t, name).sign(randReader(), k.algorithm(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if !k.verify(k.algorithm(), msg, sig) {
				t.Fatal("own signature does not verify")
			}
			other := SignRSASHA256
			if k.algorithm() == other {
				other = SignDSASHA256
			}
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			if k.verify(k.algorithm(), []byte("mac to sigm"), sig) || k.verify(k.algorithm(), msg, bad) ||
				k.verify(other, msg, sig) || k.verify(k.algorithm(), msg, sig[:len(sig)-1]) {
				t.Error("a wrong signature verified")
			}
			if _, err := testKey(t, name).sign(randReader(), other, msg); err == nil {
				t.Error("signed with the other algorithm")
			}
		})
	}
}

func TestParseKeyValueRejects(t *testing.T) {
	rsaKV := func(mod *big.Int, e int) string {
		return "<KeyValue xmlns='" + NSXMLDSig + "'><RSAKeyValue><Modulus>" + b64.EncodeToString(mod.Bytes()) +
			"</Modulus><Exponent>" + b64.EncodeToString(big.NewInt(int64(e)).Bytes()) + "</Exponent></RSAKeyValue></KeyValue>"
	}
	good := testKey(t, "rsa_alice").RSA.N
	small := new(big.Int).Rsh(good, 1100)
	small.SetBit(small, 0, 1)
	dsaPub := testKey(t, "dsa_alice").DSA.PublicKey
	dsaKV := func(p, q, g, y *big.Int) string {
		e := func(n *big.Int) string { return b64.EncodeToString(n.Bytes()) }
		return "<KeyValue xmlns='" + NSXMLDSig + "'><DSAKeyValue><P>" + e(p) + "</P><Q>" + e(q) + "</Q><G>" + e(g) +
			"</G><Y>" + e(y) + "</Y></DSAKeyValue></KeyValue>"
	}
	notInSubgroup := new(big.Int).Sub(dsaPub.P, big.NewInt(1)) // order 2
	cases := map[string]string{
		"small RSA":        rsaKV(small, 65537),
		"even exponent":    rsaKV(good, 65536),
		"exponent 1":       rsaKV(good, 1),
		"even modulus":     rsaKV(new(big.Int).Add(good, big.NewInt(1)), 65537),
		"DSA y off group":  dsaKV(dsaPub.P, dsaPub.Q, dsaPub.G, notInSubgroup),
		"DSA g = 1":        dsaKV(dsaPub.P, dsaPub.Q, big.NewInt(1), dsaPub.Y),
		"DSA small q":      dsaKV(dsaPub.P, big.NewInt(7), dsaPub.G, dsaPub.Y),
		"wrong namespace":  "<KeyValue xmlns='urn:x'><RSAKeyValue/></KeyValue>",
		"two keys":         "<KeyValue xmlns='" + NSXMLDSig + "'><RSAKeyValue/><RSAKeyValue/></KeyValue>",
		"unknown key type": "<KeyValue xmlns='" + NSXMLDSig + "'><ECKeyValue/></KeyValue>",
		"bad base64":       "<KeyValue xmlns='" + NSXMLDSig + "'><RSAKeyValue><Modulus>!!</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>",
		"extra element":    strings.Replace(rsaKV(good, 65537), "</RSAKeyValue>", "<X>AQAB</X></RSAKeyValue>", 1),
		"nested":           "<KeyValue xmlns='" + NSXMLDSig + "'><RSAKeyValue><Modulus><b/></Modulus></RSAKeyValue></KeyValue>",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			el, err := xmltree.Parse([]byte(in), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseKeyValue(el); !errors.Is(err, ErrKey) {
				t.Errorf("ParseKeyValue = %v", err)
			}
		})
	}
	if _, err := ParseKeyValue(nil); !errors.Is(err, ErrKey) {
		t.Error("nil accepted")
	}
	el, _ := xmltree.Parse([]byte(rsaKV(good, 65537)), nil)
	if k, err := ParseKeyValue(el); err != nil || k.RSA.E != 65537 {
		t.Errorf("good key: %v", err)
	}
	if err := (&PublicKey{RSA: &rsa.PublicKey{N: good, E: 3}, DSA: &dsaPub}).check(); err == nil {
		t.Error("a key with both halves accepted")
	}
}

func FuzzParseKeyValue(f *testing.F) {
	f.Add(testKey(f, "rsa_alice").Public().KeyValue().Marshal(""))
	f.Add(testKey(f, "dsa_alice").Public().normalized())
	f.Fuzz(func(t *testing.T, in []byte) {
		el, err := xmltree.Parse(in, nil)
		if err != nil {
			return
		}
		k, err := ParseKeyValue(el)
		if err != nil {
			if !errors.Is(err, ErrKey) {
				t.Fatalf("error %v", err)
			}
			return
		}
		back, err := ParseKeyValue(wire(t, k.KeyValue()))
		if err != nil || !back.Equal(k) {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}

// FuzzParseClaim feeds arbitrary decrypted identities to the parser.
func FuzzParseClaim(f *testing.F) {
	pub := testKey(f, "rsa_alice").Public()
	fp := pub.Fingerprint()
	f.Add(append(pub.normalized(), "<SignatureValue>AAAA</SignatureValue>"...))
	f.Add([]byte("<fingerprint>" + b64.EncodeToString(fp[:]) + "</fingerprint><SignatureValue>AQ==</SignatureValue>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, ok := parseClaim(in)
		if !ok {
			return
		}
		if len(c.sig) == 0 || (c.keyValue == nil) == (c.fingerprint == nil) || c.fingerprint != nil && len(c.fingerprint) != 32 {
			t.Fatalf("claim %+v", c)
		}
	})
}
