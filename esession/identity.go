package esession

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the identity proof of a SIGMA exchange (XEP-0116 §5.4,
// §6.2, §6.3): the MAC over the transcript, its signature when public keys
// are used, and the encrypted identity ID with its integrity MAC M.

// maxIdentity bounds a decrypted identity: an 8192-bit key and signature
// with their markup.
const maxIdentity = 8 << 10

// proof is what one party needs to prove its identity.
type proof struct {
	method string      // IdentifyNone, IdentifyKey or IdentifyHash
	key    *PrivateKey // when method is not none
	alg    string      // the agreed sign_algs value
}

// pubKeyBytes returns pubKey as the MAC input takes it: empty for none,
// else the normalised <KeyValue/> (also for the hash method: the MAC is
// over the key, the identity carries its fingerprint).
func (p *proof) pubKeyBytes() []byte {
	if p.method == IdentifyNone {
		return nil
	}
	return p.key.Public().normalized()
}

// plaintext returns what ID encrypts: the MAC itself without public keys;
// otherwise pubKey (or <fingerprint>HASH(pubKey)</fingerprint>, the hash
// base64-encoded) followed by <SignatureValue>SIGN(mac)</SignatureValue>.
func (p *proof) plaintext(s *Session, mac *[32]byte) ([]byte, error) {
	if p.method == IdentifyNone {
		return bytes.Clone(mac[:]), nil
	}
	sig, err := p.key.sign(s.cfg.rand, p.alg, mac[:])
	if err != nil {
		return nil, err
	}
	var out []byte
	pub := p.key.Public()
	if p.method == IdentifyHash {
		fp := pub.Fingerprint()
		out = append(out, "<fingerprint>"...)
		out = base64.StdEncoding.AppendEncode(out, fp[:])
		out = append(out, "</fingerprint>"...)
	} else {
		out = append(out, pub.normalized()...)
	}
	out = append(out, "<SignatureValue>"...)
	out = base64.StdEncoding.AppendEncode(out, sig)
	return append(out, "</SignatureValue>"...), nil
}

// claimed is a decrypted public-key identity.
type claimed struct {
	keyValue    *xmltree.Element // the <KeyValue/> sent, or nil
	fingerprint []byte           // or the fingerprint sent
	sig         []byte
}

// parseClaim reads pubKey|sign, the plaintext of a public-key identity.
func parseClaim(pt []byte) (*claimed, bool) {
	if len(pt) > maxIdentity {
		return nil, false
	}
	wrap := make([]byte, 0, len(pt)+16)
	wrap = append(append(append(wrap, "<id>"...), pt...), "</id>"...)
	el, err := xmltree.Parse(wrap, &xmltree.Limits{MaxDepth: 4, MaxNodes: 32, MaxBytes: maxIdentity})
	if err != nil {
		return nil, false
	}
	kids := el.Elements()
	if len(kids) != 2 || kids[1].Name.Local != "SignatureValue" || len(kids[1].Elements()) != 0 {
		return nil, false
	}
	c := &claimed{}
	if c.sig, err = base64.StdEncoding.DecodeString(trimSpace(kids[1].Text())); err != nil || len(c.sig) == 0 {
		return nil, false
	}
	switch kids[0].Name.Local {
	case "KeyValue":
		c.keyValue = kids[0]
	case "fingerprint":
		if c.fingerprint, err = base64.StdEncoding.DecodeString(trimSpace(kids[0].Text())); err != nil || len(c.fingerprint) != sha256.Size {
			return nil, false
		}
	default:
		return nil, false
	}
	return c, true
}

// verifyClaim checks a decrypted identity for method: it finds the key
// (sent whole, or by fingerprint among the keys known for the peer),
// computes the MAC with it (mac), and checks the signature. It returns
// the key, or ok false.
func (s *Session) verifyClaim(method, alg string, pt []byte, mac func(pubKey []byte) [32]byte) (*PublicKey, bool) {
	c, ok := parseClaim(pt)
	if !ok {
		return nil, false
	}
	var key *PublicKey
	var pubKey []byte
	switch {
	case method == IdentifyKey && c.keyValue != nil:
		k, err := ParseKeyValue(c.keyValue)
		if err != nil {
			return nil, false
		}
		key, pubKey = k, form.AppendNormalized(nil, c.keyValue, false)
	case method == IdentifyHash && c.fingerprint != nil:
		for _, kk := range s.knownKeys() {
			fp := kk.Key.Fingerprint()
			if subtle.ConstantTimeCompare(fp[:], c.fingerprint) == 1 {
				key = kk.Key
			}
		}
		if key == nil {
			return nil, false // XEP-0116 §6.2 step 4: no copy of the key
		}
		pubKey = key.normalized()
	default:
		return nil, false
	}
	if key.algorithm() != alg {
		return nil, false
	}
	m := mac(pubKey)
	defer clear(m[:])
	return key, key.verify(alg, m[:], c.sig)
}

// checkIdentity verifies a received identity: M against ID (the counter
// advances only if it matches), then the MAC (method none) or the key and
// signature. For method none the key is nil.
func (s *Session) checkIdentity(ks *keySet, c *counter, method, alg string, id, m []byte, mac func(pubKey []byte) [32]byte) (*PublicKey, bool) {
	pt, ok := revealIdentity(ks, c, id, m, s.cfg.cv)
	if !ok {
		return nil, false
	}
	defer clear(pt)
	if method == IdentifyNone {
		want := mac(nil)
		defer clear(want[:])
		return nil, subtle.ConstantTimeCompare(want[:], pt) == 1
	}
	return s.verifyClaim(method, alg, pt, mac)
}
