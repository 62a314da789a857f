package esession

import (
	"crypto/subtle"
	"encoding/base64"
	"math/big"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/internal/modp"
	"github.com/balcony-im/balcony/xmltree"
)

// This file is the XEP-0155 negotiation and the XEP-0217 4-message key
// agreement (SIGMA-R with hash commitment).

// The XEP-0217 §4.1 fixed parameters. rekey_freq is handled apart.
var fixedParams = []struct{ name, value string }{
	{"crypt_algs", "aes128-ctr"},
	{"hash_algs", "sha256"},
	{"compress", "none"},
	{"init_pubkey", "none"},
	{"resp_pubkey", "none"},
	{"sas_algs", "sas28x5"},
}

// rekeyFreq is the largest rekey_freq: this engine never re-keys.
const rekeyFreq = "4294967295"

// protocolVersion is the ESession version this engine sends; versions 1.2
// and 1.3 (the XEP examples) are accepted too: the computations this
// profile uses are the same.
const protocolVersion = "1.0"

var acceptedVersions = []string{"1.0", "1.3", "1.2"}

// nonceLen is the size of N_A and N_B.
const nonceLen = 16

var b64 = base64.StdEncoding

// negotiation holds the secrets and transcript of a negotiation in
// progress. Everything is wiped when it ends.
type negotiation struct {
	// the request as received or sent (normalised content: form_A)
	formA []byte
	plan  *plan // responder: what Accept will answer
	echo  *parsedFeature

	// initiator, message 1
	nA    []byte
	xs    map[int][]byte // secret exponent per offered group
	es    map[int]*big.Int
	order []int

	// responder, message 2
	nB    []byte
	y     []byte
	d     *big.Int
	he    []byte
	formB []byte
	group dhGroup
	ca    counter // C_A as agreed
	cb    counter

	// initiator, message 3
	e    *big.Int
	k    [32]byte
	ctrA counter // C_A after the identity blocks
}

func (n *negotiation) wipe() {
	for _, x := range n.xs {
		clear(x)
	}
	n.xs = nil
	clear(n.y)
	clear(n.k[:])
	clear(n.nA)
	clear(n.nB)
}

// loggingOptions returns the logging options of a request in "may" and
// "mustnot" terms, and the field that carried them: "logging" (XEP-0155)
// or the older "otr" (true means mustnot).
func loggingOptions(f *form.Form) ([]string, string) {
	if fl := f.Field("logging"); fl != nil {
		return optionsOf(fl), "logging"
	}
	if fl := f.Field("otr"); fl != nil {
		var out []string
		for _, v := range optionsOf(fl) {
			switch v {
			case "true", "1":
				out = append(out, "mustnot")
			case "false", "0":
				out = append(out, "may")
			}
		}
		return out, "otr"
	}
	return nil, ""
}

// normalLogging returns the logging value of an answer in may/mustnot
// terms, or "".
func normalLogging(f *form.Form) string {
	if v := f.Value("logging"); v != "" {
		return v
	}
	switch f.Value("otr") {
	case "true", "1":
		return "mustnot"
	case "false", "0":
		return "may"
	}
	return ""
}

// loggingValue spells a may/mustnot value for the given field.
func loggingValue(field, v string) string {
	if field == "otr" {
		if v == "mustnot" {
			return "true"
		}
		return "false"
	}
	return v
}

func (s *Session) chooseLogging(opts []string) (string, bool) {
	if s.cfg.mustNotLog && contains(opts, "mustnot") {
		return "mustnot", true
	}
	if contains(opts, "may") {
		return "may", true
	}
	return "", false
}

// optionsOf returns a field's options, or its values if it has none (some
// requests list a list field's choices as values).
func optionsOf(fl *form.Field) []string {
	if fl == nil {
		return nil
	}
	if len(fl.Options) > 0 {
		return fl.OptionValues()
	}
	return fl.Values
}

// offersValue reports whether a fixed field carries the value as a value
// or an option (XEP-0217 §4.2).
func offersValue(fl *form.Field, v string) bool {
	return fl != nil && (contains(fl.Values, v) || contains(fl.OptionValues(), v))
}

