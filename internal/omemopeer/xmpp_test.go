package omemopeer_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/omemopeer"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/omemo"
)

// Tests of the XMPP peer against the real test servers: two (or three)
// python-omemo clients talking through Prosody and ejabberd. They make
// the peer a trustworthy reference for Balcony's own OMEMO glue.

const wait = 30 * time.Second

var gens = []string{omemopeer.Gen03, omemopeer.Gen2}

// start registers local on srv and starts a published peer for it.
func start(t *testing.T, srv *servertest.Server, acct servertest.Account, resource string) *omemopeer.XMPPPeer {
	t.Helper()
	return omemopeer.StartXMPP(t, srv, acct, omemopeer.XMPPOptions{Resource: resource})
}

func send(t *testing.T, from *omemopeer.XMPPPeer, to, gen, body string) *omemopeer.Sent {
	t.Helper()
	s, err := from.Send(to, gen, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Errors) > 0 {
		t.Fatalf("%s sending to %s: %v", from.JID, to, s.Errors)
	}
	return s
}

func sendEmpty(t *testing.T, from *omemopeer.XMPPPeer, to, gen string) *omemopeer.Sent {
	t.Helper()
	s, err := from.SendEmpty(to, gen)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// next waits for the next event of kind on p; other events stay queued.
func next(t *testing.T, p *omemopeer.XMPPPeer, kind string) omemopeer.Event {
	t.Helper()
	ev, err := p.Next(kind, nil, wait)
	if err != nil {
		t.Fatalf("%s: %v", p.JID, err)
	}
	return ev
}

// expectMessage waits for the next message on p and checks it.
func expectMessage(t *testing.T, p *omemopeer.XMPPPeer, sid uint32, gen, body, carbon string, prekey bool) omemopeer.Event {
	t.Helper()
	ev := expectMessageWarned(t, p, sid, gen, body)
	if ev.Carbon != carbon || ev.PreKey != prekey {
		t.Fatalf("%s got %+v, want carbon %q prekey %v", p.JID, ev, carbon, prekey)
	}
	if len(ev.Warnings) > 0 {
		t.Errorf("%s: warnings %v", p.JID, ev.Warnings)
	}
	return ev
}

// expectMessageWarned waits for the next message on p and checks who sent
// what, leaving the rest to the caller.
func expectMessageWarned(t *testing.T, p *omemopeer.XMPPPeer, sid uint32, gen, body string) omemopeer.Event {
	t.Helper()
	ev, err := p.Next("", func(ev omemopeer.Event) bool {
		return ev.Kind == "message" || ev.Kind == "decrypt_error" || ev.Kind == "plain"
	}, wait)
	if err != nil {
		t.Fatalf("%s waiting for %q: %v", p.JID, body, err)
	}
	if ev.Kind != "message" {
		t.Fatalf("%s waiting for %q got %+v", p.JID, body, ev)
	}
	if ev.Gen != gen || ev.Body != body || ev.SID != sid {
		t.Fatalf("%s got %+v, want gen %s body %q from device %d", p.JID, ev, gen, body, sid)
	}
	return ev
}

// rids lists the recipient device ids of a message for jid.
func rids(keys map[string][]omemopeer.KeyInfo, jid string) []uint32 {
	var out []uint32
	for _, k := range keys[jid] {
		out = append(out, k.RID)
	}
	slices.Sort(out)
	return out
}

// quiet matches the events a test must not leave unread: not device list
// notifications, the empty messages a peer sent on its own, nor the
// carbons of other devices' empty messages, nor second copies.
func quiet(ev omemopeer.Event) bool {
	return ev.Kind != "devicelist" && ev.Kind != "sent_empty" && ev.Kind != "not_for_us" && ev.Kind != "duplicate"
}

func sorted(ids ...uint32) []uint32 {
	slices.Sort(ids)
	return ids
}

// TestXMPPConversation: alice and bob, one device each, speak each
// generation both ways through the server: the first message is a key
// exchange that bob answers with an empty message, after which nothing
// carries a key exchange any more; then a conversation with ratchet turns
// in both directions and runs of several messages.
func TestXMPPConversation(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		alice := start(t, srv, srv.AddUser(t, "alice", ""), "")
		bob := start(t, srv, srv.AddUser(t, "bob", ""), "")
		for _, gen := range gens {
			t.Run(gen, func(t *testing.T) {
				aliceID, err := alice.Identity()
				if err != nil {
					t.Fatal(err)
				}
				s := send(t, alice, bob.JID, gen, "hello bob, gen "+gen)
				if got := s.Keys[bob.Bare]; len(got) != 1 || got[0].RID != bob.DeviceID || !got[0].PreKey {
					t.Fatalf("first message keys %+v, want one key exchange for bob's device %d", s.Keys, bob.DeviceID)
				}
				if len(s.Keys[alice.Bare]) != 0 {
					t.Fatalf("alice has one device but encrypted for her own %v", s.Keys[alice.Bare])
				}
				ev := expectMessage(t, bob, alice.DeviceID, gen, "hello bob, gen "+gen, "", true)
				if ev.Fingerprint != aliceID.Fingerprint || ev.Trust != "blind" {
					t.Fatalf("bob sees alice as %q (%s), want %q (blind)", ev.Fingerprint, ev.Trust, aliceID.Fingerprint)
				}
				if gen == omemopeer.Gen2 {
					env := ev.Envelope
					if env == nil || env.From != alice.Bare || env.Time == "" || env.RPad < 0 || !slices.Equal(env.Content, []string{"{jabber:client}body"}) {
						t.Fatalf("envelope %+v", env)
					}
				}
				// Bob completes the key exchange with an empty message.
				se := next(t, bob, "sent_empty")
				if se.Gen != gen || se.To != alice.Bare || !slices.Equal(rids(se.Keys, alice.Bare), []uint32{alice.DeviceID}) {
					t.Fatalf("bob's empty message %+v", se)
				}
				e := next(t, alice, "empty")
				if e.Gen != gen || e.SID != bob.DeviceID || e.PreKey {
					t.Fatalf("alice got %+v", e)
				}

				// A conversation: runs of 1 to 4 messages, turn after turn.
				for round, run := range []int{1, 3, 2, 4, 1, 1, 2, 3} {
					from, to := bob, alice
					if round%2 == 1 {
						from, to = alice, bob
					}
					for i := range run {
						body := fmt.Sprintf("%s round %d message %d ✓ <&>", gen, round, i)
						s := send(t, from, to.JID, gen, body)
						if k := s.Keys[to.Bare]; len(k) != 1 || k[0].PreKey {
							t.Fatalf("keys %+v: want one key and no key exchange", s.Keys)
						}
						expectMessage(t, to, from.DeviceID, gen, body, "", false)
					}
				}

				// XEP-0384 §7: after a run of messages without an answer,
				// the receiver sends an empty message on the first message
				// with a counter of 53 or more, so that the ratchet turns.
				// Bob speaks first, so that alice's run starts a new chain.
				send(t, bob, alice.JID, gen, "your turn")
				expectMessage(t, alice, bob.DeviceID, gen, "your turn", "", false)
				for n := range 54 {
					body := fmt.Sprintf("%s one-way message %d", gen, n)
					send(t, alice, bob.JID, gen, body)
					expectMessage(t, bob, alice.DeviceID, gen, body, "", false)
					// python-omemo sends the heartbeat while decrypting,
					// so it is announced before the message it answers.
					_, err := bob.TryNext("sent_empty", nil)
					if n < 53 && err == nil {
						t.Fatalf("heartbeat after message %d", n)
					}
					if n == 53 && err != nil {
						t.Fatalf("no heartbeat after message %d: %v", n, err)
					}
				}
				if e := next(t, alice, "empty"); e.SID != bob.DeviceID || e.Gen != gen {
					t.Fatalf("alice got %+v", e)
				}
				send(t, alice, bob.JID, gen, "a new chain")
				expectMessage(t, bob, alice.DeviceID, gen, "a new chain", "", false)
				if ev, err := bob.TryNext("sent_empty", nil); err == nil {
					t.Fatalf("heartbeat on a new chain: %+v", ev)
				}
				// An empty message on request.
				s = sendEmpty(t, alice, bob.JID, gen)
				if k := s.Keys[bob.Bare]; len(k) != 1 || k[0].RID != bob.DeviceID || k[0].PreKey {
					t.Fatalf("empty message keys %+v", s.Keys)
				}
				if e := next(t, bob, "empty"); e.SID != alice.DeviceID || e.Gen != gen || e.PreKey {
					t.Fatalf("bob got %+v", e)
				}

				for _, p := range []*omemopeer.XMPPPeer{alice, bob} {
					if ev, err := p.TryNext("", quiet); err == nil {
						t.Errorf("%s: unexpected %+v", p.JID, ev)
					}
				}
			})
		}
	})
}

