package otr

import (
	"bytes"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kind
	}{
		{"hello", kindPlain},
		{"hi" + string(wsBase) + string(wsV3), kindTagged},
		{"?OTRv23?", kindQuery},
		{"?OTR?", kindQuery},
		{"please ?OTRv3? now", kindQuery},
		{"?OTR Error: bad", kindError},
		{"?OTR:AAMC.", kindEncoded},
		{"?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMD,", kindFragment},
		{"?OTR,1,2,abc,", kindFragment},
		{"?OTR", kindPlain},
		{"?OTRx", kindPlain},
	} {
		if got := classify([]byte(tc.in)); got != tc.want {
			t.Errorf("classify(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		in         string
		v2, v3, ok bool
	}{
		{"?OTR?", false, false, true},
		{"?OTRv2?", true, false, true},
		{"?OTRv23?", true, true, true},
		{"?OTR?v2?", true, false, true},
		{"?OTRv24x?", true, false, true},
		{"?OTR?v24x?", true, false, true},
		{"?OTR?v?", false, false, true},
		{"?OTRv?", false, false, true},
		{"?OTRv3? Alice has requested...", false, true, true},
		{"x ?OTR: no ?OTRv32?", true, true, true},
		{"plain", false, false, false},
	} {
		v2, v3, ok := parseQuery([]byte(tc.in))
		if v2 != tc.v2 || v3 != tc.v3 || ok != tc.ok {
			t.Errorf("parseQuery(%q) = %v %v %v, want %v %v %v", tc.in, v2, v3, ok, tc.v2, tc.v3, tc.ok)
		}
	}
	if q := queryString(PolicyManual); q != "?OTRv23?" {
		t.Errorf("queryString = %q", q)
	}
	if q := queryString(AllowV3); q != "?OTRv3?" {
		t.Errorf("queryString = %q", q)
	}
}

func TestWhitespaceTag(t *testing.T) {
	tag := whitespaceTag(PolicyOpportunistic)
	if !bytes.Equal(tag, append(append(append([]byte{}, wsBase...), wsV2...), wsV3...)) {
		t.Fatalf("tag = %q", tag)
	}
	msg := append(append([]byte("Hello"), tag...), " world"...)
	got, v2, v3, ok := findWhitespaceTag(msg)
	if !ok || !v2 || !v3 || string(got) != "Hello world" {
		t.Fatalf("findWhitespaceTag = %q %v %v %v", got, v2, v3, ok)
	}
	// v1 tag first, then v3 only; tab after the tag is kept
	msg = append(append(append(append([]byte{}, wsBase...), wsV1...), wsV3...), "\tx"...)
	got, v2, v3, ok = findWhitespaceTag(msg)
	if !ok || v2 || !v3 || string(got) != "\tx" {
		t.Fatalf("findWhitespaceTag = %q %v %v %v", got, v2, v3, ok)
	}
	if _, _, _, ok := findWhitespaceTag([]byte("no tag")); ok {
		t.Fatal("found a tag in plain text")
	}
}

func TestParseError(t *testing.T) {
	if got := parseError([]byte("?OTR Error: You transmitted an unreadable encrypted message.")); got != "You transmitted an unreadable encrypted message." {
		t.Errorf("parseError = %q", got)
	}
}

func TestParseFragmentSpecExample(t *testing.T) {
	// Protocol-v3 "Fragmentation" example.
	frags := []string{
		"?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hbrL3KAbGDdzE2ZkMyTKl7XfkSxh8YJnudstiB74i4BzT0W2haClg6dMary/jo9sMudwmUdlnKpIGEKXWdvJKT+hQ26h9nzMgEditLB8v,",
		"?OTR|5a73a599|27e31597,00002,00003,jPEWAJ6gBXvZrY6ZQrx3gb4v0UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjScajVba6dqlDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAAAAAEAAAAHwNiIi5Ms+4PsY/L2i,",
		"?OTR|5a73a599|27e31597,00003,00003,pkTtquknfx6HodLvk3RAAAAAA==.,",
	}
	var r reassembler
	var out []byte
	for i, s := range frags {
		f, ok := parseFragment([]byte(s))
		if !ok || f.version != 3 || f.sender != 0x5a73a599 || f.receiver != 0x27e31597 || f.k != i+1 || f.n != 3 {
			t.Fatalf("fragment %d: %+v %v", i, f, ok)
		}
		var done bool
		out, done = r.add(f)
		if done != (i == 2) {
			t.Fatalf("fragment %d: done = %v", i, done)
		}
	}
	want := "?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hbrL3KAbGDdzE2ZkMyTKl7XfkSxh8YJnudstiB74i4BzT0W2haClg6dMary/jo9sMudwmUdlnKpIGEKXWdvJKT+hQ26h9nzMgEditLB8vjPEWAJ6gBXvZrY6ZQrx3gb4v0UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjScajVba6dqlDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAAAAAEAAAAHwNiIi5Ms+4PsY/L2ipkTtquknfx6HodLvk3RAAAAAA==."
	if string(out) != want {
		t.Fatalf("reassembled %q", out)
	}
	s, r2, ok := InstanceTags([]byte(frags[1]))
	if !ok || s != 0x5a73a599 || r2 != 0x27e31597 {
		t.Fatalf("InstanceTags(fragment) = %x %x %v", s, r2, ok)
	}
	bin, _ := decode([]byte(want), nil)
	h, _, _ := parseMessage(bin)
	s, r2, ok = InstanceTags([]byte(want))
	if !ok || s != h.sender || r2 != h.receiver || h.sender != 0x27e31599 {
		t.Fatalf("InstanceTags(message) = %x %x %v, header %+v", s, r2, ok, h)
	}
}

func TestParseFragmentInvalid(t *testing.T) {
	for _, s := range []string{
		"?OTR|5a73a599|27e31597,1,3,,",        // empty piece
		"?OTR|5a73a599|27e31597,1,3,abc",      // no final comma
		"?OTR|5a73a599z|27e31597,1,3,abc,",    // bad hex
		"?OTR|123456789|27e31597,1,3,abc,",    // tag too long
		"?OTR|5a73a599|27e31597,65536,3,abc,", // k too large
		"?OTR|5a73a599|27e31597,-1,3,abc,",
		"?OTR,1,x,abc,",
	} {
		if f, ok := parseFragment([]byte(s)); ok {
			t.Errorf("parseFragment(%q) accepted: %+v", s, f)
		}
	}
	f, ok := parseFragment([]byte("?OTR|100|0,0000000001,00002,ab,"))
	if !ok || f.sender != 0x100 || f.receiver != 0 || f.k != 1 || f.n != 2 || string(f.piece) != "ab" {
		t.Errorf("leading zeroes: %+v %v", f, ok)
	}
}

func TestReassemblyRules(t *testing.T) {
	fr := func(k, n int, p string) fragment { return fragment{version: 3, k: k, n: n, piece: []byte(p)} }
	var r reassembler
	// k=1 restarts
	r.add(fr(1, 3, "a"))
	r.add(fr(2, 3, "b"))
	r.add(fr(1, 2, "X"))
	if out, ok := r.add(fr(2, 2, "Y")); !ok || string(out) != "XY" {
		t.Fatalf("restart: %q %v", out, ok)
	}
	// a gap resets
	r.add(fr(1, 3, "a"))
	if _, ok := r.add(fr(3, 3, "c")); ok {
		t.Fatal("gap accepted")
	}
	if _, ok := r.add(fr(2, 3, "b")); ok {
		t.Fatal("after reset, k=2 must not continue")
	}
	// changed n resets
	r.add(fr(1, 3, "a"))
	if _, ok := r.add(fr(2, 4, "b")); ok {
		t.Fatal("changed n accepted")
	}
	// illegal fragments are discarded without resetting
	r.add(fr(1, 2, "a"))
	r.add(fr(0, 2, "z"))
	r.add(fr(3, 2, "z"))
	if out, ok := r.add(fr(2, 2, "b")); !ok || string(out) != "ab" {
		t.Fatalf("illegal fragment disturbed state: %q %v", out, ok)
	}
	// single-fragment message
	if out, ok := r.add(fr(1, 1, "only")); !ok || string(out) != "only" {
		t.Fatalf("1/1: %q %v", out, ok)
	}
}

func TestFragmentMessage(t *testing.T) {
	msg := []byte("?OTR:" + strings.Repeat("QUJD", 100) + ".")
	for _, size := range []int{37, 50, 61, 100, 199, 1000} {
		for _, v := range []int{2, 3} {
			frags, err := fragmentMessage(msg, size, v, 0x1234, 0xabcdef01)
			if err != nil {
				t.Fatal(err)
			}
			var r reassembler
			var out []byte
			var done bool
			for i, fb := range frags {
				if len(fb) > size {
					t.Fatalf("size %d: fragment %d is %d bytes", size, i, len(fb))
				}
				f, ok := parseFragment(fb)
				if !ok || f.version != v {
					t.Fatalf("size %d v%d: cannot parse own fragment %q", size, v, fb)
				}
				if v == 3 && (f.sender != 0x1234 || f.receiver != 0xabcdef01) {
					t.Fatalf("tags lost: %+v", f)
				}
				out, done = r.add(f)
			}
			if !done || !bytes.Equal(out, msg) {
				t.Fatalf("size %d v%d: reassembly failed", size, v)
			}
		}
	}
	if _, err := fragmentMessage(msg, 36, 3, 1, 1); err == nil {
		t.Error("size 36 accepted for v3")
	}
	if f, _ := fragmentMessage([]byte("abc"), 37, 3, 0x100, 0x200); string(f[0]) != "?OTR|00000100|00000200,00001,00003,a," {
		t.Errorf("format: %q", f[0])
	}
}

func TestTLV(t *testing.T) {
	p := buildPlaintext([]byte("hi"), []tlv{{typ: 1}, {typ: 0, value: []byte("hello")}})
	if !bytes.Equal(p, []byte("hi\x00\x00\x01\x00\x00\x00\x00\x00\x05hello")) {
		t.Fatalf("buildPlaintext = %q", p)
	}
	text, tlvs := splitPlaintext(p)
	if string(text) != "hi" || len(tlvs) != 2 || tlvs[0].typ != 1 || string(tlvs[1].value) != "hello" {
		t.Fatalf("splitPlaintext = %q %+v", text, tlvs)
	}
	// truncated trailing record is dropped
	text, tlvs = splitPlaintext([]byte("x\x00\x00\x01\x00\x00\x00\x08\x00\x09abc"))
	if string(text) != "x" || len(tlvs) != 1 {
		t.Fatalf("truncated: %q %+v", text, tlvs)
	}
}

func FuzzTLV(f *testing.F) {
	f.Add([]byte("hi\x00\x00\x01\x00\x00"))
	f.Add([]byte("\x00\x00\x08\x00\x04\x00\x00\x00\x01"))
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, p []byte) {
		text, tlvs := splitPlaintext(p)
		if bytes.IndexByte(text, 0) >= 0 {
			t.Fatal("text contains NUL")
		}
		re := buildPlaintext(text, tlvs)
		text2, tlvs2 := splitPlaintext(re)
		if !bytes.Equal(text, text2) || len(tlvs) != len(tlvs2) {
			t.Fatal("TLV round trip differs")
		}
		if len(tlvs) > 0 && !bytes.HasPrefix(p, re) {
			t.Fatalf("re-encoding is not a prefix of the input")
		}
	})
}

