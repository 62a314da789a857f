package esession

import (
	"crypto/dsa" //lint:ignore SA1019 XEP-0189 keys may be DSA keys (XEP-0116 §11.3)
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/balcony-im/balcony/xmltree"
)

// This file is XEP-0189 (Public Key Publishing, Deferred): the <pubkey/>
// payload that carries an ESession public key in PEP, in an iq answer or
// in a message.
//
// The XEP contradicts itself. Its schema and its first example put an RSA
// key in <rsakey/> as <modulus/> and <publicExponent/> in decimal, with a
// <print/> of base64(SHA-256(begin + end + jid + modulus + exponent)); its
// later examples put the key in <key/> as a base64 SubjectPublicKeyInfo
// with a hexadecimal <print/> (and none of its example prints can be
// reproduced). This package writes the schema's form, which is normative,
// for RSA keys; a DSA key, which <rsakey/> cannot hold, is written in the
// <key/> form with print = hex(SHA-256(SubjectPublicKeyInfo)). It reads
// both, and checks the print: the <rsakey/> one by the formula above,
// the <key/> one as SHA-256 of the key's DER in hexadecimal or base64.

// NSPubKey is the XEP-0189 namespace, also the PEP node of the keys.
const NSPubKey = "urn:xmpp:pubkey:2"

// PEPKey is a public key published under XEP-0189 for a JID, valid from
// Begin to End.
type PEPKey struct {
	Key        *PublicKey
	JID        string
	Begin, End time.Time
}

// ErrPEPKey reports a <pubkey/> that cannot be used.
var ErrPEPKey = fmt.Errorf("%w: unusable XEP-0189 <pubkey/>", ErrKey)

// dateTime is the XEP-0082 format written.
const dateTime = "2006-01-02T15:04:05Z"

// ValidAt reports whether t lies between Begin and End.
func (k *PEPKey) ValidAt(t time.Time) bool { return !t.Before(k.Begin) && !t.After(k.End) }

// rsaPrint returns the <rsakey/> fingerprint of XEP-0189 §3.
func rsaPrint(begin, end, jid, mod, exp string) string {
	h := sha256.Sum256([]byte(begin + end + jid + mod + exp))
	return base64.StdEncoding.EncodeToString(h[:])
}

// Element returns the <pubkey xmlns='urn:xmpp:pubkey:2'/> payload to
// publish (or send) for k.
func (k *PEPKey) Element() (*xmltree.Element, error) {
	if err := k.Key.check(); err != nil {
		return nil, err
	}
	begin, end := k.Begin.UTC().Format(dateTime), k.End.UTC().Format(dateTime)
	el := xmltree.New(NSPubKey, "pubkey").Append(
		xmltree.New(NSPubKey, "begin").AppendText(begin),
		xmltree.New(NSPubKey, "end").AppendText(end),
		xmltree.New(NSPubKey, "jid").AppendText(k.JID))
	if r := k.Key.RSA; r != nil {
		mod, exp := r.N.String(), fmt.Sprint(r.E)
		return el.Append(xmltree.New(NSPubKey, "rsakey").Append(
			xmltree.New(NSPubKey, "modulus").AppendText(mod),
			xmltree.New(NSPubKey, "publicExponent").AppendText(exp),
			xmltree.New(NSPubKey, "print", "algo", "sha-256").AppendText(rsaPrint(begin, end, k.JID, mod, exp)))), nil
	}
	der, err := marshalDSA(k.Key.DSA)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return el.Append(xmltree.New(NSPubKey, "key").AppendText(base64.StdEncoding.EncodeToString(der)),
		xmltree.New(NSPubKey, "print").AppendText(hex.EncodeToString(h[:]))), nil
}

// dsaOID is id-dsa (RFC 3279 §2.3.2).
var dsaOID = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}