// start builds the request (XEP-0155 §4.1; for an encrypted session
// XEP-0217 §4.1, message 1).
func (s *Session) start() (Outbound, error) {
	n := &negotiation{}
	logging := []string{"may"}
	if s.cfg.mustNotLog {
		logging = []string{"mustnot", "may"}
	}
	security := []string{"c2s"}
	if s.wantE2E {
		security = []string{"e2e"}
	}
	f := ssnForm(form.TypeForm,
		&form.Field{Var: "accept", Type: form.Boolean, Values: []string{"1"}, Required: true},
		&form.Field{Var: "logging", Type: form.ListSingle, Required: true, Options: options(logging...)},
		&form.Field{Var: "disclosure", Type: form.ListSingle, Required: true, Options: options("never")},
		&form.Field{Var: "security", Type: form.ListSingle, Required: true, Options: options(security...)},
	)
	if s.wantE2E {
		var err error
		if n.nA, err = s.cfg.read(nonceLen); err != nil {
			return Outbound{}, err
		}
		n.xs, n.es = map[int][]byte{}, map[int]*big.Int{}
		var groups []string
		var hashes []string
		for _, g := range s.cfg.groups {
			x, err := modp.RandomExponent(s.cfg.rand, exponentBytes(g))
			if err != nil {
				n.wipe()
				return Outbound{}, err
			}
			e := g.Public(x)
			he := dhHash(e)
			n.xs[g.ID()], n.es[g.ID()] = x, e
			n.order = append(n.order, g.ID())
			groups = append(groups, strconv.Itoa(g.ID()))
			hashes = append(hashes, b64.EncodeToString(he[:]))
		}
		f.Add(&form.Field{Var: "modp", Type: form.ListSingle, Options: options(groups...)})
		for _, p := range fixedParams[:3] {
			f.Add(hidden(p.name, p.value))
		}
		f.Add(&form.Field{Var: "stanzas", Type: form.ListMulti, Options: options("message")})
		for _, p := range fixedParams[3:5] {
			f.Add(hidden(p.name, p.value))
		}
		f.Add(&form.Field{Var: "ver", Type: form.ListSingle, Options: options(protocolVersion)},
			hidden("rekey_freq", rekeyFreq),
			hidden("my_nonce", b64.EncodeToString(n.nA)),
			hidden(fixedParams[5].name, fixedParams[5].value),
			&form.Field{Var: "dhhashes", Type: form.Hidden, Values: hashes})
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
	group      dhGroup
	he         []byte
	version    string
	nA         []byte
	problem    *NegotiationError
	offer      Offer
}

// evaluate decides how to answer a request (XEP-0155 §4.2-4.3, XEP-0217
// §4.2-4.3), without any expensive computation.
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
	if f.Field("dhkeys") != nil {
		// the 3-message SIGMA-I variant of XEP-0116 (§4.3 of XEP-0116)
		return problem(CondFeatureNotImplemented, "dhkeys")
	}
	var bad []string
	if logVar != "" {
		l, ok := s.chooseLogging(logOpts)
		if !ok {
			bad = append(bad, logVar)
		}
		p.logging, p.loggingVar = l, logVar
	} else {
		p.logging = "may"
	}
	if dfl := f.Field("disclosure"); dfl != nil {
		if !contains(optionsOf(dfl), "never") {
			bad = append(bad, "disclosure")
		}
		p.disclosure = true
	}
	// Security: an encrypted session if offered and possible, otherwise a
	// plain session if the requester allows one (XEP-0217 §4.2).
	var e2eBad []string
	if contains(secOpts, "e2e") {
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
	return p
}

// knownField reports whether this engine answers a field of a request.
// Other fields are left out of the answer, which XEP-0004 allows for
// optional fields; a required one gets feature-not-implemented (XEP-0155
// §4.3), since the answer must give a value for every required field.
func knownField(v string) bool {
	switch v {
	case "FORM_TYPE", "accept", "logging", "otr", "disclosure", "security", "modp",
		"crypt_algs", "hash_algs", "compress", "stanzas", "init_pubkey", "resp_pubkey",
		"ver", "rekey_freq", "my_nonce", "sas_algs", "dhhashes", "sign_algs":
		return true
	}
	return false
}

// evaluateE2E checks the ESession fields of a request and returns the
// fields that cannot be accepted.
func (s *Session) evaluateE2E(f *form.Form, p *plan) []string {
	var bad []string
	groups := optionsOf(f.Field("modp"))
	hashes := f.Field("dhhashes")
	if hashes == nil || len(hashes.Values) != len(groups) {
		bad = append(bad, "dhhashes")
	} else {
		// The requester's first group that we accept (never below 14).
		for i, g := range groups {
			id, err := strconv.Atoi(g)
			if err != nil || strconv.Itoa(id) != g {
				continue
			}
			if grp := s.cfg.group(id); grp != nil {
				he, err := b64.DecodeString(hashes.Values[i])
				if err != nil || len(he) != 32 {
					bad = append(bad, "dhhashes")
					break
				}
				p.group, p.he = grp, he
				break
			}
		}
		if p.group == nil && !contains(bad, "dhhashes") {
			bad = append(bad, "modp")
		}
	}
	for _, fp := range fixedParams {
		if !offersValue(f.Field(fp.name), fp.value) {
			bad = append(bad, fp.name)
		}
	}
	if !contains(optionsOf(f.Field("stanzas")), "message") {
		bad = append(bad, "stanzas")
	}
	for _, v := range optionsOf(f.Field("ver")) {
		if contains(acceptedVersions, v) {
			p.version = v
			break
		}
	}
	if p.version == "" {
		bad = append(bad, "ver")
	}
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

// accept answers the request (Bob's message 2 for an encrypted session).
func (s *Session) accept(res *Result) error {
	n := s.neg
	p := n.plan
	if p.problem != nil {
		res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread,
			Payload: errorPayload(p.problem.Condition, p.problem.Fields, n.echo.el)})
		s.fail(res, "request not acceptable", p.problem)
		return p.problem
	}
	req := n.echo.form
	s.params = Params{Security: p.security, Logging: p.logging, Version: p.version}
	if p.disclosure {
		s.params.Disclosure = "never"
	}
	ans := ssnForm(form.TypeSubmit)
	if !p.encrypted {
		ans.Add(field("accept", "1"))
		if p.loggingVar != "" {
			ans.Add(field(p.loggingVar, loggingValue(p.loggingVar, p.logging)))
		}
		if p.disclosure {
			ans.Add(field("disclosure", "never"))
		}
		if req.Field("security") != nil {
			ans.Add(field("security", p.security))
		}
		n.echo = nil
		s.step = stepAccepted
		res.Out = append(res.Out, s.out(feature(ans)))
		return nil
	}
	var err error
	if n.nB, err = s.cfg.read(nonceLen); err != nil {
		s.fail(res, "negotiation failed", err)
		return err
	}
	caBytes, err := s.cfg.read(blockSize)
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return err
	}
	copy(n.ca[:], caBytes)
	n.cb = responderCounter(n.ca)
	if n.y, err = modp.RandomExponent(s.cfg.rand, exponentBytes(p.group)); err != nil {
		s.fail(res, "negotiation failed", err)
		return err
	}
	n.d = p.group.Public(n.y)
	n.group, n.he, n.nA = p.group, p.he, p.nA
	s.params.Group = p.group.ID()
	// Bob's form answers every field of the request in its order, except
	// dhhashes and fields he does not use, then appends dhkeys, nonce and
	// counter (XEP-0217 §4.3.2).
	for _, fl := range req.Fields {
		switch v := fl.Var; v {
		case "FORM_TYPE", "dhhashes", "sign_algs":
		case "accept":
			ans.Add(field(v, "1"))
		case "logging", "otr":
			ans.Add(field(v, loggingValue(v, p.logging)))
		case "disclosure":
			ans.Add(field(v, "never"))
		case "security":
			ans.Add(field(v, "e2e"))
		case "modp":
			ans.Add(field(v, strconv.Itoa(p.group.ID())))
		case "stanzas":
			ans.Add(field(v, "message"))
		case "ver":
			ans.Add(field(v, p.version))
		case "rekey_freq":
			ans.Add(field(v, rekeyFreq))
		case "my_nonce":
			ans.Add(field(v, b64.EncodeToString(n.nB)))
		default:
			for _, fp := range fixedParams {
				if fp.name == v {
					ans.Add(field(v, fp.value))
				}
			}
		}
	}
	ans.Add(field("dhkeys", b64.EncodeToString(mpi(n.d))),
		field("nonce", b64.EncodeToString(n.nA)),
		field("counter", b64.EncodeToString(new(big.Int).SetBytes(n.ca[:]).Bytes())))
	n.formB = s.normalize(ans)
	n.echo = nil
	s.step = stepAccepted
	res.Out = append(res.Out, s.out(feature(ans)))
	return nil
}

