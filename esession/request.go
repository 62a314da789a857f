package esession

import (
	"encoding/base64"
	"math/big"
	"slices"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
)

// This file is the session request (XEP-0155 §4.1; for an encrypted
// session XEP-0116 §4.1 and XEP-0217 §4.1, message 1) and the responder's
// evaluation of one (XEP-0155 §4.2-4.3, XEP-0116 §5).

// protocolVersion is the ESession version this engine sends; versions 1.2
// and 1.3 (the XEP examples) are accepted too: the computations are the
// same.
const protocolVersion = "1.0"

var acceptedVersions = []string{"1.0", "1.3", "1.2"}

// nonceLen is the size of N_A and N_B.
const nonceLen = 16

var b64 = base64.StdEncoding

// negotiation holds the secrets and transcript of a negotiation in
// progress. Everything is wiped when it ends.
type negotiation struct {
	formA []byte         // the request's normalised content
	plan  *plan          // responder: what Accept will answer
	echo  *parsedFeature // responder: the request, until answered
	offer offer          // initiator: what the request offered
	st    suite          // as agreed

	nA, nB []byte
	xs     map[int][]byte // initiator: secret exponent per offered group
	es     map[int]*big.Int
	x      []byte   // this side's secret exponent in the agreed group
	e, d   *big.Int // the initiator's and the responder's public values
	he     []byte   // responder, 4 messages: the initiator's commitment
	formB  []byte
	ca, cb counter  // C_A and C_B as agreed
	k      [32]byte // initiator, 4 messages: K until message 4
	ctrA   counter  // C_A after the initiator's identity blocks
	ctrB   counter  // C_B after the responder's identity blocks
	kA, kB keySet   // 3 messages: the session keys
}

func (n *negotiation) wipe() {
	for _, x := range n.xs {
		clear(x)
	}
	n.xs = nil
	clear(n.x)
	clear(n.k[:])
	clear(n.nA)
	clear(n.nB)
	n.kA.wipe()
	n.kB.wipe()
}

// start builds the request.
func (s *Session) start(sigmaI bool) (Outbound, error) {
	n := &negotiation{}
	security := []string{"c2s"}
	if s.wantE2E {
		security = []string{"e2e"}
	}
	f := ssnForm(form.TypeForm,
		&form.Field{Var: "accept", Type: form.Boolean, Values: []string{"1"}, Required: true},
		&form.Field{Var: "logging", Type: form.ListSingle, Required: true, Options: options(s.cfg.otr.offered()...)},
		&form.Field{Var: "disclosure", Type: form.ListSingle, Required: true, Options: options("never")},
		&form.Field{Var: "security", Type: form.ListSingle, Required: true, Options: options(security...)},
	)
	if s.cfg.sharePresence {
		// Optional (XEP-0155 §4.1 example): a responder that does not know
		// the field leaves it out, and presence is not shared.
		f.Add(&form.Field{Var: "presence", Type: form.ListSingle, Options: options(PresenceMay, PresenceMustNot)})
	}
	if s.wantE2E {
		n.offer = s.makeOffer(sigmaI)
		var err error
		if n.nA, err = s.cfg.read(nonceLen); err != nil {
			return Outbound{}, err
		}
		n.xs, n.es = map[int][]byte{}, map[int]*big.Int{}
		var groups, values []string
		for _, g := range s.cfg.groups {
			x, err := modp.RandomExponent(s.cfg.rand, exponentBytes(g))
			if err != nil {
				n.wipe()
				return Outbound{}, err
			}
			e := g.Public(x)
			n.xs[g.ID()], n.es[g.ID()] = x, e
			groups = append(groups, strconv.Itoa(g.ID()))
			if sigmaI {
				values = append(values, b64.EncodeToString(mpi(e))) // dhkeys
			} else {
				he := dhHash(e)
				values = append(values, b64.EncodeToString(he[:])) // dhhashes
			}
		}
		f.Add(n.offer.fields(groups, values, b64.EncodeToString(n.nA))...)
	}
	n.formA = s.normalize(f)
	s.neg = n
	s.step = stepRequested
	o := s.out(feature(f))
	o.NoStore = true
	return o, nil
}

