package esession

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/balcony-im/balcony/xmltree"
)

// TestOpenCUnpaddedMAC: a <mac/> of 44 base64 characters without padding
// decodes to 33 bytes; it is refused as an authentication failure (it
// used to overrun the 32-byte buffer and panic on input from the network).
func TestOpenCUnpaddedMAC(t *testing.T) {
	for _, mac := range []string{strings.Repeat("0", 44), strings.Repeat("A", 44), strings.Repeat("A", 42) + "A="} {
		el, err := xmltree.Parse([]byte("<c xmlns='"+NSStanzaEncryption+"'><data>AAAA</data><mac>"+mac+"</mac></c>"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, b := fuzzChannel()
		before := b.recv.ctr
		if _, err := b.open(el); !errors.Is(err, ErrAuthentication) {
			t.Errorf("mac %q: %v, want an authentication failure", mac, err)
		}
		if b.recv.ctr != before {
			t.Errorf("mac %q: the counter moved", mac)
		}
	}
}

// TestSealClearsPlaintext checks that no plaintext stays in the channel's
// buffers after sealing: neither in the buffer in use nor in the one left
// behind when a larger stanza makes it grow.
func TestSealClearsPlaintext(t *testing.T) {
	a, b := fuzzChannel()
	secret := []byte("<body>secret</body>")
	first, err := a.sealContent(els(t, string(secret)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.open(first[0]); err != nil {
		t.Fatal(err)
	}
	old := a.buf[:cap(a.buf)]
	if bytes.Contains(old, []byte("secret")) {
		t.Fatal("plaintext left in the buffer")
	}
	copy(old, secret) // as if a stanza had been written and not yet cleared
	long := "<body>" + strings.Repeat("s", 4*cap(old)) + "</body>"
	p, err := a.sealContent(els(t, long))
	if err != nil {
		t.Fatal(err)
	}
	if cap(a.buf) == len(old) {
		t.Fatal("the buffer did not grow")
	}
	if bytes.Contains(old, []byte("secret")) || bytes.Contains(a.buf[:cap(a.buf)], []byte("sss")) {
		t.Fatal("plaintext left in a buffer")
	}
	msg, err := b.open(p[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := string(marshalContent(msg.Elements())); got != long {
		t.Fatalf("opened %.40q..., want %.40q...", got, long)
	}
}
