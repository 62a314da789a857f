package form

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

type vector struct {
	Profile string `json:"profile"`
	FormA   string `json:"form_A"`
	FormB   string `json:"form_B"`
	FormA2  string `json:"form_A2"`
	FormB2  string `json:"form_B2"`
	NA      string `json:"N_A_b64"`
	He      string `json:"He_b64"`
}

func loadVector(t *testing.T) vector {
	t.Helper()
	b, err := os.ReadFile("../testdata/esession-xep0217-group14.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Profile == "spec" {
			return v
		}
	}
	t.Fatal("no spec profile")
	return vector{}
}

// requestXML is message 1's form as a peer might send it: pretty-printed,
// attributes in either order, single and double quotes, empty elements.
func requestXML(v vector) string {
	return `<x xmlns='jabber:x:data' type='form'>
  <field var='FORM_TYPE' type='hidden'>
    <value>urn:xmpp:ssn</value>
  </field>
  <field type="boolean" var="accept">
    <value>1</value>
    <required/>
  </field>
  <field var='logging' type='list-single'>
    <required />
    <option><value>mustnot</value></option>
    <option><value>may</value></option>
  </field>
  <field type='list-single' var='disclosure'><required></required><option><value>never</value></option></field>
  <field type='list-single' var='security'><required/><option><value>e2e</value></option></field>
  <field type='list-single' var='modp'><option><value>14</value></option></field>
  <field type='hidden' var='crypt_algs'><value>aes128-ctr</value></field>
  <field type='hidden' var='hash_algs'><value>sha256</value></field>
  <field type='hidden' var='compress'><value>none</value></field>
  <field type='list-multi' var='stanzas'><option><value>message</value></option></field>
  <field type='hidden' var='init_pubkey'><value>none</value></field>
  <field type='hidden' var='resp_pubkey'><value>none</value></field>
  <field type='list-single' var='ver'><option><value>1.0</value></option></field>
  <field type='hidden' var='rekey_freq'><value>4294967295</value></field>
  <field type='hidden' var='my_nonce'><value>` + v.NA + `</value></field>
  <field type='hidden' var='sas_algs'><value>sas28x5</value></field>
  <field type='hidden' var='dhhashes'>
    <value>` + v.He + `</value>
  </field>
</x>`
}

func TestCanonicalOfReceivedFormMatchesVector(t *testing.T) {
	v := loadVector(t)
	f, err := Parse([]byte(requestXML(v)))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Canonical()); got != v.FormA {
		t.Errorf("form_A\n got %s\nwant %s", got, v.FormA)
	}
	if f.Type != TypeForm || f.FormType() != "urn:xmpp:ssn" {
		t.Errorf("type %q FORM_TYPE %q", f.Type, f.FormType())
	}
	lg := f.Field("logging")
	if !lg.Required || !reflect.DeepEqual(lg.OptionValues(), []string{"mustnot", "may"}) {
		t.Errorf("logging field %+v", lg)
	}
	if b, err := f.Field("accept").Bool(); err != nil || !b {
		t.Errorf("accept = %v, %v", b, err)
	}
}

func TestCanonicalOfBuiltFormMatchesVector(t *testing.T) {
	v := loadVector(t)
	opt := func(vals ...string) []Option {
		var o []Option
		for _, s := range vals {
			o = append(o, Option{Value: s})
		}
		return o
	}
	hidden := func(name, val string) *Field { return &Field{Var: name, Type: Hidden, Values: []string{val}} }
	f := New(TypeForm,
		hidden("FORM_TYPE", "urn:xmpp:ssn"),
		&Field{Var: "accept", Type: Boolean, Values: []string{"1"}, Required: true},
		&Field{Var: "logging", Type: ListSingle, Required: true, Options: opt("mustnot", "may")},
		&Field{Var: "disclosure", Type: ListSingle, Required: true, Options: opt("never")},
		&Field{Var: "security", Type: ListSingle, Required: true, Options: opt("e2e")},
		&Field{Var: "modp", Type: ListSingle, Options: opt("14")},
		hidden("crypt_algs", "aes128-ctr"),
		hidden("hash_algs", "sha256"),
		hidden("compress", "none"),
		&Field{Var: "stanzas", Type: ListMulti, Options: opt("message")},
		hidden("init_pubkey", "none"),
		hidden("resp_pubkey", "none"),
		&Field{Var: "ver", Type: ListSingle, Options: opt("1.0")},
		hidden("rekey_freq", "4294967295"),
		hidden("my_nonce", v.NA),
		hidden("sas_algs", "sas28x5"),
		hidden("dhhashes", v.He),
	)
	if got := string(f.Canonical()); got != v.FormA {
		t.Errorf("form_A\n got %s\nwant %s", got, v.FormA)
	}
	// What is sent parses back to the same normalised content.
	back, err := Parse(f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Canonical()) != v.FormA {
		t.Error("marshalled form normalises differently")
	}
	defer func() {
		if recover() == nil {
			t.Error("Add after Marshal did not panic")
		}
	}()
	f.Add(hidden("late", "x"))
}