// TestXMPPSecondDevice: bob has two devices. The second one published
// its device without dropping the first from the device lists, alice
// encrypts for both, and bob's second device reads through XEP-0280
// carbons both what alice sent to the first and what the first sent.
func TestXMPPSecondDevice(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		bobAcct := srv.AddUser(t, "bob", "")
		alice := start(t, srv, srv.AddUser(t, "alice", ""), "")
		phone := start(t, srv, bobAcct, "phone")
		laptop := start(t, srv, bobAcct, "laptop")
		if !phone.Carbons || !laptop.Carbons {
			t.Fatal("the server refused carbons")
		}
		both := sorted(phone.DeviceID, laptop.DeviceID)
		for _, gen := range gens {
			devs, err := alice.Devices(phone.Bare, gen)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint32
			for _, d := range devs {
				ids = append(ids, d.DeviceID)
			}
			if !slices.Equal(ids, both) {
				t.Fatalf("alice sees bob's %s devices %v, want %v", gen, ids, both)
			}
		}
		for _, gen := range gens {
			t.Run(gen, func(t *testing.T) {
				// alice writes to the phone: the phone reads it live, the
				// laptop as a carbon; both answer the key exchange.
				body := "to the phone, gen " + gen
				s := send(t, alice, phone.JID, gen, body)
				if got := rids(s.Keys, phone.Bare); !slices.Equal(got, both) {
					t.Fatalf("alice encrypted for %v, want %v", got, both)
				}
				expectMessage(t, phone, alice.DeviceID, gen, body, "", true)
				expectMessage(t, laptop, alice.DeviceID, gen, body, "received", true)
				for range 2 {
					next(t, alice, "empty")
				}

				// The phone answers: alice reads it, the laptop reads the
				// carbon of what the phone sent, with a key exchange of its
				// own (the phone had no session with the laptop yet).
				body = "from the phone, gen " + gen
				s = send(t, phone, alice.JID, gen, body)
				if got := rids(s.Keys, alice.Bare); !slices.Equal(got, []uint32{alice.DeviceID}) {
					t.Fatalf("the phone encrypted for alice's %v", got)
				}
				if k := s.Keys[phone.Bare]; len(k) != 1 || k[0].RID != laptop.DeviceID || !k[0].PreKey {
					t.Fatalf("the phone encrypted for its own devices %+v, want a key exchange with the laptop", k)
				}
				expectMessage(t, alice, phone.DeviceID, gen, body, "", false)
				expectMessage(t, laptop, phone.DeviceID, gen, body, "sent", true)
				// The laptop completes the key exchange with the phone.
				if e := next(t, phone, "empty"); e.SID != laptop.DeviceID {
					t.Fatalf("the phone got %+v", e)
				}

				// Now every session is confirmed: no key exchange left.
				body = "to both, gen " + gen
				s = send(t, alice, phone.JID, gen, body)
				for _, k := range s.Keys[phone.Bare] {
					if k.PreKey {
						t.Fatalf("still a key exchange: %+v", s.Keys)
					}
				}
				expectMessage(t, phone, alice.DeviceID, gen, body, "", false)
				expectMessage(t, laptop, alice.DeviceID, gen, body, "received", false)
				body = "from the laptop, gen " + gen
				send(t, laptop, alice.JID, gen, body)
				expectMessage(t, alice, laptop.DeviceID, gen, body, "", false)
				expectMessage(t, phone, laptop.DeviceID, gen, body, "sent", false)
				for _, p := range []*omemopeer.XMPPPeer{alice, phone, laptop} {
					if ev, err := p.TryNext("", quiet); err == nil {
						t.Errorf("%s: unexpected %+v", p.JID, ev)
					}
				}
			})
		}
	})
}

