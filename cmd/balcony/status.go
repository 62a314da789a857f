package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/balcony-im/balcony/client"
)

var statusCommand = &command{
	name:    "status",
	summary: "show the running listener of an account, or wait for it",
	usage: `Usage: balcony status [--wait DUR]

Shows whether a "balcony listen" runs for the account and the state of
its connection: connected (since when, resumed or not, whether the server
acknowledges messages, XEP-0198, and how many it has not yet), reconnecting
(the connection dropped; it is being re-established), or stalled (connected,
but the server has not answered a liveness probe: nothing was heard from it
for a while; the connection is dropped and re-established if no answer
comes). It also shows the JID it is connected as, how it logged in (TLS version, SASL mechanism, channel
binding), and which server features Balcony uses are missing on the
server (message carbons, the message archive, personal eventing,
publish-options): Balcony works without each, with less. With --wait,
waits up to DUR for a listener to be ready (for scripts that start one in
the background). Exit status 1 when none is running or it is not
connected (reconnecting or stalled).
`,
	run: runStatus,
}

// controlStatus serves "status" on the control socket.
func controlStatus(ctx context.Context, s *session, _ json.RawMessage) (any, error) {
	srv := s.client.Server()
	cs := s.client.ConnectionStatus()
	st := statusResult{JID: s.client.JID().String(), Connected: cs.Connected && !cs.Stalled, Features: s.client.Features(),
		TLS: tlsName(srv.Auth.TLSVersion), Mechanism: srv.Auth.Mechanism, Binding: srv.Auth.ChannelBinding, Missing: srv.Missing(),
		State: connState(cs), Since: cs.Since, Resumed: cs.Resumed, StreamManagement: cs.StreamManagement,
		Unacked: cs.Unacked, Silent: cs.Silent.Seconds()}
	return st, nil
}

// connState names the state of a connection for status.
func connState(cs client.ConnectionStatus) string {
	switch {
	case cs.Stalled:
		return "stalled"
	case cs.Connected:
		return "connected"
	case cs.Reconnecting:
		return "reconnecting"
	}
	return "disconnected"
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
	// State is "connected", "stalled", "reconnecting" or "disconnected";
	// Since is when the connection came up or went down.
	State            string    `json:"state"`
	Since            time.Time `json:"since,omitzero"`
	Resumed          bool      `json:"resumed,omitempty"`
	StreamManagement bool      `json:"stream_management,omitempty"`
	Unacked          int       `json:"unacked,omitempty"`
	Silent           float64   `json:"silent_seconds,omitempty"`
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
			fmt.Fprintf(e.stdout, "connected%s%s\n", sinceText(st.Since), smText(st))
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
				return notConnected(a, st)
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

func sinceText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " since " + t.UTC().Format(time.RFC3339)
}

// smText describes stream management (XEP-0198) on a connection.
func smText(st statusResult) string {
	txt := ""
	if st.Resumed {
		txt += ", stream resumed"
	}
	if !st.StreamManagement {
		return txt + "; the server does not acknowledge messages (no stream management): kept alive with pings"
	}
	return txt + fmt.Sprintf("; the server acknowledges messages (stream management), %d not yet", st.Unacked)
}

// notConnected is the error for a listener that is not connected.
func notConnected(a *accountConfig, st statusResult) error {
	switch st.State {
	case "stalled":
		return withHint(fmt.Errorf("the connection of the listener for %s is stalled: nothing heard from the server for %.0fs", a.JID, st.Silent),
			"it is dropped and re-established if the server does not answer soon; messages sent meanwhile wait until the server acknowledges them")
	case "reconnecting":
		return withHint(fmt.Errorf("the listener for %s is reconnecting: the connection dropped%s", a.JID, sinceText(st.Since)),
			"messages in the clear, with OX or with OMEMO wait in the outbox until it is back; OTR and Encrypted Sessions need the connection")
	}
	return fmt.Errorf("the listener for %s is not connected", a.JID)
}

// tlsName names a TLS version ("TLS 1.3"), "" when there is none.
func tlsName(v uint16) string {
	if v == 0 {
		return ""
	}
	return tls.VersionName(v)
}