// onAnswer handles the responder's answer to our request: a decline, a
// plain acceptance (completed here), or XEP-0217 message 2.
func (s *Session) onAnswer(res *Result, in *Inbound, pf *parsedFeature) (Result, error) {
	f := pf.form
	acc, err := f.Field("accept").Bool()
	if err != nil {
		err := s.violation()
		s.fail(res, "malformed answer", err)
		return *res, err
	}
	// XEP-0155 §4.2: the session is bound to the resource that answers.
	s.peer, s.bound = in.From, true
	if !acc {
		reason := f.Value("reason")
		s.end("declined", nil)
		res.Events = append(res.Events, Declined{Session: s, Reason: reason})
		return *res, nil
	}
	if !s.wantE2E {
		return s.onPlainAnswer(res, f)
	}
	return s.onMessage2(res, f)
}

// checkCommon checks the XEP-0155 fields of an answer against what we
// offered and returns the unacceptable ones.
func (s *Session) checkCommon(f *form.Form) []string {
	var bad []string
	l := normalLogging(f)
	want := []string{"may"}
	if s.cfg.mustNotLog {
		want = []string{"mustnot", "may"}
	}
	if !contains(want, l) {
		bad = append(bad, "logging")
	}
	if f.Value("disclosure") != "never" {
		bad = append(bad, "disclosure")
	}
	sec := f.Value("security")
	if s.wantE2E && sec != "e2e" || !s.wantE2E && sec != "c2s" {
		bad = append(bad, "security")
	}
	s.params.Logging, s.params.Disclosure, s.params.Security = l, "never", sec
	return bad
}

