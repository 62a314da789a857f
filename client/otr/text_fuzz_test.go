package otr

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/balcony-im/balcony/internal/cputime"
)

// textSeeds are decrypted OTR payloads as peers send them: libpurple
// (Pidgin, Finch) and Adium wrap what their users type in HTML, other
// clients send plain text; and hostile ones.
var textSeeds = []string{
	"plain text, as Gajim and Conversations send it",
	`<FONT COLOR="#000000">fish &amp; chips &lt;3</FONT>`,
	`<span style="font-family: Sans; font-size: small;">hi there</span>`,
	`<HTML><BODY BGCOLOR="#ffffff"><FONT FACE="Helvetica" ABSZ=12 SIZE=3>Adium says hi</FONT></BODY></HTML>`,
	`<b>bold</b> <I>italic</I> <u>under</u><BR>next line<br/>and <A HREF="https://example.org/">a link</A>`,
	`<a href="mailto:x@example.org">x@example.org</a> <img src="smile.png" alt=":-)">`,
	`<p>one</p><p>two</p><ul><li>a</li><li>b</li></ul><hr><blockquote>quoted</blockquote>`,
	`I &lt;3 &quot;quotes&quot; &apos;n&apos; &#x263a; &#233;&amp;more`,
	"?OTRv3? whitespace-tagged\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20\x20\x20\x09\x09\x20\x20\x09\x09",
	"a < b > c & d",
	"<script>alert(1)</script><b onclick='x'>y</b>",
	"<<b>b>nested tag pieces</b>",
	`<a href="https://evil.example/">bank.example</a>`,
	`<a href=x><a href=y><a href=z>   </a></a></a>`,
	`<b x=<b x=<b x=>`, `<b x='<b'>`, `<a href="unterminated`, "&", "&#", "&#x;", "&;", "<!--", "<!-- -->", "<", "</", "<b",
}

// FuzzText feeds arbitrary decrypted OTR payloads to Text, which turns
// what libpurple-based peers send into plain text. It must not panic, never
// make the text longer, keep valid UTF-8 valid, leave text without '<' or
// '&' alone (apart from whitespace tags), remove every tag of a known
// element (so no '<' it removed comes back), and give back a result
// with no markup left in it unchanged.
func FuzzText(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		if len(out) > len(s) {
			t.Fatalf("Text made %d bytes into %d: %q -> %q", len(s), len(out), s, out)
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of valid input %q: %q", s, out)
		}
		stripped := stripWhitespaceTag(s)
		if !strings.ContainsAny(s, "<&") && out != stripped {
			t.Fatalf("text without markup changed: %q -> %q", s, out)
		}
		// Without character references no '<' can be made, so the '<' of
		// every simple tag of a known element (<b>, </p>, <br/>) is gone.
		if !strings.Contains(s, "&") {
			if n := simpleTags(stripped); n > 0 && strings.Count(out, "<") > strings.Count(stripped, "<")-n {
				t.Fatalf("%d tags in %q, but %q keeps %d of %d '<'", n, s, out, strings.Count(out, "<"), strings.Count(stripped, "<"))
			}
		}
		if !strings.ContainsAny(out, "<&") {
			if again := Text(out); again != stripWhitespaceTag(out) {
				t.Fatalf("Text is not idempotent on its plain result: %q -> %q -> %q", s, out, again)
			}
		}
	})
}

// simpleTags counts the tags of known elements without attributes in s:
// <name>, </name> and <name/>, case-insensitive.
func simpleTags(s string) int {
	n := 0
	for i := strings.IndexByte(s, '<'); i >= 0; i = strings.IndexByte(s, '<') {
		s = s[i+1:]
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break
		}
		name := strings.TrimSuffix(strings.TrimPrefix(s[:j], "/"), "/")
		if strings.HasPrefix(s[:j], "/") && strings.HasSuffix(s[:j], "/") {
			continue
		}
		if htmlElements[strings.ToLower(name)] {
			n++
		}
	}
	return n
}

