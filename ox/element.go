package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
)

// Element is the <openpgp xmlns='urn:xmpp:openpgp:0'/> stanza extension
// (XEP-0373 §3.1). Its text is the Base64 encoding (RFC 4648 §4) of the binary
// OpenPGP message, never ASCII armor.
type Element struct {
	// Data is the binary OpenPGP message, as returned by [Seal] and taken by
	// [Opener.Open].
	Data []byte
}

// TokenReader implements xmlstream.Marshaler.
func (e Element) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(
		xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(e.Data))),
		xml.StartElement{Name: xml.Name{Space: NS, Local: "openpgp"}},
	)
}

// WriteXML implements xmlstream.WriterTo.
func (e Element) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, e.TokenReader())
}

// MarshalXML implements xml.Marshaler.
func (e Element) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	if _, err := e.WriteXML(enc); err != nil {
		return err
	}
	return enc.Flush()
}

// UnmarshalXML implements xml.Unmarshaler. White space inside the Base64 text
// is ignored, as are missing padding characters; ASCII armor and child
// elements are rejected.
func (e *Element) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	return e.decode(&stdTokens{r: d}, startToken(start))
}

func (e *Element) decode(d tokens, start *token) error {
	if start.name.Space != NS || start.name.Local != "openpgp" {
		return fmt.Errorf("ox: expected <openpgp xmlns='%s'/>, got {%s}%s", NS, start.name.Space, start.name.Local)
	}
	text, err := elementText(d)
	if err != nil {
		return err
	}
	if bytes.Contains(text, []byte("-----BEGIN")) {
		return errors.New("ox: <openpgp/> must hold Base64, not ASCII armor")
	}
	data, err := decodeBase64(text)
	if err != nil {
		return fmt.Errorf("ox: <openpgp/>: %w", err)
	}
	if len(data) == 0 {
		return errors.New("ox: empty <openpgp/> element")
	}
	e.Data = data
	return nil
}

// Marshal returns the XML encoding of the element.
func (e Element) Marshal() []byte {
	b := make([]byte, 0, 48+base64.StdEncoding.EncodedLen(len(e.Data)))
	b = append(b, `<openpgp xmlns="`+NS+`">`...)
	b = base64.StdEncoding.AppendEncode(b, e.Data)
	return append(b, "</openpgp>"...)
}

// ParseElement parses an <openpgp/> element and returns the binary OpenPGP
// message it carries.
func ParseElement(b []byte) ([]byte, error) {
	if data, ok := parseElementFast(b); ok {
		return data, nil
	}
	var e Element
	if err := decodeOne(b, e.decode); err != nil {
		return nil, err
	}
	return e.Data, nil
}

// parseElementFast handles the <openpgp/> element as Balcony and other
// clients write it: the namespace declaration as the only attribute and
// nothing but Base64 and line breaks inside. Such text means the same to XML
// and to Base64 (which ignores line breaks), so the result equals the full
// parser's; anything else goes to the full parser.
func parseElementFast(b []byte) ([]byte, bool) {
	b = bytes.TrimSpace(b)
	var text []byte
	for _, open := range []string{`<openpgp xmlns="` + NS + `">`, `<openpgp xmlns='` + NS + `'>`} {
		if rest, ok := bytes.CutPrefix(b, []byte(open)); ok {
			text, ok = bytes.CutSuffix(rest, []byte("</openpgp>"))
			if !ok {
				return nil, false
			}
			break
		}
	}
	if len(text) == 0 {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Strict().Decode(out, text)
	if err != nil || n == 0 {
		return nil, false
	}
	return out[:n], true
}

// decodeOne decodes exactly one element from b with decode, rejecting
// anything but white space and comments around it.
func decodeOne(b []byte, decode func(tokens, *token) error) error {
	_, err := parseXML(b, "", func(d tokens) (struct{}, error) {
		return struct{}{}, decodeOneTokens(d, decode)
	})
	return err
}

func decodeOneTokens(d tokens, decode func(tokens, *token) error) error {
	var t *token
	for {
		var err error
		t, err = d.next()
		if err != nil {
			if err == io.EOF {
				err = errors.New("no element")
			}
			return fmt.Errorf("ox: invalid XML: %w", err)
		}
		switch t.kind {
		case tokStart:
			if err := decode(d, t); err != nil {
				return err
			}
			for {
				var err error
				t, err = d.next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("ox: invalid XML: %w", err)
				}
				switch t.kind {
				case tokText:
					if !isSpace(t.text) {
						return errors.New("ox: text after the element")
					}
				case tokComment:
				default:
					return errors.New("ox: more than one element")
				}
			}
		case tokText:
			if !isSpace(t.text) {
				return errors.New("ox: text before the element")
			}
		case tokProcInst, tokComment:
		default:
			return errors.New("ox: unexpected XML before the element")
		}
	}
}

// elementText returns the text of the current element, which must not have
// child elements, and consumes its end element.
func elementText(d tokens) ([]byte, error) {
	var text []byte
	var t *token
	for {
		var err error
		if t, err = d.next(); err != nil {
			return nil, fmt.Errorf("ox: invalid XML: %w", err)
		}
		switch t.kind {
		case tokText:
			text = append(text, t.text...)
		case tokEnd:
			return text, nil
		case tokStart:
			return nil, fmt.Errorf("ox: unexpected element <%s/>", t.name.Local)
		case tokDirective:
			return nil, errors.New("ox: unexpected XML directive")
		}
	}
}

// decodeBase64 decodes standard Base64, ignoring white space anywhere (the
// XEP examples indent it) and tolerating missing padding.
func decodeBase64(text []byte) ([]byte, error) {
	clean := make([]byte, 0, len(text))
	for _, c := range text {
		switch c {
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
