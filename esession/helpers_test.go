package esession

import (
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/balcony-im/balcony/xmltree"
)

// wire serialises a stanza and parses it back, as the network and the
// receiving client do.
func wire(t testing.TB, st *xmltree.Element) *xmltree.Element {
	t.Helper()
	back, err := xmltree.Parse(st.Marshal(""), nil)
	if err != nil {
		t.Fatalf("stanza does not parse back: %v\n%s", err, st.Marshal(""))
	}
	return back
}

// deliver sends o as a stanza from the JID from to m: it serialises the
// stanza, parses it back as a client would, and hands it to m.
func deliver(t testing.TB, o Outbound, from string, m *Manager, subscribed bool) Result {
	t.Helper()
	res, _ := deliverErr(t, o, from, m, subscribed)
	return res
}

func deliverErr(t testing.TB, o Outbound, from string, m *Manager, subscribed bool) (Result, error) {
	t.Helper()
	in, err := ParseMessage(wire(t, o.Stanza()))
	if err != nil {
		t.Fatalf("ParseMessage: %v\n%s", err, o.Stanza().Marshal(""))
	}
	in.From, in.Subscribed = from, subscribed
	return m.Receive(in)
}

// els parses serialised stanza children (unprefixed elements in
// jabber:client).
func els(t testing.TB, s string) []*xmltree.Element {
	t.Helper()
	st, err := xmltree.Parse([]byte("<message xmlns='jabber:client'>"+s+"</message>"), nil)
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return st.Elements()
}

// sealRaw encrypts bytes that need not be well-formed, as a broken or
// malicious peer could.
func sealRaw(t testing.TB, s *Session, content string) Outbound {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.ch.seal([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	o := s.out(c)
	o.Type, o.Encrypted = "chat", true
	return o
}

// payloadXML returns the payload as it is written in a jabber:client
// stanza.
func payloadXML(o Outbound) []byte {
	var b []byte
	for _, p := range o.Payload {
		b = append(b, p.Marshal(nsClient)...)
	}
	return b
}

// withPayloadXML returns o with its payload replaced by parsed XML.
func withPayloadXML(t testing.TB, o Outbound, x []byte) Outbound {
	t.Helper()
	o.Payload = els(t, string(x))
	return o
}

type timeT = time.Time

const hour = time.Hour

func timeAt(d time.Duration) time.Time { return time.Unix(1_700_000_000, 0).Add(d) }

func randReader() io.Reader { return rand.Reader }
