package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// nsStreams is the namespace of stream-level elements (RFC 6120 §4).
const nsStreams = "http://etherx.jabber.org/streams"

// streamSetup is what the client asks of the stream negotiation after
// authentication, and what it learns there: the resumption of a stream
// management session in place of resource binding, or binding followed by
// enabling stream management (XEP-0198 §4-5).
type streamSetup struct {
	resource string
	enable   bool // enable stream management if offered
	// resume asks for resumption (only a client that reconnects can use
	// it: otherwise the server would keep a session nobody resumes, and
	// contacts would not learn that the client left).
	resume bool
	// previd, h and bound describe the session to resume ("" for none).
	previd string
	h      uint32
	bound  jid.JID
	// resumeOnly: after the server replaced the session (a conflict),
	// only its resumption is tried; when refused, the login ends with
	// ErrReplaced instead of binding a new session.
	resumeOnly bool

	offered bool // the server offered <sm/> after authentication
	// resumed: the server resumed previd; serverH is its 'h'.
	resumed bool
	serverH uint32
	// resumeFailed: the server refused to resume; failedH is its 'h' if
	// it said (failedHasH).
	resumeFailed  bool
	failedH       uint32
	failedHasH    bool
	failCondition string
	// enabled: stream management is on, resumable with id (or not).
	enabled   bool
	id        string
	resumable bool
	max       time.Duration
	// early are stanzas the server sent before <enabled/>: not counted,
	// handled once the stream is up.
	early []*xmltree.Element
}

// maxEarly bounds the stanzas kept while waiting for <enabled/>.
const maxEarly = 64

// bindResource is the client side of RFC 6120 §7 resource binding that
// requests a given resourcepart (empty: let the server choose), with
// XEP-0198 around it: a session to resume is resumed instead (§5), and
// after binding stream management is enabled. mellium's BindResource
// takes the resource from the stream's local address, which the server's
// stream header has already replaced by the bare JID, so a requested
// resource would be lost; and mellium has no stream management.
func bindResource(st *streamSetup) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			// mellium keeps every feature of the current list, those it
			// has no StreamFeature for included.
			_, st.offered = session.Feature(NSStreamManagement)
			if st.offered && st.previd != "" {
				if err := st.resumeSM(session); err != nil {
					return 0, nil, err
				}
				if st.resumed {
					session.UpdateAddr(st.bound)
					return xmpp.Ready, nil, nil
				}
				if st.resumeFailed && st.resumeOnly {
					return 0, nil, fmt.Errorf("%w: the server refused to resume the session it replaced (%s)", ErrReplaced, st.failCondition)
				}
			}
			j, err := bind(session, st.resource)
			if err != nil {
				return 0, nil, err
			}
			session.UpdateAddr(j)
			if st.offered && st.enable {
				if err := st.enableSM(session); err != nil {
					return 0, nil, err
				}
			}
			return xmpp.Ready, nil, nil
		},
	}
}

// writeElement writes one element during negotiation.
func writeElement(session *xmpp.Session, el *xmltree.Element) error {
	w := session.TokenWriter()
	defer w.Close()
	if _, err := xmlstream.Copy(w, el.TokenReader(NSClient)); err != nil {
		return err
	}
	return w.Flush()
}

// readElement reads the next top-level element during negotiation; a
// stream error is returned as an error.
func readElement(session *xmpp.Session) (*xmltree.Element, error) {
	r := session.TokenReader()
	defer r.Close()
	for {
		tok, err := r.Token()
		if err != nil {
			return nil, err
		}
		if s, ok := tok.(xml.StartElement); ok {
			el, err := xmltree.FromTokens(r, s, nil)
			if err != nil {
				return nil, err
			}
			if el.Name.Space == nsStreams && el.Name.Local == "error" {
				cond := "undefined-condition"
				if e := el.Elements(); len(e) > 0 {
					cond = e[0].Name.Local
				}
				return nil, fmt.Errorf("client: stream error during negotiation: %s", cond)
			}
			return el, nil
		}
	}
}

