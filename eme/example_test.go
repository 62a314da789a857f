package eme_test

import (
	"encoding/xml"
	"errors"
	"fmt"

	"golang.org/x/text/language"

	"github.com/balcony-im/balcony/eme"
)

// An incoming message is classified; if it is encrypted with a mechanism
// that is not enabled, the client delivers a notice instead of its body.
func Example() {
	stanza := []byte(`<message xmlns='jabber:client' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' id='secret2'>
  <openpgp xmlns='urn:xmpp:openpgp:0'>hQEMA…</openpgp>
  <body>This message is encrypted with OpenPGP for XMPP.</body>
  <encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>
</message>`)

	d, err := eme.Detect(stanza)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("encrypted:", d.Encrypted, "mechanism:", d.Mechanism)

	// OX is not enabled for this account: deliver a notice, never the body.
	n := d.Notice(eme.ReasonNotEnabled)
	// The hint is data: the application supplies its own command.
	fmt.Println(n.Text(language.English), n.Hint.Text(language.English, "balcony ox keygen"))
	fmt.Println(n.Text(language.German), n.Hint.Text(language.German, "balcony ox keygen"))
	// Output:
	// encrypted: true mechanism: urn:xmpp:openpgp:0
	// This message was encrypted with OpenPGP for XMPP (urn:xmpp:openpgp:0) and could not be decrypted: this mechanism is not enabled. To enable it, run: balcony ox keygen
	// Diese Nachricht wurde mit OpenPGP for XMPP (urn:xmpp:openpgp:0) verschlüsselt und konnte nicht entschlüsselt werden: Dieses Verfahren ist nicht aktiviert. Zum Aktivieren ausführen: balcony ox keygen
}

// Outgoing messages get a tag, and a fallback body for clients that cannot
// decrypt them; only unlisted mechanisms get a 'name'.
func ExampleNewTag() {
	for _, ns := range []string{eme.OX, eme.ESession} {
		out, err := xml.Marshal(eme.NewTag(ns))
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Println(string(out))
		fmt.Println(eme.FallbackBody(ns))
	}
	// Output:
	// <encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:openpgp:0"></encryption>
	// This message is encrypted with OpenPGP for XMPP (urn:xmpp:openpgp:0).
	// <encryption xmlns="urn:xmpp:eme:0" namespace="http://www.xmpp.org/extensions/xep-0200.html#ns" name="Encrypted Sessions"></encryption>
	// This message is encrypted with Encrypted Sessions (http://www.xmpp.org/extensions/xep-0200.html#ns).
}

// An OTR message has no element of its own: Detect finds it in the body.
func ExampleDetect_otr() {
	for _, body := range []string{"?OTRv23?", "?OTR:AAMDAAABAAAAAQE=."} {
		d, err := eme.Detect([]byte(`<message xmlns='jabber:client'><body>` + body + `</body></message>`))
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("%s: %v v%d, encrypted %v, control %v, mechanism %s\n", body, d.OTR, d.OTRVersion, d.Encrypted, d.Control, d.Mechanism)
	}
	// Output:
	// ?OTRv23?: query v3, encrypted false, control true, mechanism urn:xmpp:otr:0
	// ?OTR:AAMDAAABAAAAAQE=.: data v3, encrypted true, control false, mechanism urn:xmpp:otr:0
}

// A tag that contradicts the payload is reported, not resolved.
func ExampleDetect_disagreement() {
	d, err := eme.Detect([]byte(`<message xmlns='jabber:client'>
  <openpgp xmlns='urn:xmpp:openpgp:0'>hQEMA…</openpgp>
  <encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>
</message>`))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("mechanism %q: %v\n", d.Mechanism, d.Disagreement)
	fmt.Println(d.Notice(eme.ReasonUnspecified))
	// Output:
	// mechanism "": tagged urn:xmpp:otr:0 but carries urn:xmpp:openpgp:0
	// This message carries contradictory encryption markers (OTR (urn:xmpp:otr:0), OpenPGP for XMPP (urn:xmpp:openpgp:0)) and was not displayed.
}

// A policy that requires OX refuses plaintext and weaker mechanisms.
func ExamplePolicy_CheckOutgoing() {
	p, err := eme.ParsePolicy("require:ox")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, m := range []string{"", eme.OTR, eme.OX, eme.OMEMO2} {
		err := p.CheckOutgoing(m)
		fmt.Printf("%q: downgrade %v\n", m, errors.Is(err, eme.ErrDowngrade))
	}
	fmt.Println(p.CheckOutgoing(eme.OTR))
	// Output:
	// "": downgrade true
	// "urn:xmpp:otr:0": downgrade true
	// "urn:xmpp:openpgp:0": downgrade false
	// "urn:xmpp:omemo:2": downgrade false
	// eme: refusing to send with OTR (urn:xmpp:otr:0): the policy for this contact (require:ox) requires OpenPGP for XMPP (urn:xmpp:openpgp:0) or a mechanism at least as strong
}

// A remote name is shown only quoted and sanitised, and only for
// mechanisms Balcony does not know.
func ExampleSanitizeName() {
	fmt.Println(eme.SanitizeName("Example\u202e Crypt\n\tv2"))
	fmt.Println(eme.DisplayName(eme.OTR, "Totally Not OTR"))
	fmt.Println(eme.NewNotice("urn:example:crypt:0", "Example Crypt", eme.ReasonNotSupported).Text(language.French))
	// Output:
	// “Example Crypt v2”
	// OTR
	// Ce message a été chiffré avec “Example Crypt” (urn:example:crypt:0) et n’a pas pu être déchiffré : Balcony ne prend pas en charge ce mécanisme.
}
