package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkEndToEnd/prosody-2   3   2627902733 ns/op   0.5514 esession-x-plainns   0.5514 esession-x-ref   0.7571 ox-x-plain   0.7571 ox-x-ref   0.56 otr-x-ref
BenchmarkEndToEnd/prosody-2   3   2627902733 ns/op   0.6514 esession-x-ref   0.8571 ox-x-ref   0.66 otr-x-ref
BenchmarkEndToEnd/ejabberd-2  3   13493652885 ns/op  1.043 esession-x-ref  0.2793 ox-x-ref   0.8528 otr-x-ref
BenchmarkStanza300-2 1 2 ns/op 1.5 x-spec
PASS
`

func TestParseAverages(t *testing.T) {
	bars, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != 6 {
		t.Fatalf("%d bars: %+v", len(bars), bars)
	}
	want := []bar{{"prosody", "esession", 0.6014}, {"prosody", "ox", 0.8071}, {"prosody", "otr", 0.61}, {"ejabberd", "esession", 1.043}}
	for i, w := range want {
		g := bars[i]
		if g.server != w.server || g.row != w.row || g.ratio < w.ratio-1e-9 || g.ratio > w.ratio+1e-9 {
			t.Errorf("bar %d: %+v, want %+v", i, g, w)
		}
	}
	if _, err := parse(strings.NewReader("BenchmarkEndToEnd/x-2 1 abc ox-x-ref\n")); err == nil {
		t.Error("a malformed value was accepted")
	}
}

func TestRenderIsWellFormedSVG(t *testing.T) {
	bars, _ := parse(strings.NewReader(sample))
	var sb strings.Builder
	if err := render(&sb, bars, `title <&> "quoted"`); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(sb.String()))
	rects, texts := 0, []string{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, sb.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	all := strings.Join(texts, "|")
	if rects != 1+len(bars) {
		t.Errorf("%d rects for %d bars", rects, len(bars))
	}
	for _, s := range []string{"0.60x", "1.04x", "prosody", "ejabberd", "target 0.8x", `title <&> "quoted"`} {
		if !strings.Contains(all, s) {
			t.Errorf("chart lacks %q", s)
		}
	}
}