// Elements FuzzTextMarkup builds messages from: inline ones vanish, block
// ones end with a line break, br and hr are one.
var (
	inlineElements = []string{"b", "I", "u", "em", "strong", "span", "FONT", "small", "big", "code", "tt", "s", "sub", "sup", "del", "ins", "cite", "q", "body", "HTML"}
	breakElements  = []string{"p", "div", "li", "H1", "pre", "blockquote"}
	textEntities   = []struct{ ref, char string }{{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", `"`}, {"&apos;", "'"}, {"&#233;", "é"}, {"&#x263A;", "☺"}, {"&nbsp;", "\u00a0"}}
	textLinks      = []string{"https://example.org/", "mailto:x@example.org", "x@example.org"}
	attrForms      = []string{"", ` color="#ff0000"`, " face='Sans' size=3", " style=\"font-size: small;\"", " CLASS=x"}
)

// FuzzTextMarkup builds well-formed messages as libpurple writes them
// (text, tags of known elements with or without attributes, character
// references, links) from the fuzzer's bytes, so that the expected text
// is known: the text as typed, a line break for br, hr and the end of a
// block, a link's target after its text when the two differ. Text must
// give exactly that.
func FuzzTextMarkup(f *testing.F) {
	f.Add([]byte("hello\x80world\x81"))
	f.Add([]byte("\x90\xa0bold text\xa1 and\xc0\xc3link\xc4\xb0\xe5"))
	f.Add([]byte("plain"))
	f.Add([]byte("\x88a\xf1b\xe2c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, want := buildMarkup(data)
		if got := Text(in); got != want {
			t.Fatalf("Text(%q) = %q, want %q", in, got, want)
		}
	})
}

// buildMarkup turns fuzz bytes into a message and the text Text must make
// of it. A byte below 0x80 is a character of text (never '<' or '&', which
// a libpurple peer escapes); above, the low bits choose a tag, a reference
// or a link.
func buildMarkup(data []byte) (in, want string) {
	var b, w strings.Builder
	markup := false
	linkOpen, linkHref, linkStart := false, "", 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c < 0x80 {
			if c == '<' || c == '&' || c == '\t' {
				c = '_'
			}
			b.WriteByte(c)
			w.WriteByte(c)
			continue
		}
		k := int(c & 0x1f)
		attrs := attrForms[k%len(attrForms)]
		var tag string
		switch c >> 5 {
		case 4: // 0x80-0x9f: an inline element, start or end
			name := inlineElements[k>>1%len(inlineElements)]
			if k&1 == 0 {
				tag = "<" + name + attrs + ">"
			} else {
				tag = "</" + name + ">"
			}
		case 5: // 0xa0-0xbf: a block element, start or end, or a break
			switch name := breakElements[k>>1%len(breakElements)]; {
			case k >= 24:
				tag = []string{"<br>", "<BR/>", "<br />", "<hr>"}[k%4]
				w.WriteByte('\n')
			case k&1 == 0:
				tag = "<" + name + attrs + ">"
			default:
				tag = "</" + name + ">"
				w.WriteByte('\n')
			}
		case 6: // 0xc0-0xdf: a link opens or closes
			if !linkOpen && k < 16 {
				linkOpen, linkHref, linkStart = true, textLinks[k%len(textLinks)], w.Len()
				tag = `<A HREF="` + linkHref + `">`
			} else if linkOpen && k >= 16 {
				linkOpen = false
				tag = "</a>"
				if shown := strings.TrimSpace(w.String()[linkStart:]); shown != linkHref && strings.TrimPrefix(linkHref, "mailto:") != shown {
					w.WriteString(" (" + linkHref + ")")
				}
			}
		default: // 0xe0-0xff: a character reference
			e := textEntities[k%len(textEntities)]
			tag = e.ref
			w.WriteString(e.char)
		}
		if tag != "" {
			markup = true
			b.WriteString(tag)
		}
	}
	if !markup {
		return b.String(), b.String()
	}
	return b.String(), strings.TrimRight(w.String(), "\n")
}

// TestTextCost checks that Text takes time linear in the size of what a
// peer sends: a decrypted OTR message is up to a reassembled megabyte
// (otr's maxReassembled), and a peer that starts OTR needs no verified key
// to send one. The hostile shapes each made Text quadratic: a run of '&'
// without ';', unterminated tags whose bare attribute values ran over the
// next '<', unterminated comments, and nested links around long
// whitespace. The time for 64 times the input must stay far from 4096
// times (quadratic); linear is 64, and memory beyond the caches, the
// race detector and the machine's load take it past 200 at times, so the
// limit is 512, the geometric mean of linear and quadratic.
func TestTextCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures Text on a megabyte")
	}
	const small, factor = 16 << 10, 64
	for _, tc := range []struct {
		name string
		make func(n int) string
	}{
		{"ampersands", func(n int) string { return strings.Repeat("&", n) }},
		{"references without semicolon", func(n int) string { return strings.Repeat("&amp", n/4) }},
		{"bare values over tags", func(n int) string { return "<b>" + strings.Repeat("<b x=y", n/6) }},
		{"quoted values over tags", func(n int) string { return "<b>" + strings.Repeat(`<b x="`, n/6) }},
		{"nested links", func(n int) string {
			return strings.Repeat("<a href=x>", n/40) + strings.Repeat(" ", n/2) + strings.Repeat("</a>", n/40)
		}},
		{"comments", func(n int) string { return "<b>" + strings.Repeat("<!--", n/4) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			short, long := tc.make(small), tc.make(small*factor)
			ts, tl := minTime(func() { Text(short) }), minTime(func() { Text(long) })
			if ratio := float64(tl) / float64(ts); ratio > 8*factor {
				t.Errorf("%d bytes took %v, %d bytes %v: %.0f times as long, not linear", len(short), ts, len(long), tl, ratio)
			} else {
				t.Logf("%d bytes %v, %d bytes %v (%.1f times)", len(short), ts, len(long), tl, ratio)
			}
		})
	}
}

// minTime is the shortest of a few runs of fn in CPU time of the process,
// which discounts the time other processes on the machine take, and
// collections of others' garbage.
func minTime(fn func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range 5 {
		runtime.GC()
		start := cputime.Process()
		fn()
		best = min(best, max(cputime.Process()-start, time.Microsecond))
	}
	return best
}

// The oracle of FuzzTextMarkup agrees with the hand-written cases.
func TestBuildMarkup(t *testing.T) {
	in, want := buildMarkup([]byte("a\x80b\x81\xa1c\xbc\xe0"))
	if in != "a<b>b</b></p>c<br>&amp;" || want != "ab\nc\n&" {
		t.Fatalf("buildMarkup: %q %q", in, want)
	}
	if got := Text(in); got != want {
		t.Fatalf("Text(%q) = %q", in, got)
	}
}

// Links do not nest: a link that starts closes the one still open, so
// that every target is shown once, after its own text.
func TestTextNestedLinks(t *testing.T) {
	in := `<a href="https://x.example/">one<a href="https://y.example/">two</a></a> three`
	if got, want := Text(in), "one (https://x.example/)two (https://y.example/) three"; got != want {
		t.Fatalf("Text(%q) = %q, want %q", in, got, want)
	}
}
