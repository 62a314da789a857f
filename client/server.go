package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
)

// Features of the server that the client uses only when advertised.
const (
	FeaturePublishOptions = NSPubSub + "#publish-options"
)

// ServerInfo is what the account's server offers that the client uses,
// discovered (XEP-0030) after each login: the server's own features
// (carbons) and those of the account (MAM, PEP). The client uses each
// only when advertised and says so when it is missing.
type ServerInfo struct {
	// Discovered is false when the server did not answer discovery; the
	// flags below are then all false.
	Discovered bool
	// Carbons: XEP-0280 Message Carbons (copies of messages to and from
	// the account's other devices).
	Carbons bool
	// Archive: XEP-0313 Message Archive Management on the account.
	Archive bool
	// PEP: XEP-0163 Personal Eventing on the account (OX keys, OMEMO
	// devices).
	PEP bool
	// PublishOptions: XEP-0060 §7.1.5 publish-options; without them node
	// options are set by configuring the node after publishing.
	PublishOptions bool
	// Auth is how the login went (channel binding, mechanism, TLS).
	Auth AuthInfo
}

// Missing lists, by name, what Balcony uses that the server lacks.
func (s ServerInfo) Missing() []string {
	if !s.Discovered {
		return []string{"service discovery (XEP-0030)"}
	}
	var out []string
	for _, f := range []struct {
		ok   bool
		name string
	}{
		{s.Carbons, "message carbons (XEP-0280)"},
		{s.Archive, "message archive (XEP-0313)"},
		{s.PEP, "personal eventing (XEP-0163)"},
		{s.PublishOptions, "pubsub publish-options (XEP-0060)"},
	} {
		if !f.ok {
			out = append(out, f.name)
		}
	}
	return out
}

// ErrNotOffered is matched (errors.Is) by an *UnsupportedError.
var ErrNotOffered = errors.New("client: the server does not offer this")

// UnsupportedError reports an operation that needs a server feature the
// server does not advertise.
type UnsupportedError struct {
	Feature string // e.g. "message archive (XEP-0313)"
}

func (e *UnsupportedError) Error() string {
	return "client: the server does not offer " + e.Feature
}

// Is makes errors.Is(err, ErrNotOffered) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrNotOffered }

// Server returns what the server offers, as discovered at the last login.
func (c *Client) Server() ServerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.server
	s.Auth = c.auth
	return s
}

// discoverServer asks the server and the account what they offer.
func (c *Client) discoverServer(ctx context.Context) ServerInfo {
	log := c.cfg.logger()
	var s ServerInfo
	domain, err := jid.New("", c.cfg.JID.Domainpart(), "")
	if err != nil {
		return s
	}
	server, err := c.QueryInfo(ctx, domain, "")
	if err != nil {
		log.Warn("service discovery of the server failed", "err", err)
		return s
	}
	s.Discovered = true
	s.Carbons = server.Has(NSCarbons)
	account, err := c.QueryInfo(ctx, c.cfg.JID.Bare(), "")
	if err != nil {
		log.Warn("service discovery of the account failed", "err", err)
		return s
	}
	s.Archive = account.Has(NSMAM)
	s.PEP = slices.ContainsFunc(account.Identities, func(id Identity) bool {
		return id.Category == "pubsub" && id.Type == "pep"
	})
	s.PublishOptions = account.Has(FeaturePublishOptions)
	if missing := s.Missing(); len(missing) > 0 {
		log.Info("the server lacks features Balcony can use", "missing", fmt.Sprint(missing))
	}
	return s
}

// needs returns an *UnsupportedError when the server is known not to
// offer a feature (discovery answered without it).
func (c *Client) needs(ok func(ServerInfo) bool, feature string) error {
	s := c.Server()
	if s.Discovered && !ok(s) {
		return &UnsupportedError{Feature: feature}
	}
	return nil
}
