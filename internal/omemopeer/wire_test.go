package omemopeer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/eme"
	"github.com/balcony-im/balcony/internal/omemopeer"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/omemo"
	"github.com/balcony-im/balcony/xmltree"
)

// Agreement between Balcony's engine (package omemo) and what the
// python-omemo peer really puts on the wire: carol is Balcony's client
// with the engine and the small glue of omemoxml_test.go; alice and bob
// are XMPP peers. Each direction and each generation goes through the
// real server, including the peer's own PEP fetches of carol's bundle.

const nsSCE = "urn:xmpp:sce:1"

// capture is a client.Mechanism that hands every message of its
// namespace to the test instead of reading it.
type capture struct {
	ns  string
	got chan *client.Incoming
}

func (c *capture) Namespace() string   { return c.ns }
func (c *capture) Needs() client.Needs { return client.Needs{} }

func (c *capture) Seal(context.Context, *client.Outgoing) (client.Sealed, error) {
	return client.Sealed{}, errors.New("capture: receive only")
}

func (c *capture) Open(_ context.Context, in *client.Incoming) (*client.Opened, error) {
	c.got <- in
	return &client.Opened{Silent: true}, nil
}

// engineDevice is one device of Balcony's engine on the server, both
// generations sharing one store, as the glue will have it.
type engineDevice struct {
	// explicitFalse makes send write kex='false' / prekey='false'.
	explicitFalse bool

	c    *client.Client
	bare string
	m    map[omemo.Generation]*omemo.Manager
	caps map[omemo.Generation]*capture
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// newEngineDevice logs acct in and publishes the device list and bundle
// of each generation with an open access model. The device's Ed25519
// identity key has the given sign bit (see TestWireIdentitySignBit).
func newEngineDevice(t *testing.T, srv *servertest.Server, acct servertest.Account, signBit byte) *engineDevice {
	t.Helper()
	d := &engineDevice{c: connectClient(t, srv, acct), bare: acct.JID.Bare().String(),
		m: map[omemo.Generation]*omemo.Manager{}, caps: map[omemo.Generation]*capture{}}
	st := new(omemo.MemoryStore)
	id, err := omemo.GenerateDeviceID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acc := &omemo.Account{DeviceID: id}
	for {
		if _, err := rand.Read(acc.Identity.Seed[:]); err != nil {
			t.Fatal(err)
		}
		if pub := acc.Identity.Ed25519Public(); pub[31]>>7 == signBit {
			break
		}
	}
	if err := st.StoreAccount(acc); err != nil {
		t.Fatal(err)
	}
	open := client.NodeOptions{"access_model": "open"}
	for _, g := range []omemo.Generation{omemo.V03, omemo.V2} {
		m, err := omemo.New(omemo.Config{Generation: g, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		d.m[g] = m
		d.caps[g] = &capture{ns: g.Namespace(), got: make(chan *client.Incoming, 16)}
		if err := d.c.Register(d.caps[g]); err != nil {
			t.Fatal(err)
		}
		b, err := m.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		id := strconv.FormatUint(uint64(m.DeviceID()), 10)
		node, item := nodeBundles03(m.DeviceID()), "current"
		if g == omemo.V2 {
			node, item = nodeBundles2, id
		}
		if err := d.c.PublishEnsure(ctxWait(t), node, item, bundleXML(b), open); err != nil {
			t.Fatalf("publishing the %v bundle: %v", g, err)
		}
		if err := d.c.PublishEnsure(ctxWait(t), devicesNode(g), "current", deviceListXML(g, m.DeviceID()), open); err != nil {
			t.Fatalf("publishing the %v device list: %v", g, err)
		}
	}
	return d
}

// receive waits for the next message of generation g and decrypts it with
// the engine; it checks the stanza's decorations as XEP-0384 and XEP-0380
// want them.
func (d *engineDevice) receive(t *testing.T, g omemo.Generation, from *omemopeer.XMPPPeer) *omemo.Decrypted {
	t.Helper()
	var in *client.Incoming
	select {
	case in = <-d.caps[g].got:
	case <-time.After(wait):
		t.Fatalf("%s: no %v message", d.bare, g)
	}
	st := in.Stanza
	if in.From.String() != from.JID {
		t.Fatalf("message from %s, want %s", in.From, from.JID)
	}
	m := d.m[g]
	inc, rids, err := incoming(g, st.Child(g.Namespace(), "encrypted"), from.Bare, omemo.Address{JID: d.bare, DeviceID: m.DeviceID()})
	if err != nil {
		t.Fatalf("reading %s: %v", st, err)
	}
	if inc.From.DeviceID != from.DeviceID {
		t.Fatalf("sid %d, want %d", inc.From.DeviceID, from.DeviceID)
	}
	if g == omemo.V2 && len(rids) != 1 {
		t.Fatalf("keys for %v: carol is alone with one device, the sender too", rids)
	}
	if st.Child(client.NSHints, "store") == nil {
		t.Errorf("no <store/> hint: %s", st)
	}
	if inc.Payload != nil {
		tag := st.Child(eme.NS, "encryption")
		if tag == nil || tag.AttrValue("namespace") != g.Namespace() {
			t.Errorf("EME tag %v", tag)
		}
		if body := st.Child(client.NSClient, "body"); (body != nil) != (g == omemo.V03) {
			t.Errorf("%v message with fallback body %v", g, body)
		}
	}
	dec, err := m.Decrypt(inc)
	if err != nil {
		t.Fatalf("Balcony's engine cannot decrypt %s: %v", st, err)
	}
	return dec
}

// text is what a decrypted message says: 0.3's plaintext, or the body of
// OMEMO 2's XEP-0420 envelope after checking its affixes.
func text(t *testing.T, g omemo.Generation, dec *omemo.Decrypted, sender string) string {
	t.Helper()
	if g == omemo.V03 {
		return string(dec.Plaintext)
	}
	env, err := xmltree.Parse(dec.Plaintext, nil)
	if err != nil {
		t.Fatalf("envelope %q: %v", dec.Plaintext, err)
	}
	if env.Name.Space != nsSCE || env.Name.Local != "envelope" {
		t.Fatalf("envelope %s", env)
	}
	if f := env.Child(nsSCE, "from"); f == nil || f.AttrValue("jid") != sender {
		t.Fatalf("<from/> affix %v, want %s", f, sender)
	}
	if env.Child(nsSCE, "rpad") == nil {
		t.Fatalf("no <rpad/> (XEP-0384 §5.5.1 MUST): %s", env)
	}
	if tm := env.Child(nsSCE, "time"); tm == nil || tm.AttrValue("stamp") == "" {
		t.Fatalf("no <time stamp/>: %s", env)
	}
	content := env.Child(nsSCE, "content")
	if content == nil {
		t.Fatalf("no <content/>: %s", env)
	}
	return content.ChildText(client.NSClient, "body")
}

// send encrypts body ("" for an empty message) with the engine for the
// peer's device and sends it; bundle is the peer's when there is no
// session yet. It returns the key the engine made for the device.
func (d *engineDevice) send(t *testing.T, g omemo.Generation, to *omemopeer.XMPPPeer, body string, bundle *omemo.Bundle) omemo.Key {
	t.Helper()
	m := d.m[g]
	r := []omemo.Recipient{{Address: omemo.Address{JID: to.Bare, DeviceID: to.DeviceID}, Bundle: bundle}}
	var msg *omemo.Message
	var err error
	if body == "" {
		msg, err = m.EncryptEmpty(r)
	} else {
		plaintext := []byte(body)
		if g == omemo.V2 {
			env := xmltree.New(nsSCE, "envelope").Append(
				xmltree.New(nsSCE, "content").Append(xmltree.New(client.NSClient, "body").AppendText(body)),
				xmltree.New(nsSCE, "rpad").AppendText(strings.Repeat("x", 40)),
				xmltree.New(nsSCE, "time", "stamp", time.Now().UTC().Format(time.RFC3339)),
				xmltree.New(nsSCE, "from", "jid", d.bare))
			plaintext = env.Marshal("")
		}
		msg, err = m.Encrypt(plaintext, r)
	}
	if err != nil {
		t.Fatal(err)
	}
	st := xmltree.New(client.NSClient, "message", "to", to.JID, "type", "chat", "id", client.NewID())
	if body != "" && g == omemo.V03 {
		st.Append(xmltree.New(client.NSClient, "body").AppendText("OMEMO 0.3 encrypted message"))
	}
	st.Append(encryptedXML(msg, d.explicitFalse))
	if body != "" {
		st.Append(xmltree.New(eme.NS, "encryption", "namespace", g.Namespace()))
	}
	st.Append(xmltree.New(client.NSHints, "store"))
	if err := d.c.SendElement(ctxWait(t), st); err != nil {
		t.Fatal(err)
	}
	return msg.Keys[0]
}

// peerBundle fetches the peer's device list and bundle of generation g as
// the glue will: from PEP, through the server.
func (d *engineDevice) peerBundle(t *testing.T, g omemo.Generation, p *omemopeer.XMPPPeer) *omemo.Bundle {
	t.Helper()
	items := fetch(t, d.c, p.Bare, devicesNode(g))
	if len(items) != 1 {
		t.Fatalf("%d device list items", len(items))
	}
	ids, err := deviceListIDs(g, items[0].Payload)
	if err != nil || len(ids) != 1 || ids[0] != p.DeviceID {
		t.Fatalf("%s's %v device list %v (%v), want [%d]", p.Bare, g, ids, err, p.DeviceID)
	}
	node, item := nodeBundles03(p.DeviceID), "current"
	if g == omemo.V2 {
		node, item = nodeBundles2, strconv.FormatUint(uint64(p.DeviceID), 10)
	}
	items = fetch(t, d.c, p.Bare, node, item)
	if len(items) != 1 {
		t.Fatalf("%d bundle items", len(items))
	}
	b, err := parseBundle(g, p.DeviceID, items[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWireAgreement: what python-omemo sends through the server decrypts
// with Balcony's engine given carol's key material, and what the engine
// sends decrypts with python-omemo, in both generations, whoever starts
// the session. Carol's identity key has the sign bit python-omemo assumes
// when it reads a 0.3 bundle of ours (see TestWireIdentitySignBit).
func TestWireAgreement(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		carol := newEngineDevice(t, srv, srv.AddUser(t, "carol", ""), 0)
		alice := start(t, srv, srv.AddUser(t, "alice", ""), "")
		bob := start(t, srv, srv.AddUser(t, "bob", ""), "")
		fp := map[*omemopeer.XMPPPeer]string{}
		for _, p := range []*omemopeer.XMPPPeer{alice, bob} {
			id, err := p.Identity()
			if err != nil {
				t.Fatal(err)
			}
			fp[p] = id.Fingerprint
		}
		for _, gen := range gens {
			t.Run(gen, func(t *testing.T) {
				g := generation(gen)
				m := carol.m[g]

				// python-omemo starts: it fetched carol's device list and
				// bundle from PEP and sends a key exchange.
				body := "from python-omemo, gen " + gen + " ✓ <&>"
				s := send(t, alice, carol.bare, gen, body)
				if k := s.Keys[carol.bare]; len(k) != 1 || k[0].RID != m.DeviceID() || !k[0].PreKey {
					t.Fatalf("alice encrypted for %+v, want a key exchange for carol's device %d", s.Keys, m.DeviceID())
				}
				dec := carol.receive(t, g, alice)
				if got := text(t, g, dec, alice.Bare); got != body || !dec.NewSession || !dec.HeartbeatDue {
					t.Fatalf("engine read %q (new session %v, heartbeat due %v), want %q", got, dec.NewSession, dec.HeartbeatDue, body)
				}
				if f, err := omemo.Fingerprint(g, dec.IdentityKey); err != nil || f != fp[alice] {
					t.Fatalf("engine sees alice's key as %q (%v), python-omemo shows %q", f, err, fp[alice])
				}
				// The engine answers the key exchange with an empty message,
				// then with a message.
				if k := carol.send(t, g, alice, "", nil); k.PreKey {
					t.Fatal("the passive side sent a key exchange")
				}
				if e := next(t, alice, "empty"); e.SID != m.DeviceID() || e.Gen != gen || e.PreKey {
					t.Fatalf("alice got %+v", e)
				}
				carol.send(t, g, alice, "from Balcony's engine, gen "+gen, nil)
				ev := expectMessage(t, alice, m.DeviceID(), gen, "from Balcony's engine, gen "+gen, "", false)
				if ev.Fingerprint != m.Fingerprint() {
					t.Fatalf("python-omemo sees carol's key as %q, the engine says %q", ev.Fingerprint, m.Fingerprint())
				}
				for i := range 3 {
					body := "python again " + strconv.Itoa(i)
					if s := send(t, alice, carol.bare, gen, body); s.Keys[carol.bare][0].PreKey {
						t.Fatal("still a key exchange after carol answered")
					}
					dec := carol.receive(t, g, alice)
					if got := text(t, g, dec, alice.Bare); got != body || dec.NewSession {
						t.Fatalf("engine read %q (new session %v), want %q", got, dec.NewSession, body)
					}
				}

				// The engine starts, from bob's bundle fetched from PEP.
				b := carol.peerBundle(t, g, bob)
				if k := carol.send(t, g, bob, "hello from the engine, gen "+gen, b); !k.PreKey {
					t.Fatal("first message without a key exchange")
				}
				ev = expectMessage(t, bob, m.DeviceID(), gen, "hello from the engine, gen "+gen, "", true)
				if ev.Fingerprint != m.Fingerprint() {
					t.Fatalf("python-omemo sees carol's key as %q, the engine says %q", ev.Fingerprint, m.Fingerprint())
				}
				// bob completes the session with an empty message.
				next(t, bob, "sent_empty")
				if dec := carol.receive(t, g, bob); !dec.Empty || dec.NewSession {
					t.Fatalf("engine read bob's empty message as %+v", dec)
				}
				if k := carol.send(t, g, bob, "confirmed, gen "+gen, nil); k.PreKey {
					t.Fatal("still a key exchange after bob's empty message")
				}
				expectMessage(t, bob, m.DeviceID(), gen, "confirmed, gen "+gen, "", false)
				// python-omemo takes any value of kex/prekey for true; the
				// peer reads 'false' as XML Schema does, and says so.
				carol.explicitFalse = true
				carol.send(t, g, bob, "explicitly no key exchange", nil)
				carol.explicitFalse = false
				ev = expectMessageWarned(t, bob, m.DeviceID(), gen, "explicitly no key exchange")
				if want := map[bool]string{true: "kex='false'", false: "prekey='false'"}[g == omemo.V2]; !slices.Equal(ev.Warnings, []string{want}) {
					t.Fatalf("warnings %v, want [%s]", ev.Warnings, want)
				}
				send(t, bob, carol.bare, gen, "and back")
				if got := text(t, g, carol.receive(t, g, bob), bob.Bare); got != "and back" {
					t.Fatalf("engine read %q", got)
				}
			})
		}
	})
}
