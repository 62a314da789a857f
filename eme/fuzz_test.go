package eme

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedStanzas returns the XEP-0380 examples and the detection table.
func seedStanzas(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "xep0380", "example*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, tc := range detectCases() {
		out = append(out, []byte(tc.stanza))
	}
	return out
}

func FuzzDetect(f *testing.F) {
	for _, s := range seedStanzas(f) {
		f.Add(s)
	}
	f.Add([]byte(`<!DOCTYPE message [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><message><body>&b;</body></message>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Detect(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if d.Encrypted && d.Control {
			t.Fatal("Encrypted and Control")
		}
		if d.Disagreement != nil && d.Mechanism != "" && d.Disagreement.Kind != TagWithoutPayload {
			t.Fatalf("Mechanism %q despite %v", d.Mechanism, d.Disagreement)
		}
		if d.Mechanism != "" {
			for _, tg := range d.Tags {
				if tg.Namespace != d.Mechanism {
					t.Fatalf("tag %q, mechanism %q", tg.Namespace, d.Mechanism)
				}
			}
			for _, p := range d.Payloads {
				if p.Namespace != d.Mechanism {
					t.Fatalf("payload %q, mechanism %q", p.Namespace, d.Mechanism)
				}
			}
		}
		if (len(d.Tags) > 0 || d.MalformedTags > 0) && !d.Encrypted {
			t.Fatal("tagged message not encrypted")
		}
		dt, err := DetectTokens(xml.NewDecoder(strings.NewReader(string(data))))
		if err != nil {
			t.Fatalf("DetectTokens failed where Detect succeeded: %v", err)
		}
		if !reflect.DeepEqual(d, dt) {
			t.Fatalf("DetectTokens = %+v, Detect = %+v", dt, d)
		}
		for _, r := range []Reason{ReasonUnspecified, ReasonNotSupported, ReasonNotEnabled} {
			n := d.Notice(r)
			for _, lang := range Languages() {
				checkClean(t, n.Text(lang))
			}
		}
	})
}

func FuzzEncryption(f *testing.F) {
	for _, s := range seedStanzas(f) {
		for _, toks := range children(f, s, encName) {
			f.Add(encode(f, toks))
		}
	}
	f.Add([]byte(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:x' name='X'><y/>z</encryption>`))
	f.Add([]byte(`<encryption xmlns='urn:xmpp:eme:0'/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Encryption
		if err := xml.Unmarshal(data, &e); err != nil {
			return
		}
		if e.Namespace == "" || len(e.Namespace) > MaxNamespaceLen {
			t.Fatalf("accepted namespace %q", e.Namespace)
		}
		out, err := xml.Marshal(e)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", e, err)
		}
		var back Encryption
		if err := xml.Unmarshal(out, &back); err != nil || back != e {
			t.Fatalf("round trip of %+v via %s = %+v, %v", e, out, back, err)
		}
		checkClean(t, SanitizeName(e.Name))
	})
}

func FuzzClassifyOTR(f *testing.F) {
	for _, s := range []string{
		otrEncoded(3, 0x03), otrEncoded(2, 0x11), otrFragments(otrEncoded(3, 0x03), 3, true)[1],
		otrFragments(otrEncoded(2, 0x03), 2, false)[0], libotrQuery, "?OTR Error: x",
		"Hi" + wsBase + wsV2 + wsV3, "?OTR|1|2,3,4,x,", "plain",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		kind, version := ClassifyOTR(body)
		if version < 0 || version > 0xFFFF {
			t.Fatalf("version %d", version)
		}
		switch kind {
		case OTRNone:
		case OTRFragment:
			if !strings.Contains(body, "?OTR|") && !strings.Contains(body, "?OTR,") {
				t.Fatal("fragment without marker")
			}
		case OTRWhitespaceTag:
			if !strings.Contains(body, wsBase) {
				t.Fatal("whitespace tag without tag")
			}
		case OTRQuery, OTRError, OTRData, OTRKeyExchange, OTREncoded:
			if !strings.Contains(body, "?OTR") {
				t.Fatalf("%v without ?OTR", kind)
			}
		default:
			t.Fatalf("kind %d", int(kind))
		}
	})
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"Example Crypt", "Evil\u202eCrypt", "a\u0085b\nc", `"x"`, "“q”", strings.Repeat("ж", 100), "e\u0301\u0302\u0303", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeName(s)
		if got == "" {
			return
		}
		if !strings.HasPrefix(got, "“") || !strings.HasSuffix(got, "”") {
			t.Fatalf("not quoted: %q", got)
		}
		if n := utf8.RuneCountInString(got); n > MaxNameRunes+2 || n < 3 {
			t.Fatalf("%d runes: %q", n, got)
		}
		if strings.Count(got, "“")+strings.Count(got, "”")+strings.Count(got, `"`) != 2 {
			t.Fatalf("quotes inside: %q", got)
		}
		checkClean(t, got)
		if again := SanitizeName(got); again != got {
			t.Fatalf("not idempotent: %q -> %q", got, again)
		}
	})
}
