package eme

import (
	"strings"
	"testing"

	"golang.org/x/text/language"
)

func BenchmarkDetect(b *testing.B) {
	for _, bc := range []struct {
		name   string
		stanza string
	}{
		{"ox", msg(payloadXML[OX], body(FallbackBody(OX)), tag(OX))},
		{"otr", msg(body(otrEncoded(3, 0x03)), tag(OTR))},
		{"omemo2-64KiB", msg(strings.Replace(payloadXML[OMEMO2], "base64/encoded/message", strings.Repeat("A", 64<<10), 1), tag(OMEMO2))},
		{"plain", msg(body("Wherefore art thou, Romeo?"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := []byte(bc.stanza)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Detect(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNoticeText(b *testing.B) {
	n := NewNotice("urn:example:x", "Example Crypt", ReasonNotSupported)
	for b.Loop() {
		_ = n.Text(language.Russian)
	}
}

// TestDetectManyTags checks that a message made of thousands of distinct
// tags, the worst case for resolving them, is still classified.
func TestDetectManyTags(t *testing.T) {
	var sb strings.Builder
	const n = 3000
	for i := range n {
		sb.WriteString(`<encryption xmlns='urn:xmpp:eme:0' namespace='urn:example:`)
		sb.WriteString(strings.Repeat("x", i%50))
		sb.WriteString(string(rune('a' + i%26)))
		sb.WriteString(`' name='n'/>`)
	}
	d, err := Detect([]byte(msg(sb.String())))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tags) != n || d.Disagreement == nil || d.Disagreement.Kind != TagsDiffer || d.Mechanism != "" || !d.Encrypted {
		t.Errorf("Detect of %d tags: %d tags, %v, mechanism %q", n, len(d.Tags), d.Disagreement.Kind, d.Mechanism)
	}
	// The notice and the log line list a few of them only.
	if text := d.Notice(ReasonUnspecified).String(); len([]rune(text)) > 400 || !strings.Contains(text, "…") {
		t.Errorf("notice of %d runes: %.200q", len([]rune(text)), text)
	}
	if s := d.Disagreement.String(); len([]rune(s)) > 400 || !strings.Contains(s, "…") {
		t.Errorf("Disagreement.String() of %d runes", len([]rune(s)))
	}
}