// connectClient logs acct in with Balcony's own client: the neutral
// observer of what the peers publish and send. TLS 1.2 is forced because
// ejabberd 23.01 offers SCRAM-*-PLUS with tls-unique only.
func connectClient(t *testing.T, srv *servertest.Server, acct servertest.Account) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{JID: acct.JID, Password: acct.Password, Addr: srv.Addr, CAFile: srv.CAFile,
		TLSMinVersion: tls.VersionTLS12, TLSMaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		c.Close()
		t.Fatalf("connect %s: %v", acct.JID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func fetch(t *testing.T, c *client.Client, owner, node string, ids ...string) []client.PubSubItem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	items, err := c.FetchItems(ctx, jid.MustParse(owner), node, 0, ids...)
	if err != nil {
		t.Fatalf("%s fetching %s of %s: %v", c.JID(), node, owner, err)
	}
	return items
}

// TestXMPPPEP checks the device lists and bundles the peers publish as
// a third account with no relation to them reads them (which only an
// open access model allows), and the nodes' configuration as their owner
// sees it. Bob's second device keeps the first in the device lists and
// next to it in the OMEMO 2 bundles node; alice, subscribed to bob's
// device lists (XEP-0060 §6.1), is told of the second device.
func TestXMPPPEP(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		bobAcct := srv.AddUser(t, "bob", "")
		carol := connectClient(t, srv, srv.AddUser(t, "carol", ""))
		alice := start(t, srv, srv.AddUser(t, "alice", ""), "")
		phone := start(t, srv, bobAcct, "phone")
		subs, err := alice.Subscribe(phone.Bare, "")
		if err != nil {
			t.Fatal(err)
		}
		if subs[omemopeer.Gen03] != "subscribed" || subs[omemopeer.Gen2] != "subscribed" {
			t.Fatalf("subscriptions %v", subs)
		}
		laptop := start(t, srv, bobAcct, "laptop")
		both := sorted(phone.DeviceID, laptop.DeviceID)
		for _, gen := range gens {
			if _, err := alice.Next("devicelist", func(ev omemopeer.Event) bool {
				return ev.Gen == gen && ev.JID == phone.Bare && slices.Equal(ev.Devices, both)
			}, wait); err != nil {
				t.Fatalf("alice was not told of bob's second %s device: %v", gen, err)
			}
		}

		fingerprints := map[uint32]string{}
		for _, p := range []*omemopeer.XMPPPeer{phone, laptop} {
			id, err := p.Identity()
			if err != nil {
				t.Fatal(err)
			}
			if id.DeviceID != p.DeviceID {
				t.Fatalf("identity of device %d, want %d", id.DeviceID, p.DeviceID)
			}
			fingerprints[p.DeviceID] = id.Fingerprint
		}
		for _, gen := range gens {
			g := generation(gen)
			items := fetch(t, carol, phone.Bare, devicesNode(g))
			if len(items) != 1 || items[0].ID != "current" {
				t.Fatalf("%s: %d items %+v, want one \"current\"", devicesNode(g), len(items), items)
			}
			ids, err := deviceListIDs(g, items[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Sort(ids); !slices.Equal(ids, both) {
				t.Fatalf("%s lists %v, want %v", devicesNode(g), ids, both)
			}
			for _, id := range both {
				node, item := nodeBundles03(id), "current"
				if g == omemo.V2 {
					node, item = nodeBundles2, strconv.FormatUint(uint64(id), 10)
				}
				items := fetch(t, carol, phone.Bare, node, item)
				if len(items) != 1 || items[0].ID != item {
					t.Fatalf("%s item %s: got %+v", node, item, items)
				}
				b, err := parseBundle(g, id, items[0].Payload)
				if err != nil {
					t.Fatal(err)
				}
				// Balcony's engine accepts the bundle (key encodings, the
				// signature) and derives the fingerprint python-omemo shows.
				if err := b.Verify(); err != nil {
					t.Fatalf("%s bundle of %d: %v", gen, id, err)
				}
				if len(b.PreKeys) != 100 {
					t.Fatalf("%s bundle of %d has %d pre-keys", gen, id, len(b.PreKeys))
				}
				fp, err := omemo.Fingerprint(g, b.IdentityKey)
				if err != nil || fp != fingerprints[id] {
					t.Fatalf("%s fingerprint of %d: %q (%v), python-omemo shows %q", gen, id, fp, err, fingerprints[id])
				}
			}
			nodes := []string{devicesNode(g)}
			if g == omemo.V2 {
				var ids []uint32
				for _, it := range fetch(t, carol, phone.Bare, nodeBundles2) {
					id, err := parseID(it.ID)
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}
				if slices.Sort(ids); !slices.Equal(ids, both) {
					t.Fatalf("%s holds the bundles of %v, want %v", nodeBundles2, ids, both)
				}
				nodes = append(nodes, nodeBundles2)
			} else {
				nodes = append(nodes, nodeBundles03(phone.DeviceID), nodeBundles03(laptop.DeviceID))
			}
			for _, node := range nodes {
				cfg, err := phone.NodeConfig(node)
				if err != nil {
					t.Fatal(err)
				}
				if cfg["pubsub#access_model"] != "open" {
					t.Errorf("%s: access model %q", node, cfg["pubsub#access_model"])
				}
				if node == nodeBundles2 && cfg["pubsub#max_items"] != "max" {
					t.Errorf("%s: max_items %q", node, cfg["pubsub#max_items"])
				}
			}
		}
	})
}

// TestXMPPManualTrust: a peer without blind trust refuses to encrypt for
// an undecided device, encrypts once the device is trusted, and neither
// encrypts for nor reads from a distrusted one.
func TestXMPPManualTrust(t *testing.T) {
	servertest.Each(t, func(t *testing.T, srv *servertest.Server) {
		alice := omemopeer.StartXMPP(t, srv, srv.AddUser(t, "alice", ""), omemopeer.XMPPOptions{Manual: true, Gens: []string{omemopeer.Gen2}})
		bob := start(t, srv, srv.AddUser(t, "bob", ""), "")
		gen := omemopeer.Gen2
		if _, err := alice.Send(bob.JID, gen, "too early"); err == nil || !strings.Contains(err.Error(), "TrustDecisionFailed") {
			t.Fatalf("sending to an undecided device: %v", err)
		}
		devs, err := alice.Devices(bob.Bare, gen)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != 1 || devs[0].DeviceID != bob.DeviceID || devs[0].Trust != "undecided" {
			t.Fatalf("alice sees %+v", devs)
		}
		if err := alice.Trust(bob.Bare, devs[0].IdentityKey, "trusted"); err != nil {
			t.Fatal(err)
		}
		send(t, alice, bob.JID, gen, "trusted now")
		expectMessage(t, bob, alice.DeviceID, gen, "trusted now", "", true)
		next(t, alice, "empty")

		if err := alice.Trust(bob.Bare, devs[0].IdentityKey, "distrusted"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Send(bob.JID, gen, "never"); err == nil || !strings.Contains(err.Error(), "NoEligibleDevices") {
			t.Fatalf("sending to a distrusted device: %v", err)
		}
		send(t, bob, alice.JID, gen, "unheard")
		ev := next(t, alice, "decrypt_error")
		if !strings.Contains(ev.Error, "SenderDistrusted") {
			t.Fatalf("alice read a distrusted device's message as %+v", ev)
		}
	})
}
