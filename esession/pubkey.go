package esession

import (
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 XEP-0116 §11.2 asks for dsa-sha256 (SHOULD); verification of received keys only needs the standard library's implementation
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the public-key identity of XEP-0116: keys as XML Signature
// <KeyValue/> elements (RSAKeyValue MUST, DSAKeyValue SHOULD, XEP-0116
// §11.3), their fingerprints, and the rsa-sha256 and dsa-sha256
// signatures of the SIGMA MACs (§11.2).

// NSXMLDSig is the XML Signature namespace of <KeyValue/> elements.
const NSXMLDSig = "http://www.w3.org/2000/09/xmldsig#"

// Signature algorithms (the values of the "sign_algs" field).
const (
	SignRSASHA256 = "http://www.w3.org/2000/09/xmldsig#rsa-sha256"
	SignDSASHA256 = "http://www.w3.org/2000/09/xmldsig#dsa-sha256"
)

// Key size limits: smaller keys are refused as too weak, larger ones as a
// denial of service.
const (
	minRSABits = 2048
	maxRSABits = 8192
	minDSABits = 2048
	maxDSABits = 3072
	dsaQBits   = 256 // N: the subgroup size dsa-sha256 uses without truncation
)

// ErrKey reports a public key that is malformed, too weak or too large.
var ErrKey = errors.New("esession: unusable public key")

// PublicKey is a signature-verification key: RSA or DSA. Exactly one of
// the fields is set. It is immutable once built.
type PublicKey struct {
	RSA *rsa.PublicKey
	DSA *dsa.PublicKey
}

// PrivateKey is this client's signing key, RSA or DSA; exactly one field
// is set. RSA signatures (RSASSA-PKCS1-v1_5 with SHA-256) are
// deterministic; DSA signatures use a fresh random nonce each.
type PrivateKey struct {
	RSA *rsa.PrivateKey
	DSA *dsa.PrivateKey
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey {
	if k.RSA != nil {
		return &PublicKey{RSA: &k.RSA.PublicKey}
	}
	return &PublicKey{DSA: &k.DSA.PublicKey}
}

// algorithm returns the sign_algs value of k.
func (k *PublicKey) algorithm() string {
	if k.RSA != nil {
		return SignRSASHA256
	}
	return SignDSASHA256
}

// check reports whether k is a usable key of a supported size.
func (k *PublicKey) check() error {
	switch {
	case k == nil || (k.RSA == nil) == (k.DSA == nil):
		return ErrKey
	case k.RSA != nil:
		n := k.RSA.N
		if n == nil || n.BitLen() < minRSABits || n.BitLen() > maxRSABits || n.Bit(0) == 0 ||
			k.RSA.E < 3 || k.RSA.E&1 == 0 {
			return ErrKey
		}
	default:
		p, q, g, y := k.DSA.P, k.DSA.Q, k.DSA.G, k.DSA.Y
		if p == nil || q == nil || g == nil || y == nil ||
			p.BitLen() < minDSABits || p.BitLen() > maxDSABits || q.BitLen() != dsaQBits ||
			g.Cmp(big.NewInt(1)) <= 0 || g.Cmp(p) >= 0 || y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(p) >= 0 {
			return ErrKey
		}
		// q must divide p-1, and g and y must lie in the subgroup of
		// order q: otherwise signatures prove nothing about the key.
		pm1 := new(big.Int).Sub(p, big.NewInt(1))
		if new(big.Int).Mod(pm1, q).Sign() != 0 ||
			new(big.Int).Exp(g, q, p).Cmp(big.NewInt(1)) != 0 ||
			new(big.Int).Exp(y, q, p).Cmp(big.NewInt(1)) != 0 {
			return ErrKey
		}
	}
	return nil
}

// KeyValue returns k as an XML Signature <KeyValue/> element.
func (k *PublicKey) KeyValue() *xmltree.Element {
	kv := xmltree.New(NSXMLDSig, "KeyValue")
	b := func(local string, n *big.Int) *xmltree.Element {
		return xmltree.New(NSXMLDSig, local).AppendText(base64.StdEncoding.EncodeToString(n.Bytes()))
	}
	if k.RSA != nil {
		kv.Append(xmltree.New(NSXMLDSig, "RSAKeyValue").Append(
			b("Modulus", k.RSA.N), b("Exponent", big.NewInt(int64(k.RSA.E)))))
	} else {
		kv.Append(xmltree.New(NSXMLDSig, "DSAKeyValue").Append(
			b("P", k.DSA.P), b("Q", k.DSA.Q), b("G", k.DSA.G), b("Y", k.DSA.Y)))
	}
	return kv
}

// normalized returns the XEP-0116 §8.2 normalised <KeyValue/>: pubKey in
// the SIGMA MACs.
func (k *PublicKey) normalized() []byte { return form.AppendNormalized(nil, k.KeyValue(), false) }

// Fingerprint returns SHA-256 of the normalised <KeyValue/> (XEP-0116
// §4.1: the 'hash' identification method).
func (k *PublicKey) Fingerprint() [32]byte { return sha256.Sum256(k.normalized()) }

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool {
	if k == nil || o == nil {
		return false
	}
	return k.Fingerprint() == o.Fingerprint()
}

// ParseKeyValue reads an XML Signature <KeyValue/> element holding an
// RSAKeyValue or a DSAKeyValue (in the XML Signature namespace, or in
// none, as the normalised form carries no namespace). The key is checked:
// RSA of 2048 to 8192 bits, DSA with L of 2048 to 3072 and N of 256 bits.
func ParseKeyValue(el *xmltree.Element) (*PublicKey, error) {
	inNS := func(e *xmltree.Element) bool { return e.Name.Space == NSXMLDSig || e.Name.Space == "" }
	if el == nil || el.Name.Local != "KeyValue" || !inNS(el) {
		return nil, fmt.Errorf("%w: not a KeyValue", ErrKey)
	}
	kids := el.Elements()
	if len(kids) != 1 || !inNS(kids[0]) {
		return nil, fmt.Errorf("%w: KeyValue without exactly one key", ErrKey)
	}
	vals := map[string]*big.Int{}
	for _, c := range kids[0].Elements() {
		if !inNS(c) || vals[c.Name.Local] != nil || len(c.Elements()) != 0 {
			return nil, fmt.Errorf("%w: malformed %s", ErrKey, kids[0].Name.Local)
		}
		b, err := base64.StdEncoding.DecodeString(trimSpace(c.Text()))
		if err != nil || len(b) == 0 || len(b) > maxRSABits/8+1 {
			return nil, fmt.Errorf("%w: malformed %s", ErrKey, c.Name.Local)
		}
		vals[c.Name.Local] = new(big.Int).SetBytes(b)
	}
	var k *PublicKey
	switch kids[0].Name.Local {
	case "RSAKeyValue":
		n, e := vals["Modulus"], vals["Exponent"]
		if n == nil || e == nil || len(vals) != 2 || e.BitLen() > 31 {
			return nil, fmt.Errorf("%w: malformed RSAKeyValue", ErrKey)
		}
		k = &PublicKey{RSA: &rsa.PublicKey{N: n, E: int(e.Int64())}}
	case "DSAKeyValue":
		// J, Seed and PgenCounter are optional and not used.
		p, q, g, y := vals["P"], vals["Q"], vals["G"], vals["Y"]
		if p == nil || q == nil || g == nil || y == nil {
			return nil, fmt.Errorf("%w: malformed DSAKeyValue", ErrKey)
		}
		k = &PublicKey{DSA: &dsa.PublicKey{Parameters: dsa.Parameters{P: p, Q: q, G: g}, Y: y}}
	default:
		return nil, fmt.Errorf("%w: unsupported key type %s", ErrKey, kids[0].Name.Local)
	}
	if err := k.check(); err != nil {
		return nil, err
	}
	return k, nil
}

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t' || s[j-1] == '\n' || s[j-1] == '\r') {
		j--
	}
	return s[i:j]
}

