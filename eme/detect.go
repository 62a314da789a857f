package eme

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/balcony-im/balcony/xmltree"
)

// Stanza namespaces in which a <message/> is accepted. A stanza cut out of
// a stream may also arrive with no namespace at all.
const (
	nsClient = "jabber:client"
	nsServer = "jabber:server"
)

// stanzaNS reports whether ns is a namespace of stanza content. A <body/>
// is accepted in any of them, so that a start element built by hand (with
// no namespace) and children resolved by a stream decoder still match.
func stanzaNS(ns string) bool {
	return ns == "" || ns == nsClient || ns == nsServer
}

// Defaults for the zero Detector.
const (
	DefaultMaxSize  = 1 << 20 // bytes of XML per message
	DefaultMaxDepth = 64      // element nesting, <message/> being 1
)

// A Detector classifies messages within size and nesting limits. The zero
// value uses DefaultMaxSize and DefaultMaxDepth. A Detector has no state
// and is safe for concurrent use.
type Detector struct {
	// MaxSize limits the input: the length of the XML for Detect, the
	// total length of names, attribute values and text for DetectTokens.
	MaxSize int
	// MaxDepth limits element nesting.
	MaxDepth int
}

// A Payload is the encrypted payload of a known mechanism, found among the
// direct children of a message.
type Payload struct {
	// Namespace names the mechanism.
	Namespace string
	// Element is the local name of the child that carries the payload:
	// "openpgp", "x", "encrypted", "c", or "body" for OTR.
	Element string
	// Control reports a message of the mechanism that carries no user
	// content: an OTR query, error or key-exchange message, an OMEMO
	// <encrypted/> without <payload/> (an empty OMEMO message or key
	// transport, XEP-0384 "Message structure description"), or an XEP-0200
	// <c/> without <data/> (a re-key stanza, XEP-0200 §9).
	Control bool
}

// A DisagreementKind says how the encryption markers of a message
// contradict each other.
type DisagreementKind int

const (
	// TagsDiffer: the message has EME tags for different namespaces.
	TagsDiffer DisagreementKind = iota + 1
	// TagPayloadDiffer: the tag names one mechanism and the message
	// carries the payload of another (or of several).
	TagPayloadDiffer
	// TagWithoutPayload: the tag names a mechanism Balcony knows but the
	// message carries no payload of it.
	TagWithoutPayload
	// PayloadsDiffer: an untagged message carries the payloads of several
	// mechanisms.
	PayloadsDiffer
)

var disagreementNames = [...]string{"", "tags-differ", "tag-payload-differ", "tag-without-payload", "payloads-differ"}

func (k DisagreementKind) String() string {
	if k <= 0 || int(k) >= len(disagreementNames) {
		return "DisagreementKind(?)"
	}
	return disagreementNames[k]
}

// A Disagreement reports encryption markers that contradict each other.
// Detect reports it instead of choosing one of them.
type Disagreement struct {
	Kind   DisagreementKind
	Tagged []string // distinct namespaces of the EME tags, in document order
	Found  []string // distinct namespaces of the payloads, in document order
}

// Namespaces returns every namespace involved, tags first, without
// duplicates.
func (d *Disagreement) Namespaces() []string {
	return distinct(append(append([]string(nil), d.Tagged...), d.Found...))
}

// String describes the disagreement for logs. Remote namespaces appear
// sanitised.
func (d *Disagreement) String() string {
	list := func(nss []string) string {
		var s []string
		for _, ns := range nss {
			if len(s) == maxListed {
				s = append(s, "…")
				break
			}
			s = append(s, sanitizeNamespace(ns))
		}
		return strings.Join(s, ", ")
	}
	switch d.Kind {
	case TagsDiffer:
		return "tagged with different mechanisms: " + list(d.Tagged)
	case TagPayloadDiffer:
		return "tagged " + list(d.Tagged) + " but carries " + list(d.Found)
	case TagWithoutPayload:
		return "tagged " + list(d.Tagged) + " but carries no payload of it"
	case PayloadsDiffer:
		return "carries payloads of different mechanisms: " + list(d.Found)
	}
	return "no disagreement"
}

