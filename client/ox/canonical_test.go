package ox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"mellium.im/xmpp/jid"

	"github.com/balcony-im/balcony/client"
	engine "github.com/balcony-im/balcony/ox"
	"github.com/balcony-im/balcony/xmltree"
)

// The content element a client sends is what gets signed and encrypted:
// its bytes for a body with characters that need escaping (and one that
// XML cannot carry) and for extra payload elements are pinned here.
func TestOXSealedContentBytes(t *testing.T) {
	stamp := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	cfg := Config{Rand: mrand.NewChaCha8([32]byte{42}), Now: func() time.Time { return stamp }}
	alice := newOXPeerKey(t, "alice@example.org/laptop", cfg, mustKeyAt(t, "alice@example.org", stamp))
	bob := newOXPeerKey(t, "bob@example.org/phone", Config{}, mustKeyAt(t, "bob@example.org", stamp))
	alice.learn(t, bob.j, bob.key)
	out := &client.Outgoing{To: bob.j, Type: "chat", ID: "c1", Thread: "t1",
		Body: "it's <a> & \"b\"\t\r\n\x01 \xff end ☃",
		Payload: []*xmltree.Element{
			xmltree.New("urn:xmpp:receipts", "request"),
			xmltree.New("urn:xmpp:message-correct:0", "replace", "id", `q"'<>&`+"\t\n"),
			xmltree.New(client.NSClient, "subject").AppendText("sub"),
			xmltree.New("", "bare").Append(xmltree.New("urn:x", "x").AppendText("\x02")),
			{Name: xml.Name{Space: "urn:y", Local: "y"}, Attr: []xml.Attr{
				{Name: xml.Name{Space: "urn:foreign", Local: "f"}, Value: "1"},
				{Name: xml.Name{Space: "http://www.w3.org/XML/1998/namespace", Local: "lang"}, Value: "en"},
				{Name: xml.Name{Local: "plain"}, Value: "p"},
			}},
		}}
	sealed, err := alice.x.Seal(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	data, err := base64.StdEncoding.DecodeString(sealed.Stanzas[0].ChildText(engine.NS, "openpgp"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := bob.key.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := openpgp.ReadKeyRing(bytes.NewReader(sec))
	if err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(bytes.NewReader(data), ring, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(md.UnverifiedBody); err != nil {
		t.Fatal(err)
	}
	const want = "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.org\"/><time stamp=\"2026-03-14T15:09:26Z\"/><rpad>wf4Yp4awHwWUWf0DQGmz1ZEV5N0MKXo5J7d</rpad><payload><body xmlns=\"jabber:client\">it's &lt;a&gt; &amp; \"b\"\t&#xD;\n� � end ☃</body><request xmlns=\"urn:xmpp:receipts\"/><replace xmlns=\"urn:xmpp:message-correct:0\" id=\"q&quot;'&lt;>&amp;&#x9;&#xA;\"/><subject xmlns=\"jabber:client\">sub</subject><bare xmlns=\"\"><x xmlns=\"urn:x\">�</x></bare><y xmlns=\"urn:y\" xml:lang=\"en\" plain=\"p\"/></payload></signcrypt>"
	if plain.String() != want {
		t.Errorf("got\n%q\nwant\n%q", plain.Bytes(), want)
	}
}

// mustKeyAt generates a key created at t.
func mustKeyAt(t testing.TB, addr string, created time.Time) *engine.Key {
	t.Helper()
	k, err := engine.GenerateKey(jid.MustParse(addr), engine.EdDSA25519, &engine.Config{Now: func() time.Time { return created.Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
