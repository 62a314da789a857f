package esession

import (
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/xmltree"
)

// This file holds the XEP-0155 forms and error payloads.

// Error conditions of XEP-0155 §4.3.
const (
	CondServiceUnavailable    = "service-unavailable"     // 503: no SSN support
	CondFeatureNotImplemented = "feature-not-implemented" // 501: a required field is not supported
	CondNotAcceptable         = "not-acceptable"          // 406: no acceptable option for a field
)

// field builds a form field with values.
func field(v string, values ...string) *form.Field {
	return &form.Field{Var: v, Values: values}
}

func hidden(v, value string) *form.Field {
	return &form.Field{Var: v, Type: form.Hidden, Values: []string{value}}
}

func options(vals ...string) []form.Option {
	out := make([]form.Option, len(vals))
	for i, v := range vals {
		out[i] = form.Option{Value: v}
	}
	return out
}

// ssnForm returns a form with the FORM_TYPE field first: hidden-typed in a
// request (type form), untyped in answers, as in the XEP-0155 examples.
func ssnForm(typ string, fields ...*form.Field) *form.Form {
	ft := field("FORM_TYPE", FormTypeSSN)
	if typ == form.TypeForm {
		ft.Type = form.Hidden
	}
	return form.New(typ, append([]*form.Field{ft}, fields...)...)
}

// feature wraps a form in <feature xmlns='http://jabber.org/protocol/feature-neg'/>.
func feature(f *form.Form) *xmltree.Element {
	return xmltree.New(NSFeatureNeg, "feature").Append(f.Element())
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// declineForm is a decline with an optional reason (XEP-0155 §4.3).
func declineForm(reason string) *form.Form {
	f := ssnForm(form.TypeSubmit, field("accept", "0"))
	if reason != "" {
		f.Add(field("reason", reason))
	}
	return f
}

// completeForm completes (accept true) or cancels a negotiation (§4.4).
func completeForm(accept bool) *form.Form {
	return ssnForm(form.TypeResult, field("accept", boolValue(accept)))
}

// terminateForm ends a session; ack selects the acknowledgement (§7).
func terminateForm(ack bool) *form.Form {
	typ := form.TypeSubmit
	if ack {
		typ = form.TypeResult
	}
	return ssnForm(typ, field("terminate", "1"))
}

// continueForm asks to move (ack false) or acknowledges a move (§5).
func continueForm(resource string, ack bool) *form.Form {
	typ := form.TypeSubmit
	if ack {
		typ = form.TypeResult
	}
	return ssnForm(typ, field("continue", resource))
}

// errorPayload returns the children of an error reply to a negotiation
// message: a copy of the received <feature/> echoed (if any) and an
// <error/> with the condition and the fields concerned (XEP-0155 §4.3).
func errorPayload(cond string, fields []string, echo *xmltree.Element) []*xmltree.Element {
	var out []*xmltree.Element
	if echo != nil {
		out = append(out, echo.Copy())
	}
	code, typ := "", "cancel"
	switch cond {
	case CondServiceUnavailable:
		code = "503"
	case CondFeatureNotImplemented:
		code = "501"
	case CondNotAcceptable:
		code, typ = "406", "modify"
	}
	e := xmltree.New(nsClient, "error")
	if code != "" {
		e.SetAttr("code", code)
	}
	e.SetAttr("type", typ)
	e.Append(xmltree.New(nsStanzas, cond))
	if len(fields) > 0 {
		fe := xmltree.New(NSFeatureNeg, "feature")
		for _, f := range fields {
			fe.Append(xmltree.New(NSFeatureNeg, "field", "var", f))
		}
		e.Append(fe)
	}
	return append(out, e)
}

// parseError reads a received <error/>: its defined condition, its text
// and the fields listed in a feature-neg <feature/>.
func parseError(el *xmltree.Element) *NegotiationError {
	ne := &NegotiationError{Condition: "undefined-condition"}
	if el == nil || el.Name.Local != "error" {
		return ne
	}
	for _, c := range el.Elements() {
		switch {
		case c.Name.Space == nsStanzas && c.Name.Local == "text":
			ne.Text = c.Text()
		case c.Name.Space == nsStanzas:
			ne.Condition = c.Name.Local
		case c.Name.Space == NSFeatureNeg && c.Name.Local == "feature":
			for _, f := range c.Elements() {
				if v, ok := f.LookupAttr("var"); ok && f.Name.Local == "field" {
					ne.Fields = append(ne.Fields, v)
				}
			}
		}
	}
	if ne.Condition == "undefined-condition" {
		if code, ok := el.LookupAttr("code"); ok {
			switch n, _ := strconv.Atoi(code); n {
			case 503:
				ne.Condition = CondServiceUnavailable
			case 501:
				ne.Condition = CondFeatureNotImplemented
			case 406:
				ne.Condition = CondNotAcceptable
			}
		}
	}
	return ne
}
