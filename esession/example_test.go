package esession_test

import (
	"fmt"
	"log"

	"github.com/balcony-im/balcony/esession"
	"github.com/balcony-im/balcony/xmltree"
)

// transfer stands for the XMPP connection: it serialises an outbound
// stanza and parses it as the receiving client would.
func transfer(o esession.Outbound, from string, subscribed bool) *esession.Inbound {
	st, err := xmltree.Parse(o.Stanza().Marshal(""), nil)
	if err != nil {
		log.Fatal(err)
	}
	in, err := esession.ParseMessage(st)
	if err != nil {
		log.Fatal(err)
	}
	in.From, in.Subscribed = from, subscribed
	return in
}

// bodyEl is a jabber:client <body/>.
func bodyEl(text string) *xmltree.Element {
	return xmltree.New("jabber:client", "body").AppendText(text)
}

// The whole life of an encrypted session between two clients: the four
// negotiation messages, SAS confirmation, a message each way, and the
// encrypted termination with its acknowledgement.
func Example() {
	const alice, bob = "alice@example.org/pda", "bob@example.com/laptop"
	am, _ := esession.NewManager(&esession.Config{Secrets: &esession.MemorySecrets{}})
	bm, _ := esession.NewManager(&esession.Config{Secrets: &esession.MemorySecrets{}})

	// Alice asks for an encrypted session (XEP-0217 message 1).
	sa, m1, err := am.Start(bob, nil)
	if err != nil {
		log.Fatal(err)
	}
	// Bob's client asks him; he accepts (message 2).
	res, _ := bm.Receive(transfer(m1, alice, true))
	req := res.Events[0].(esession.RequestReceived)
	fmt.Println("request, encrypted:", req.Offer.Encrypted)
	sb := req.Session
	res, _ = sb.Accept()
	// Alice proves her identity (message 3), Bob his (message 4).
	res, _ = am.Receive(transfer(res.Out[0], bob, true))
	res, _ = bm.Receive(transfer(res.Out[0], alice, true))
	m4 := res.Out[0]
	res, _ = am.Receive(transfer(m4, bob, true))
	est := res.Events[0].(esession.Established)
	fmt.Println("established:", sa.State(), sb.State(), "verified:", est.Verified)

	// They compare the short authentication string by voice.
	fmt.Println("same SAS:", sa.SAS() == sb.SAS(), len(sa.SAS()), "characters")
	sa.ConfirmSAS()
	sb.ConfirmSAS()
	fmt.Println("verified:", sa.Verified(), sb.Verified())

	// Messages travel inside XEP-0200 <c/> elements.
	o, _ := sa.Seal(bodyEl("Hello, Bob!"))
	res, _ = bm.Receive(transfer(o, alice, true))
	body, _ := res.Events[0].(esession.Message).Body()
	fmt.Println("bob reads:", body)
	o, _ = sb.Seal(bodyEl("Hi Alice."))
	res, _ = am.Receive(transfer(o, bob, true))
	body, _ = res.Events[0].(esession.Message).Body()
	fmt.Println("alice reads:", body)

	// Alice ends the session; Bob acknowledges, both wipe their keys.
	res, _ = sa.Terminate()
	res, _ = bm.Receive(transfer(res.Out[0], alice, true))
	fmt.Println("bob:", res.Events[0].(esession.Terminated).Reason)
	res, _ = am.Receive(transfer(res.Out[0], bob, true))
	fmt.Println("alice:", res.Events[0].(esession.Terminated).Reason, sa.State())
	// Output:
	// request, encrypted: true
	// established: active active verified: false
	// same SAS: true 5 characters
	// verified: true true
	// bob reads: Hello, Bob!
	// alice reads: Hi Alice.
	// bob: terminated by peer
	// alice: terminated ended
}

// A received chat message without a thread starts a new conversation with
// a fresh ThreadID (XEP-0201 §4.1); replies echo it.
func ExampleThreads() {
	th := esession.NewThreads(nil, 100)
	reply, isNew, _ := th.Incoming("juliet@example.com", "")
	fmt.Println(len(reply), isNew)
	again, isNew, _ := th.Incoming("juliet@example.com", reply)
	fmt.Println(again == reply, isNew)
	next, _ := th.Outgoing("juliet@example.com")
	fmt.Println(next == reply)
	// Output:
	// 22 true
	// true false
	// true
}