func (s *Session) onPlainAnswer(res *Result, f *form.Form) (Result, error) {
	if bad := s.checkCommon(f); len(bad) > 0 {
		res.Out = append(res.Out, s.out(feature(completeForm(false))))
		ne := &NegotiationError{Condition: CondNotAcceptable, Fields: bad}
		s.fail(res, "answer not acceptable", ne)
		return *res, ne
	}
	res.Out = append(res.Out, s.out(feature(completeForm(true))))
	s.neg.wipe()
	s.neg = nil
	s.step = stepActive
	res.Events = append(res.Events, Established{Session: s})
	return *res, nil
}

// onMessage2 is Alice's handling of XEP-0217 message 2 (§5.1-5.2) and her
// message 3.
func (s *Session) onMessage2(res *Result, f *form.Form) (Result, error) {
	n := s.neg
	bad := s.checkCommon(f)
	var g dhGroup
	if id, err := strconv.Atoi(f.Value("modp")); err == nil && n.xs[id] != nil && f.Value("modp") == strconv.Itoa(id) {
		g = s.cfg.group(id)
	}
	if g == nil {
		bad = append(bad, "modp")
	}
	for _, fp := range fixedParams {
		if f.Value(fp.name) != fp.value {
			bad = append(bad, fp.name)
		}
	}
	if f.Value("stanzas") != "message" {
		bad = append(bad, "stanzas")
	}
	if f.Value("ver") != protocolVersion {
		bad = append(bad, "ver")
	}
	if f.Value("rekey_freq") != rekeyFreq {
		bad = append(bad, "rekey_freq")
	}
	nB, err := b64.DecodeString(f.Value("my_nonce"))
	if err != nil || len(nB) < 8 || len(nB) > 64 {
		bad = append(bad, "my_nonce")
	}
	if nonce, err := b64.DecodeString(f.Value("nonce")); err != nil || subtle.ConstantTimeCompare(nonce, n.nA) != 1 {
		bad = append(bad, "nonce")
	}
	var ca counter
	// The counter is an MPI of at most n = 128 bits.
	if cb, err := b64.DecodeString(f.Value("counter")); err != nil || len(cb) == 0 || len(cb) > blockSize {
		bad = append(bad, "counter")
	} else {
		copy(ca[blockSize-len(cb):], cb)
	}
	var d *big.Int
	if dfl := f.Field("dhkeys"); dfl == nil || len(dfl.Values) != 1 {
		bad = append(bad, "dhkeys")
	} else if db, err := b64.DecodeString(dfl.Values[0]); err != nil || len(db) == 0 {
		bad = append(bad, "dhkeys")
	} else if d = new(big.Int).SetBytes(db); g != nil && g.CheckElement(d) != nil {
		// XEP-0217 §5.1 step 2: 1 < d < p-1, else not-acceptable
		bad = append(bad, "dhkeys")
	}
	if len(bad) > 0 {
		ne := &NegotiationError{Condition: CondNotAcceptable, Fields: bad}
		s.failWith(res, CondNotAcceptable, bad, "answer not acceptable", ne)
		return *res, ne
	}
	s.params.Group, s.params.Version = g.ID(), protocolVersion
	x, e := n.xs[g.ID()], n.es[g.ID()]
	z, err := g.SharedSecret(d, x)
	if err != nil {
		s.failWith(res, CondNotAcceptable, []string{"dhkeys"}, "answer not acceptable", ErrAuthentication)
		return *res, ErrAuthentication
	}
	n.k = sharedSecret(z)
	modp.Wipe(z)
	for id, xx := range n.xs { // the exponents of the other groups are not needed
		clear(xx)
		delete(n.xs, id)
	}
	n.e, n.d, n.nB, n.group, n.ca = e, d, nB, g, ca
	n.cb = responderCounter(ca)
	n.formB = s.normalize(f)
	kA := deriveKeys(&n.k, true, s.cfg.cv.keyLen())
	defer kA.wipe()

	// rshashes: HMAC(N_A, RS) for each retained secret, then random decoys
	// (XEP-0217 §5.2.4), so the count reveals little.
	var rshashes []string
	secrets := s.liveSecrets()
	for i := range secrets {
		h := rsHash(n.nA, &secrets[i].Value)
		rshashes = append(rshashes, b64.EncodeToString(h[:]))
		clear(secrets[i].Value[:])
	}
	nd, err := modp.RandomBelow(s.cfg.rand, big.NewInt(1), big.NewInt(4))
	if err != nil {
		s.fail(res, "negotiation failed", err)
		return *res, err
	}
	for range nd.Int64() {
		dec, err := s.cfg.read(32)
		if err != nil {
			s.fail(res, "negotiation failed", err)
			return *res, err
		}
		rshashes = append(rshashes, b64.EncodeToString(dec))
	}
	fields := []*form.Field{
		field("accept", "1"),
		field("nonce", b64.EncodeToString(nB)),
		field("dhkeys", b64.EncodeToString(mpi(e))),
		field("rshashes", rshashes...),
	}
	formA2 := s.normalize(ssnForm(form.TypeResult, fields...))
	macA := sigmaMAC(&kA.ks, nB, n.nA, mpi(e), n.formA, formA2)
	n.ctrA = ca
	id, mA := hideIdentity(&kA, &n.ctrA, &macA, s.cfg.cv)
	clear(macA[:])
	s.sas = sas28x5(mA[:], n.formB, s.cfg.cv)
	fields = append(fields, field("identity", b64.EncodeToString(id[:])), field("mac", b64.EncodeToString(mA[:])))
	s.step = stepConfirming
	res.Out = append(res.Out, s.out(feature(ssnForm(form.TypeResult, fields...))))
	return *res, nil
}