func FuzzFragment(f *testing.F) {
	f.Add([]byte("?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMD,"), 40)
	f.Add([]byte("?OTR,00001,00002,abc,"), 20)
	f.Add([]byte("?OTR|100|0,1,1,x,"), 60)
	f.Fuzz(func(t *testing.T, msg []byte, size int) {
		var r reassembler
		if fr, ok := parseFragment(msg); ok {
			if len(fr.piece) == 0 || bytes.IndexByte(fr.piece, ',') >= 0 {
				t.Fatalf("bad piece %q", fr.piece)
			}
			r.add(fr)
		}
		InstanceTags(msg)
		classify(msg)
		parseQuery(msg)
		findWhitespaceTag(msg)
		// our own fragments of any message without commas must reassemble
		if bytes.IndexByte(msg, ',') >= 0 || len(msg) == 0 || size < 37 || size > 1<<16 {
			return
		}
		frags, err := fragmentMessage(msg, size, 3, 0x100, 0x200)
		if err != nil {
			return
		}
		var out []byte
		var done bool
		for _, fb := range frags {
			fr, ok := parseFragment(fb)
			if !ok {
				t.Fatalf("own fragment unparsable: %q", fb)
			}
			out, done = r.add(fr)
		}
		if !done || !bytes.Equal(out, msg) {
			t.Fatalf("reassembly of %q failed", msg)
		}
	})
}

func TestReassemblyLimit(t *testing.T) {
	var r reassembler
	piece := bytes.Repeat([]byte("A"), 60000)
	r.add(fragment{k: 1, n: 100, piece: piece})
	for k := 2; k <= 100; k++ {
		if _, done := r.add(fragment{k: k, n: 100, piece: piece}); done {
			t.Fatal("reassembled a message over the limit")
		}
	}
	if len(r.buf) > maxReassembled {
		t.Fatalf("buffer grew to %d bytes", len(r.buf))
	}
}
