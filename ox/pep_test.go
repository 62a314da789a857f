package ox

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	fprA = "1357B01865B2503C18453D208CAC2A9678548E35"
	fprB = "67819B343B2AB70DED9320872C6464AF2A8E4C02"
)

func TestNodeNames(t *testing.T) {
	// XEP-0373 examples 3, 5, 7 and 15 name these nodes.
	for file, node := range map[string]string{
		"xep0373-ex03.xml": PublicKeyNode(fprA),
		"xep0373-ex04.xml": NodePublicKeys,
		"xep0373-ex05.xml": NodePublicKeys,
		"xep0373-ex07.xml": PublicKeyNode(fprA),
		"xep0373-ex11.xml": NodeSecretKey,
		"xep0373-ex15.xml": NodeSecretKey,
	} {
		if b := readTestdata(t, "xep/"+file); !bytes.Contains(b, []byte("node='"+node+"'")) {
			t.Errorf("%s does not name node %s", file, node)
		}
	}
	if f, ok := ParsePublicKeyNode(PublicKeyNode(fprA)); !ok || f != fprA {
		t.Errorf("ParsePublicKeyNode: %q %v", f, ok)
	}
	for _, n := range []string{NodePublicKeys, NodePublicKeys + ":", NodeSecretKey, "urn:xmpp:openpgp:0:public-keysX"} {
		if _, ok := ParsePublicKeyNode(n); ok {
			t.Errorf("%q parsed as a data node", n)
		}
	}
	if FeatureNotify != "urn:xmpp:openpgp:0:public-keys+notify" || NSIM != "urn:xmpp:openpgp:im:0" {
		t.Error("feature strings")
	}
	if !bytes.Contains(readTestdata(t, "xep/xep0374-ex02.xml"), []byte("var='"+NSIM+"'")) {
		t.Error("XEP-0374 example 2 feature")
	}
}

func TestPublicKeysListExamples(t *testing.T) {
	for _, file := range []string{"xep0373-ex04.xml", "xep0373-ex06.xml"} {
		t.Run(file, func(t *testing.T) {
			el := findElement(t, readTestdata(t, "xep/"+file), xml.Name{Space: NS, Local: "public-keys-list"})
			l, err := ParsePublicKeysList(el)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Problems) != 0 || len(l.Keys) != 2 {
				t.Fatalf("%+v", l)
			}
			if l.Keys[0].Fingerprint != fprA || !l.Keys[0].Date.Equal(time.Date(2018, 3, 1, 15, 26, 12, 0, time.UTC)) ||
				l.Keys[0].Node != PublicKeyNode(fprA) {
				t.Errorf("entry 0 %+v", l.Keys[0])
			}
			if l.Keys[1].Fingerprint != fprB || l.Keys[1].Date.Year() != 1953 {
				t.Errorf("entry 1 %+v", l.Keys[1])
			}
			if !l.Contains(strings.ToLower(fprB)) || l.Contains(strings.Repeat("0", 40)) || l.Contains("junk") {
				t.Error("Contains")
			}
			// Re-encoding gives back the same list.
			out := l.Element().Marshal("")
			l2, err := parseXML(out, ParsePublicKeysList)
			if err != nil || len(l2.Keys) != 2 || l2.Keys[1] != l.Keys[1] {
				t.Fatalf("%v %+v\n%s", err, l2, out)
			}
		})
	}
}

func TestPublicKeysListTolerance(t *testing.T) {
	in := `<public-keys-list xmlns='urn:xmpp:openpgp:0'>
	  <pubkey-metadata v4-fingerprint='` + strings.ToLower(fprA) + `' date='2018-03-01T15:26:12Z'/>
	  <pubkey-metadata v4-fingerprint='` + fprB + `'/>
	  <pubkey-metadata v4-fingerprint='` + fprA + `' date='2019-03-01T15:26:12Z'/>
	  <pubkey-metadata v4-fingerprint='ABCD' date='2019-03-01T15:26:12Z'/>
	  <pubkey-metadata date='2019-03-01T15:26:12Z'/>
	  <pubkey-metadata v4-fingerprint='` + strings.Repeat("C", 40) + `' date='not a date'/>
	  <other xmlns='urn:example'/>
	</public-keys-list>`
	l, err := parseXML([]byte(in), ParsePublicKeysList)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Keys) != 3 {
		t.Fatalf("keys %+v", l.Keys)
	}
	// The lower-case entry is kept, upper-cased, and points at the node as
	// published; the problem is reported, not silently repaired.
	if l.Keys[0].Fingerprint != fprA || l.Keys[0].Node != PublicKeyNode(strings.ToLower(fprA)) {
		t.Errorf("entry 0 %+v", l.Keys[0])
	}
	// A missing date affects only its own entry.
	if l.Keys[1].Fingerprint != fprB || !l.Keys[1].Date.IsZero() {
		t.Errorf("entry 1 %+v", l.Keys[1])
	}
	want := []struct {
		index int
		err   error
	}{
		{0, ErrLowercaseFingerprint},
		{1, ErrMissingDate},
		{2, ErrDuplicateFingerprint},
		{3, ErrBadFingerprint},
		{4, ErrBadFingerprint},
		{5, ErrMissingDate},
	}
	if len(l.Problems) != len(want) {
		t.Fatalf("problems %v", l.Problems)
	}
	for i, w := range want {
		var me *MetadataError
		if !errors.As(l.Problems[i], &me) || me.Index != w.index || !errors.Is(me, w.err) {
			t.Errorf("problem %d: %v, want entry %d %v", i, l.Problems[i], w.index, w.err)
		}
	}
	// An empty list is valid; a wrong root is not.
	if l, err := parseXML([]byte(`<public-keys-list xmlns='urn:xmpp:openpgp:0'/>`), ParsePublicKeysList); err != nil || len(l.Keys) != 0 {
		t.Errorf("empty list: %v", err)
	}
	if _, err := parseXML([]byte(`<public-keys-list xmlns='urn:xmpp:openpgp:1'/>`), ParsePublicKeysList); err == nil {
		t.Error("wrong namespace accepted")
	}
}