// normalize returns the XEP-0116 §8.2 normalised content of a form,
// without the fields listed, in the session's profile.
func (s *Session) normalize(f *form.Form, omit ...string) []byte {
	return f.Normalize(s.cfg.cv.gajim, omit...)
}

// liveSecrets returns the unexpired retained secrets for the peer, and
// has the expired ones removed from the store.
func (s *Session) liveSecrets() []Secret {
	if s.cfg.secrets == nil {
		return nil
	}
	list, err := s.cfg.secrets.Lookup(s.peerBare)
	if err != nil {
		return nil
	}
	now := s.cfg.now()
	out := list[:0]
	expired := false
	for _, sc := range list {
		if s.cfg.lifetime > 0 && now.Sub(sc.Created) > s.cfg.lifetime {
			expired = true
			continue
		}
		out = append(out, sc)
	}
	// Every dropped value was overwritten by a kept one or lies here.
	clear(list[len(out):])
	if expired {
		// A failure leaves them stored, and still ignored.
		s.cfg.secrets.Expire(s.peerBare, now.Add(-s.cfg.lifetime)) //nolint:errcheck
	}
	return out
}

// onComplete is Bob's handling of the completion: a plain result, a
// cancel, or XEP-0217 message 3 (§5.3), answered with message 4.
func (s *Session) onComplete(res *Result, pf *parsedFeature) (Result, error) {
	f := pf.form
	acc, err := f.Field("accept").Bool()
	if err != nil {
		err := s.violation()
		s.fail(res, "malformed completion", err)
		return *res, err
	}
	if !acc {
		s.end("cancelled by peer", nil)
		res.Events = append(res.Events, Terminated{Session: s, ByPeer: true, Reason: "cancelled by peer"})
		return *res, nil
	}
	if !s.wantE2E {
		s.neg.wipe()
		s.neg = nil
		s.step = stepActive
		res.Events = append(res.Events, Established{Session: s})
		return *res, nil
	}
	return s.onMessage3(res, f)
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

func (s *Session) onMessage3(res *Result, f *form.Form) (Result, error) {
	n := s.neg
	authFail := func() (Result, error) {
		// XEP-0217 §5.3.1-5.3.2: a feature-not-implemented error. The
		// same answer and error for every check, so nothing tells which
		// one failed.
		s.failWith(res, CondFeatureNotImplemented, nil, "identity verification failed", ErrAuthentication)
		return *res, ErrAuthentication
	}
	nonce, ok1 := decodeField(f, "nonce", 0)
	eb, ok2 := decodeField(f, "dhkeys", 0)
	id, ok3 := decodeField(f, "identity", 32)
	mA, ok4 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 || !ok3 || !ok4 || subtle.ConstantTimeCompare(nonce, n.nB) != 1 {
		return authFail()
	}
	e := new(big.Int).SetBytes(eb)
	// §5.3.1 step 1: the hash commitment; step 2: 1 < e < p-1.
	he := dhHash(e)
	if subtle.ConstantTimeCompare(he[:], n.he) != 1 {
		return authFail()
	}
	z, err := n.group.SharedSecret(e, n.y)
	if err != nil {
		return authFail()
	}
	k := sharedSecret(z)
	modp.Wipe(z)
	defer clear(k[:])
	kA := deriveKeys(&k, true, s.cfg.cv.keyLen())
	defer kA.wipe()
	ctrA := n.ca
	macA, ok := revealIdentity(&kA, &ctrA, id, mA, s.cfg.cv)
	defer clear(macA[:])
	formA2 := s.normalize(f, "identity", "mac")
	want := sigmaMAC(&kA.ks, n.nB, n.nA, mpi(e), n.formA, formA2)
	if !ok || subtle.ConstantTimeCompare(want[:], macA[:]) != 1 {
		return authFail()
	}
	s.sas = sas28x5(mA, n.formB, s.cfg.cv)

	// §5.3.3: the shared retained secret is the one whose HMAC under N_A
	// is among the rshashes.
	var srs *Secret
	secrets := s.liveSecrets()
	hashes := f.Field("rshashes")
	if hashes != nil {
	search:
		for i := range secrets {
			h := rsHash(n.nA, &secrets[i].Value)
			for _, v := range hashes.Values {
				got, err := b64.DecodeString(v)
				if err == nil && subtle.ConstantTimeCompare(got, h[:]) == 1 {
					srs = &secrets[i]
					break search
				}
			}
		}
	}
	var srsVal []byte
	if srs != nil {
		srsVal = srs.Value[:]
	}
	kf := finalKey(&k, srsVal, nil)
	defer clear(kf[:])
	kA2 := deriveKeys(&kf, true, s.cfg.cv.keyLen())
	kB := deriveKeys(&kf, false, s.cfg.cv.keyLen())
	defer kA2.wipe()
	defer kB.wipe()
	var srsh [32]byte
	if srs != nil {
		srsh = srsHash(&srs.Value)
	} else {
		r, err := s.cfg.read(32)
		if err != nil {
			s.fail(res, "negotiation failed", err)
			return *res, err
		}
		copy(srsh[:], r)
	}
	fields := []*form.Field{
		field("nonce", b64.EncodeToString(n.nA)),
		field("srshash", b64.EncodeToString(srsh[:])),
	}
	formB2 := s.normalize(ssnForm(form.TypeResult, fields...))
	macB := sigmaMAC(&kB.ks, n.nA, n.nB, mpi(n.d), n.formB, formB2)
	ctrB := n.cb
	idB, mB := hideIdentity(&kB, &ctrB, &macB, s.cfg.cv)
	clear(macB[:])
	fields = append(fields, field("identity", b64.EncodeToString(idB[:])), field("mac", b64.EncodeToString(mB[:])))
	f4 := ssnForm(form.TypeResult, fields...)

	ev := s.establish(srs, len(secrets) > 0, &kf)
	for i := range secrets {
		clear(secrets[i].Value[:])
	}
	s.ch = &channel{pad: s.cfg.pad, cv: s.cfg.cv}
	s.ch.send.init(&kB, ctrB, s.cfg.cv)
	s.ch.recv.init(&kA2, ctrA, s.cfg.cv)
	s.neg.wipe()
	s.neg = nil
	s.step = stepActive
	res.Out = append(res.Out, s.out(xmltree.New(NSInit, "init").Append(f4.Element())))
	res.Events = append(res.Events, ev)
	return *res, nil
}

// establish records the retained-secret outcome of a negotiation and
// stores the new retained secret HMAC(K', "New Retained Secret") in place
// of the one that matched (XEP-0217 §5.3.3, §5.4.1).
func (s *Session) establish(srs *Secret, hadSecrets bool, kf *[32]byte) Established {
	ev := Established{Session: s, Encrypted: true, SAS: s.sas}
	s.secretMatched = srs != nil
	s.chainVerified = srs != nil && srs.Verified
	s.continuityBroken = srs == nil && hadSecrets
	ev.SecretMatched, ev.Verified, ev.ContinuityBroken = s.secretMatched, s.chainVerified, s.continuityBroken
	s.rs = newRetainedSecret(kf)
	s.rsCreated = s.cfg.now()
	s.haveRS = true
	if s.cfg.secrets != nil {
		var old *[32]byte
		if srs != nil {
			old = &srs.Value
		}
		ev.SecretsErr = s.cfg.secrets.Replace(s.peerBare, old, Secret{Value: s.rs, Verified: s.chainVerified, Created: s.rsCreated})
	}
	return ev
}

// onMessage4 is Alice's handling of XEP-0217 message 4 (§5.4).
func (s *Session) onMessage4(res *Result, in *Inbound) (Result, error) {
	n := s.neg
	authFail := func() (Result, error) {
		s.failWith(res, CondFeatureNotImplemented, nil, "identity verification failed", ErrAuthentication)
		return *res, ErrAuthentication
	}
	pf, err := parseFeature(in.Init, NSInit, "init")
	if err != nil {
		return authFail()
	}
	f := pf.form
	if f.Type != form.TypeResult || f.FormType() != FormTypeSSN {
		return authFail()
	}
	nonce, ok1 := decodeField(f, "nonce", 0)
	srsh, ok2 := decodeField(f, "srshash", 32)
	idB, ok3 := decodeField(f, "identity", 32)
	mB, ok4 := decodeField(f, "mac", 32)
	if !ok1 || !ok2 || !ok3 || !ok4 || subtle.ConstantTimeCompare(nonce, n.nA) != 1 {
		return authFail()
	}
	var srs *Secret
	secrets := s.liveSecrets()
	for i := range secrets {
		h := srsHash(&secrets[i].Value)
		if subtle.ConstantTimeCompare(h[:], srsh) == 1 {
			srs = &secrets[i]
			break
		}
	}
	var srsVal []byte
	if srs != nil {
		srsVal = srs.Value[:]
	}
	kf := finalKey(&n.k, srsVal, nil)
	defer clear(kf[:])
	kA := deriveKeys(&kf, true, s.cfg.cv.keyLen())
	kB := deriveKeys(&kf, false, s.cfg.cv.keyLen())
	defer kA.wipe()
	defer kB.wipe()
	ctrB := n.cb
	macB, ok := revealIdentity(&kB, &ctrB, idB, mB, s.cfg.cv)
	defer clear(macB[:])
	formB2 := s.normalize(f, "identity", "mac")
	want := sigmaMAC(&kB.ks, n.nA, n.nB, mpi(n.d), n.formB, formB2)
	if !ok || subtle.ConstantTimeCompare(want[:], macB[:]) != 1 {
		// §5.4.2: any encrypted content with it is ignored.
		for i := range secrets {
			clear(secrets[i].Value[:])
		}
		return authFail()
	}
	ev := s.establish(srs, len(secrets) > 0, &kf)
	for i := range secrets {
		clear(secrets[i].Value[:])
	}
	s.ch = &channel{pad: s.cfg.pad, cv: s.cfg.cv}
	s.ch.send.init(&kA, n.ctrA, s.cfg.cv)
	s.ch.recv.init(&kB, ctrB, s.cfg.cv)
	s.neg.wipe()
	s.neg = nil
	s.step = stepActive
	res.Events = append(res.Events, ev)
	if in.C != nil {
		return s.openC(res, in)
	}
	return *res, nil
}
