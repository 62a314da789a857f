package ox_test

import (
	"fmt"
	"log"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/xmltree"
)

// The main flow of the IM profile: Juliet signs and encrypts a message to
// Romeo (and to herself, for her other devices), Romeo opens it and checks it.
func Example() {
	julietJID := jid.MustParse("juliet@example.org")
	romeoJID := jid.MustParse("romeo@example.net")
	juliet, err := ox.GenerateKey(julietJID, ox.EdDSA25519, nil)
	if err != nil {
		log.Fatal(err)
	}
	romeo, err := ox.GenerateKey(romeoJID, ox.EdDSA25519, nil)
	if err != nil {
		log.Fatal(err)
	}

	// Sending: seal the content element and wrap it in <openpgp/>. The
	// client adds the fallback body, the store hint and the EME element.
	c := ox.Content{
		Kind:    ox.Signcrypt,
		To:      []jid.JID{romeoJID},
		Payload: []*xmltree.Element{xmltree.New(ox.NSClient, "body").AppendText("Wherefore art thou?")},
	}
	msg, err := ox.Seal(c, juliet, []*ox.Key{romeo.Public(), juliet.Public()}, nil)
	if err != nil {
		log.Fatal(err)
	}
	stanzaChild := ox.Element{Data: msg}.Element()

	// Receiving: parse the element, open with the own keys and the keys
	// announced for the sender, then process the payload as stanza children.
	data, err := ox.ParseElement(stanzaChild)
	if err != nil {
		log.Fatal(err)
	}
	opener, err := ox.NewOpener([]*ox.Key{romeo}, nil)
	if err != nil {
		log.Fatal(err)
	}
	opened, err := opener.Open(data, ox.OpenParams{
		From:       jid.MustParse("juliet@example.org/balcony"),
		To:         jid.MustParse("romeo@example.net/orchard"),
		SenderKeys: []*ox.Key{juliet.Public()},
		Require:    ox.Signcrypt,
	})
	if err != nil {
		log.Fatal(err)
	}
	children := ox.EffectiveChildren(opened.Content.Payload, nil)
	fmt.Println("verified:", opened.Verified)
	fmt.Println("signed by Juliet:", opened.Signer.Fingerprint() == juliet.Fingerprint())
	fmt.Println(children[0])
	// Output:
	// verified: true
	// signed by Juliet: true
	// <body xmlns="jabber:client">Wherefore art thou?</body>
}

// A failed check does not hide the content; it is reported so the client can
// show it as untrusted with a precise reason.
func ExampleOpener_Open_problems() {
	alice, _ := ox.GenerateKey(jid.MustParse("alice@example.org"), ox.EdDSA25519, nil)
	bob, _ := ox.GenerateKey(jid.MustParse("bob@example.net"), ox.EdDSA25519, nil)
	// Alice wrote to Carol but the message reaches Bob.
	c := ox.Content{Kind: ox.Signcrypt, To: []jid.JID{jid.MustParse("carol@example.com")}, Payload: []*xmltree.Element{xmltree.New(ox.NSClient, "body").AppendText("hi")}}
	msg, _ := ox.Seal(c, alice, []*ox.Key{bob}, nil)
	o, _ := ox.NewOpener([]*ox.Key{bob}, nil)
	opened, err := o.Open(msg, ox.OpenParams{
		From:       jid.MustParse("alice@example.org"),
		To:         jid.MustParse("bob@example.net"),
		SenderKeys: []*ox.Key{alice},
		Require:    ox.Signcrypt,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", opened.Verified)
	for _, p := range opened.Problems {
		fmt.Println(p)
	}
	// Output:
	// verified: false
	// ox: message addressed to carol@example.com, not bob@example.net
}

// Announcing a key without removing the keys other devices announced.
func ExampleMerge() {
	item, err := xmltree.Parse([]byte(`<public-keys-list xmlns='urn:xmpp:openpgp:0'>
  <pubkey-metadata v4-fingerprint='1357B01865B2503C18453D208CAC2A9678548E35' date='2018-03-01T15:26:12Z'/>
</public-keys-list>`), nil)
	if err != nil {
		log.Fatal(err)
	}
	current, err := ox.ParsePublicKeysList(item)
	if err != nil {
		log.Fatal(err)
	}
	mine := "67819B343B2AB70DED9320872C6464AF2A8E4C02"
	if !current.Contains(mine) {
		now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
		list := ox.PublicKeysList{Keys: ox.Merge(current.Keys, ox.KeyMetadata{Fingerprint: mine, Date: now})}
		out := list.Element().String() // publish to ox.NodePublicKeys
		fmt.Println(strings.ReplaceAll(out, "><pubkey-metadata", ">\n<pubkey-metadata"))
	}
	fmt.Println(ox.PublicKeyNode(mine))
	// Output:
	// <public-keys-list xmlns="urn:xmpp:openpgp:0">
	// <pubkey-metadata v4-fingerprint="1357B01865B2503C18453D208CAC2A9678548E35" date="2018-03-01T15:26:12Z"></pubkey-metadata>
	// <pubkey-metadata v4-fingerprint="67819B343B2AB70DED9320872C6464AF2A8E4C02" date="2026-03-14T15:09:26Z"></pubkey-metadata></public-keys-list>
	// urn:xmpp:openpgp:0:public-keys:67819B343B2AB70DED9320872C6464AF2A8E4C02
}

// Backing up the secret key to the private PEP node and restoring it on
// another device.
func ExampleSealBackup() {
	key, _ := ox.GenerateKey(jid.MustParse("juliet@example.org"), ox.EdDSA25519, nil)
	code, err := ox.NewBackupCode(nil) // show this to the user once
	if err != nil {
		log.Fatal(err)
	}
	backup, err := ox.SealBackup([]*ox.Key{key}, code, nil)
	if err != nil {
		log.Fatal(err)
	}
	item := ox.SecretKey{Data: backup}.Element() // publish to ox.NodeSecretKey

	// On the other device, with the code the user typed.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	code2, err := ox.NormalizeBackupCode(typed)
	if err != nil {
		log.Fatal(err)
	}
	data, _ := ox.ParseSecretKey(item)
	restored, err := ox.OpenBackup(data, code2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(restored), restored[0].Fingerprint() == key.Fingerprint(), restored[0].Secret())
	// Output:
	// 1 true true
}
