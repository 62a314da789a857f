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
// this client (XEP-0155 §5). Only plain sessions can move: the keys of an
// encrypted session cannot. When the peer acknowledges, the session ends
// here with a Moved event.
func (s *Session) Continue(resource string) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return Outbound{}, ErrEnded
	}
	if s.step != stepActive {
		return Outbound{}, ErrState
	}
	if s.wantE2E {
		return Outbound{}, ErrNotSupported
	}
	if resource == "" || strings.ContainsAny(resource, "/") {
		return Outbound{}, errors.New("esession: bad resource")
	}
	s.step, s.moveTo = stepMoving, resource
	return s.out(feature(continueForm(resource, false))), nil
}

// Renegotiate asks the peer to renegotiate the logging parameter of a plain
// session (XEP-0155 §6), offering the given values in order of preference.
// Encrypted sessions are not renegotiated: terminate and start a new one.
func (s *Session) Renegotiate(logging ...string) (Outbound, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step == stepEnded {
		return Outbound{}, ErrEnded
	}
	if s.step != stepActive || s.renegotiating {
		return Outbound{}, ErrState
	}
	if s.wantE2E {
		return Outbound{}, ErrNotSupported
	}
	for _, l := range logging {
		if l != "may" && l != "mustnot" {
			return Outbound{}, fmt.Errorf("esession: bad logging value %q", l)
		}
	}
	if len(logging) == 0 {
		return Outbound{}, errors.New("esession: no logging option")
	}
	f := ssnForm(form.TypeForm,
		&form.Field{Var: "renegotiate", Type: form.Boolean, Values: []string{"1"}, Required: true},
		&form.Field{Var: "logging", Type: form.ListSingle, Required: true, Options: options(logging...)})
	s.renegotiating, s.renegLogging = true, logging
	return s.out(feature(f)), nil
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

// control handles a session control form (terminate, continue,
// renegotiate) in an active session. It reports false for a form that has
// no place here.
func (s *Session) control(res *Result, pf *parsedFeature, k kind, encrypted bool) bool {
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
		if s.step != stepTerminating {
			reply(terminateForm(true)) // the acknowledgement (§7)
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
		s.end("moved to "+to, nil)
		res.Events = append(res.Events, Moved{Session: s, To: to})
		return true
	case kindRenegotiate:
		if s.wantE2E {
			reply(ssnForm(form.TypeSubmit, field("renegotiate", "0")))
			res.Events = append(res.Events, Renegotiated{Session: s, Accepted: false, Params: s.params})
			return true
		}
		s.answerRenegotiation(res, pf)
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

// answerRenegotiation answers a plain session's renegotiation request: the
// only renegotiable parameter is logging (§6).
func (s *Session) answerRenegotiation(res *Result, pf *parsedFeature) {
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
	if len(unknown) > 0 {
		res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread, Payload: errorPayload(CondFeatureNotImplemented, unknown, pf.el)})
		return
	}
	opts, v := loggingOptions(f)
	ans := ssnForm(form.TypeSubmit, field("renegotiate", "1"))
	if v != "" {
		l, ok := s.chooseLogging(opts)
		if !ok {
			res.Out = append(res.Out, Outbound{To: s.peer, Type: "error", Thread: s.thread, Payload: errorPayload(CondNotAcceptable, []string{v}, pf.el)})
			return
		}
		ans.Add(field(v, loggingValue(v, l)))
		s.params.Logging = l
	}
	res.Out = append(res.Out, s.out(feature(ans)))
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
