package esession

import (
	"errors"
	"fmt"
	"strings"

	"github.com/balcony-im/balcony/esession/form"
)

// This file is the control of an established session (XEP-0155 §5-§7):
// moving it to another resource, renegotiating it, terminating it.

// Continue asks the peer to continue the session with another resource of
// this client (XEP-0155 §5); in an encrypted session the form travels
// encrypted. Nothing more can be sent in the session from here. When the
// peer acknowledges, a Moved event follows: a plain session ends here; an
// encrypted one waits for Handover, whose result the new resource gives
// to its Manager.Adopt, so that the keys and counters move with it.
func (s *Session) Continue(resource string) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return Outbound{}, ErrEnded
	}
	if s.step != stepActive {
		return Outbound{}, ErrState
	}
	if resource == "" || strings.ContainsAny(resource, "/") {
		return Outbound{}, errors.New("esession: bad resource")
	}
	o, err := s.control(continueForm(resource, false))
	if err != nil {
		return Outbound{}, err
	}
	s.step, s.moveTo = stepMoving, resource
	return o, nil
}

// control returns a control form to send in the session: inside <c/> in
// an encrypted session (XEP-0217 §6).
func (s *Session) control(f *form.Form) (Outbound, error) {
	if s.wantE2E {
		o, err := s.sealed(feature(f))
		if err == nil {
			s.lastActive = s.cfg.now()
		}
		return o, err
	}
	return s.out(feature(f)), nil
}

// Renegotiate asks the peer to renegotiate the logging parameter of the
// session (XEP-0155 §6), offering the given values in order of
// preference; XEP-0136 §9.1 asks for it when the user's OTR preference
// changes. The answer comes as a Renegotiated event. In an encrypted
// session the forms travel encrypted; the other parameters of an
// encrypted session cannot change: terminate it and start a new one.
func (s *Session) Renegotiate(logging ...string) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return Outbound{}, ErrEnded
	}
	if s.step != stepActive || s.renegotiating {
		return Outbound{}, ErrState
	}
	for _, l := range logging {
		if l != LoggingMay && l != LoggingMustNot {
			return Outbound{}, fmt.Errorf("esession: bad logging value %q", l)
		}
	}
	if len(logging) == 0 {
		return Outbound{}, errors.New("esession: no logging option")
	}
	f := ssnForm(form.TypeForm,
		&form.Field{Var: "renegotiate", Type: form.Boolean, Values: []string{"1"}, Required: true},
		&form.Field{Var: "logging", Type: form.ListSingle, Required: true, Options: options(logging...)})
	o, err := s.control(f)
	if err != nil {
		return Outbound{}, err
	}
	s.renegotiating, s.renegLogging = true, logging
	return o, nil
}

// kind classifies an SSN form (XEP-0155 §3).
type kind int

const (
	kindOther        kind = iota
	kindRequest           // form with accept
	kindAnswer            // submit with accept
	kindComplete          // result with accept
	kindTerminate         // submit terminate
	kindTerminateAck      // result terminate
	kindContinue          // submit continue
	kindContinueAck       // result continue
	kindRenegotiate       // form with renegotiate
	kindRenegotiateAnswer
)

func classify(f *form.Form) kind {
	if f.FormType() != FormTypeSSN {
		return kindOther
	}
	has := func(v string) bool { return f.Field(v) != nil }
	switch f.Type {
	case form.TypeForm:
		if has("renegotiate") && !has("accept") {
			return kindRenegotiate
		}
		if has("accept") {
			return kindRequest
		}
	case form.TypeSubmit:
		switch {
		case has("terminate"):
			return kindTerminate
		case has("continue"):
			return kindContinue
		case has("renegotiate"):
			return kindRenegotiateAnswer
		case has("accept"):
			return kindAnswer
		}
	case form.TypeResult:
		switch {
		case has("terminate"):
			return kindTerminateAck
		case has("continue"):
			return kindContinueAck
		case has("accept"):
			return kindComplete
		}
	}
	return kindOther
}

