package esession

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/balcony-im/balcony/xmltree"
)

func TestPEPKeyRoundTrip(t *testing.T) {
	begin := time.Date(2026, 1, 14, 18, 44, 18, 0, time.UTC)
	for _, name := range []string{"rsa_alice", "dsa_alice"} {
		t.Run(name, func(t *testing.T) {
			k := &PEPKey{Key: testKey(t, name).Public(), JID: "alice@example.org", Begin: begin, End: begin.AddDate(1, 0, 0)}
			el, err := k.Element()
			if err != nil {
				t.Fatal(err)
			}
			form := "rsakey"
			if name == "dsa_alice" {
				form = "key"
			}
			if el.Child(NSPubKey, form) == nil {
				t.Errorf("not the %s form: %s", form, el)
			}
			back, err := ParsePEPKey(wire(t, el))
			if err != nil {
				t.Fatal(err)
			}
			if !back.Key.Equal(k.Key) || back.JID != k.JID || !back.Begin.Equal(k.Begin) || !back.End.Equal(k.End) {
				t.Errorf("round trip: %+v", back)
			}
			if !back.ValidAt(begin.Add(time.Hour)) || back.ValidAt(begin.AddDate(2, 0, 0)) || back.ValidAt(begin.Add(-time.Second)) {
				t.Error("ValidAt")
			}
		})
	}
}

// The schema form's print is base64(SHA-256(begin+end+jid+modulus+exponent))
// with the decimal modulus and exponent (XEP-0189 §3).
func TestPEPKeyRSAPrint(t *testing.T) {
	pub := testKey(t, "rsa_bob").Public()
	k := &PEPKey{Key: pub, JID: "bob@example.com", Begin: time.Unix(1_700_000_000, 0), End: time.Unix(1_800_000_000, 0)}
	el, _ := k.Element()
	h := sha256.Sum256([]byte("2023-11-14T22:13:20Z" + "2027-01-15T08:00:00Z" + "bob@example.com" + pub.RSA.N.String() + "65537"))
	if got := el.Child(NSPubKey, "rsakey").ChildText(NSPubKey, "print"); got != base64.StdEncoding.EncodeToString(h[:]) {
		t.Errorf("print %s", got)
	}
}

// The other form of the XEP's examples: a SubjectPublicKeyInfo in <key/>,
// dates without a zone, a hexadecimal print, line-wrapped base64.
func TestPEPKeyExampleForm(t *testing.T) {
	der, err := x509.MarshalPKIXPublicKey(&testKey(t, "rsa_alice").RSA.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(der)
	b := base64.StdEncoding.EncodeToString(der)
	wrapped := b[:64] + "\n      " + b[64:]
	in := "<pubkey xmlns='urn:xmpp:pubkey:2'><begin>2009-12-11T20:12:37</begin><end>2010-12-11T23:59:59</end>" +
		"<jid>peter@jabber.org</jid><key>\n      " + wrapped + "\n    </key><print>" + hex.EncodeToString(h[:]) + "</print></pubkey>"
	el, err := xmltree.Parse([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePEPKey(el)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Key.Equal(testKey(t, "rsa_alice").Public()) || k.Begin != time.Date(2009, 12, 11, 20, 12, 37, 0, time.UTC) {
		t.Errorf("%+v", k)
	}
	bad := strings.Replace(in, hex.EncodeToString(h[:4]), "00000000", 1)
	el, _ = xmltree.Parse([]byte(bad), nil)
	if _, err := ParsePEPKey(el); !errors.Is(err, ErrPEPKey) {
		t.Errorf("wrong print accepted: %v", err)
	}
}

func TestParsePEPKeyRejects(t *testing.T) {
	k := &PEPKey{Key: testKey(t, "rsa_alice").Public(), JID: "alice@example.org", Begin: time.Unix(1e9, 0), End: time.Unix(2e9, 0)}
	el, _ := k.Element()
	good := string(el.Marshal(""))
	weak, _ := rsa.GenerateKey(randReader(), 1024)
	mod := weak.N.String()
	weakXML := "<pubkey xmlns='urn:xmpp:pubkey:2'><begin>b</begin><end>e</end><jid>a@b</jid><rsakey><modulus>" + mod +
		"</modulus><publicExponent>65537</publicExponent><print>" + rsaPrint("b", "e", "a@b", mod, "65537") + "</print></rsakey></pubkey>"
	weakXML = strings.NewReplacer("<begin>b", "<begin>2001-09-09T01:46:40Z", "<end>e", "<end>2033-05-18T03:33:20Z").Replace(weakXML)
	weakXML = strings.Replace(weakXML, rsaPrint("b", "e", "a@b", mod, "65537"), rsaPrint("2001-09-09T01:46:40Z", "2033-05-18T03:33:20Z", "a@b", mod, "65537"), 1)
	cases := map[string]string{
		"changed modulus":  strings.Replace(good, "<modulus>"+k.Key.RSA.N.String()[:5], "<modulus>"+k.Key.RSA.N.String()[:4]+"0", 1),
		"changed jid":      strings.Replace(good, "alice@example.org", "eve@example.org", 1),
		"no print":         good[:strings.Index(good, "<print")] + "</rsakey></pubkey>",
		"end before begin": strings.Replace(strings.Replace(good, "2001-09-09", "X", 1), "2033-05-18", "2001-09-09", 1),
		"other namespace":  strings.Replace(good, NSPubKey, "urn:xmpp:pubkey:1", 1),
		"weak key":         weakXML,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			el, err := xmltree.Parse([]byte(in), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParsePEPKey(el); !errors.Is(err, ErrKey) {
				t.Errorf("accepted: %v\n%s", err, in)
			}
		})
	}
}

func FuzzParsePEPKey(f *testing.F) {
	for _, name := range []string{"rsa_alice", "dsa_alice"} {
		el, _ := (&PEPKey{Key: testKey(f, name).Public(), JID: "a@b.c", Begin: time.Unix(1e9, 0), End: time.Unix(2e9, 0)}).Element()
		f.Add(el.Marshal(""))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		el, err := xmltree.Parse(in, nil)
		if err != nil {
			return
		}
		k, err := ParsePEPKey(el)
		if err != nil {
			if !errors.Is(err, ErrKey) {
				t.Fatalf("error %v", err)
			}
			return
		}
		out, err := k.Element()
		if err != nil {
			t.Fatalf("an accepted key cannot be written: %v", err)
		}
		back, err := ParsePEPKey(wire(t, out))
		if err != nil || !back.Key.Equal(k.Key) || back.JID != k.JID {
			t.Fatalf("round trip: %v", err)
		}
	})
}
