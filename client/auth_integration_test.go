package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/internal/servertest"
)

// TestIntegrationLogin logs in to every server with every SCRAM variant,
// over STARTTLS and direct TLS, with TLS left to negotiate and capped at
// 1.2, with the default mechanism list: it works out of the box, and the
// login is bound to the TLS connection whenever the server offers
// binding. A wrong password is reported as such.
func TestIntegrationLogin(t *testing.T) {
	servertest.Each(t, func(t *testing.T, s *servertest.Server) {
		for _, domain := range []string{s.Domain, s.SHA1Domain} {
			acct := s.AddUser(t, "login", domain)
			for _, direct := range []bool{false, true} {
				for _, capped := range []bool{false, true} {
					name := fmt.Sprintf("%s/direct=%v/tls12=%v", domain, direct, capped)
					t.Run(name, func(t *testing.T) {
						cfg := client.Config{JID: acct.JID, Password: acct.Password, Addr: s.Addr, CAFile: s.CAFile, DisablePresence: true}
						if direct {
							cfg.Addr, cfg.DirectTLS = s.TLSAddr, true
						}
						if capped {
							cfg.TLSMaxVersion = tls.VersionTLS12
						}
						c, err := client.New(cfg)
						if err != nil {
							t.Fatal(err)
						}
						defer c.Close()
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						defer cancel()
						if err := c.Connect(ctx); err != nil {
							t.Fatalf("connect: %v", err)
						}
						a := c.Auth()
						t.Logf("%s: %s, binding %q, TLS %#x, announced %v", s.Name(), a.Mechanism, a.ChannelBinding, a.TLSVersion, a.Advertised)
						wantHash := "SCRAM-SHA-256"
						if domain == s.SHA1Domain {
							wantHash = "SCRAM-SHA-1"
						}
						// Both servers bind with tls-unique under TLS 1.2;
						// Prosody 0.12 offers no binding under TLS 1.3,
						// ejabberd 23.01 is moved to TLS 1.2 to bind.
						bound := s.Kind == servertest.Ejabberd || capped
						switch {
						case bound && (a.Mechanism != wantHash+"-PLUS" || a.ChannelBinding != client.BindingTLSUnique || a.TLSVersion != tls.VersionTLS12):
							t.Errorf("not bound: %+v", a)
						case !bound && (a.Mechanism != wantHash || a.ChannelBinding != ""):
							t.Errorf("unexpected login: %+v", a)
						}
					})
				}
			}
			t.Run(domain+"/wrong-password", func(t *testing.T) {
				c, err := client.New(client.Config{JID: acct.JID, Password: "not the password", Addr: s.Addr, CAFile: s.CAFile, DisablePresence: true})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				err = c.Connect(ctx)
				ae, ok := errors.AsType[*client.AuthError](err)
				if !ok || ae.Condition != "not-authorized" || ae.BindingSuspect() {
					t.Fatalf("wrong password: %v (%#v)", err, ae)
				}
			})
		}
	})
}
