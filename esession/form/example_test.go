package form_test

import (
	"fmt"

	"github.com/balcony-im/balcony/esession/form"
)

// The normalised content that XEP-0116 and XEP-0217 MAC: whitespace between
// elements dropped, attributes sorted and double-quoted, empty elements
// expanded, no namespace declarations; field order and values as received.
func ExampleForm_Canonical() {
	f, err := form.Parse([]byte(`<x xmlns='jabber:x:data' type='form'>
  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:ssn</value></field>
  <field var='accept' type='boolean'>
    <value>1</value>
    <required/>
  </field>
</x>`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(f.Canonical()))
	// Output:
	// <field type="hidden" var="FORM_TYPE"><value>urn:xmpp:ssn</value></field><field type="boolean" var="accept"><value>1</value><required></required></field>
}
