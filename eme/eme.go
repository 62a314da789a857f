package eme

import (
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco/info"
)

// NS is the XML namespace of the <encryption/> element and the service
// discovery feature of XEP-0380.
const NS = "urn:xmpp:eme:0"

// Feature is the service discovery feature that entities implementing
// XEP-0380 MUST advertise (XEP-0380 §3.3). It is part of the entity
// capabilities hash like any other feature.
var Feature = info.Feature{Var: NS}

// MaxNamespaceLen is the longest 'namespace' attribute, in bytes, that
// Encryption accepts when it unmarshals an element. Real namespaces are far
// shorter; the limit keeps remote input out of notices and logs.
const MaxNamespaceLen = 1024

// ErrMissingNamespace is the error (wrapped in a *ParseError) for an
// <encryption/> element without its required 'namespace' attribute.
var ErrMissingNamespace = errors.New("eme: encryption element without namespace")

// ErrTooLarge is the error (wrapped in a *ParseError) for input above a size
// or nesting limit.
var ErrTooLarge = errors.New("eme: input too large")

// A ParseError reports input that could not be parsed: an <encryption/>
// element, a message given to Detect or a policy string.
type ParseError struct {
	Msg string // what was wrong, without the "eme: " prefix
	Err error  // the underlying error, if any
}

func (e *ParseError) Error() string {
	if e.Err == nil {
		return "eme: " + e.Msg
	}
	return "eme: " + e.Msg + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// Encryption is the <encryption xmlns='urn:xmpp:eme:0'/> element (XEP-0380
// §3.1, §9). Namespace is required and names the mechanism; Name is an
// optional human-readable name that senders include only for mechanisms not
// listed in XEP-0380 §3.2.
//
// A received Name is remote input: never show it directly. DisplayName and
// Notice use Balcony's own name for every namespace it knows and show a
// remote name only through SanitizeName.
type Encryption struct {
	Namespace string
	Name      string
}

// NewTag returns the tag to add to an outgoing message encrypted with the
// mechanism identified by namespace. Following XEP-0380 §3.2 and §4, Name is
// filled in only for mechanisms that Balcony knows and XEP-0380 does not
// list (Encrypted Sessions); listed and unknown mechanisms get no name.
func NewTag(namespace string) Encryption {
	e := Encryption{Namespace: namespace}
	if m, ok := Lookup(namespace); ok && !m.Listed {
		e.Name = m.Name
	}
	return e
}

func (e Encryption) start() xml.StartElement {
	attrs := []xml.Attr{{Name: xml.Name{Local: "namespace"}, Value: e.Namespace}}
	if e.Name != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "name"}, Value: e.Name})
	}
	return xml.StartElement{Name: xml.Name{Space: NS, Local: "encryption"}, Attr: attrs}
}

type errReader struct{ err error }

func (r errReader) Token() (xml.Token, error) { return nil, r.err }

// TokenReader implements xmlstream.Marshaler. If Namespace is empty the
// reader returns ErrMissingNamespace instead of an invalid element.
func (e Encryption) TokenReader() xml.TokenReader {
	if e.Namespace == "" {
		return errReader{&ParseError{Msg: "cannot marshal encryption element", Err: ErrMissingNamespace}}
	}
	return xmlstream.Wrap(nil, e.start())
}

// WriteXML implements xmlstream.WriterTo.
func (e Encryption) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, e.TokenReader())
}

// MarshalXML implements xml.Marshaler. The start element passed by the
// encoder is ignored: the element is always <encryption xmlns='urn:xmpp:eme:0'/>.
func (e Encryption) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	if _, err := e.WriteXML(enc); err != nil {
		return err
	}
	return enc.Flush()
}

// UnmarshalXML implements xml.Unmarshaler. It fails with a *ParseError if
// the element is not <encryption xmlns='urn:xmpp:eme:0'/>, if 'namespace' is
// missing or empty (it is required by the XEP-0380 §9 schema) or longer than
// MaxNamespaceLen. Child elements are skipped.
func (e *Encryption) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	v, err := decodeEncryption(start)
	if err != nil {
		return err
	}
	if err := d.Skip(); err != nil {
		return &ParseError{Msg: "reading encryption element", Err: err}
	}
	*e = v
	return nil
}

// decodeEncryption reads the attributes of an <encryption/> start element.
func decodeEncryption(start xml.StartElement) (Encryption, error) {
	if start.Name.Space != NS || start.Name.Local != "encryption" {
		return Encryption{}, &ParseError{Msg: fmt.Sprintf("unexpected element %q in namespace %q", trimForError(start.Name.Local), trimForError(start.Name.Space))}
	}
	var e Encryption
	var haveNS, haveName bool
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "namespace":
			if !haveNS {
				e.Namespace, haveNS = a.Value, true
			}
		case "name":
			if !haveName {
				e.Name, haveName = a.Value, true
			}
		}
	}
	if e.Namespace == "" {
		return Encryption{}, &ParseError{Msg: "invalid encryption element", Err: ErrMissingNamespace}
	}
	if len(e.Namespace) > MaxNamespaceLen {
		return Encryption{}, &ParseError{Msg: fmt.Sprintf("encryption namespace longer than %d bytes", MaxNamespaceLen), Err: ErrTooLarge}
	}
	return e, nil
}

// trimForError shortens remote input quoted in error messages.
func trimForError(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

var _ xml.Marshaler = Encryption{}
var _ xml.Unmarshaler = (*Encryption)(nil)
var _ xmlstream.Marshaler = Encryption{}
var _ xmlstream.WriterTo = Encryption{}
