package ox

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Kind is the kind of an OpenPGP content element (XEP-0373 §3.1).
type Kind uint8

// The three content elements. The IM profile uses only Signcrypt
// (XEP-0374 §3.1).
const (
	// Signcrypt: signed and encrypted. At least one <to/>.
	Signcrypt Kind = iota + 1
	// Sign: signed, not encrypted. At least one <to/>.
	Sign
	// Crypt: encrypted, not signed. <to/> optional.
	Crypt
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case Signcrypt:
		return "signcrypt"
	case Sign:
		return "sign"
	case Crypt:
		return "crypt"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= Signcrypt && k <= Crypt }

// signed and encrypted report how an OpenPGP message carrying this kind must be
// built (XEP-0373 §3.1).
func (k Kind) signed() bool    { return k == Signcrypt || k == Sign }
func (k Kind) encrypted() bool { return k == Signcrypt || k == Crypt }

func kindOf(local string) Kind {
	switch local {
	case "signcrypt":
		return Signcrypt
	case "sign":
		return Sign
	case "crypt":
		return Crypt
	}
	return 0
}

// Content is an OpenPGP content element: the plaintext of an OX message.
type Content struct {
	Kind Kind

	// To lists the intended recipients (<to jid='…'/>), which should be bare
	// JIDs. Signcrypt and Sign need at least one.
	To []jid.JID

	// Time is the <time stamp='…'/> value. Marshal writes it in UTC with
	// second precision; Seal fills it in when it is zero.
	Time time.Time

	// Rpad is the random padding. Seal fills it in for Signcrypt and Crypt
	// when it is empty. Marshal omits the element when it is empty.
	Rpad string

	// Payload is the content of <payload/>: a sequence of XML elements, the
	// protected stanza extensions. When marshalling, elements without a
	// namespace declaration are in 'jabber:client'. After parsing, every
	// top-level element carries its own xmlns declaration, so the bytes can be
	// used on their own (see [ParseChildren] and [EffectiveChildren]).
	Payload []byte
}

// Marshal returns the XML encoding of the content element. The payload is
// checked to be well-formed XML and re-encoded, so nothing in it can escape
// the <payload/> element.
func (c *Content) Marshal() ([]byte, error) {
	return c.appendXML(make([]byte, 0, 256+len(c.Payload)+len(c.Rpad)))
}

func (c *Content) appendXML(dst []byte) ([]byte, error) {
	if !c.Kind.valid() {
		return nil, fmt.Errorf("ox: invalid content kind %d", c.Kind)
	}
	if c.Time.IsZero() {
		return nil, errors.New("ox: content element needs a time")
	}
	name := c.Kind.String()
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, ` xmlns="`+NS+`">`...)
	var err error
	for _, to := range c.To {
		dst = append(dst, `<to jid="`...)
		if dst, err = appendAttrValue(dst, to.String()); err != nil {
			return nil, err
		}
		dst = append(dst, `"/>`...)
	}
	dst = append(dst, `<time stamp="`...)
	dst = appendTime(dst, c.Time)
	dst = append(dst, `"/>`...)
	if c.Rpad != "" {
		dst = append(dst, "<rpad>"...)
		if dst, err = appendText(dst, []byte(c.Rpad)); err != nil {
			return nil, err
		}
		dst = append(dst, "</rpad>"...)
	}
	dst = append(dst, "<payload>"...)
	if dst, err = appendPayload(dst, c.Payload); err != nil {
		return nil, err
	}
	dst = append(dst, "</payload></"...)
	dst = append(dst, name...)
	dst = append(dst, '>')
	return dst, nil
}

// appendPayload re-encodes a sequence of elements, whose unqualified names are
// in jabber:client, as self-contained elements inside <payload/>.
func appendPayload(dst, payload []byte) ([]byte, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	n := len(dst)
	return parseXML(payload, NSClient, func(r tokens) ([]byte, error) {
		out := dst[:n]
		var t *token
		for {
			var err error
			t, err = r.next()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("ox: payload is not well-formed XML: %w", err)
			}
			switch t.kind {
			case tokStart:
				if out, err = appendElement(out, r, t, NS, true); err != nil {
					return nil, fmt.Errorf("ox: payload: %w", err)
				}
			case tokEnd:
				return nil, errors.New("ox: payload is not well-formed XML: unexpected end element")
			case tokText:
				if !isSpace(t.text) {
					return nil, errors.New("ox: payload has text outside elements")
				}
			case tokComment, tokProcInst:
			default:
				return nil, errors.New("ox: payload: unexpected XML directive")
			}
		}
	})
}