// A Detection is what Detect found in a message.
//
// Encrypted and Control are never both true. When Encrypted is true the
// body must not be shown as a message: it is ciphertext or a fallback text.
// The client opens the message with Mechanism if it can, and otherwise
// delivers d.Notice(reason) instead. When Control is true the message is
// session management of a mechanism (an OTR query or key exchange, an empty
// OMEMO message, an ESession re-key) with no user content; the client hands
// it to that mechanism if enabled. When both are false the message is
// plaintext as far as encryption is concerned; an OTR whitespace tag in the
// body (OTR == OTRWhitespaceTag) is removed before showing it.
type Detection struct {
	// Tags are the well-formed EME tags among the direct children of the
	// message, in document order. Their Name is remote input.
	Tags []Encryption
	// MalformedTags counts <encryption/> children that were ignored
	// because their namespace was missing or too long.
	MalformedTags int
	// Payloads are the payloads of known mechanisms among the direct
	// children, in document order, except OTR: it is found in the body and
	// listed once, last, with Element "body".
	Payloads []Payload
	// HasBody reports a <body/> child in a stanza namespace (jabber:client,
	// jabber:server or none).
	HasBody bool
	// OTR classifies the body (the most significant one if there are
	// several) and OTRVersion is the version it uses; see ClassifyOTR.
	OTR        OTRKind
	OTRVersion int
	// Encrypted reports that the message counts as encrypted: it has an
	// EME tag (even a malformed one, or one for an unknown mechanism), or a
	// payload of a known mechanism that carries user content.
	Encrypted bool
	// Control reports an untagged message whose payloads all carry no
	// user content.
	Control bool
	// Mechanism is the namespace of the mechanism, set when the tags and
	// payloads name exactly one; also when Disagreement is
	// TagWithoutPayload. Empty for plaintext, for contradictory markers
	// and for malformed tags alone. It may be a namespace Balcony does not
	// know.
	Mechanism string
	// Disagreement is non-nil when the markers contradict each other.
	Disagreement *Disagreement
}

// Tag returns the first tag for Mechanism, which holds the remote 'name'.
func (d Detection) Tag() (Encryption, bool) {
	for _, t := range d.Tags {
		if t.Namespace == d.Mechanism && d.Mechanism != "" {
			return t, true
		}
	}
	return Encryption{}, false
}

// Known reports whether Mechanism is a mechanism Balcony knows.
func (d Detection) Known() bool {
	_, ok := Lookup(d.Mechanism)
	return ok
}

// Detect classifies the raw XML of one <message/> stanza in the jabber:client
// or jabber:server namespace (or none). It uses the zero Detector.
func Detect(stanza []byte) (Detection, error) {
	return Detector{}.Detect(stanza)
}

// DetectTokens is Detect over tokens; see Detector.DetectTokens.
func DetectTokens(r xml.TokenReader) (Detection, error) {
	return Detector{}.DetectTokens(r)
}

// Detect classifies the raw XML of one <message/> stanza: it builds the
// stanza's tree (xmltree.Parse, within the Detector's limits) and runs
// DetectElement on it. A client that has the tree already calls
// DetectElement directly.
//
// Errors are of type *ParseError: input above the limits (wrapping
// ErrTooLarge), XML that is not well formed, a document type declaration
// (XMPP forbids it; only the five predefined entities and character
// references are expanded), a root element that is not a message, or
// anything but white space after it.
func (dt Detector) Detect(stanza []byte) (Detection, error) {
	if max := dt.maxSize(); len(stanza) > max {
		return Detection{}, &ParseError{Msg: fmt.Sprintf("message larger than %d bytes", max), Err: ErrTooLarge}
	}
	st, err := xmltree.Parse(stanza, dt.limits())
	if err != nil {
		return Detection{}, parseErr(err)
	}
	return dt.element(st)
}

