package client

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"github.com/balcony-im/balcony/xmltree"
)

// Channel binding (RFC 5929, RFC 9266) ties the SCRAM login to the TLS
// connection, so that someone who terminates TLS with a certificate the
// client accepts cannot relay the login. SCRAM cannot say which binding
// type it means, so client and server must agree beforehand: XEP-0440
// lets the server list the types it supports. Balcony's rule:
//
//   - The server offers no SCRAM-*-PLUS mechanism: plain SCRAM (it
//     promised no binding on this connection; Prosody 0.12 over TLS 1.3).
//   - The server lists binding types (XEP-0440): the strongest type both
//     support for this TLS version (tls-exporter on TLS 1.3, tls-unique on
//     TLS 1.2), and only the -PLUS mechanisms: a failure is reported, never
//     retried without binding. If it lists only tls-unique and the
//     connection is TLS 1.3, Balcony reconnects with TLS 1.2 to bind.
//   - The server offers -PLUS but lists no types: over TLS 1.2, tls-unique
//     (RFC 5929's default, the one type such servers implement). Over
//     TLS 1.3 the default would be tls-exporter (RFC 9266), but servers
//     that predate XEP-0440 (ejabberd 23.01) offer -PLUS on TLS 1.3 while
//     knowing only tls-unique, and fail the login. Balcony does not try
//     and fail (failed logins count against the account on many servers):
//     it reconnects with TLS 1.2 and binds with tls-unique, and keeps
//     using TLS 1.2 with that server for the client's lifetime.
//
// Binding types Balcony does not implement (tls-server-end-point) count
// as not listed.

// NSChannelBinding is XEP-0440's namespace (SASL channel-binding type
// capability).
const NSChannelBinding = "urn:xmpp:sasl-cb:0"

// Channel binding types (RFC 5929, RFC 9266).
const (
	BindingTLSExporter = "tls-exporter"
	BindingTLSUnique   = "tls-unique"
)

// errRetryTLS12 makes connect reconnect with TLS capped at 1.2, where the
// server can bind the login with tls-unique.
var errRetryTLS12 = errors.New("client: the server binds logins only with tls-unique: reconnecting with TLS 1.2")

// AuthInfo says how the client logged in on its current connection.
type AuthInfo struct {
	Mechanism string // SASL mechanism, e.g. SCRAM-SHA-256-PLUS
	// ChannelBinding is the binding type used, "" without binding.
	ChannelBinding string
	// Advertised lists the binding types the server announced (XEP-0440);
	// nil when it announced none.
	Advertised []string
	TLSVersion uint16
}

// AuthError reports that the server refused the login (RFC 6120 §6.5).
type AuthError struct {
	// Condition is the SASL failure condition ("not-authorized",
	// "account-disabled", ...), "" if the server gave none.
	Condition string
	// Text is the server's explanation, as sent (remote text: sanitise it
	// before showing it).
	Text string
	// Mechanism and ChannelBinding are what the client used.
	Mechanism      string
	ChannelBinding string
	Err            error
}

func (e *AuthError) Error() string {
	s := "client: the server refused the login"
	if e.Condition != "" {
		s += " (" + e.Condition + ")"
	}
	if e.Mechanism != "" {
		s += " with " + e.Mechanism
		if e.ChannelBinding != "" {
			s += " bound with " + e.ChannelBinding
		}
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

func (e *AuthError) Unwrap() error { return e.Err }

// BindingSuspect reports whether the failure may come from channel
// binding rather than the password: the login was bound and the server
// did not say not-authorized plainly, or its text names the binding.
func (e *AuthError) BindingSuspect() bool {
	if e.ChannelBinding == "" {
		return false
	}
	t := strings.ToLower(e.Text)
	return strings.Contains(t, "bind") || e.Condition != "not-authorized"
}

// authState is what stream negotiation learnt about the login.
type authState struct {
	advertised []string // XEP-0440 types, nil if not announced
	announced  bool
	info       AuthInfo
}

// channelBindingFeature reads XEP-0440's informational
// <sasl-channel-binding/> stream feature into st.
func channelBindingFeature(st *authState) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: NSChannelBinding, Local: "sasl-channel-binding"},
		Necessary:  xmpp.Secure,
		Prohibited: xmpp.Authn,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			el, err := xmltree.FromTokens(d, *start, &xmltree.Limits{MaxBytes: 16 << 10, MaxDepth: 4})
			if err != nil {
				return false, nil, err
			}
			st.announced = true
			st.advertised = []string{}
			for _, cb := range el.Elements() {
				if cb.Name.Space == NSChannelBinding && cb.Name.Local == "channel-binding" {
					if t := cb.AttrValue("type"); t != "" && len(st.advertised) < 16 {
						st.advertised = append(st.advertised, t)
					}
				}
			}
			return false, nil, nil
		},
		// No Negotiate: the feature only informs the SASL choice.
	}
}

