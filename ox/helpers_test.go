package ox

import (
	"crypto"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/xmltree"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func testConfig() *Config {
	return &Config{Rand: mrandReader(1), Now: func() time.Time { return t0 }}
}

// mrandReader returns a deterministic random source for tests.
func mrandReader(seed byte) *mrand.ChaCha8 { return mrand.NewChaCha8([32]byte{seed}) }

// Test identities. Keys are made once per test binary.
var (
	aliceJID   = jid.MustParse("alice@example.org")
	bobJID     = jid.MustParse("bob@example.net")
	malloryJID = jid.MustParse("mallory@evil.example")

	keysOnce sync.Once
	tk       struct {
		alice, alice2, bob, bob2, mallory *Key
	}
)

// keys returns the shared test keys: two devices each for Alice and Bob (the
// XEP-0374 multi-key case) and Mallory.
func keys(t testing.TB) *struct{ alice, alice2, bob, bob2, mallory *Key } {
	t.Helper()
	keysOnce.Do(func() {
		gen := func(j jid.JID) *Key {
			k, err := GenerateKey(j, EdDSA25519, &Config{Now: func() time.Time { return t0.Add(-time.Hour) }})
			if err != nil {
				panic(err)
			}
			return k
		}
		tk.alice, tk.alice2 = gen(aliceJID), gen(aliceJID)
		tk.bob, tk.bob2 = gen(bobJID), gen(bobJID)
		tk.mallory = gen(malloryJID)
	})
	return &tk
}

// rawEntity makes a go-crypto entity with an arbitrary user ID and lifetime,
// for keys Balcony itself would never generate.
func rawEntity(t testing.TB, uid string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	pc := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Curve:           packet.Curve25519,
		DefaultHash:     crypto.SHA256,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	e, err := openpgp.NewEntity(uid, "", "", pc)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustKey(t testing.TB, e *openpgp.Entity) *Key {
	t.Helper()
	k, err := newKey(e)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealFor is Seal with the test clock, failing the test on error.
func sealFor(t testing.TB, c Content, signer *Key, recipients ...*Key) []byte {
	t.Helper()
	msg, err := Seal(c, signer, recipients, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func opener(t testing.TB, own ...*Key) *Opener {
	t.Helper()
	o, err := NewOpener(own, &Config{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// payloadOf parses a fragment of payload children whose unqualified
// elements are in jabber:client.
func payloadOf(t testing.TB, fragment string) []*xmltree.Element {
	t.Helper()
	el, err := xmltree.Parse([]byte(`<payload xmlns="jabber:client">`+fragment+`</payload>`), nil)
	if err != nil {
		t.Fatalf("payload %q: %v", fragment, err)
	}
	return el.Elements()
}

// body returns a <body/> in jabber:client with the given text.
func body(text string) *xmltree.Element {
	return xmltree.New(NSClient, "body").AppendText(text)
}

// childXML returns the self-contained encoding of a payload child, as the
// content element carries it.
func childXML(t testing.TB, e *xmltree.Element) string {
	t.Helper()
	b, err := appendElement(nil, e, "", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// payloadXML returns the encoding of payload children, as the content
// element carries them.
func payloadXML(t testing.TB, payload []*xmltree.Element) string {
	t.Helper()
	var b strings.Builder
	for _, e := range payload {
		b.WriteString(childXML(t, e))
	}
	return b.String()
}

// parseXML parses one element of b and hands it to parse, as a client does
// with a stanza child.
func parseXML[T any](b []byte, parse func(*xmltree.Element) (T, error)) (T, error) {
	el, err := xmltree.Parse(b, nil)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(el)
}

// mustParse parses one element.
func mustParse(t testing.TB, b []byte) *xmltree.Element {
	t.Helper()
	el, err := xmltree.Parse(b, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return el
}
