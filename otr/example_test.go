package otr_test

import (
	"fmt"
	"log"
	"os"

	"github.com/balcony-im/balcony/otr"
)

// relay carries messages between two Conversations until both are quiet,
// as a client would over XMPP, and prints what each user would be shown.
func relay(from, to *otr.Conversation, msgs [][]byte, names map[*otr.Conversation]string) {
	for len(msgs) > 0 {
		var replies [][]byte
		for _, m := range msgs {
			r, err := to.Receive(m)
			if err != nil {
				log.Fatal(err)
			}
			for _, e := range r.Events {
				fmt.Printf("%s: event: %v\n", names[to], e.Kind)
			}
			if r.Plaintext != nil {
				fmt.Printf("%s reads %q (encrypted: %v)\n", names[to], r.Plaintext, r.Encrypted)
			}
			replies = append(replies, r.ToSend...)
		}
		msgs, from, to = replies, to, from
	}
}

func Example() {
	// Long-term keys: imported from a libotr key file here; new users
	// would call otr.GenerateKey.
	data, err := os.ReadFile("testdata/privkeys-libotr.txt")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		log.Fatal(err)
	}
	var aliceKey, bobKey *otr.PrivateKey
	for _, k := range keys {
		switch k.Account {
		case "alice@example.org":
			aliceKey = k.Key
		case "bob@example.net/laptop":
			bobKey = k.Key
		}
	}
	alice, err := otr.NewConversation(otr.Config{PrivateKey: aliceKey, Policy: otr.PolicyOpportunistic})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := otr.NewConversation(otr.Config{PrivateKey: bobKey, Policy: otr.PolicyOpportunistic})
	if err != nil {
		log.Fatal(err)
	}
	names := map[*otr.Conversation]string{alice: "alice", bob: "bob"}

	// Alice's first message carries the whitespace tag; Bob's client
	// starts the AKE on seeing it.
	msgs, err := alice.Send([]byte("Hi Bob!"))
	if err != nil {
		log.Fatal(err)
	}
	relay(alice, bob, msgs, names)
	fmt.Println("alice:", alice.State(), "bob:", bob.State())
	fmt.Println("alice sees bob's key:", alice.TheirKey().Fingerprint() == bobKey.Public().Fingerprint())

	// Now everything is encrypted.
	msgs, err = bob.Send([]byte("Hello Alice, this is private."))
	if err != nil {
		log.Fatal(err)
	}
	relay(bob, alice, msgs, names)

	// Bob ends the private conversation; Alice cannot send by mistake.
	msgs, err = bob.End()
	if err != nil {
		log.Fatal(err)
	}
	relay(bob, alice, msgs, names)
	_, err = alice.Send([]byte("are you still there?"))
	fmt.Println(err)

	// Output:
	// bob reads "Hi Bob!" (encrypted: false)
	// alice: event: gone secure
	// bob: event: gone secure
	// alice: encrypted bob: encrypted
	// alice sees bob's key: true
	// alice reads "Hello Alice, this is private." (encrypted: true)
	// alice: event: peer ended
	// otr: the peer ended the private conversation; message not sent
}

// Two users check that no one is in the middle with the Socialist
// Millionaires' Protocol: each types the answer to a question.
func ExampleConversation_StartSMP() {
	data, err := os.ReadFile("testdata/privkeys-libotr.txt")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := otr.ParseLibotrPrivateKeys(data)
	if err != nil {
		log.Fatal(err)
	}
	alice, _ := otr.NewConversation(otr.Config{PrivateKey: keys[0].Key, Policy: otr.PolicyManual})
	bob, _ := otr.NewConversation(otr.Config{PrivateKey: keys[1].Key, Policy: otr.PolicyManual})
	names := map[*otr.Conversation]string{alice: "alice", bob: "bob"}
	start, _ := alice.StartAKE()
	relay(alice, bob, start, names)

	msgs, err := alice.StartSMP("Where did we meet?", []byte("at the lake"))
	if err != nil {
		log.Fatal(err)
	}
	relay(alice, bob, msgs, names)
	// Bob's client shows the question and asks for the answer.
	msgs, err = bob.AnswerSMP([]byte("at the lake"))
	if err != nil {
		log.Fatal(err)
	}
	relay(bob, alice, msgs, names)

	// Output:
	// alice: event: gone secure
	// bob: event: gone secure
	// bob: event: SMP question
	// bob: event: SMP succeeded
	// alice: event: SMP succeeded
}