// marshalDSA returns the SubjectPublicKeyInfo of a DSA key (RFC 3279
// §2.3.2), which crypto/x509 parses but does not write.
func marshalDSA(k *dsa.PublicKey) ([]byte, error) {
	params, err := asn1.Marshal(struct{ P, Q, G *big.Int }{k.P, k.Q, k.G})
	if err != nil {
		return nil, err
	}
	y, err := asn1.Marshal(k.Y)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Algo      pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}{pkix.AlgorithmIdentifier{Algorithm: dsaOID, Parameters: asn1.RawValue{FullBytes: params}},
		asn1.BitString{Bytes: y, BitLength: 8 * len(y)}})
}

// ParsePEPKey reads a <pubkey xmlns='urn:xmpp:pubkey:2'/> in either form
// XEP-0189 shows, checks its fingerprint and the key, and returns it. Dates
// without a time zone are taken as UTC.
func ParsePEPKey(el *xmltree.Element) (*PEPKey, error) {
	bad := func(what string) (*PEPKey, error) { return nil, fmt.Errorf("%w: %s", ErrPEPKey, what) }
	if el == nil || el.Name.Space != NSPubKey || el.Name.Local != "pubkey" {
		return bad("not a pubkey element")
	}
	text := func(parent *xmltree.Element, local string) (string, bool) {
		list := parent.ChildrenNamed(NSPubKey, local)
		if len(list) != 1 || len(list[0].Elements()) != 0 {
			return "", false
		}
		return trimSpace(list[0].Text()), true
	}
	begin, ok1 := text(el, "begin")
	end, ok2 := text(el, "end")
	jid, ok3 := text(el, "jid")
	if !ok1 || !ok2 || !ok3 || jid == "" {
		return bad("begin, end and jid are required")
	}
	k := &PEPKey{JID: jid}
	var err error
	if k.Begin, err = parseDateTime(begin); err != nil {
		return bad("begin")
	}
	if k.End, err = parseDateTime(end); err != nil || k.End.Before(k.Begin) {
		return bad("end")
	}
	if rk := el.ChildrenNamed(NSPubKey, "rsakey"); len(rk) > 0 {
		mod, ok1 := text(rk[0], "modulus")
		exp, ok2 := text(rk[0], "publicExponent")
		print, ok3 := text(rk[0], "print")
		if len(rk) != 1 || !ok1 || !ok2 || !ok3 || len(el.ChildrenNamed(NSPubKey, "key")) != 0 {
			return bad("rsakey")
		}
		if a := rk[0].ChildrenNamed(NSPubKey, "print")[0].AttrValue("algo"); a != "" && a != "sha-256" {
			return bad("unknown print algorithm " + a)
		}
		want := rsaPrint(begin, end, jid, mod, exp)
		if subtle.ConstantTimeCompare([]byte(want), []byte(print)) != 1 {
			return bad("print does not match the key")
		}
		n, ok1 := new(big.Int).SetString(mod, 10)
		e, ok2 := new(big.Int).SetString(exp, 10)
		if !ok1 || !ok2 || e.BitLen() > 31 || n.String() != mod || e.String() != exp {
			return bad("modulus or exponent")
		}
		k.Key = &PublicKey{RSA: &rsa.PublicKey{N: n, E: int(e.Int64())}}
	} else {
		b64key, ok1 := text(el, "key")
		print, ok2 := text(el, "print")
		if !ok1 {
			return bad("no key")
		}
		der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64key), ""))
		if err != nil || len(der) > 8<<10 {
			return bad("key encoding")
		}
		if ok2 {
			h := sha256.Sum256(der)
			hx, bx := hex.EncodeToString(h[:]), base64.StdEncoding.EncodeToString(h[:])
			if !strings.EqualFold(print, hx) && print != bx {
				return bad("print does not match the key")
			}
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return bad("key")
		}
		switch pub := pub.(type) {
		case *rsa.PublicKey:
			k.Key = &PublicKey{RSA: pub}
		case *dsa.PublicKey:
			k.Key = &PublicKey{DSA: pub}
		default:
			return bad("key type")
		}
	}
	if err := k.Key.check(); err != nil {
		return nil, err
	}
	return k, nil
}

// parseDateTime reads an XEP-0082 DateTime, with or without a zone (then
// UTC) and fractions of a second.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}