// bind binds a resource (RFC 6120 §7).
func bind(session *xmpp.Session, resource string) (jid.JID, error) {
	id := NewID()
	iq := xmltree.New(NSClient, "iq", "type", "set", "id", id)
	b := xmltree.New(nsBind, "bind")
	if resource != "" {
		b.Append(xmltree.New(nsBind, "resource").AppendText(resource))
	}
	iq.Append(b)
	if err := writeElement(session, iq); err != nil {
		return jid.JID{}, err
	}
	resp, err := readElement(session)
	if err != nil {
		return jid.JID{}, fmt.Errorf("client: reading the bind result: %w", err)
	}
	if resp.Name.Local != "iq" || resp.AttrValue("id") != id {
		return jid.JID{}, errors.New("client: unexpected answer to resource binding")
	}
	if resp.AttrValue("type") == "error" {
		return jid.JID{}, fmt.Errorf("client: resource binding refused: %w", parseStanzaError(resp))
	}
	rb := resp.Child(nsBind, "bind")
	if rb == nil {
		return jid.JID{}, errors.New("client: bind result without a JID")
	}
	j, err := jid.Parse(rb.ChildText(nsBind, "jid"))
	if err != nil {
		return jid.JID{}, fmt.Errorf("client: bind result: %w", err)
	}
	return j, nil
}

// resumeSM asks the server to resume the session previd (XEP-0198 §5).
// A refusal is not an error: binding follows.
func (st *streamSetup) resumeSM(session *xmpp.Session) error {
	req := smElement("resume", "previd", st.previd, "h", strconv.FormatUint(uint64(st.h), 10))
	if err := writeElement(session, req); err != nil {
		return err
	}
	el, err := readElement(session)
	if err != nil {
		return fmt.Errorf("client: reading the answer to stream resumption: %w", err)
	}
	switch {
	case el.Name.Space == NSStreamManagement && el.Name.Local == "resumed":
		h, ok := parseH(el)
		if !ok || el.AttrValue("previd") != st.previd {
			return errors.New("client: malformed answer to stream resumption")
		}
		st.resumed, st.serverH = true, h
	case el.Name.Space == NSStreamManagement && el.Name.Local == "failed":
		st.resumeFailed = true
		st.failedH, st.failedHasH = parseH(el)
		st.failCondition = "undefined-condition"
		if e := el.Elements(); len(e) > 0 {
			st.failCondition = DefinedCondition(e[0].Name.Local)
		}
	default:
		return fmt.Errorf("client: unexpected answer to stream resumption: %s", el.Name.Local)
	}
	return nil
}

// enableSM enables stream management, with resumption if asked
// (XEP-0198 §4-5), and waits for the answer. Stanzas that arrive before
// it are kept for later (counting starts with <enabled/>).
func (st *streamSetup) enableSM(session *xmpp.Session) error {
	enable := smElement("enable")
	if st.resume {
		enable.SetAttr("resume", "true")
	}
	if err := writeElement(session, enable); err != nil {
		return err
	}
	for {
		el, err := readElement(session)
		if err != nil {
			return fmt.Errorf("client: reading the answer to enabling stream management: %w", err)
		}
		if el.Name.Space == NSClient {
			if len(st.early) >= maxEarly {
				return errors.New("client: the server sent too many stanzas before enabling stream management")
			}
			st.early = append(st.early, el)
			continue
		}
		if el.Name.Space != NSStreamManagement {
			continue
		}
		switch el.Name.Local {
		case "enabled":
			st.enabled = true
			st.id = el.AttrValue("id")
			st.resumable = xsBool(el.AttrValue("resume")) && st.id != ""
			if len(st.id) > 4000 {
				// §5: SHOULD NOT be longer; a longer one is not kept.
				st.resumable = false
			}
			if n, err := strconv.ParseUint(el.AttrValue("max"), 10, 32); err == nil {
				st.max = time.Duration(n) * time.Second
			}
			return nil
		case "failed":
			return nil
		}
	}
}
