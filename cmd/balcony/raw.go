package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/xmltree"
)

var rawCommand = &command{
	name:    "raw",
	summary: "send one raw XML stanza (for testing other clients)",
	usage: `Usage: balcony raw [flags] STANZA
       balcony raw [flags] -          (read the stanza from standard input)

Sends one <message/>, <presence/> or <iq/> exactly as given, in the
jabber:client namespace, through the running listener if there is one.
No encryption, tag or hint is added: this is a tool for testing how other
clients (and Balcony itself) handle unusual input, for example a message
tagged with an unknown encryption mechanism:

  balcony raw '<message to="bob@example.org" type="chat"><body>fallback</body>
    <encryption xmlns="urn:xmpp:eme:0" namespace="urn:example:new"/></message>'

Flags:
  --timeout DUR   how long to wait for the connection (default 30s)
` + secretFlagsUsage,
	run: runRaw,
}

// controlRaw serves "raw" on the control socket.
func controlRaw(ctx context.Context, s *session, args json.RawMessage) (any, error) {
	var stanza string
	if err := json.Unmarshal(args, &stanza); err != nil {
		return nil, err
	}
	st, err := parseRawStanza(stanza)
	if err != nil {
		return nil, err
	}
	return nil, s.client.SendElement(ctx, st)
}

func parseRawStanza(s string) (*xmltree.Element, error) {
	st, err := xmltree.Parse([]byte(`<stream xmlns="jabber:client">`+s+`</stream>`), nil)
	if err != nil {
		return nil, &usageError{msg: "the stanza is not well-formed XML: " + err.Error()}
	}
	els := st.Elements()
	if len(els) != 1 {
		return nil, &usageError{msg: "give exactly one stanza"}
	}
	el := els[0]
	if el.Name.Space != client.NSClient || (el.Name.Local != "message" && el.Name.Local != "presence" && el.Name.Local != "iq") {
		return nil, &usageError{msg: "the stanza must be a message, presence or iq in jabber:client"}
	}
	return el, nil
}

func runRaw(ctx context.Context, e *env, args []string) error {
	fs := newFlags("raw")
	var so secretOptions
	so.add(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &usageError{msg: "raw needs one stanza (or - for standard input)"}
	}
	text := fs.Arg(0)
	if text == "-" {
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return err
		}
		text = string(b)
	}
	st, err := parseRawStanza(text)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	a, err := currentAccount(e)
	if err != nil {
		return err
	}
	err = callControl(ctx, e, a, "raw", text, nil)
	if !errors.Is(err, errNoListener) {
		return err
	}
	sess, err := connect(ctx, e, &so, func(c *client.Config) { c.DisablePresence = true })
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sess.client.SendElement(ctx, st); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}
