package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

var statusCommand = &command{
	name:    "status",
	summary: "show the running listener of an account, or wait for it",
	usage: `Usage: balcony status [--wait DUR]

Shows whether a "balcony listen" runs for the account, the JID it is
connected as, and its mechanisms. With --wait, waits up to DUR for a
listener to be ready (for scripts that start one in the background).
Exit status 1 when none is running.
`,
	run: runStatus,
}

// controlStatus serves "status" on the control socket.
func controlStatus(ctx context.Context, s *session, _ json.RawMessage) (any, error) {
	return statusResult{JID: s.client.JID().String(), Connected: s.client.Connected(), Features: s.client.Features()}, nil
}

type statusResult struct {
	JID       string   `json:"jid"`
	Connected bool     `json:"connected"`
	Features  []string `json:"features"`
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
