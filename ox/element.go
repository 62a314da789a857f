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
	return e.decode(d, start)
}

func (e *Element) decode(d xml.TokenReader, start xml.StartElement) error {
	if start.Name.Space != NS || start.Name.Local != "openpgp" {
		return fmt.Errorf("ox: expected <openpgp xmlns='%s'/>, got {%s}%s", NS, start.Name.Space, start.Name.Local)
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
	var e Element
	if err := decodeOne(b, e.decode); err != nil {
		return nil, err
	}
	return e.Data, nil
}

// decodeOne decodes exactly one element from b with decode, rejecting
// anything but white space and comments around it.
func decodeOne(b []byte, decode func(xml.TokenReader, xml.StartElement) error) error {
	_, err := parseXML(b, "", func(d xml.TokenReader) (struct{}, error) {
		return struct{}{}, decodeOneTokens(d, decode)
	})
	return err
}

func decodeOneTokens(d xml.TokenReader, decode func(xml.TokenReader, xml.StartElement) error) error {
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = errors.New("no element")
			}
			return fmt.Errorf("ox: invalid XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := decode(d, t); err != nil {
				return err
			}
			for {
				tok, err := d.Token()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("ox: invalid XML: %w", err)
				}
				switch t := tok.(type) {
				case xml.CharData:
					if !isSpace(t) {
						return errors.New("ox: text after the element")
					}
				case xml.Comment:
				default:
					return errors.New("ox: more than one element")
				}
			}
		case xml.CharData:
			if !isSpace(t) {
				return errors.New("ox: text before the element")
			}
		case xml.ProcInst, xml.Comment:
		default:
			return fmt.Errorf("ox: unexpected %T", tok)
		}
	}
}

// elementText returns the text of the current element, which must not have
// child elements, and consumes its end element.
func elementText(d xml.TokenReader) ([]byte, error) {
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("ox: invalid XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			return text, nil
		case xml.StartElement:
			return nil, fmt.Errorf("ox: unexpected element <%s/>", t.Name.Local)
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
