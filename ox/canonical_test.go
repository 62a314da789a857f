package ox

import (
	"bytes"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"mellium.im/xmpp/jid"
)

// The content element is what gets signed and encrypted: its bytes are
// pinned here, for contents built by a sender and for contents parsed from
// another client and marshalled again.

var canonicalCases = []struct {
	name    string
	content func(t testing.TB) Content
	want    string
}{
	{
		name: "im message",
		content: func(t testing.TB) Content {
			return Content{Kind: Signcrypt, To: []jid.JID{bobJID}, Time: t0, Rpad: "pad-_0",
				Payload: payloadOf(t, `<body>Wherefore art thou?</body>`)}
		},
		want: "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.net\"/><time stamp=\"2026-03-14T15:09:26Z\"/><rpad>pad-_0</rpad><payload><body xmlns=\"jabber:client\">Wherefore art thou?</body></payload></signcrypt>",
	},
	{
		name: "escapes and namespaces",
		content: func(t testing.TB) Content {
			return Content{Kind: Sign, To: []jid.JID{jid.MustParse("juliet@example.org"), jid.MustParse("romeo@example.net/orchard")},
				Time: time.Date(2020, 1, 21, 12, 46, 21, 987654321, time.FixedZone("x", 7200)),
				Payload: payloadOf(t, `<body xml:lang="en">a &lt;b&gt; &amp; "c" 'd' ]]&gt; ☃`+"\t&#xD;&#x9;\n"+`</body>`+
					`<active xmlns="http://jabber.org/protocol/chatstates"/>`+
					`<x xmlns="urn:example:x" xmlns:p="urn:example:p" p:attr="v&#10;w" plain="1" q='a"b' r="&lt;&gt;&amp;'&#9;&#13;"><y><z xmlns="">t</z></y><p:w/></x>`+
					`<body xmlns="jabber:server"> <![CDATA[<cdata>]]><!-- comment --><e/><e> </e></body>`)}
		},
		want: "<sign xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"juliet@example.org\"/><to jid=\"romeo@example.net/orchard\"/><time stamp=\"2020-01-21T10:46:21Z\"/><payload><body xmlns=\"jabber:client\" xml:lang=\"en\">a &lt;b&gt; &amp; \"c\" 'd' ]]&gt; ☃\t&#xD;\t\n</body><active xmlns=\"http://jabber.org/protocol/chatstates\"/><x xmlns=\"urn:example:x\" xmlns:ns1=\"urn:example:p\" ns1:attr=\"v&#xA;w\" plain=\"1\" q=\"a&quot;b\" r=\"&lt;>&amp;'&#x9;&#xD;\"><y><z xmlns=\"\">t</z></y><w xmlns=\"urn:example:p\"/></x><body xmlns=\"jabber:server\"> &lt;cdata&gt;<e/><e> </e></body></payload></sign>",
	},
	{
		name: "crypt without payload",
		content: func(t testing.TB) Content {
			return Content{Kind: Crypt, Time: t0, Rpad: rpadAlphabet}
		},
		want: "<crypt xmlns=\"urn:xmpp:openpgp:0\"><time stamp=\"2026-03-14T15:09:26Z\"/><rpad>ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_</rpad><payload></payload></crypt>",
	},
}

func TestCanonicalContentBytes(t *testing.T) {
	for _, tc := range canonicalCases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.content(t)
			got, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			// Parsing and marshalling again gives the same bytes.
			p, err := ParseContent(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := p.Marshal()
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("parsed and marshalled again: %v\n%s", err, again)
			}
		})
	}
}

// Content written by other clients: quoting, prefixes, declarations and
// white space differ, the element marshalled again does not.
func TestCanonicalParsedContentBytes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{
			in: "<?xml version='1.0' encoding='UTF-8'?>\n<signcrypt xmlns='urn:xmpp:openpgp:0'>\n  <to jid='juliet@example.org'/>\n" +
				"  <time stamp='2014-07-10T17:06:00+02:00'/>\n  <rpad>f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv</rpad>\n" +
				"  <payload>\n    <body xmlns='jabber:client'>This is a secret message.</body>\n  </payload>\n</signcrypt>\n",
			want: "<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"juliet@example.org\"/><time stamp=\"2014-07-10T15:06:00Z\"/><rpad>f0rm1l4n4-mT8y33j!Y%fRSrcd^ZE4Q7VDt1L%WEgR!kv</rpad><payload><body xmlns=\"jabber:client\">This is a secret message.</body></payload></signcrypt>",
		},
		{
			in: `<o:crypt xmlns:o='urn:xmpp:openpgp:0'><o:time stamp='2020-01-21T10:46:21.5Z'/><o:payload>` +
				`<body>inherits the OX namespace</body><c:x xmlns:c='urn:c' c:a='1' xml:lang='en'><c:y/><z/></c:x></o:payload>` +
				`<o:rpad>x</o:rpad><unknown xmlns='urn:u'><deep/></unknown></o:crypt>`,
			want: "<crypt xmlns=\"urn:xmpp:openpgp:0\"><time stamp=\"2020-01-21T10:46:21Z\"/><rpad>x</rpad><payload><body xmlns=\"\">inherits the OX namespace</body><x xmlns=\"urn:c\" xmlns:ns1=\"urn:c\" ns1:a=\"1\" xml:lang=\"en\"><y/><z xmlns=\"\"/></x></payload></crypt>",
		},
	} {
		c, err := ParseContent([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("got\n%s\nwant\n%s", got, tc.want)
		}
	}
}

// Seal encrypts exactly the bytes Marshal gives for the content it fills in.
func TestSealPlaintextIsCanonical(t *testing.T) {
	k := keys(t)
	for _, tc := range canonicalCases {
		c := tc.content(t)
		if c.Kind != Signcrypt {
			continue
		}
		msg := sealFor(t, c, k.alice, k.bob)
		md, err := openpgp.ReadMessage(bytes.NewReader(msg), openpgp.EntityList{k.bob.entity}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var plain bytes.Buffer
		if _, err := plain.ReadFrom(md.UnverifiedBody); err != nil {
			t.Fatal(err)
		}
		if plain.String() != tc.want {
			t.Errorf("%s: sealed\n%s\nwant\n%s", tc.name, plain.Bytes(), tc.want)
		}
	}
}
