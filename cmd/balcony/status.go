package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

var statusCommand = &command{
	name:    "status",
	summary: "show the running listener of an account, or wait for it",
	usage: `Usage: balcony status [--wait DUR]

Shows whether a "balcony listen" runs for the account, the JID it is
connected as, how it logged in (TLS version, SASL mechanism, channel
binding), and which server features Balcony uses are missing on the
server (message carbons, the message archive, personal eventing,
publish-options): Balcony works without each, with less. With --wait,
waits up to DUR for a listener to be ready (for scripts that start one in
the background). Exit status 1 when none is running.
`,
	run: runStatus,
}

// controlStatus serves "status" on the control socket.
func controlStatus(ctx context.Context, s *session, _ json.RawMessage) (any, error) {
	srv := s.client.Server()
	return statusResult{JID: s.client.JID().String(), Connected: s.client.Connected(), Features: s.client.Features(),
		TLS: tlsName(srv.Auth.TLSVersion), Mechanism: srv.Auth.Mechanism, Binding: srv.Auth.ChannelBinding, Missing: srv.Missing()}, nil
}

type statusResult struct {
	JID       string   `json:"jid"`
	Connected bool     `json:"connected"`
	Features  []string `json:"features"`
	TLS       string   `json:"tls,omitempty"`
	Mechanism string   `json:"sasl,omitempty"`
	Binding   string   `json:"channel_binding,omitempty"`
	// Missing lists server features Balcony uses that the server lacks.
	Missing []string `json:"missing,omitempty"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags("status")
	wait := fs.Duration("wait", 0, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a, err := currentAccount(e)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	delay := 10 * time.Millisecond
	for {
		var st statusResult
		err := callControl(ctx, e, a, "status", nil, &st)
		if err == nil && st.Connected {
			fmt.Fprintf(e.stdout, "listening as %s\n", st.JID)
			binding := "without channel binding"
			if st.Binding != "" {
				binding = "bound with " + st.Binding
			}
			if st.TLS != "" {
				fmt.Fprintf(e.stdout, "logged in over %s with %s, %s\n", st.TLS, st.Mechanism, binding)
			}
			if len(st.Missing) > 0 {
				fmt.Fprintf(e.stdout, "the server lacks: %s\n", strings.Join(st.Missing, ", "))
			}
			return nil
		}
		if err != nil && !errors.Is(err, errNoListener) {
			return err
		}
		if time.Now().After(deadline) {
			if err == nil {
				return fmt.Errorf("the listener for %s is not connected", a.JID)
			}
			return needListener(err, a)
		}
		// Poll the socket with backoff until the listener answers.
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// tlsName names a TLS version ("TLS 1.3"), "" when there is none.
func tlsName(v uint16) string {
	if v == 0 {
		return ""
	}
	return tls.VersionName(v)
}