// plan is the responder's evaluation of a request.
type plan struct {
	encrypted  bool
	security   string
	logging    string
	loggingVar string
	disclosure bool
	presence   string // the answer to the "presence" field, "" to leave it out
	st         suite
	he         []byte   // 4 messages: the commitment for the chosen group
	e          *big.Int // 3 messages: the initiator's value for it
	nA         []byte
	problem    *NegotiationError
	offer      Offer
}

// evaluate decides how to answer a request (XEP-0155 §4.2-4.3, XEP-0116
// §5), without any expensive computation.
func (s *Session) evaluate(f *form.Form) *plan {
	p := &plan{}
	secOpts := optionsOf(f.Field("security"))
	logOpts, logVar := loggingOptions(f)
	p.offer.Security, p.offer.Logging = secOpts, logOpts
	for _, g := range optionsOf(f.Field("modp")) {
		if id, err := strconv.Atoi(g); err == nil {
			p.offer.Groups = append(p.offer.Groups, id)
		}
	}
	problem := func(cond string, fields ...string) *plan {
		p.problem = &NegotiationError{Condition: cond, Fields: fields}
		p.offer.Problem = p.problem
		return p
	}
	if acc := f.Field("accept"); acc == nil || len(acc.Values) > 1 {
		return problem(CondNotAcceptable, "accept")
	}
	// Required fields this engine does not know: 501 (§4.3).
	var unknown []string
	for _, fl := range f.Fields {
		if fl.Required && !knownField(fl.Var) {
			unknown = append(unknown, fl.Var)
		}
	}
	if len(unknown) > 0 {
		return problem(CondFeatureNotImplemented, unknown...)
	}
	if f.Field("dhkeys") != nil && (f.Field("dhhashes") != nil || s.cfg.key == nil || s.cfg.keys == nil || s.cfg.cv.gajim) {
		// The 3-message variant needs a signing key and a trust store
		// here; answer as XEP-0116 §4.2 says for a responder that only
		// does 4 messages.
		return problem(CondFeatureNotImplemented, "dhkeys")
	}
	var bad []string
	if logVar != "" {
		l, ok := s.chooseLogging(logOpts)
		if !ok {
			bad = append(bad, logVar)
		}
		p.logging, p.loggingVar = l, logVar
	} else if s.cfg.otr == OTRRequire {
		// XEP-0136 §9.1: a request without the field is refused.
		bad = append(bad, "logging")
	} else {
		p.logging = LoggingMay
	}
	if pfl := f.Field("presence"); pfl != nil {
		opts := optionsOf(pfl)
		switch {
		case s.cfg.sharePresence && slices.Contains(opts, PresenceMay):
			p.presence = PresenceMay
		case slices.Contains(opts, PresenceMustNot):
			p.presence = PresenceMustNot
		}
	}
	if dfl := f.Field("disclosure"); dfl != nil {
		if !slices.Contains(optionsOf(dfl), "never") {
			bad = append(bad, "disclosure")
		}
		p.disclosure = true
	}
	// Security: an encrypted session if offered and possible, otherwise a
	// plain session if the requester allows one (XEP-0217 §4.2).
	var e2eBad []string
	if slices.Contains(secOpts, "e2e") {
		e2eBad = s.evaluateE2E(f, p)
		if len(e2eBad) == 0 {
			p.encrypted, p.security = true, "e2e"
		}
	}
	if !p.encrypted {
		for _, o := range secOpts {
			if o == "c2s" || o == "none" {
				p.security = o
				break
			}
		}
		switch {
		case p.security != "":
		case f.Field("security") == nil:
			p.security = "none" // no security requirement
		case len(e2eBad) > 0:
			bad = append(bad, e2eBad...)
		default:
			bad = append(bad, "security")
		}
	}
	if len(bad) > 0 {
		return problem(CondNotAcceptable, bad...)
	}
	p.offer.Encrypted = p.encrypted
	p.offer.ThreeMessage = p.st.sigmaI
	return p
}