// NSClient and NSServer are the stanza namespaces; a <body/> in either is
// accepted inside <payload/> (XEP-0374 §2.2).
const (
	NSClient = "jabber:client"
	NSServer = "jabber:server"
)

// ParseError describes content that is not a valid OpenPGP content element.
type ParseError struct {
	Reason string
	Err    error // the underlying XML or JID error, if any
}

func (e *ParseError) Error() string {
	if e.Err != nil {
		return "ox: invalid content element: " + e.Reason + ": " + e.Err.Error()
	}
	return "ox: invalid content element: " + e.Reason
}

func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(reason string, err error) error { return &ParseError{Reason: reason, Err: err} }

// ParseContent parses the plaintext of an OX message: exactly one <signcrypt/>,
// <sign/> or <crypt/> element in the urn:xmpp:openpgp:0 namespace, encoded as
// UTF-8 (XEP-0373 §3.1). It requires exactly one <time/> with a parseable
// stamp, exactly one <payload/>, at most one <rpad/>, and a valid 'jid' on
// every <to/>. It does not check the number of <to/> elements: that is a
// receiver check reported by [Opener.Open]. Unknown child elements are
// ignored.
func ParseContent(b []byte) (*Content, error) {
	if !utf8.Valid(b) {
		return nil, parseErr("not UTF-8", nil)
	}
	return parseXML(b, "", parseContent)
}

func parseContent(d tokens) (*Content, error) {
	var c *Content
	var t *token
	for {
		var err error
		t, err = d.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, parseErr("malformed XML", err)
		}
		switch t.kind {
		case tokStart:
			if c != nil {
				return nil, parseErr("more than one element", nil)
			}
			if t.name.Space != NS || kindOf(t.name.Local) == 0 {
				return nil, parseErr(fmt.Sprintf("unexpected element {%s}%s", t.name.Space, t.name.Local), nil)
			}
			if c, err = parseContentBody(d, kindOf(t.name.Local)); err != nil {
				return nil, err
			}
		case tokText:
			if !isSpace(t.text) {
				return nil, parseErr("text outside the content element", nil)
			}
		case tokProcInst:
			if c != nil || t.target != "xml" {
				return nil, parseErr("unexpected processing instruction", nil)
			}
		case tokComment:
		case tokEnd:
			return nil, parseErr("unexpected end element", nil)
		default:
			return nil, parseErr("unexpected directive", nil)
		}
	}
	if c == nil {
		return nil, parseErr("no content element", nil)
	}
	return c, nil
}

func parseContentBody(d tokens, kind Kind) (*Content, error) {
	c := &Content{Kind: kind}
	var haveTime, havePayload, haveRpad bool
	var t *token
	for {
		var err error
		t, err = d.next()
		if err != nil {
			return nil, parseErr("malformed XML", err)
		}
		switch t.kind {
		case tokEnd:
			if !haveTime {
				return nil, parseErr("no <time/>", nil)
			}
			if !havePayload {
				return nil, parseErr("no <payload/>", nil)
			}
			return c, nil
		case tokDirective:
			return nil, parseErr("unexpected directive", nil)
		case tokStart:
			if t.name.Space != NS {
				if err := skip(d); err != nil {
					return nil, parseErr("malformed XML", err)
				}
				continue
			}
			switch t.name.Local {
			case "to":
				v, ok := attr(t.attr, "jid")
				if !ok {
					return nil, parseErr("<to/> without 'jid'", nil)
				}
				j, err := jid.Parse(strings.TrimSpace(v))
				if err != nil {
					return nil, parseErr("invalid <to/> 'jid'", err)
				}
				c.To = append(c.To, j)
				if err = skip(d); err != nil {
					return nil, parseErr("malformed XML", err)
				}
			case "time":
				if haveTime {
					return nil, parseErr("more than one <time/>", nil)
				}
				haveTime = true
				v, ok := attr(t.attr, "stamp")
				if !ok {
					return nil, parseErr("<time/> without 'stamp'", nil)
				}
				if c.Time, err = ParseTime(v); err != nil {
					return nil, parseErr("invalid <time/> 'stamp'", err)
				}
				if err = skip(d); err != nil {
					return nil, parseErr("malformed XML", err)
				}
			case "rpad":
				if haveRpad {
					return nil, parseErr("more than one <rpad/>", nil)
				}
				haveRpad = true
				s, err := readText(d)
				if err != nil {
					return nil, err
				}
				c.Rpad = s
			case "payload":
				if havePayload {
					return nil, parseErr("more than one <payload/>", nil)
				}
				havePayload = true
				if c.Payload, err = readPayload(d); err != nil {
					return nil, err
				}
			default:
				if err := skip(d); err != nil {
					return nil, parseErr("malformed XML", err)
				}
			}
		}
	}
}

