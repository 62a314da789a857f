package esession

import (
	"errors"
	"fmt"

	"github.com/balcony-im/balcony/xmltree"
)

// Namespaces and identifiers.
const (
	// NSFeatureNeg qualifies the <feature/> element that carries XEP-0155
	// negotiation forms (XEP-0020).
	NSFeatureNeg = "http://jabber.org/protocol/feature-neg"
	// NSInit qualifies the <init/> element of XEP-0217 message 4.
	NSInit = "http://www.xmpp.org/extensions/xep-0116.html#ns-init"
	// NSStanzaEncryption qualifies the XEP-0200 <c/> element. It is the
	// namespace to put in an XEP-0380 <encryption/> tag, with EMEName.
	NSStanzaEncryption = "http://www.xmpp.org/extensions/xep-0200.html#ns"
	// FeatureESession is the service discovery feature for Encrypted
	// Session negotiation (XEP-0116 and XEP-0217).
	FeatureESession = "http://www.xmpp.org/extensions/xep-0116.html#ns"
	// FormTypeSSN is the FORM_TYPE of stanza session negotiation forms and
	// the XEP-0155 service discovery feature.
	FormTypeSSN = "urn:xmpp:ssn"
	// EMEName is the name to send in an XEP-0380 <encryption/> element
	// for NSStanzaEncryption, which XEP-0380's table does not list.
	EMEName = "Encrypted Session (XEP-0200)"

	nsClient  = "jabber:client"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsAMP     = "http://jabber.org/protocol/amp"
	nsHints   = "urn:xmpp:hints"
	nsCarbons = "urn:xmpp:carbons:2"
	nsEME     = "urn:xmpp:eme:0"
	nsDelay   = "urn:xmpp:delay"
)

// Errors callers may branch on.
var (
	// ErrAuthentication is the one error for every failed MAC, hash
	// commitment, identity check or decryption, and for any malformed
	// encrypted content. The session it concerns has been terminated and
	// its keys wiped.
	ErrAuthentication = errors.New("esession: message authentication failed")
	// ErrEnded reports an operation on a session that has ended.
	ErrEnded = errors.New("esession: session has ended")
	// ErrState reports an operation the session's state does not allow,
	// such as sending before the negotiation completed.
	ErrState = errors.New("esession: operation not allowed in this session state")
	// ErrProtocol reports a plain (unencrypted) session ended by a
	// negotiation message that had no place in it.
	ErrProtocol = errors.New("esession: unexpected negotiation message")
	// ErrNotSupported reports an operation this implementation does not
	// offer for the session (for example moving an encrypted session).
	ErrNotSupported = errors.New("esession: not supported")
)

// errAuth is returned internally; it is ErrAuthentication.
var errAuth = ErrAuthentication

// NegotiationError reports a negotiation that failed on options: the
// XEP-0155 condition ("not-acceptable", "feature-not-implemented" or
// "service-unavailable") and the fields concerned.
type NegotiationError struct {
	Condition string
	Fields    []string
	Text      string // the peer's explanation, if it gave one
}