// onControl handles a session control form (terminate, continue,
// renegotiate) in an active session. It reports false for a form that has
// no place here.
func (s *Session) onControl(res *Result, pf *parsedFeature, k kind, encrypted bool) bool {
	reply := func(f *form.Form) {
		p := feature(f)
		if encrypted {
			if o, err := s.sealed(p); err == nil {
				res.Out = append(res.Out, o)
			}
			return
		}
		res.Out = append(res.Out, s.out(p))
	}
	f := pf.form
	switch k {
	case kindTerminate:
		if on, err := f.Field("terminate").Bool(); err != nil || !on {
			return false
		}
		if s.step != stepTerminating && !s.offline {
			reply(terminateForm(true)) // the acknowledgement (§7); none offline (XEP-0187 §3.5)
		}
		s.end("terminated by peer", nil)
		res.Events = append(res.Events, Terminated{Session: s, ByPeer: true, Reason: "terminated by peer"})
		return true
	case kindTerminateAck:
		if s.step != stepTerminating {
			return false
		}
		s.end("terminated", nil)
		res.Events = append(res.Events, Terminated{Session: s, Reason: "terminated"})
		return true
	case kindContinue:
		r := f.Value("continue")
		if r == "" || strings.Contains(r, "/") || s.step != stepActive {
			return false
		}
		reply(continueForm(r, true)) // to the old resource, then move (§5)
		s.peer = s.peerBare + "/" + r
		res.Events = append(res.Events, Moved{Session: s, To: s.peer})
		return true
	case kindContinueAck:
		if s.step != stepMoving || f.Value("continue") != s.moveTo {
			return false
		}
		to := s.moveTo
		if s.self != "" {
			to = Bare(s.self) + "/" + s.moveTo
		}
		res.Events = append(res.Events, Moved{Session: s, To: to, Handover: s.wantE2E})
		if s.wantE2E {
			s.step = stepMoved // the keys wait for Handover
			return true
		}
		s.end("moved to "+to, nil)
		return true
	case kindRenegotiate:
		s.answerRenegotiation(res, pf, reply)
		return true
	case kindRenegotiateAnswer:
		if !s.renegotiating {
			return false
		}
		s.renegotiating = false
		ok, err := f.Field("renegotiate").Bool()
		if err == nil && ok {
			l := normalLogging(f)
			if !contains(s.renegLogging, l) {
				// The peer picked a value we did not offer: keep the old
				// parameters and tell the user.
				res.Events = append(res.Events, Renegotiated{Session: s, Accepted: false, Params: s.params})
				return true
			}
			s.params.Logging = l
		}
		res.Events = append(res.Events, Renegotiated{Session: s, Accepted: err == nil && ok, Params: s.params})
		return true
	}
	return false
}

// answerRenegotiation answers a renegotiation request: the only
// renegotiable parameter is logging (§6). A plain session answers what it
// cannot accept with an error; an encrypted one with renegotiate=0 inside
// <c/>, since an error in the clear would echo the form.
func (s *Session) answerRenegotiation(res *Result, pf *parsedFeature, reply func(*form.Form)) {
	f := pf.form
	var unknown []string
	for _, fl := range f.Fields {
		switch fl.Var {
		case "FORM_TYPE", "renegotiate", "logging", "otr":
		default:
			if fl.Required {
				unknown = append(unknown, fl.Var)
			}
		}
	}
	refuse := func(cond string, fields []string) {
		if s.wantE2E {
			reply(ssnForm(form.TypeSubmit, field("renegotiate", "0")))
		} else {
			res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread, Payload: errorPayload(cond, fields, pf.el)})
		}
		res.Events = append(res.Events, Renegotiated{Session: s, Accepted: false, Params: s.params})
	}
	if len(unknown) > 0 {
		refuse(CondFeatureNotImplemented, unknown)
		return
	}
	opts, v := loggingOptions(f)
	ans := ssnForm(form.TypeSubmit, field("renegotiate", "1"))
	if v != "" {
		l, ok := s.chooseLogging(opts)
		if !ok {
			refuse(CondNotAcceptable, []string{v})
			return
		}
		ans.Add(field(v, loggingValue(v, l)))
		s.params.Logging = l
	}
	reply(ans)
	res.Events = append(res.Events, Renegotiated{Session: s, Accepted: true, Params: s.params})
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// transport names the unencrypted siblings of <c/> that are expected and
// carry no content: routing and processing hints (XEP-0079, XEP-0334,
// XEP-0280, XEP-0380, XEP-0359, XEP-0203).
var transport = map[string]bool{
	"amp": true, "encryption": true, "no-copy": true, "no-permanent-store": true,
	"no-store": true, "store": true, "private": true, "stanza-id": true,
	"origin-id": true, "delay": true,
}

// stripped lists the unencrypted siblings of <c/> that were dropped and
// could have been mistaken for content.
func stripped(other []string) []string {
	var out []string
	for _, n := range other {
		if !transport[n] {
			out = append(out, n)
		}
	}
	return out
}