func TestMerge(t *testing.T) {
	d1 := time.Date(2018, 3, 1, 15, 26, 12, 0, time.UTC)
	d2 := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	fprC := strings.Repeat("C", 40)
	current := []KeyMetadata{
		{Fingerprint: fprA, Date: d1},
		{Fingerprint: strings.ToLower(fprB)}, // another client's sloppy entry
		{Fingerprint: "junk"},
		{Fingerprint: fprA, Date: d2}, // duplicate
	}
	got := Merge(current, KeyMetadata{Fingerprint: fprC, Date: d2}, KeyMetadata{Fingerprint: fprA, Date: d2})
	want := []KeyMetadata{
		{Fingerprint: fprA, Date: d2, Node: PublicKeyNode(fprA)},
		{Fingerprint: fprB, Date: d2, Node: PublicKeyNode(fprB)},
		{Fingerprint: fprC, Date: d2, Node: PublicKeyNode(fprC)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Re-announcing an already listed key changes nothing else.
	again := Merge(got, KeyMetadata{Fingerprint: fprC, Date: d2})
	if len(again) != 3 {
		t.Errorf("re-announce: %+v", again)
	}
	if !(PublicKeysList{Keys: got}).Contains(fprC) || (PublicKeysList{Keys: current[:2]}).Contains(fprC) {
		t.Error("Contains")
	}
	// The merged list marshals with every date present.
	out := PublicKeysList{Keys: got}.Element().Marshal("")
	if bytes.Count(out, []byte("date=")) != 3 {
		t.Errorf("%s", out)
	}
}

func TestPubKey(t *testing.T) {
	k := keys(t)
	data, err := k.alice.MarshalPublic(true)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(data)
	armored, _ := Armor(data)
	// XEP-0373 examples 3 and 8, with a real key in place of the placeholder
	// and the example's indentation inside <data/>.
	for _, file := range []string{"xep0373-ex03.xml", "xep0373-ex08.xml"} {
		ex := readTestdata(t, "xep/"+file)
		if _, err := ParsePubKey(findElement(t, ex, xml.Name{Space: NS, Local: "pubkey"})); err == nil {
			t.Errorf("%s: placeholder parsed as Base64", file)
		}
		ex = bytes.Replace(ex, []byte("BASE64_OPENPGP_PUBLIC_KEY"), []byte(wrap(b64, 60, "\n             ")), 1)
		p, err := ParsePubKey(findElement(t, ex, xml.Name{Space: NS, Local: "pubkey"}))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !bytes.Equal(p.Data, data) || p.Armored {
			t.Errorf("%s: data differs", file)
		}
	}
	for name, tc := range map[string]struct {
		in      string
		armored bool
	}{
		"legacy date":       {`<pubkey xmlns='urn:xmpp:openpgp:0' date='2018-03-01T15:26:12Z'><data>` + b64 + `</data></pubkey>`, false},
		"no padding":        {`<pubkey xmlns='urn:xmpp:openpgp:0'><data>` + strings.TrimRight(b64, "=") + `</data></pubkey>`, false},
		"armor":             {`<pubkey xmlns='urn:xmpp:openpgp:0'><data>` + string(armored) + `</data></pubkey>`, true},
		"base64 of armor":   {`<pubkey xmlns='urn:xmpp:openpgp:0'><data>` + base64.StdEncoding.EncodeToString(armored) + `</data></pubkey>`, true},
		"unknown child":     {`<pubkey xmlns='urn:xmpp:openpgp:0'><x xmlns='urn:example'/><data>` + b64 + `</data></pubkey>`, false},
		"prefixed elements": {`<o:pubkey xmlns:o='urn:xmpp:openpgp:0'><o:data>` + b64 + `</o:data></o:pubkey>`, false},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := parseXML([]byte(tc.in), ParsePubKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Data, data) || p.Armored != tc.armored {
				t.Errorf("data differs or armored=%v", p.Armored)
			}
			if name == "legacy date" && p.Date.Year() != 2018 {
				t.Errorf("date %v", p.Date)
			}
		})
	}
	for name, in := range map[string]string{
		"no data":       `<pubkey xmlns='urn:xmpp:openpgp:0'/>`,
		"two data":      `<pubkey xmlns='urn:xmpp:openpgp:0'><data>` + b64 + `</data><data>` + b64 + `</data></pubkey>`,
		"bad base64":    `<pubkey xmlns='urn:xmpp:openpgp:0'><data>***</data></pubkey>`,
		"empty data":    `<pubkey xmlns='urn:xmpp:openpgp:0'><data/></pubkey>`,
		"child in data": `<pubkey xmlns='urn:xmpp:openpgp:0'><data><x/></data></pubkey>`,
		"broken armor":  `<pubkey xmlns='urn:xmpp:openpgp:0'><data>-----BEGIN PGP PUBLIC KEY BLOCK-----</data></pubkey>`,
		"wrong element": `<pubkey xmlns='urn:xmpp:openpgp:1'><data>` + b64 + `</data></pubkey>`,
	} {
		if _, err := parseXML([]byte(in), ParsePubKey); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	// Building the element, and parsing what it is written as.
	out := PubKey{Data: data, Date: time.Date(2020, 1, 21, 10, 46, 21, 0, time.UTC)}.Element().String()
	want := `<pubkey xmlns="urn:xmpp:openpgp:0" date="2020-01-21T10:46:21Z"><data>` + b64 + `</data></pubkey>`
	if out != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	p, err := parseXML(PubKey{Data: data}.Element().Marshal(""), ParsePubKey)
	if err != nil || !bytes.Equal(p.Data, data) || !p.Date.IsZero() {
		t.Errorf("parsed back: %v", err)
	}
}

func TestSelectAnnounced(t *testing.T) {
	k := keys(t)
	data, _ := k.alice.MarshalPublic(true)
	parsed, err := ParseKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := SelectAnnounced(parsed, strings.ToLower(k.alice.Fingerprint()), aliceJID, t0)
	if err != nil || got.Fingerprint() != k.alice.Fingerprint() || got.Secret() {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := SelectAnnounced(parsed, k.alice2.Fingerprint(), aliceJID, t0); err == nil {
		t.Error("key under another node's fingerprint accepted")
	}
	if _, err := SelectAnnounced(parsed, k.alice.Fingerprint(), bobJID, t0); !errors.Is(err, ErrUserID) {
		t.Errorf("key announced by the wrong account: %v", err)
	}
	if _, err := SelectAnnounced(parsed, "nope", aliceJID, t0); !errors.Is(err, ErrBadFingerprint) {
		t.Errorf("bad fingerprint: %v", err)
	}
}

func TestSecretKeyElement(t *testing.T) {
	backup := []byte{0xc3, 0x2e, 0x04, 0x09, 0x03, 0x08}
	b64 := base64.StdEncoding.EncodeToString(backup)
	ex := readTestdata(t, "xep/xep0373-ex12.xml")
	if _, err := ParseSecretKey(findElement(t, ex, xml.Name{Space: NS, Local: "secretkey"})); err == nil {
		t.Error("placeholder parsed as Base64")
	}
	ex = bytes.Replace(ex, []byte("BASE64_OPENPGP_ENCRYPTED_SECRET_KEY"), []byte(b64), 1)
	got, err := ParseSecretKey(findElement(t, ex, xml.Name{Space: NS, Local: "secretkey"}))
	if err != nil || !bytes.Equal(got, backup) {
		t.Fatalf("%v %x", err, got)
	}
	out := SecretKey{Data: backup}.Element().String()
	if out != `<secretkey xmlns="urn:xmpp:openpgp:0">`+b64+`</secretkey>` {
		t.Errorf("%s", out)
	}
	if got, err := parseXML([]byte(out), ParseSecretKey); err != nil || !bytes.Equal(got, backup) {
		t.Errorf("parsed back: %v %x", err, got)
	}
	for _, in := range []string{
		`<secretkey xmlns='urn:xmpp:openpgp:0'/>`,
		`<secretkey xmlns='urn:xmpp:openpgp:0'><data>` + b64 + `</data></secretkey>`,
		`<secretkey xmlns='urn:xmpp:openpgp:0'>@@@@</secretkey>`,
		`<secretkey>` + b64 + `</secretkey>`,
	} {
		if _, err := parseXML([]byte(in), ParseSecretKey); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// wrap inserts sep every n characters, as the XEP examples indent Base64.
func wrap(s string, n int, sep string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString(sep)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}