// DetectTokens classifies a message read from r, whose first token (after
// white space, comments or an XML declaration) must be the <message/> start
// element; r is read up to and including the matching end element. Names
// must be resolved, as xml.Decoder.Token (not RawToken) does. A handler
// that has already consumed the start element passes
// xmlstream.MultiReader(xmlstream.Token(start), r).
func (dt Detector) DetectTokens(r xml.TokenReader) (Detection, error) {
	for empty := 0; ; {
		tok, err := r.Token()
		switch t := tok.(type) {
		case xml.StartElement:
			st, err := xmltree.FromTokens(r, t, dt.limits())
			if err != nil {
				return Detection{}, parseErr(err)
			}
			return dt.element(st)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return Detection{}, &ParseError{Msg: "text before message"}
			}
		case xml.Comment, xml.ProcInst:
		case nil:
			if err == nil {
				// Do not spin on a reader that returns neither token nor
				// error.
				if empty++; empty > 100 {
					return Detection{}, &ParseError{Msg: "reading message", Err: io.ErrNoProgress}
				}
				continue
			}
		default:
			return Detection{}, &ParseError{Msg: fmt.Sprintf("unexpected token %T before message", tok)}
		}
		if err == io.EOF {
			return Detection{}, &ParseError{Msg: "reading message", Err: io.ErrUnexpectedEOF}
		}
		if err != nil {
			return Detection{}, &ParseError{Msg: "reading message", Err: err}
		}
	}
}

// DetectElement classifies a <message/> stanza already built into a tree,
// the way a client that parsed it once does (in the jabber:client or
// jabber:server namespace, or none). Only the direct children of the
// message are examined; a client unwraps carbons and archived messages
// first and passes the inner <message/>. DetectElement does not look at the
// 'type' attribute: a client treats type='error' bounces, which may echo
// the original payload, as delivery failures before calling it. The only
// error is a root that is not a message (a *ParseError).
func DetectElement(st *xmltree.Element) (Detection, error) {
	return Detector{}.element(st)
}

func (dt Detector) element(st *xmltree.Element) (Detection, error) {
	if st.Name.Local != "message" || !stanzaNS(st.Name.Space) {
		return Detection{}, &ParseError{Msg: fmt.Sprintf("not a message: element %q in namespace %q", trimForError(st.Name.Local), trimForError(st.Name.Space))}
	}
	var s detectState
	for _, c := range st.Children {
		el, ok := c.(*xmltree.Element)
		if !ok {
			continue
		}
		s.startChild(el)
		switch s.cur {
		case childBody:
			s.body = el.Text()
		case childOMEMO:
			s.content = el.Child(s.curNS, "payload") != nil
		case childSession:
			s.content = el.Child(ESession, "data") != nil
		}
		s.endChild()
	}
	s.resolve()
	return s.d, nil
}

// limits are the tree limits for the Detector's bounds.
func (dt Detector) limits() *xmltree.Limits {
	l := xmltree.DefaultLimits
	l.MaxBytes = dt.maxSize()
	l.MaxDepth = dt.maxDepth()
	return &l
}

// parseErr turns a tree error into a *ParseError.
func parseErr(err error) error {
	if errors.Is(err, xmltree.ErrLimit) {
		return &ParseError{Msg: "message above the size or depth limits", Err: ErrTooLarge}
	}
	return &ParseError{Msg: "reading message", Err: err}
}

func (dt Detector) maxSize() int {
	if dt.MaxSize > 0 {
		return dt.MaxSize
	}
	return DefaultMaxSize
}

func (dt Detector) maxDepth() int {
	if dt.MaxDepth > 0 {
		return dt.MaxDepth
	}
	return DefaultMaxDepth
}