// knownField reports whether this engine answers a field of a request.
// Other fields are left out of the answer, which XEP-0004 allows for
// optional fields; a required one gets feature-not-implemented (XEP-0155
// §4.3), since the answer must give a value for every required field.
func knownField(v string) bool {
	switch v {
	case "FORM_TYPE", "accept", "logging", "otr", "disclosure", "presence", "security", "modp",
		"crypt_algs", "hash_algs", "compress", "stanzas", "init_pubkey", "resp_pubkey",
		"ver", "rekey_freq", "my_nonce", "sas_algs", "dhhashes", "dhkeys", "sign_algs":
		return true
	}
	return false
}

// evaluateE2E checks the ESession fields of a request, chooses the
// algorithms, and returns the fields that cannot be accepted.
func (s *Session) evaluateE2E(f *form.Form, p *plan) []string {
	var bad []string
	p.st.sigmaI = f.Field("dhkeys") != nil
	values, name := f.Field("dhhashes"), "dhhashes"
	if p.st.sigmaI {
		values, name = f.Field("dhkeys"), "dhkeys"
	}
	groups := optionsOf(f.Field("modp"))
	if values == nil || len(values.Values) != len(groups) {
		bad = append(bad, name)
	} else {
		// The requester's first group that we accept (never below 14).
		for i, g := range groups {
			id, err := strconv.Atoi(g)
			if err != nil || strconv.Itoa(id) != g {
				continue
			}
			grp := s.cfg.group(id)
			if grp == nil {
				continue
			}
			v, err := b64.DecodeString(values.Values[i])
			if p.st.sigmaI {
				// XEP-0116 §5.1: 1 < e < p-1.
				if e := new(big.Int).SetBytes(v); err == nil && len(v) > 0 && grp.CheckElement(e) == nil {
					p.e = e
				}
			} else if err == nil && len(v) == 32 {
				p.he = v
			}
			if p.he == nil && p.e == nil {
				bad = append(bad, name)
			}
			p.st.group = grp
			break
		}
		if p.st.group == nil {
			bad = append(bad, "modp")
		}
	}
	bad = append(bad, s.chooseSuite(f, &p.st)...)
	nA, err := b64.DecodeString(f.Value("my_nonce"))
	if err != nil || len(nA) < 8 || len(nA) > 64 {
		bad = append(bad, "my_nonce")
	}
	p.nA = nA
	return bad
}

// onRequest sets up a responder session from a request.
func (s *Session) onRequest(res *Result, pf *parsedFeature, in *Inbound) {
	p := s.evaluate(pf.form)
	s.neg = &negotiation{formA: s.normalize(pf.form), plan: p, echo: pf}
	s.wantE2E = p.encrypted
	s.step = stepAwaitDecision
	if in.Subscribed && !in.Delayed && s.cfg.autoAccept {
		s.accept(res) //nolint:errcheck // the error is in the result
		return
	}
	res.Events = append(res.Events, RequestReceived{Session: s, Offer: p.offer, Subscribed: in.Subscribed, Delayed: in.Delayed})
}

// normalize returns the XEP-0116 §8.2 normalised content of a form,
// without the fields listed, in the session's profile.
func (s *Session) normalize(f *form.Form, omit ...string) []byte {
	return f.Normalize(s.cfg.cv.gajim, omit...)
}

// decodeField decodes a base64 field with exactly one value of the given
// length (0 for any non-empty length).
func decodeField(f *form.Form, v string, size int) ([]byte, bool) {
	fl := f.Field(v)
	if fl == nil || len(fl.Values) != 1 {
		return nil, false
	}
	b, err := b64.DecodeString(fl.Values[0])
	if err != nil || len(b) == 0 || size > 0 && len(b) != size {
		return nil, false
	}
	return b, true
}
