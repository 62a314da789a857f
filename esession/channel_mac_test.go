package esession

import (
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
