package servertest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/balcony-im/balcony/internal/servertest"
)

// A raw XMPP stream, just enough of RFC 6120 to record what a server
// advertises at each step (stream features, SASL mechanisms, XEP-0440
// channel-binding types) and to authenticate with SCRAM, with or without
// channel binding.

const (
	nsStream   = "http://etherx.jabber.org/streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSASLCB   = "urn:xmpp:sasl-cb:0" // XEP-0440
	probeLimit = 20 * time.Second
)

// features is one <stream:features/> element.
type features struct {
	StartTLS        bool
	Mechanisms      []string
	ChannelBindings []string // XEP-0440 sasl-channel-binding types
	Other           []string // "namespace local" of every other child
}

func (f features) String() string {
	var parts []string
	if f.StartTLS {
		parts = append(parts, "starttls")
	}
	if f.Mechanisms != nil {
		parts = append(parts, "mechanisms["+strings.Join(f.Mechanisms, " ")+"]")
	}
	if f.ChannelBindings != nil {
		parts = append(parts, "sasl-channel-binding["+strings.Join(f.ChannelBindings, " ")+"]")
	}
	return strings.Join(append(parts, f.Other...), ", ")
}

func (f features) has(nsLocal string) bool { return slices.Contains(f.Other, nsLocal) }

type stream struct {
	conn   net.Conn
	dec    *xml.Decoder
	domain string
}

func (s *stream) send(format string, args ...any) error {
	_, err := fmt.Fprintf(s.conn, format, args...)
	return err
}

// open sends a stream header and reads the server's header and features.
func (s *stream) open() (features, error) {
	s.dec = xml.NewDecoder(s.conn)
	err := s.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s' version='1.0'>", nsStream, s.domain)
	if err != nil {
		return features{}, err
	}
	start, err := s.next()
	if err != nil {
		return features{}, err
	}
	if start.Name != (xml.Name{Space: nsStream, Local: "stream"}) {
		return features{}, fmt.Errorf("stream header expected, got %v", start.Name)
	}
	if start, err = s.next(); err != nil {
		return features{}, err
	}
	if start.Name != (xml.Name{Space: nsStream, Local: "features"}) {
		return features{}, fmt.Errorf("stream features expected, got %v", start.Name)
	}
	var f features
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return f, err
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			return f, nil
		case xml.StartElement:
			switch tok.Name {
			case xml.Name{Space: nsTLS, Local: "starttls"}:
				f.StartTLS = true
				err = s.dec.Skip()
			case xml.Name{Space: nsSASL, Local: "mechanisms"}:
				var m struct {
					Mechanism []string `xml:"mechanism"`
				}
				err = s.dec.DecodeElement(&m, &tok)
				f.Mechanisms = append([]string{}, m.Mechanism...)
			case xml.Name{Space: nsSASLCB, Local: "sasl-channel-binding"}:
				var cb struct {
					Types []struct {
						Type string `xml:"type,attr"`
					} `xml:"channel-binding"`
				}
				err = s.dec.DecodeElement(&cb, &tok)
				f.ChannelBindings = []string{}
				for _, t := range cb.Types {
					f.ChannelBindings = append(f.ChannelBindings, t.Type)
				}
			default:
				f.Other = append(f.Other, tok.Name.Space+" "+tok.Name.Local)
				err = s.dec.Skip()
			}
			if err != nil {
				return f, err
			}
		}
	}
}

// next returns the next start element.
func (s *stream) next() (xml.StartElement, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return start, nil
		}
	}
}

// dialStream connects to addr, with TLS from the first byte when direct
// or after STARTTLS otherwise, and returns the stream opened over TLS, its
// features and the features before TLS (STARTTLS only).
func dialStream(t *testing.T, s *servertest.Server, domain string, direct bool, version uint16) (st *stream, pre, post features) {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{ServerName: domain, RootCAs: pool, MinVersion: version, MaxVersion: version, NextProtos: []string{"xmpp-client"}}
	addr := s.Addr
	if direct {
		addr = s.TLSAddr
	}
	conn, err := net.DialTimeout("tcp", addr, probeLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(probeLimit))
	st = &stream{conn: conn, domain: domain}
	if !direct {
		if pre, err = st.open(); err != nil {
			t.Fatalf("before TLS: %v", err)
		}
		if !pre.StartTLS {
			t.Fatalf("no STARTTLS offered: %v", pre)
		}
		if err := st.send("<starttls xmlns='%s'/>", nsTLS); err != nil {
			t.Fatal(err)
		}
		if start, err := st.next(); err != nil || start.Name.Local != "proceed" {
			t.Fatalf("STARTTLS: %v %v", start.Name, err)
		}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	st.conn = tc
	if post, err = st.open(); err != nil {
		t.Fatalf("after TLS: %v", err)
	}
	return st, pre, post
}

// errSASLFailure is an authentication the server refused.
var errSASLFailure = errors.New("sasl failure")

// auth runs a SASL exchange for mechanism on an open stream.
func (s *stream) auth(mech sasl.Mechanism, offered []string, user, pass string) error {
	cs := s.conn.(*tls.Conn).ConnectionState()
	neg := sasl.NewClient(mech,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), nil }),
		sasl.TLSState(cs), sasl.RemoteMechanisms(offered...))
	_, resp, err := neg.Step(nil)
	if err != nil {
		return err
	}
	if err := s.send("<auth xmlns='%s' mechanism='%s'>%s</auth>", nsSASL, mech.Name, base64.StdEncoding.EncodeToString(resp)); err != nil {
		return err
	}
	for {
		start, err := s.next()
		if err != nil {
			return err
		}
		var el struct {
			Inner string `xml:",innerxml"`
		}
		if err := s.dec.DecodeElement(&el, &start); err != nil {
			return err
		}
		if start.Name.Local == "failure" {
			return fmt.Errorf("%w: %s", errSASLFailure, el.Inner)
		}
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Inner))
		if err != nil {
			return err
		}
		switch start.Name.Local {
		case "challenge":
			if _, resp, err = neg.Step(data); err != nil {
				return err
			}
			if err := s.send("<response xmlns='%s'>%s</response>", nsSASL, base64.StdEncoding.EncodeToString(resp)); err != nil {
				return err
			}
		case "success":
			// SCRAM's last step checks the server signature carried
			// by <success/> (mutual authentication).
			if neg.State()&sasl.StepMask != sasl.ResponseSent {
				return fmt.Errorf("success before the SCRAM exchange ended")
			}
			_, _, err := neg.Step(data)
			return err
		default:
			return fmt.Errorf("unexpected %s during SASL", start.Name.Local)
		}
	}
}

var scram = map[string]sasl.Mechanism{
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-1":        sasl.ScramSha1,
}

// bestSCRAM returns the strongest SCRAM mechanism offered, with or without
// channel binding.
func bestSCRAM(offered []string, plus bool) string {
	for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		if plus {
			m += "-PLUS"
		}
		if slices.Contains(offered, m) {
			return m
		}
	}
	return ""
}
