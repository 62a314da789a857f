package esession

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
)

// This file is the XEP-0116 algorithm negotiation (§4.1, §11): what a
// request offers, what the responder picks, and what the requester checks
// in the answer. With the default Config the request is exactly the
// XEP-0217 profile: every field holds one fixed value.

// Block ciphers (XEP-0116 §11.1, "crypt_algs"). Only AES in counter mode
// is supported: aes128-ctr (MUST), aes192-ctr and aes256-ctr. Twofish and
// Serpent have no constant-time implementation in Go's standard library
// or golang.org/x/crypto (x/crypto/twofish is deprecated and table-based),
// and "none" would send everything in the clear while looking encrypted.
const (
	CipherAES128CTR = "aes128-ctr"
	CipherAES192CTR = "aes192-ctr"
	CipherAES256CTR = "aes256-ctr"
)

// Other algorithm values. The hash is always SHA-256 (§11.4: whirlpool has
// no Go implementation in the standard library or golang.org/x/crypto,
// and sha1 and md5 are broken); compression is always "none" (§11.6:
// lzw and zlib are NOT RECOMMENDED, and compressing before encrypting
// lets an attacker who controls part of the plaintext learn the rest from
// the lengths).
const (
	hashSHA256   = "sha256"
	compressNone = "none"
	sasAlg       = "sas28x5"
)

// Stanza kinds that a session may encrypt (the "stanzas" field).
const (
	StanzaMessage  = "message"
	StanzaPresence = "presence"
	StanzaIQ       = "iq"
)

// Identification methods ("init_pubkey" and "resp_pubkey", §4.1).
const (
	IdentifyNone = "none" // no public key: SAS and retained secrets only
	IdentifyKey  = "key"  // the whole <KeyValue/>
	IdentifyHash = "hash" // its fingerprint; the peer must hold the key
)

// MaxRekeyFreq is the largest rekey_freq, 2^32-1: never re-key. XEP-0217
// fixes it; it is the default.
const MaxRekeyFreq = math.MaxUint32

func keyLenOf(cipher string) int {
	switch cipher {
	case CipherAES128CTR:
		return 16
	case CipherAES192CTR:
		return 24
	case CipherAES256CTR:
		return 32
	}
	return 0
}

// suite is what a negotiation agreed on.
type suite struct {
	group     dhGroup
	cipher    string
	stanzas   []string
	initPub   string // how the initiator identifies
	respPub   string // how the responder identifies
	signAlg   string // "" when nobody signs
	rekeyFreq uint32
	version   string
	sigmaI    bool // the 3-message variant
	offline   bool // an XEP-0187 offline session: sigmaI, Bob identifies by key
}

// keyLen is the cipher key length, in the session's profile.
func (s *suite) keyLen(cv conv) int {
	if cv.gajim {
		return 32 // Gajim's AES-256 under the name aes128-ctr
	}
	return keyLenOf(s.cipher)
}

// offer is what this client puts in a request: its options for each
// field, in order of preference.
type offer struct {
	ciphers  []string
	stanzas  []string
	initPub  []string
	respPub  []string
	signAlgs []string
	rekey    uint32
	sigmaI   bool
	offline  bool // XEP-0187 options: no pubkey fields
}

// makeOffer returns this client's options for a request to peer.
func (s *Session) makeOffer(sigmaI bool) offer {
	c := s.cfg
	o := offer{ciphers: c.ciphers, stanzas: c.stanzas, rekey: c.rekeyFreq, sigmaI: sigmaI}
	o.initPub = []string{IdentifyNone}
	if c.key != nil {
		o.initPub = []string{IdentifyKey, IdentifyHash, IdentifyNone}
	}
	// Without a trust store nothing could tell whether the peer's key is
	// the one it used before: keys are then neither asked for nor
	// accepted.
	o.respPub = []string{IdentifyNone}
	if c.keys != nil {
		o.respPub = []string{IdentifyKey, IdentifyNone}
		if len(s.knownKeys()) > 0 {
			o.respPub = []string{IdentifyHash, IdentifyKey, IdentifyNone}
		}
		if c.requirePeerKey {
			o.respPub = o.respPub[:len(o.respPub)-1]
		}
	}
	if sigmaI {
		// "none" MUST NOT be offered for the 3-message variant (§4.1).
		o.initPub = slices.DeleteFunc(slices.Clone(o.initPub), func(v string) bool { return v == IdentifyNone })
		o.respPub = slices.DeleteFunc(slices.Clone(o.respPub), func(v string) bool { return v == IdentifyNone })
	}
	if o.initPub[0] != IdentifyNone || o.respPub[0] != IdentifyNone {
		// A signer offers its own algorithm first; one that only verifies
		// accepts both.
		o.signAlgs = []string{SignRSASHA256, SignDSASHA256}
		if c.key != nil && c.key.Public().algorithm() == SignDSASHA256 {
			o.signAlgs = []string{SignDSASHA256, SignRSASHA256}
		}
	}
	return o
}

