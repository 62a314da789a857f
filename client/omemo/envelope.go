package omemo

import (
	"encoding/base64"
	"errors"
	"io"
	"time"

	"github.com/balcony-im/balcony/client"
	"github.com/balcony-im/balcony/xmltree"
)

// NSSCE is the namespace of XEP-0420 Stanza Content Encryption, whose
// <envelope/> OMEMO 2 encrypts (XEP-0384 §5.5.1).
const NSSCE = "urn:xmpp:sce:1"

// maxPad bounds the random padding of an envelope.
const maxPad = 64

// envelopeLimits bound the parsing of a decrypted envelope: the payload
// came through the sender's ratchet, but the sender is still a stranger.
var envelopeLimits = &xmltree.Limits{MaxDepth: 32, MaxNodes: 4096, MaxBytes: 256 << 10}

// buildEnvelope returns the XEP-0420 envelope of a message: the body and
// the other protected children in <content/>, random padding in <rpad/>
// (XEP-0384 §5.5.1 MUST), the time and the sender's bare JID (<from/>,
// SHOULD). No <to/>: it is required only in group chats.
func buildEnvelope(rand io.Reader, body string, payload []*xmltree.Element, from string, now time.Time) ([]byte, error) {
	content := xmltree.New(NSSCE, "content")
	if body != "" {
		content.Append(xmltree.New(client.NSClient, "body").AppendText(body))
	}
	for _, e := range payload {
		content.Append(e)
	}
	// The padding hides the length of short messages: 1 to maxPad random
	// bytes, written as Base64.
	var n [1]byte
	if _, err := io.ReadFull(rand, n[:]); err != nil {
		return nil, err
	}
	pad := make([]byte, int(n[0])%maxPad+1)
	if _, err := io.ReadFull(rand, pad); err != nil {
		return nil, err
	}
	env := xmltree.New(NSSCE, "envelope").Append(
		content,
		xmltree.New(NSSCE, "rpad").AppendText(base64.RawStdEncoding.EncodeToString(pad)),
		xmltree.New(NSSCE, "time", "stamp", now.UTC().Format(time.RFC3339)),
		xmltree.New(NSSCE, "from", "jid", from),
	)
	return env.Marshal(""), nil
}

// envelope is what a received XEP-0420 envelope says.
type envelope struct {
	content []*xmltree.Element
	// from and to are the affixes' JIDs ("" when absent); stamp is the
	// time affix (zero when absent or unreadable).
	from, to string
	stamp    time.Time
}

// parseEnvelope reads a decrypted OMEMO 2 payload.
func parseEnvelope(b []byte) (*envelope, error) {
	el, err := xmltree.Parse(b, envelopeLimits)
	if err != nil {
		return nil, &ParseError{What: "envelope", Err: err}
	}
	if el.Name.Space != NSSCE || el.Name.Local != "envelope" {
		return nil, &ParseError{What: "envelope", Err: errors.New("not an <envelope xmlns='urn:xmpp:sce:1'/>")}
	}
	c := el.Child(NSSCE, "content")
	if c == nil {
		return nil, &ParseError{What: "envelope", Err: errors.New("no <content/>")}
	}
	env := &envelope{content: c.Elements()}
	if f := el.Child(NSSCE, "from"); f != nil {
		env.from = f.AttrValue("jid")
		if env.from == "" {
			env.from = "?"
		}
	}
	if t := el.Child(NSSCE, "to"); t != nil {
		env.to = t.AttrValue("jid")
		if env.to == "" {
			env.to = "?"
		}
	}
	if t := el.Child(NSSCE, "time"); t != nil {
		if ts, err := time.Parse(time.RFC3339, t.AttrValue("stamp")); err == nil {
			env.stamp = ts
		}
	}
	return env, nil
}
