package client_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/clienttest"
	"github.com/balcony-im/balcony/internal/servertest"
	"github.com/balcony-im/balcony/xmltree"
)

// TestIntegrationServerFeatures: on every server, ejabberd without
// carbons included, the client discovers what the server offers, logs in
// and talks whatever is missing, says what is missing, and publishes PEP
// nodes with the options it needs whatever publish-options the server
// takes (ejabberd refuses max_items and deliver_payloads there).
func TestIntegrationServerFeatures(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		alice, bob := s.AddUser(t, "alice", ""), s.AddUser(t, "bob", "")
		a := clienttest.ConnectTo(t, s, alice, "laptop", nil)
		b := clienttest.ConnectTo(t, s, bob, "phone", nil)
		info := a.Server()
		t.Logf("%s: %+v, missing %v", s.Name(), info, info.Missing())
		if !info.Discovered || info.Carbons != s.Carbons || !info.Archive || !info.PEP || !info.PublishOptions {
			t.Fatalf("discovered %+v on %s (carbons %v)", info, s.Name(), s.Carbons)
		}
		if missing := info.Missing(); s.Carbons != !slices.Contains(missing, "message carbons (XEP-0280)") {
			t.Fatalf("missing %v", missing)
		}

		// Messages flow with or without carbons.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.Send(ctx, &client.Outgoing{To: b.JID(), Body: "hello from " + s.Name()}, ""); err != nil {
			t.Fatal(err)
		}
		clienttest.WaitFor(t, b, func(m *client.MessageEvent) bool { return m.Body == "hello from "+s.Name() })

		// A node that must stay private, with options some servers take
		// only as node configuration.
		node := "urn:example:balcony:private"
		required := client.NodeOptions{"access_model": "whitelist", "persist_items": "true"}
		optional := client.NodeOptions{"max_items": "1", "deliver_payloads": "false", "send_last_published_item": "never"}
		payload := xmltree.New("urn:example:balcony", "secret").AppendText("1")
		if err := a.PublishNode(ctx, node, "current", payload, required, optional); err != nil {
			t.Fatalf("publishing a whitelist node: %v", err)
		}
		cfg, err := a.NodeConfig(ctx, node)
		if err != nil || cfg["pubsub#access_model"] != "whitelist" {
			t.Fatalf("node configuration %v %v", cfg, err)
		}
		// Bob cannot read it.
		if items, err := b.FetchItems(ctx, alice.JID, node, 0); err == nil && len(items) > 0 {
			t.Fatalf("bob read alice's whitelist node: %+v", items)
		}
		// The same node reconfigured to presence by a later publish.
		if err := a.PublishNode(ctx, node, "current", payload, client.NodeOptions{"access_model": "presence"}, nil); err != nil {
			t.Fatalf("republishing with another access model: %v", err)
		}
		if cfg, err := a.NodeConfig(ctx, node); err != nil || cfg["pubsub#access_model"] != "presence" {
			t.Fatalf("node configuration after republishing %v %v", cfg, err)
		}
		// An option no server has is reported, never ignored silently.
		err = a.PublishNode(ctx, node+":2", "current", payload, client.NodeOptions{"access_model": "no-such-model"}, nil)
		if err == nil {
			t.Fatal("an impossible access model was accepted")
		}
		var ce *client.NodeConfigError
		var se *client.StanzaError
		if !errors.As(err, &ce) && !errors.As(err, &se) {
			t.Fatalf("impossible access model: %v", err)
		}
	}, servertest.WithoutCarbons)
}
