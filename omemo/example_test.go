package omemo_test

import (
	"fmt"

	"github.com/balcony-im/balcony/omemo"
)

// Alice's device sends Bob's device a message; Bob answers the new
// session with an empty message, as XEP-0384 §7 asks.
func Example() {
	aliceStore, bobStore := new(omemo.MemoryStore), new(omemo.MemoryStore)
	alice, _ := omemo.New(omemo.Config{Generation: omemo.V2, Store: aliceStore})
	bob, _ := omemo.New(omemo.Config{Generation: omemo.V2, Store: bobStore})
	aliceAddr := omemo.Address{JID: "alice@example.org", DeviceID: alice.DeviceID()}
	bobAddr := omemo.Address{JID: "bob@example.org", DeviceID: bob.DeviceID()}

	// Alice fetched Bob's bundle (the glue reads it from PEP).
	bundle, _ := bob.Bundle()
	msg, err := alice.Encrypt([]byte("<envelope>…</envelope>"), []omemo.Recipient{{Address: bobAddr, Bundle: bundle}})
	if err != nil {
		panic(err)
	}
	key := msg.Keys[0]
	fmt.Println("key exchange:", key.PreKey)

	d, err := bob.Decrypt(&omemo.Incoming{From: aliceAddr, Key: key.Data, PreKey: key.PreKey, Payload: msg.Payload})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s new session: %v, answer due: %v, republish bundle: %v\n", d.Plaintext, d.NewSession, d.HeartbeatDue, d.BundleChanged)
	fp, _ := omemo.Fingerprint(omemo.V2, d.IdentityKey)
	fmt.Println("fingerprint matches:", fp == alice.Fingerprint())

	answer, _ := bob.EncryptEmpty([]omemo.Recipient{{Address: aliceAddr}})
	d, _ = alice.Decrypt(&omemo.Incoming{From: bobAddr, Key: answer.Keys[0].Data, PreKey: answer.Keys[0].PreKey})
	fmt.Println("empty:", d.Empty)

	msg, _ = alice.Encrypt([]byte("<envelope>second</envelope>"), []omemo.Recipient{{Address: bobAddr}})
	fmt.Println("key exchange:", msg.Keys[0].PreKey)
	// Output:
	// key exchange: true
	// <envelope>…</envelope> new session: true, answer due: true, republish bundle: true
	// fingerprint matches: true
	// empty: true
	// key exchange: false
}