// sign returns the signature of msg (a SIGMA MAC or a form's normalised
// content) under alg: RSASSA-PKCS1-v1_5 over SHA-256(msg) for rsa-sha256;
// for dsa-sha256 the DSA signature of SHA-256(msg) as r|s, each the
// length of q (XML Signature 1.1 §6.4.1).
func (k *PrivateKey) sign(r io.Reader, alg string, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	switch {
	case k.RSA != nil && alg == SignRSASHA256:
		return rsa.SignPKCS1v15(r, k.RSA, crypto.SHA256, h[:])
	case k.DSA != nil && alg == SignDSASHA256:
		rr, ss, err := dsa.Sign(r, k.DSA, h[:])
		if err != nil {
			return nil, err
		}
		n := (k.DSA.Q.BitLen() + 7) / 8
		out := make([]byte, 2*n)
		rr.FillBytes(out[:n])
		ss.FillBytes(out[n:])
		return out, nil
	}
	return nil, fmt.Errorf("esession: the signing key cannot sign %s", alg)
}

// verify reports whether sig is k's signature of msg under alg.
func (k *PublicKey) verify(alg string, msg, sig []byte) bool {
	h := sha256.Sum256(msg)
	switch {
	case k.RSA != nil && alg == SignRSASHA256:
		return rsa.VerifyPKCS1v15(k.RSA, crypto.SHA256, h[:], sig) == nil
	case k.DSA != nil && alg == SignDSASHA256:
		n := (k.DSA.Q.BitLen() + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		rr, ss := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return dsa.Verify(k.DSA, h[:], rr, ss)
	}
	return false
}