// child is the direct child of <message/> being read.
type child int

const (
	childOther child = iota
	childBody
	childOMEMO   // <encrypted/> of an OMEMO namespace: content needs <payload/>
	childSession // XEP-0200 <c/>: content needs <data/>
)

type detectState struct {
	d       Detection
	cur     child
	curNS   string
	content bool
	body    string
}

func (s *detectState) startChild(t *xmltree.Element) {
	s.cur, s.curNS, s.content = childOther, t.Name.Space, false
	switch {
	case t.Name.Space == NS && t.Name.Local == "encryption":
		if e, err := decodeEncryption(xml.StartElement{Name: t.Name, Attr: t.Attr}); err == nil {
			s.d.Tags = append(s.d.Tags, e)
		} else {
			s.d.MalformedTags++
		}
	case t.Name.Local == "body" && stanzaNS(t.Name.Space):
		s.cur = childBody
		s.d.HasBody = true
	case t.Name.Space == OX && t.Name.Local == "openpgp",
		t.Name.Space == LegacyOpenPGP && t.Name.Local == "x":
		s.addPayload(Payload{Namespace: t.Name.Space, Element: t.Name.Local})
	case (t.Name.Space == OMEMO0 || t.Name.Space == OMEMO1 || t.Name.Space == OMEMO2) && t.Name.Local == "encrypted":
		s.cur = childOMEMO
	case t.Name.Space == ESession && t.Name.Local == "c":
		s.cur = childSession
	}
}

func (s *detectState) endChild() {
	switch s.cur {
	case childBody:
		kind, version := ClassifyOTR(s.body)
		if kind.priority() > s.d.OTR.priority() {
			s.d.OTR, s.d.OTRVersion = kind, version
		}
	case childOMEMO:
		s.addPayload(Payload{Namespace: s.curNS, Element: "encrypted", Control: !s.content})
	case childSession:
		s.addPayload(Payload{Namespace: ESession, Element: "c", Control: !s.content})
	}
	s.cur = childOther
}

func (s *detectState) addPayload(p Payload) {
	s.d.Payloads = append(s.d.Payloads, p)
}

// resolve decides Encrypted, Control, Mechanism and Disagreement from the
// tags and payloads found.
func (s *detectState) resolve() {
	d := &s.d
	if k := d.OTR; k.Encrypted() || k.Control() {
		// OTR travels in the body; the most significant body decides.
		d.Payloads = append(d.Payloads, Payload{Namespace: OTR, Element: "body", Control: k.Control()})
	}
	var tagged, found []string
	for _, t := range d.Tags {
		tagged = append(tagged, t.Namespace)
	}
	tagged = distinct(tagged)
	content := false
	for _, p := range d.Payloads {
		found = append(found, p.Namespace)
		content = content || !p.Control
	}
	found = distinct(found)

	var kind DisagreementKind
	switch {
	case len(tagged) > 1:
		kind = TagsDiffer
	case len(tagged) == 1 && len(found) == 0:
		if _, ok := Lookup(tagged[0]); ok {
			kind = TagWithoutPayload
		}
	case len(tagged) == 1 && (len(found) > 1 || found[0] != tagged[0]):
		kind = TagPayloadDiffer
	case len(tagged) == 0 && len(found) > 1:
		kind = PayloadsDiffer
	}
	if kind != 0 {
		d.Disagreement = &Disagreement{Kind: kind, Tagged: tagged, Found: found}
	}
	if all := distinct(append(append([]string(nil), tagged...), found...)); len(all) == 1 {
		d.Mechanism = all[0]
	}
	d.Encrypted = len(tagged) > 0 || d.MalformedTags > 0 || content
	d.Control = !d.Encrypted && len(d.Payloads) > 0
}

// distinct removes repeated strings, keeping the first occurrence.
func distinct(ss []string) []string {
	var out []string
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
