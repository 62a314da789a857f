// Package form implements the subset of XEP-0004 Data Forms (Final) that
// Stanza Session Negotiation (XEP-0155) and Encrypted Session negotiation
// (XEP-0116, XEP-0217) exchange, together with the XEP-0116 §8.2 form
// normalisation whose output those protocols MAC.
//
// A parsed Form keeps the tree it was parsed from, so Canonical returns the
// normalised content of the form exactly as received (field order, child
// order, values untouched), which is what the peer MACed. A Form built with
// New is frozen the first time it is serialised or normalised, so the bytes
// sent and the bytes MACed come from the same tree.
package form

import (
	"errors"
	"fmt"

	"github.com/balcony-im/balcony/xmltree"
)

// NS is the Data Forms namespace.
const NS = "jabber:x:data"

// Form types (XEP-0004 §3.1).
const (
	TypeForm   = "form"
	TypeSubmit = "submit"
	TypeCancel = "cancel"
	TypeResult = "result"
)

// Field types (XEP-0004 §3.3).
const (
	Boolean     = "boolean"
	Fixed       = "fixed"
	Hidden      = "hidden"
	JIDMulti    = "jid-multi"
	JIDSingle   = "jid-single"
	ListMulti   = "list-multi"
	ListSingle  = "list-single"
	TextMulti   = "text-multi"
	TextPrivate = "text-private"
	TextSingle  = "text-single"
)

// Limits on what Parse accepts.
const (
	MaxFields  = 256
	MaxValues  = 64 // values per field
	MaxOptions = 64 // options per field
)

// Option is one choice of a list field.
type Option struct {
	Label, Value string
}

// Field is a form field. Type is kept as received; an unknown or empty type
// means text-single (XEP-0004 §3.3).
type Field struct {
	Var      string
	Type     string
	Label    string
	Desc     string
	Required bool
	Values   []string
	Options  []Option
}