// choice is a list field with one value (hidden) or several (list-single).
func choice(v string, vals []string) *form.Field {
	if len(vals) == 1 {
		return hidden(v, vals[0])
	}
	return &form.Field{Var: v, Type: form.ListSingle, Options: options(vals...)}
}

// appendTo adds the algorithm fields of a request, in the order of the
// XEP-0217 examples (and of the test vectors).
func (o offer) fields(groups, hashes []string, nonce string) []*form.Field {
	fs := []*form.Field{
		{Var: "modp", Type: form.ListSingle, Options: options(groups...)},
		choice("crypt_algs", o.ciphers),
		hidden("hash_algs", hashSHA256),
	}
	if o.signAlgs != nil {
		fs = append(fs, choice("sign_algs", o.signAlgs))
	}
	fs = append(fs,
		hidden("compress", compressNone),
		&form.Field{Var: "stanzas", Type: form.ListMulti, Options: options(o.stanzas...)},
		choice("init_pubkey", o.initPub),
		choice("resp_pubkey", o.respPub),
		&form.Field{Var: "ver", Type: form.ListSingle, Options: options(protocolVersion)},
		hidden("rekey_freq", strconv.FormatUint(uint64(o.rekey), 10)),
		hidden("my_nonce", nonce))
	if o.sigmaI {
		return append(fs, &form.Field{Var: "dhkeys", Type: form.Hidden, Values: hashes})
	}
	return append(fs, hidden("sas_algs", sasAlg), &form.Field{Var: "dhhashes", Type: form.Hidden, Values: hashes})
}

// parseRekeyFreq reads a rekey_freq value: 1 to 2^32-1.
func parseRekeyFreq(v string) (uint32, bool) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != v {
		return 0, false
	}
	return uint32(n), true
}

// chooseSuite picks, for each ESession field of a request, the first of
// the requester's options this client accepts (XEP-0116 §5.1), and
// returns the fields that have none. The group is chosen by the caller.
func (s *Session) chooseSuite(f *form.Form, st *suite) []string {
	c := s.cfg
	var bad []string
	first := func(name string, ok func(string) bool) string {
		for _, v := range optionsOf(f.Field(name)) {
			if ok(v) {
				return v
			}
		}
		bad = append(bad, name)
		return ""
	}
	st.cipher = first("crypt_algs", func(v string) bool { return slices.Contains(c.ciphers, v) })
	first("hash_algs", func(v string) bool { return v == hashSHA256 })
	first("compress", func(v string) bool { return v == compressNone })
	if !st.sigmaI {
		first("sas_algs", func(v string) bool { return v == sasAlg })
	}
	for _, v := range optionsOf(f.Field("stanzas")) {
		if slices.Contains(c.stanzas, v) && !slices.Contains(st.stanzas, v) {
			st.stanzas = append(st.stanzas, v)
		}
	}
	if !slices.Contains(st.stanzas, StanzaMessage) {
		bad = append(bad, "stanzas")
	}
	st.version = first("ver", func(v string) bool { return slices.Contains(acceptedVersions, v) })
	if v, ok := parseRekeyFreq(f.Value("rekey_freq")); ok && len(f.Field("rekey_freq").Values) == 1 {
		st.rekeyFreq = max(v, c.rekeyFreq) // at least the requester's (§5.2)
	} else {
		bad = append(bad, "rekey_freq")
	}
	if st.offline {
		// XEP-0187 §3.3: the options carry no pubkey fields; the
		// publisher proved its identity by signing them, and Bob
		// identifies with his key.
		st.initPub, st.respPub = IdentifyNone, IdentifyKey
		if c.key == nil {
			bad = append(bad, "resp_pubkey")
			return bad
		}
		st.signAlg = first("sign_algs", func(v string) bool { return v == c.key.Public().algorithm() })
		return bad
	}
	// How the requester identifies: what this client asks of it.
	st.initPub = first("init_pubkey", func(v string) bool {
		switch v {
		case IdentifyNone:
			return !c.requirePeerKey && !st.sigmaI
		case IdentifyKey:
			return c.keys != nil
		case IdentifyHash:
			return c.keys != nil && len(s.knownKeys()) > 0
		}
		return false
	})
	// How this client identifies, among what the requester accepts.
	st.respPub = first("resp_pubkey", func(v string) bool {
		switch v {
		case IdentifyNone:
			return !st.sigmaI
		case IdentifyKey, IdentifyHash:
			return c.key != nil
		}
		return false
	})
	if st.initPub != IdentifyNone && st.initPub != "" || st.respPub != IdentifyNone && st.respPub != "" {
		st.signAlg = first("sign_algs", func(v string) bool {
			if v != SignRSASHA256 && v != SignDSASHA256 {
				return false
			}
			// the one algorithm both parties sign with must suit our key
			return st.respPub == IdentifyNone || c.key.Public().algorithm() == v
		})
	}
	return bad
}

