package otr_test

import (
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client/otr"
	engine "github.com/balcony-im/balcony/otr"
)

// A libpurple-based peer sends HTML inside OTR; it is shown as the text its
// user typed, nothing interpreted.
func ExampleText() {
	fmt.Println(otr.Text(`<FONT COLOR="#000000">fish &amp; chips &lt;3<br>see <A HREF="https://example.org/menu">the menu</A></FONT>`))
	// Output:
	// fish & chips <3
	// see the menu (https://example.org/menu)
}

// The xmpp: URI that shares an OTR fingerprint out of band (XEP-0364 §6),
// and reading it back.
func ExampleFingerprintURI() {
	f, _ := engine.ParseFingerprint("AEA4D503 298797D4 A4FC823B C1D24524 B4C54338")
	uri := otr.FingerprintURI(jid.MustParse("feste@allfools.lit/phone"), f)
	fmt.Println(uri)
	j, g, err := otr.ParseFingerprintURI(uri)
	fmt.Println(j, g, err)
	// Output:
	// xmpp:feste@allfools.lit?otr-fingerprint=AEA4D503298797D4A4FC823BC1D24524B4C54338
	// feste@allfools.lit AEA4D503 298797D4 A4FC823B C1D24524 B4C54338 <nil>
}
