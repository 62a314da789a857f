package ox

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

func cpuLoop(b *testing.B, f func()) {
	b.ReportAllocs()
	c0 := processCPU()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	b.ReportMetric(float64((processCPU()-c0)/time.Duration(n)), "cpu-ns/op")
}

func BenchmarkZZParseElement(b *testing.B) {
	f := fixture(b)
	msg, _ := Seal(f.content, f.alice, []*Key{f.bob, f.alice}, nil)
	el := Element{Data: msg}.Marshal()
	cpuLoop(b, func() { ParseElement(el) })
}

func BenchmarkZZParseContent(b *testing.B) {
	f := fixture(b)
	c := f.content
	c.Time = t0
	c.Rpad = "asdkjhasdkjhasdkjhaskjdhaksjdhakjsdhkajshdkajshdkajshdkjashdkjahsdkjhaskdjhaskjdhaksjdhkajsdhkajshdkajshdkjashdkjashdkjh"
	x, _ := c.Marshal()
	cpuLoop(b, func() { ParseContent(x) })
}

func BenchmarkZZJIDParse(b *testing.B) {
	cpuLoop(b, func() { jid.Parse("bob@example.net") })
}

func BenchmarkZZMarshal(b *testing.B) {
	f := fixture(b)
	c := f.content
	c.Time = t0
	c.Rpad = "asdkjhasdkjhasdkjhaskjdhaksjdhakjsdhkajshdkajshdkajshdkjashdkjahsdkjhaskdjhaskjdhaksjdhkajsdhkajshdkajshdkjashdkjashdkjh"
	cpuLoop(b, func() { c.Marshal() })
}