func (e *NegotiationError) Error() string {
	s := "esession: negotiation failed: " + e.Condition
	if len(e.Fields) > 0 {
		s += fmt.Sprintf(" (fields %q)", e.Fields)
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Inbound is a received <message/> stanza, reduced to what the engine
// reads: ParseMessage fills it from the stanza's tree, whose elements it
// refers to (the engine never changes them).
type Inbound struct {
	// Kind is the stanza: StanzaMessage ("" means message too),
	// StanzaPresence or StanzaIQ. Presence and iq stanzas carry no
	// thread: their <c/> belongs to the session bound to the sender's
	// full JID that negotiated their kind (Params.Stanzas).
	Kind   string
	ID     string // the id attribute (needed to answer an iq)
	From   string // the sender's full JID
	To     string // the recipient (this client's full JID), from the 'to' attribute
	Type   string // the message type attribute ("" for normal)
	Thread string // the <thread/> value; "" when there is none
	// Feature is a <feature xmlns='http://jabber.org/protocol/feature-neg'/> child.
	Feature *xmltree.Element
	// Init is an <init xmlns='http://www.xmpp.org/extensions/xep-0116.html#ns-init'/> child.
	Init *xmltree.Element
	// C is the <c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'/> child.
	C *xmltree.Element
	// Error is the <error/> child of a type='error' message.
	Error *xmltree.Element
	// Other lists the names of the remaining children. They are never
	// delivered from an encrypted session: anything outside <c/> is
	// unauthenticated (XEP-0200 §4), so it is stripped and reported.
	Other []string
	// Subscribed reports that the sender has a presence subscription to
	// us (the roster shows subscription 'from' or 'both'). XEP-0155 §10.1:
	// without it, nothing is sent automatically in reply to a request.
	Subscribed bool
	// Delayed reports that the server stored the message for later
	// delivery (it carries an XEP-0203 <delay/>). A delayed request is
	// never accepted automatically: answering would reveal that the user
	// had been offline, and the requester wanted an immediate session
	// (XEP-0155 §4.2). Start a new session instead.
	Delayed bool
}

// MaxStanza bounds the size of the content of one encrypted stanza that
// the engine decrypts.
const MaxStanza = 512 << 10

// ParseMessage reads a received <message/> stanza (in jabber:client or
// jabber:server) into an Inbound. Subscribed is left false for the caller
// to set. Children that would be ambiguous (two <c/>, two <feature/>, two
// <thread/>) are rejected.
func ParseMessage(st *xmltree.Element) (*Inbound, error) {
	if st == nil || st.Name.Local != "message" {
		return nil, errors.New("esession: not a message stanza")
	}
	return ParseStanza(st)
}

// ParseStanza is ParseMessage for any stanza: <message/>, <presence/> or
// <iq/>. Only messages carry negotiation forms and threads; the <c/> of a
// presence or iq stanza is read, its other children are listed in Other.
func ParseStanza(st *xmltree.Element) (*Inbound, error) {
	if st == nil || (st.Name.Space != nsClient && st.Name.Space != "jabber:server") {
		return nil, errors.New("esession: not a stanza")
	}
	in := &Inbound{From: st.AttrValue("from"), To: st.AttrValue("to"), Type: st.AttrValue("type"), ID: st.AttrValue("id")}
	switch st.Name.Local {
	case "message":
		in.Kind = StanzaMessage
	case "presence":
		in.Kind = StanzaPresence
	case "iq":
		in.Kind = StanzaIQ
	default:
		return nil, errors.New("esession: not a stanza")
	}
	ns := st.Name.Space
	var thread bool
	for _, c := range st.Elements() {
		dup := func(have bool) error {
			if have {
				return fmt.Errorf("esession: more than one <%s/> in a message", c.Name.Local)
			}
			return nil
		}
		isMsg := in.Kind == StanzaMessage
		switch {
		case isMsg && c.Name.Space == ns && c.Name.Local == "thread":
			if err := dup(thread); err != nil {
				return nil, err
			}
			if len(c.Elements()) != 0 {
				return nil, errors.New("esession: <thread/> with child elements")
			}
			thread, in.Thread = true, c.Text()
		case isMsg && c.Name.Space == NSFeatureNeg && c.Name.Local == "feature":
			if err := dup(in.Feature != nil); err != nil {
				return nil, err
			}
			in.Feature = c
		case isMsg && c.Name.Space == NSInit && c.Name.Local == "init":
			if err := dup(in.Init != nil); err != nil {
				return nil, err
			}
			in.Init = c
		case c.Name.Space == NSStanzaEncryption && c.Name.Local == "c":
			if err := dup(in.C != nil); err != nil {
				return nil, err
			}
			in.C = c
		case c.Name.Space == ns && c.Name.Local == "error":
			if err := dup(in.Error != nil); err != nil {
				return nil, err
			}
			in.Error = c
		default:
			if c.Name.Space == nsDelay && c.Name.Local == "delay" {
				in.Delayed = true
			}
			in.Other = append(in.Other, c.Name.Local)
		}
	}
	return in, nil
}

// Outbound is a stanza to send, a message unless Kind says otherwise.
// Payload holds the children to put in it besides <thread/>; Stanza builds
// the whole stanza.
type Outbound struct {
	// Kind is "" or StanzaMessage for a message, else StanzaPresence or
	// StanzaIQ (Session.SealStanza).
	Kind string
	To   string
	// Type is the type attribute: "" (normal), "chat" or "error" for a
	// message; the presence or iq type for the other kinds.
	Type string
	// ID is the id attribute of an iq (the caller sets it).
	ID     string
	Thread string // messages only
	// Payload is the children: a <feature/>, an <init/>, a <c/> and/or an
	// <error/>. The engine never changes them once returned.
	Payload []*xmltree.Element
	// Encrypted marks a <c/> payload. The client adds an XEP-0380
	// <encryption namespace=NSStanzaEncryption name=EMEName/> beside it.
	Encrypted bool
	// NoStore asks the server not to store the message for later delivery
	// (XEP-0155 §4.1: a session request is for an immediate session).
	NoStore bool
	// NoCopy marks a stanza that must not be carbon-copied or archived:
	// copies of session stanzas can never be decrypted and break the
	// in-order delivery XEP-0200 depends on.
	NoCopy bool
}

// Stanza returns the complete <message/> stanza in jabber:client: the
// payload, the thread, and the AMP rule, XEP-0334 hints, XEP-0280
// <private/> and XEP-0380 tag that the flags ask for. The stanza's
// children are the payload's elements, not copies.
func (o *Outbound) Stanza() *xmltree.Element {
	if o.Kind == StanzaPresence || o.Kind == StanzaIQ {
		st := xmltree.New(nsClient, o.Kind, "to", o.To)
		if o.Type != "" {
			st.SetAttr("type", o.Type)
		}
		if o.ID != "" {
			st.SetAttr("id", o.ID)
		}
		for _, p := range o.Payload {
			st.Append(p)
		}
		return st
	}
	st := xmltree.New(nsClient, "message", "to", o.To)
	if o.Type != "" {
		st.SetAttr("type", o.Type)
	}
	st.Append(xmltree.New(nsClient, "thread").AppendText(o.Thread))
	for _, p := range o.Payload {
		st.Append(p)
	}
	if o.Encrypted {
		st.Append(xmltree.New(nsEME, "encryption", "namespace", NSStanzaEncryption, "name", EMEName))
	}
	if o.NoStore {
		st.Append(xmltree.New(nsAMP, "amp", "per-hop", "true").Append(
			xmltree.New(nsAMP, "rule", "action", "drop", "condition", "deliver", "value", "stored")))
	}
	if o.NoCopy {
		st.Append(xmltree.New(nsHints, "no-copy"), xmltree.New(nsHints, "no-permanent-store"), xmltree.New(nsCarbons, "private"))
	}
	return st
}