// checkSuite checks the algorithm fields of an answer against what this
// client offered, fills st and returns the fields that are not
// acceptable.
func checkSuite(f *form.Form, o offer, st *suite) []string {
	var bad []string
	one := func(name string, ok func(string) bool) string {
		fl := f.Field(name)
		if fl == nil || len(fl.Values) != 1 || !ok(fl.Values[0]) {
			bad = append(bad, name)
			return ""
		}
		return fl.Values[0]
	}
	st.cipher = one("crypt_algs", func(v string) bool { return slices.Contains(o.ciphers, v) })
	one("hash_algs", func(v string) bool { return v == hashSHA256 })
	one("compress", func(v string) bool { return v == compressNone })
	if !o.sigmaI {
		one("sas_algs", func(v string) bool { return v == sasAlg })
	}
	st.version = one("ver", func(v string) bool { return v == protocolVersion })
	if o.offline {
		st.initPub, st.respPub = IdentifyNone, IdentifyKey
	} else {
		st.initPub = one("init_pubkey", func(v string) bool { return slices.Contains(o.initPub, v) })
		st.respPub = one("resp_pubkey", func(v string) bool { return slices.Contains(o.respPub, v) })
	}
	if st.initPub != IdentifyNone || st.respPub != IdentifyNone {
		st.signAlg = one("sign_algs", func(v string) bool { return slices.Contains(o.signAlgs, v) })
	}
	if fl := f.Field("rekey_freq"); fl == nil || len(fl.Values) != 1 {
		bad = append(bad, "rekey_freq")
	} else if v, ok := parseRekeyFreq(fl.Values[0]); !ok || v < o.rekey {
		bad = append(bad, "rekey_freq") // at least what we asked for (§5.2)
	} else {
		st.rekeyFreq = v
	}
	st.stanzas = nil
	fl := f.Field("stanzas")
	for _, v := range optionsOf(fl) {
		if !slices.Contains(o.stanzas, v) || slices.Contains(st.stanzas, v) {
			st.stanzas = nil
			break
		}
		st.stanzas = append(st.stanzas, v)
	}
	if !slices.Contains(st.stanzas, StanzaMessage) {
		bad = append(bad, "stanzas")
	}
	return bad
}

// answerValue returns the value this client answers for a request field,
// or "" for a field it leaves out.
func (st *suite) answerValue(v string) string {
	switch v {
	case "crypt_algs":
		return st.cipher
	case "hash_algs":
		return hashSHA256
	case "compress":
		return compressNone
	case "sas_algs":
		return sasAlg
	case "init_pubkey":
		return st.initPub
	case "resp_pubkey":
		return st.respPub
	case "sign_algs":
		return st.signAlg
	case "ver":
		return st.version
	case "rekey_freq":
		return strconv.FormatUint(uint64(st.rekeyFreq), 10)
	}
	return ""
}

func (st *suite) String() string {
	return fmt.Sprintf("%s/%s/%s/%s", st.cipher, st.initPub, st.respPub, st.signAlg)
}