func TestCanonicalOmit(t *testing.T) {
	v := loadVector(t)
	in := `<x xmlns='jabber:x:data' type='result'>` + strings.ReplaceAll(v.FormB2, `"`, `'`) +
		`<field var='identity'><value>aWQ=</value></field><field var='mac'><value>bWFj</value></field></x>`
	f, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.CanonicalOmit("identity", "mac")); got != v.FormB2 {
		t.Errorf("got %s\nwant %s", got, v.FormB2)
	}
	if got := string(f.Canonical()); got == v.FormB2 {
		t.Error("Canonical dropped fields")
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"1": true, "true": true, "0": false, "false": false} {
		if got, err := ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yes", "True", " 1"} {
		if _, err := ParseBool(in); !errors.Is(err, ErrBool) {
			t.Errorf("ParseBool(%q) accepted", in)
		}
	}
	if _, err := (&Field{Values: []string{"1", "0"}}).Bool(); err == nil {
		t.Error("two values accepted as a boolean")
	}
}

func TestParseRejects(t *testing.T) {
	many := "<x xmlns='jabber:x:data' type='form'>" + strings.Repeat("<field type='fixed'/>", MaxFields+1) + "</x>"
	cases := map[string]string{
		"not a form":     `<y xmlns='jabber:x:data' type='form'/>`,
		"wrong ns":       `<x xmlns='urn:x' type='form'/>`,
		"no type":        `<x xmlns='jabber:x:data'/>`,
		"bad type":       `<x xmlns='jabber:x:data' type='bogus'/>`,
		"no var":         `<x xmlns='jabber:x:data' type='form'><field type='boolean'/></x>`,
		"dup var":        `<x xmlns='jabber:x:data' type='form'><field var='a'/><field var='a'/></x>`,
		"nested value":   `<x xmlns='jabber:x:data' type='form'><field var='a'><value><b/></value></field></x>`,
		"option two val": `<x xmlns='jabber:x:data' type='form'><field var='a'><option><value>1</value><value>2</value></option></field></x>`,
		"option no val":  `<x xmlns='jabber:x:data' type='form'><field var='a'><option/></field></x>`,
		"unknown child":  `<x xmlns='jabber:x:data' type='form'><bogus/></x>`,
		"unknown in fld": `<x xmlns='jabber:x:data' type='form'><field var='a'><bogus/></field></x>`,
		"required text":  `<x xmlns='jabber:x:data' type='form'><field var='a'><required>x</required></field></x>`,
		"ns attr":        `<x xmlns='jabber:x:data' xmlns:p='urn:p' type='form'><field var='a' p:q='1'/></x>`,
		"too many":       many,
		"xml error":      `<x xmlns='jabber:x:data' type='form'>`,
		"title element":  `<x xmlns='jabber:x:data' type='form'><title><b/></title></x>`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, want *ParseError", err)
			}
		})
	}
	// Extension elements in other namespaces are ignored, not rejected.
	ok := `<x xmlns='jabber:x:data' type='form'><field var='a'><validate xmlns='http://jabber.org/protocol/xdata-validate'/><value>1</value></field><other xmlns='urn:o'/></x>`
	f, err := Parse([]byte(ok))
	if err != nil || f.Value("a") != "1" {
		t.Errorf("extension form: %v %+v", err, f)
	}
}

func FuzzParse(f *testing.F) {
	v := vector{NA: "SKLnPOfxc+Dm1xMu9ehEbw==", He: "qIhWQpy03dgsFARKtugaqsfYGOxlYdOUZK4y2mF2wzg="}
	f.Add([]byte(requestXML(v)))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='submit'><field var='accept'><value>0</value></field><field var='reason'><value>busy &amp; away</value></field></x>`))
	f.Add([]byte(`<x xmlns='jabber:x:data' type='result'><title>t</title><instructions>i</instructions><reported><field var='a'/></reported><item><field var='a'><value>1</value></field></item></x>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fm, err := Parse(in)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		// Rebuilding from the model gives a form whose model is the same.
		re := &Form{Type: fm.Type, Title: fm.Title, Instructions: fm.Instructions, Fields: fm.Fields}
		back, err := Parse(re.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, re.Marshal())
		}
		if !reflect.DeepEqual(normal(back), normal(re)) {
			t.Fatalf("model changed:\n%+v\n%+v", back.Fields, re.Fields)
		}
		// What we would send (or echo) of a received form parses back to
		// the same normalised content.
		again, err := Parse(fm.Element().Marshal(""))
		if err != nil {
			t.Fatalf("re-parse of the received tree: %v", err)
		}
		if string(again.Canonical()) != string(fm.Canonical()) {
			t.Fatalf("normalised content changed:\n%s\n%s", again.Canonical(), fm.Canonical())
		}
	})
}

func normal(f *Form) []Field {
	var out []Field
	for _, fl := range f.Fields {
		c := *fl
		if len(c.Values) == 0 {
			c.Values = nil
		}
		if len(c.Options) == 0 {
			c.Options = nil
		}
		out = append(out, c)
	}
	return out
}