// saslFeature is mellium's SASL feature with the mechanism list chosen at
// negotiation time, once the TLS version, the server's mechanisms and its
// XEP-0440 announcement are known (see the rule above).
func saslFeature(password string, mechs []sasl.Mechanism, st *authState) xmpp.StreamFeature {
	f := xmpp.SASL("", password, mechs...)
	f.Negotiate = func(ctx context.Context, session *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		offered, _ := data.([]string)
		cs := session.ConnectionState()
		use, binding, err := chooseMechanisms(mechs, offered, cs.Version, st.advertised, st.announced)
		if err != nil {
			return 0, nil, err
		}
		st.info = AuthInfo{ChannelBinding: binding, Advertised: st.advertised, TLSVersion: cs.Version}
		for _, m := range use {
			if slices.Contains(offered, m.Name) {
				st.info.Mechanism = m.Name
				break
			}
		}
		mask, rw, err := xmpp.SASL("", password, use...).Negotiate(ctx, session, data)
		if err != nil {
			return mask, rw, authError(err, st.info)
		}
		return mask, rw, nil
	}
	return f
}

// chooseMechanisms applies the channel-binding rule: it returns the
// mechanisms to try, in preference order, and the binding type they use.
func chooseMechanisms(mechs []sasl.Mechanism, offered []string, version uint16, advertised []string, announced bool) ([]sasl.Mechanism, string, error) {
	var plus, plain []sasl.Mechanism
	for _, m := range mechs {
		if !slices.Contains(offered, m.Name) {
			continue
		}
		if strings.HasSuffix(m.Name, "-PLUS") {
			plus = append(plus, m)
		} else {
			plain = append(plain, m)
		}
	}
	if len(plus) == 0 {
		// No binding offered (or none configured): plain SCRAM. mellium
		// selects among everything configured, as before.
		return mechs, "", nil
	}
	// mellium binds with tls-exporter on TLS 1.3 and tls-unique below.
	ours := BindingTLSUnique
	if version >= tls.VersionTLS13 {
		ours = BindingTLSExporter
	}
	switch {
	case announced && slices.Contains(advertised, ours):
		return plus, ours, nil
	case announced && ours == BindingTLSExporter && slices.Contains(advertised, BindingTLSUnique):
		return nil, "", errRetryTLS12
	case announced && ours == BindingTLSUnique && slices.Contains(advertised, BindingTLSExporter):
		return nil, "", errors.New("client: the server binds logins only with tls-exporter, which needs TLS 1.3; allow TLS 1.3 for this account")
	case announced:
		// Only types Balcony does not implement: no binding is possible.
		if len(plain) == 0 {
			return nil, "", fmt.Errorf("client: the server offers only channel binding types Balcony does not implement (%s)", strings.Join(advertised, ", "))
		}
		return plain, "", nil
	case ours == BindingTLSUnique:
		return plus, ours, nil
	default:
		return nil, "", errRetryTLS12
	}
}

// authError turns a SASL failure from mellium into an *AuthError.
func authError(err error, info AuthInfo) error {
	ae := &AuthError{Mechanism: info.Mechanism, ChannelBinding: info.ChannelBinding, Err: err}
	// mellium's failure type is internal; it marshals to the <failure/>
	// element the server sent, which says everything.
	if el, ok := failureElement(err); ok {
		for _, c := range el.Elements() {
			if c.Name.Local == "text" {
				ae.Text = c.Text()
			} else if ae.Condition == "" {
				ae.Condition = c.Name.Local
			}
		}
		return ae
	}
	ae.Text = err.Error()
	return ae
}

// failureElement returns the <failure/> element a SASL error marshals to.
func failureElement(err error) (*xmltree.Element, bool) {
	m, ok := err.(xmlstream.Marshaler)
	if !ok {
		return nil, false
	}
	r := m.TokenReader()
	tok, terr := r.Token()
	start, isStart := tok.(xml.StartElement)
	if terr != nil || !isStart || start.Name.Local != "failure" {
		return nil, false
	}
	el, perr := xmltree.FromTokens(r, start, nil)
	return el, perr == nil
}

// tlsConfig is the configuration's TLS settings, capped at TLS 1.2 when
// the server binds logins only with tls-unique.
func (c *Client) tlsConfig() (*tls.Config, error) {
	cfg, err := c.cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if c.tls12.Load() && (cfg.MaxVersion == 0 || cfg.MaxVersion > tls.VersionTLS12) {
		cfg.MaxVersion = tls.VersionTLS12
	}
	return cfg, nil
}

// Auth returns how the current (or last) connection logged in: the SASL
// mechanism, the channel binding type and what the server announced.
func (c *Client) Auth() AuthInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth
}
