package ox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/balcony-im/balcony/xmltree"
)

// Element is the <openpgp xmlns='urn:xmpp:openpgp:0'/> stanza extension
// (XEP-0373 §3.1). Its text is the Base64 encoding (RFC 4648 §4) of the binary
// OpenPGP message, never ASCII armor.
type Element struct {
	// Data is the binary OpenPGP message, as returned by [Seal] and taken by
	// [Opener.Open].
	Data []byte
}

// Element returns the <openpgp/> element, to be put in a message stanza.
func (e Element) Element() *xmltree.Element {
	return xmltree.New(NS, "openpgp").AppendText(base64.StdEncoding.EncodeToString(e.Data))
}

// ParseElement returns the binary OpenPGP message an <openpgp/> element
// carries. White space inside the Base64 text is ignored, as are missing
// padding characters; ASCII armor and child elements are rejected.
func ParseElement(el *xmltree.Element) ([]byte, error) {
	if data, ok := elementDataFast(el); ok {
		return data, nil
	}
	return elementData(el)
}

// elementDataFast handles the <openpgp/> element as Balcony and other
// clients write it: one piece of padded Base64 text, perhaps with line
// breaks. Such text means the same to elementData (which ignores white
// space), so the result is the same; anything else goes to elementData.
func elementDataFast(el *xmltree.Element) ([]byte, bool) {
	if el.Name.Space != NS || el.Name.Local != "openpgp" || len(el.Children) != 1 {
		return nil, false
	}
	text, ok := el.Children[0].(xmltree.CharData)
	if !ok || len(text) == 0 {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Strict().Decode(out, []byte(text))
	if err != nil || n == 0 {
		return nil, false
	}
	return out[:n], true
}

func elementData(el *xmltree.Element) ([]byte, error) {
	if el.Name.Space != NS || el.Name.Local != "openpgp" {
		return nil, fmt.Errorf("ox: expected <openpgp xmlns='%s'/>, got {%s}%s", NS, el.Name.Space, el.Name.Local)
	}
	text, err := leafText(el)
	if err != nil {
		return nil, err
	}
	if strings.Contains(text, "-----BEGIN") {
		return nil, errors.New("ox: <openpgp/> must hold Base64, not ASCII armor")
	}
	data, err := decodeBase64(text)
	if err != nil {
		return nil, fmt.Errorf("ox: <openpgp/>: %w", err)
	}
	if len(data) == 0 {
		return nil, errors.New("ox: empty <openpgp/> element")
	}
	return data, nil
}

// decodeBase64 decodes standard Base64, ignoring white space anywhere (the
// XEP examples indent it) and tolerating missing padding.
func decodeBase64(text string) ([]byte, error) {
	clean := make([]byte, 0, len(text))
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			clean = append(clean, c)
		}
	}
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Strict().Decode(out, clean)
	if err != nil {
		return nil, errors.New("invalid Base64")
	}
	return out[:n], nil
}