// Value returns the first value, or "".
func (f *Field) Value() string {
	if f == nil || len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

// OptionValues returns the values of the options in order.
func (f *Field) OptionValues() []string {
	if f == nil {
		return nil
	}
	out := make([]string, len(f.Options))
	for i, o := range f.Options {
		out[i] = o.Value
	}
	return out
}

// ErrBool reports a boolean field value other than 0, 1, false or true.
var ErrBool = errors.New("form: not a boolean value")

// ParseBool parses an XEP-0004 boolean: "1" or "true", "0" or "false".
func ParseBool(s string) (bool, error) {
	switch s {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, ErrBool
}

// Bool returns the field's boolean value: exactly one value, parsed with
// ParseBool.
func (f *Field) Bool() (bool, error) {
	if f == nil || len(f.Values) != 1 {
		return false, ErrBool
	}
	return ParseBool(f.Values[0])
}

// Form is a data form.
type Form struct {
	Type         string
	Title        string
	Instructions []string
	Fields       []*Field

	el *xmltree.Element // as parsed, or as frozen on first serialisation
}

// New returns a form of the given type. Fields must not be changed after
// the form was first serialised or normalised.
func New(typ string, fields ...*Field) *Form {
	return &Form{Type: typ, Fields: fields}
}

// Field returns the field with the given var, or nil.
func (f *Form) Field(v string) *Field {
	for _, fl := range f.Fields {
		if fl.Var == v {
			return fl
		}
	}
	return nil
}

// Value returns the first value of the field var, or "".
func (f *Form) Value(v string) string { return f.Field(v).Value() }

// FormType returns the value of the FORM_TYPE field, or "".
func (f *Form) FormType() string { return f.Value("FORM_TYPE") }

// Add appends fields and returns f; it panics if f is frozen.
func (f *Form) Add(fields ...*Field) *Form {
	if f.el != nil {
		panic("form: Add after the form was serialised")
	}
	f.Fields = append(f.Fields, fields...)
	return f
}

// Element returns the form's tree: as parsed, or built from the fields and
// frozen. The tree must not be changed.
func (f *Form) Element() *xmltree.Element {
	if f.el == nil {
		f.el = f.build()
	}
	return f.el
}

// Marshal returns the serialised <x xmlns='jabber:x:data'/> element.
func (f *Form) Marshal() []byte { return f.Element().Marshal("") }

// Canonical returns the XEP-0116 §8.2 normalised content of the form: the
// Canonical XML of each child element of <x>, in order, concatenated, with
// character data between elements removed and no namespace declarations.
func (f *Form) Canonical() []byte { return f.Normalize(false) }

// CanonicalOmit is Canonical without the fields whose var is listed (as
// XEP-0217 computes form_A2 and form_B2 without "identity" and "mac").
func (f *Form) CanonicalOmit(vars ...string) []byte { return f.Normalize(false, vars...) }

// Normalize is CanonicalOmit, with empty elements written "<name />" when
// selfClosing is set (the normalisation Gajim 0.12 to 0.16 computed).
func (f *Form) Normalize(selfClosing bool, vars ...string) []byte {
	var b []byte
	for _, c := range f.Element().Elements() {
		if c.Name.Space == NS && c.Name.Local == "field" {
			v := c.AttrValue("var")
			skip := false
			for _, o := range vars {
				if v == o {
					skip = true
				}
			}
			if skip {
				continue
			}
		}
		b = AppendNormalized(b, c, selfClosing)
	}
	return b
}

func (f *Form) build() *xmltree.Element {
	x := xmltree.New(NS, "x", "type", f.Type)
	if f.Title != "" {
		x.Append(xmltree.New(NS, "title").AppendText(f.Title))
	}
	for _, in := range f.Instructions {
		x.Append(xmltree.New(NS, "instructions").AppendText(in))
	}
	for _, fl := range f.Fields {
		var attrs []string
		if fl.Label != "" {
			attrs = append(attrs, "label", fl.Label)
		}
		if fl.Type != "" {
			attrs = append(attrs, "type", fl.Type)
		}
		if fl.Var != "" {
			attrs = append(attrs, "var", fl.Var)
		}
		fe := xmltree.New(NS, "field", attrs...)
		if fl.Desc != "" {
			fe.Append(xmltree.New(NS, "desc").AppendText(fl.Desc))
		}
		// Values, then <required/>, then options: the order of the
		// XEP-0217 examples' request form and of our test vectors.
		for _, v := range fl.Values {
			fe.Append(xmltree.New(NS, "value").AppendText(v))
		}
		if fl.Required {
			fe.Append(xmltree.New(NS, "required"))
		}
		for _, o := range fl.Options {
			var oa []string
			if o.Label != "" {
				oa = []string{"label", o.Label}
			}
			fe.Append(xmltree.New(NS, "option", oa...).Append(xmltree.New(NS, "value").AppendText(o.Value)))
		}
		x.Append(fe)
	}
	return x
}

// ParseError reports a malformed data form.
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return "form: " + e.Msg }

func parseErr(format string, a ...any) error {
	return &ParseError{Msg: fmt.Sprintf(format, a...)}
}

// parseLimits bound what Parse accepts.
var parseLimits = xmltree.Limits{MaxDepth: 32, MaxNodes: 8192, MaxBytes: 256 << 10}

// Parse parses an <x xmlns='jabber:x:data'/> element.
func Parse(b []byte) (*Form, error) {
	el, err := xmltree.Parse(b, &parseLimits)
	if err != nil {
		return nil, &ParseError{Msg: err.Error()}
	}
	return FromTree(el)
}

// FromTree interprets a parsed element as a data form. The form keeps the
// tree, which must not be changed afterwards: Canonical normalises it as
// received.
func FromTree(x *xmltree.Element) (*Form, error) {
	if x.Name.Space != NS || x.Name.Local != "x" {
		return nil, parseErr("not a data form: {%s}%s", x.Name.Space, x.Name.Local)
	}
	f := &Form{el: x}
	f.Type = x.AttrValue("type")
	switch f.Type {
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	default:
		return nil, parseErr("bad form type %q", f.Type)
	}
	seen := map[string]bool{}
	for _, c := range x.Elements() {
		if c.Name.Space != NS {
			continue // extensions in other namespaces are allowed and ignored
		}
		switch c.Name.Local {
		case "title":
			if hasElements(c) {
				return nil, parseErr("<title> with child elements")
			}
			f.Title = c.Text()
		case "instructions":
			if hasElements(c) {
				return nil, parseErr("<instructions> with child elements")
			}
			f.Instructions = append(f.Instructions, c.Text())
		case "field":
			if len(f.Fields) == MaxFields {
				return nil, parseErr("more than %d fields", MaxFields)
			}
			fl, err := parseField(c)
			if err != nil {
				return nil, err
			}
			if fl.Var != "" {
				if seen[fl.Var] {
					return nil, parseErr("duplicate field %q", fl.Var)
				}
				seen[fl.Var] = true
			}
			f.Fields = append(f.Fields, fl)
		case "reported", "item":
			// multi-item results; not used by session negotiation
		default:
			return nil, parseErr("unknown element <%s>", c.Name.Local)
		}
	}
	return f, nil
}

func leafText(e *xmltree.Element) (string, error) {
	if hasElements(e) {
		return "", parseErr("<%s> with child elements", e.Name.Local)
	}
	return e.Text(), nil
}

func hasElements(e *xmltree.Element) bool {
	for _, c := range e.Children {
		if _, ok := c.(*xmltree.Element); ok {
			return true
		}
	}
	return false
}

func parseField(c *xmltree.Element) (*Field, error) {
	fl := &Field{}
	fl.Var = c.AttrValue("var")
	fl.Type = c.AttrValue("type")
	fl.Label = c.AttrValue("label")
	if fl.Var == "" && fl.Type != Fixed {
		return nil, parseErr("field without var")
	}
	for _, a := range c.Attr {
		if a.Name.Space != "" && !isXMLNS(a.Name.Space) {
			return nil, parseErr("namespaced attribute on field %q", fl.Var)
		}
	}
	for _, k := range c.Elements() {
		if k.Name.Space != NS {
			continue
		}
		switch k.Name.Local {
		case "desc":
			s, err := leafText(k)
			if err != nil {
				return nil, err
			}
			fl.Desc = s
		case "required":
			if len(k.Children) != 0 {
				return nil, parseErr("<required> with content")
			}
			fl.Required = true
		case "value":
			if len(fl.Values) == MaxValues {
				return nil, parseErr("more than %d values in field %q", MaxValues, fl.Var)
			}
			s, err := leafText(k)
			if err != nil {
				return nil, err
			}
			fl.Values = append(fl.Values, s)
		case "option":
			if len(fl.Options) == MaxOptions {
				return nil, parseErr("more than %d options in field %q", MaxOptions, fl.Var)
			}
			o := Option{}
			o.Label = k.AttrValue("label")
			vals := k.Elements()
			if len(vals) != 1 || vals[0].Name.Space != NS || vals[0].Name.Local != "value" {
				return nil, parseErr("option in field %q without exactly one value", fl.Var)
			}
			s, err := leafText(vals[0])
			if err != nil {
				return nil, err
			}
			o.Value = s
			fl.Options = append(fl.Options, o)
		default:
			return nil, parseErr("unknown element <%s> in field %q", k.Name.Local, fl.Var)
		}
	}
	return fl, nil
}
