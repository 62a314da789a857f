package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"strings"
	"testing"
)

func TestElement(t *testing.T) {
	k := keys(t)
	msg := sealFor(t, imContent(bobJID), k.alice, k.bob)
	b64 := base64.StdEncoding.EncodeToString(msg)

	el := Element{Data: msg}.Element()
	if el.String() != `<openpgp xmlns="urn:xmpp:openpgp:0">`+b64+`</openpgp>` {
		t.Errorf("Element: %s", el)
	}
	if got, err := ParseElement(el); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("ParseElement: %v", err)
	}

	// XEP-0373 example 1 and XEP-0374 example 3, with a real message in
	// place of the placeholder, indented as in the examples.
	for file, placeholder := range map[string]string{
		"xep0373-ex01.xml": "BASE64_OPENPGP_MESSAGE",
		"xep0374-ex03.xml": "BASE64_OPENPGP_MESSAGE_CONTAINING_CONTENT_ELEMENT",
	} {
		ex := readTestdata(t, "xep/"+file)
		if _, err := ParseElement(findElement(t, ex, xml.Name{Space: NS, Local: "openpgp"})); err == nil {
			t.Errorf("%s: placeholder accepted as Base64", file)
		}
		ex = bytes.Replace(ex, []byte(placeholder), []byte(wrap(b64, 64, "\n    ")), 1)
		got, err := ParseElement(findElement(t, ex, xml.Name{Space: NS, Local: "openpgp"}))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s: %v", file, err)
		}
		if op, err := opener(t, k.bob).Open(got, bobParams(k)); err != nil || !op.Verified {
			t.Fatalf("%s: %v", file, err)
		}
	}

	for name, in := range map[string]string{
		"unpadded":    `<openpgp xmlns='urn:xmpp:openpgp:0'>` + strings.TrimRight(b64, "=") + `</openpgp>`,
		"tabs and cr": "<openpgp xmlns='urn:xmpp:openpgp:0'>\t" + wrap(b64, 10, "\r\n\t") + "\r\n</openpgp>",
		"prefixed":    `<x:openpgp xmlns:x='urn:xmpp:openpgp:0'>` + b64 + `</x:openpgp>`,
		"entity":      `<openpgp xmlns='urn:xmpp:openpgp:0'>` + b64[:4] + `&#x20;` + b64[4:] + `</openpgp>`,
		"cdata":       `<openpgp xmlns='urn:xmpp:openpgp:0'><![CDATA[` + b64 + `]]></openpgp>`,
	} {
		got, err := parseXML([]byte(in), ParseElement)
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%s: %v", name, err)
		}
	}
	armored, _ := Armor(msg)
	for name, in := range map[string]string{
		"armor":        `<openpgp xmlns='urn:xmpp:openpgp:0'>` + string(armored) + `</openpgp>`,
		"bad base64":   `<openpgp xmlns='urn:xmpp:openpgp:0'>` + b64[:10] + "!" + b64[11:] + `</openpgp>`,
		"bad padding":  `<openpgp xmlns='urn:xmpp:openpgp:0'>` + b64 + `==</openpgp>`,
		"empty":        `<openpgp xmlns='urn:xmpp:openpgp:0'/>`,
		"child":        `<openpgp xmlns='urn:xmpp:openpgp:0'><x/>` + b64 + `</openpgp>`,
		"wrong ns":     `<openpgp xmlns='urn:xmpp:openpgp:1'>` + b64 + `</openpgp>`,
		"two elements": `<openpgp xmlns='urn:xmpp:openpgp:0'>` + b64 + `</openpgp><openpgp xmlns='urn:xmpp:openpgp:0'>` + b64 + `</openpgp>`,
		"not xml":      b64,
		"unclosed":     `<openpgp xmlns='urn:xmpp:openpgp:0'>` + b64,
	} {
		if _, err := parseXML([]byte(in), ParseElement); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
