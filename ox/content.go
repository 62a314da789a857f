package ox

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
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

	// Payload holds the children of <payload/>, in order: the protected
	// stanza extensions (a <body/> in jabber:client, chat states, ...).
	// Each element carries its namespace in Name.Space and is written
	// declaring it. After parsing, the elements are parts of the parsed
	// content element (see [EffectiveChildren] for how a client processes
	// them).
	Payload []*xmltree.Element
}

// Marshal returns the XML encoding of the content element. Names, text and
// attributes of the payload are checked: an element name or attribute name
// that is not an NCName, a character XML cannot carry, a repeated attribute
// or nesting deeper than 128 levels is an error, so nothing in the payload
// can leave the <payload/> element.
func (c *Content) Marshal() ([]byte, error) {
	return c.appendXML(make([]byte, 0, c.sizeHint()))
}

// sizeHint is about the length of the content element.
func (c *Content) sizeHint() int {
	n := 160 + 48*len(c.To) + len(c.Rpad)
	for _, e := range c.Payload {
		n += sizeHint(e, 0)
	}
	return n
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
		if dst, err = appendText(dst, c.Rpad); err != nil {
			return nil, err
		}
		dst = append(dst, "</rpad>"...)
	}
	dst = append(dst, "<payload>"...)
	for _, e := range c.Payload {
		if dst, err = appendElement(dst, e, NS, true, 0); err != nil {
			return nil, fmt.Errorf("ox: payload: %w", err)
		}
	}
	dst = append(dst, "</payload></"...)
	dst = append(dst, name...)
	dst = append(dst, '>')
	return dst, nil
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

// contentLimits bound the tree ParseContent builds from a decrypted content
// element, which Open takes up to MaxPlaintext bytes long. The payload's
// children are processed as children of the stanza, so below <payload/>
// they get the room a stanza gets (xmltree.DefaultLimits: 64 levels and
// 20,000 nodes), with two levels more for the content element and
// <payload/> and a few hundred nodes for <to/>, <time/>, <rpad/> and white
// space. Every element counts its namespace URI towards MaxBytes, so a
// content element may count more bytes than it has; twice MaxPlaintext
// leaves room for any genuine one.
var contentLimits = xmltree.Limits{
	MaxDepth: xmltree.DefaultLimits.MaxDepth + 2,
	MaxNodes: xmltree.DefaultLimits.MaxNodes + 256,
	MaxBytes: 2 * MaxPlaintext,
}

// ParseContent parses the plaintext of an OX message: exactly one <signcrypt/>,
// <sign/> or <crypt/> element in the urn:xmpp:openpgp:0 namespace, encoded as
// UTF-8 (XEP-0373 §3.1). It requires exactly one <time/> with a parseable
// stamp, exactly one <payload/>, at most one <rpad/>, and a valid 'jid' on
// every <to/>. It does not check the number of <to/> elements: that is a
// receiver check reported by [Opener.Open]. Unknown child elements are
// ignored, and so is text directly inside <payload/>.
//
// The XML is read by xmltree.Parse within limits fit for a stanza's
// payload (nesting 66 levels deep counting the content element and
// <payload/>, about 20,000 elements and text pieces): input beyond them
// gives a *ParseError that wraps xmltree.ErrLimit. Every error is a
// *ParseError.
func ParseContent(b []byte) (*Content, error) {
	if !utf8.Valid(b) {
		return nil, parseErr("not UTF-8", nil)
	}
	el, err := xmltree.Parse(b, &contentLimits)
	if err != nil {
		if errors.Is(err, xmltree.ErrLimit) {
			return nil, parseErr("too large or nested too deeply", err)
		}
		return nil, parseErr("malformed XML", err)
	}
	return contentFromTree(el)
}

func contentFromTree(el *xmltree.Element) (*Content, error) {
	kind := kindOf(el.Name.Local)
	if el.Name.Space != NS || kind == 0 {
		return nil, parseErr(fmt.Sprintf("unexpected element {%s}%s", el.Name.Space, el.Name.Local), nil)
	}
	c := &Content{Kind: kind}
	var haveTime, havePayload, haveRpad bool
	for _, n := range el.Children {
		ch, ok := n.(*xmltree.Element)
		if !ok || ch.Name.Space != NS {
			continue
		}
		switch ch.Name.Local {
		case "to":
			v, ok := ch.LookupAttr("jid")
			if !ok {
				return nil, parseErr("<to/> without 'jid'", nil)
			}
			j, err := jid.Parse(strings.TrimSpace(v))
			if err != nil {
				return nil, parseErr("invalid <to/> 'jid'", err)
			}
			c.To = append(c.To, j)
		case "time":
			if haveTime {
				return nil, parseErr("more than one <time/>", nil)
			}
			haveTime = true
			v, ok := ch.LookupAttr("stamp")
			if !ok {
				return nil, parseErr("<time/> without 'stamp'", nil)
			}
			var err error
			if c.Time, err = ParseTime(v); err != nil {
				return nil, parseErr("invalid <time/> 'stamp'", err)
			}
		case "rpad":
			if haveRpad {
				return nil, parseErr("more than one <rpad/>", nil)
			}
			haveRpad = true
			s, err := leafText(ch)
			if err != nil {
				return nil, parseErr("<rpad/>", err)
			}
			c.Rpad = s
		case "payload":
			if havePayload {
				return nil, parseErr("more than one <payload/>", nil)
			}
			havePayload = true
			c.Payload = ch.Elements()
			for _, e := range c.Payload {
				if err := checkTree(e); err != nil {
					return nil, parseErr("payload", err)
				}
			}
		}
	}
	if !haveTime {
		return nil, parseErr("no <time/>", nil)
	}
	if !havePayload {
		return nil, parseErr("no <payload/>", nil)
	}
	return c, nil
}

// leafText returns the text of an element that must not have child
// elements.
func leafText(el *xmltree.Element) (string, error) {
	for _, n := range el.Children {
		if c, ok := n.(*xmltree.Element); ok {
			return "", fmt.Errorf("ox: unexpected element <%s/>", c.Name.Local)
		}
	}
	return el.Text(), nil
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
