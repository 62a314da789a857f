package client

import (
	"encoding/xml"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// brokenConn yields its text, then a connection reset.
type brokenConn struct{ r io.Reader }

func (b *brokenConn) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return n, err
}

// readEncoder is a token reader with an encoder that writes nothing.
type readEncoder struct{ *xml.Decoder }

func (readEncoder) EncodeToken(xml.Token) error               { return nil }
func (readEncoder) Encode(any) error                          { return nil }
func (readEncoder) EncodeElement(any, xml.StartElement) error { return nil }

// A message cut off by a broken connection was not received: it is not
// counted for stream management (the server sends it again on the resumed
// stream) and no "unreadable message" notice is shown for it (seen in the
// fault test: a cut in the middle of a message counted it as handled, the
// server never sent it again, and the user got a notice instead of the
// message).
func TestCutStanzaIsNotReceived(t *testing.T) {
	c := newTestClient(t)
	c.sm.start("sm-1", true, 0, jid.MustParse("bob@example.org/desk"))
	l := &link{start: time.Now()}
	d := xml.NewDecoder(&brokenConn{r: strings.NewReader(`<message xmlns='jabber:client' from='alice@example.org/home' id='m1' type='chat'><body>hel`)})
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	start := tok.(xml.StartElement)
	if err := c.handleStanza(l, readEncoder{d}, &start); err == nil {
		t.Fatal("a stanza cut by a connection reset was read without an error")
	}
	if h := c.sm.handled(); h != 0 {
		t.Errorf("the cut stanza was counted: h = %d", h)
	}
	c.Close()
	for ev := range c.Events() {
		if n, ok := ev.(*NoticeEvent); ok {
			t.Errorf("a notice for a cut stanza: %+v", n)
		}
	}
}
