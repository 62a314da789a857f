package esession

import (
	"bytes"
	"strconv"

	"github.com/balcony-im/balcony/esession/form"
	"github.com/balcony-im/balcony/esession/internal/xmltree"
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
func feature(f *form.Form) []byte {
	var b bytes.Buffer
	b.WriteString("<feature xmlns='" + NSFeatureNeg + "'>")
	f.Element().WriteTo(&b, NSFeatureNeg)
	b.WriteString("</feature>")
	return b.Bytes()
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
// message: the received <feature/> echoed (if any) and an <error/> with the
// condition and the fields concerned (XEP-0155 §4.3). The echo is
// re-serialised from its parsed tree, never copied raw.
func errorPayload(cond string, fields []string, echo *xmltree.Element) []byte {
	var b bytes.Buffer
	if echo != nil {
		echo.WriteTo(&b, nsClient)
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
	b.WriteString("<error")
	if code != "" {
		b.WriteString(" code='" + code + "'")
	}
	b.WriteString(" type='" + typ + "'><" + cond + " xmlns='" + nsStanzas + "'/>")
	if len(fields) > 0 {
		fe := xmltree.New(NSFeatureNeg, "feature")
		for _, f := range fields {
			fe.Add(xmltree.New(NSFeatureNeg, "field", "var", f))
		}
		fe.WriteTo(&b, nsClient)
	}
	b.WriteString("</error>")
	return b.Bytes()
}

// parseError reads a received <error/>: its defined condition, its text
// and the fields listed in a feature-neg <feature/>.
func parseError(raw []byte) *NegotiationError {
	ne := &NegotiationError{Condition: "undefined-condition"}
	el, err := xmltree.Parse(raw, nsClient, xmltree.Limits{MaxBytes: 64 << 10, MaxDepth: 8, MaxElements: 256, MaxAttrs: 16})
	if err != nil || el.Local != "error" {
		return ne
	}
	for _, c := range el.Elements() {
		switch {
		case c.Space == nsStanzas && c.Local == "text":
			ne.Text = c.Text()
		case c.Space == nsStanzas:
			ne.Condition = c.Local
		case c.Space == NSFeatureNeg && c.Local == "feature":
			for _, f := range c.Elements() {
				if v, ok := f.AttrValue("var"); ok && f.Local == "field" {
					ne.Fields = append(ne.Fields, v)
				}
			}
		}
	}
	if ne.Condition == "undefined-condition" {
		if code, ok := el.AttrValue("code"); ok {
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