// readPayload re-encodes the children of <payload/> as self-contained
// elements. Text directly inside <payload/> carries no meaning and is dropped.
func readPayload(d tokens) ([]byte, error) {
	out := []byte{}
	var t *token
	for {
		var err error
		t, err = d.next()
		if err != nil {
			return nil, parseErr("malformed XML", err)
		}
		switch t.kind {
		case tokEnd:
			return out, nil
		case tokStart:
			if out, err = appendElement(out, d, t, "", true); err != nil {
				return nil, parseErr("payload", err)
			}
		case tokDirective:
			return nil, parseErr("unexpected directive", nil)
		}
	}
}

// readText returns the text content of the current element, which must not
// have child elements.
func readText(d tokens) (string, error) {
	var text []byte
	var s string
	n := 0
	for {
		t, err := d.next()
		if err != nil {
			return "", parseErr("malformed XML", err)
		}
		switch t.kind {
		case tokText:
			// The usual single text token becomes the string directly.
			if n++; n == 1 {
				s = string(t.text)
			} else {
				if n == 2 {
					text = append(text, s...)
				}
				text = append(text, t.text...)
			}
		case tokEnd:
			if n > 1 {
				s = string(text)
			}
			return s, nil
		case tokStart:
			return "", parseErr("unexpected element <"+t.name.Local+"/> in text", nil)
		case tokDirective:
			return "", parseErr("unexpected directive", nil)
		}
	}
}

func attr(attrs []xml.Attr, local string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// FormatTime returns t as an XEP-0082 DateTime in UTC with second precision,
// the form Balcony sends: 2006-01-02T15:04:05Z. Use it for <time/> stamps,
// PEP item ids and 'date' attributes.
func FormatTime(t time.Time) string {
	return string(appendTime(nil, t))
}

func appendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05Z")
}

// ParseTime parses an XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD). It is
// lenient where real senders deviate: the zone may be 'Z', '+hh:mm' or
// '+hhmm' (as sent by some clients), fractional seconds may have any number
// of digits, and surrounding white space is ignored. A missing zone is an
// error, since the instant would be ambiguous.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	// The shortest valid form is 2006-01-02T15:04:05Z.
	if len(s) < 20 || len(s) > 64 || s[10] != 'T' {
		return time.Time{}, fmt.Errorf("ox: invalid XEP-0082 date-time %q", s)
	}
	t, err := time.Parse("2006-01-02T15:04:05Z07:00", s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05Z0700", s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("ox: invalid XEP-0082 date-time %q", s)
	}
	return t, nil
}

// rpadAlphabet holds the characters used for padding: XML-safe without
// escaping, 64 of them so that one random byte gives one character.
const rpadAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// maxRpad is the largest padding length; lengths are uniform in [1, maxRpad].
const maxRpad = 256

// newRpad returns random padding of random length from r.
func newRpad(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("ox: reading randomness: %w", err)
	}
	b := make([]byte, int(n[0])+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("ox: reading randomness: %w", err)
	}
	for i, c := range b {
		b[i] = rpadAlphabet[c&63]
	}
	return string(b), nil
}
