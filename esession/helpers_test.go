package esession

import (
	"crypto/rand"
	"io"
	"testing"
	"time"
)

// deliver sends o as a stanza from the JID from to m: it serialises the
// stanza, parses it back as a client would, and hands it to m.
func deliver(t testing.TB, o Outbound, from string, m *Manager, subscribed bool) Result {
	t.Helper()
	res, _ := deliverErr(t, o, from, m, subscribed)
	return res
}

func deliverErr(t testing.TB, o Outbound, from string, m *Manager, subscribed bool) (Result, error) {
	t.Helper()
	in, err := ParseMessage(o.Stanza())
	if err != nil {
		t.Fatalf("ParseMessage: %v\n%s", err, o.Stanza())
	}
	in.From, in.Subscribed = from, subscribed
	return m.Receive(in)
}

type timeT = time.Time

const hour = time.Hour

func timeAt(d time.Duration) time.Time { return time.Unix(1_700_000_000, 0).Add(d) }

func randReader() io.Reader { return rand.Reader }
