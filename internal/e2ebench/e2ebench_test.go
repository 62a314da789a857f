package e2ebench

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var l Latencies
	if l.Percentile(50) != 0 {
		t.Fatal("empty set")
	}
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.1, 1}} {
		if got := l.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if l[0] != 100 {
		t.Error("Percentile sorted its receiver")
	}
}

func TestParseStatus(t *testing.T) {
	data := []byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t   1024 kB\n")
	if v, err := parseStatus(data, "VmRSS"); err != nil || v != 1024<<10 {
		t.Fatalf("VmRSS %d %v", v, err)
	}
	if _, err := parseStatus(data, "VmSwap"); err == nil {
		t.Fatal("missing field accepted")
	}
	if _, err := parseStatus([]byte("VmRSS: 12 MB\n"), "VmRSS"); err == nil {
		t.Fatal("wrong unit accepted")
	}
	if v, err := ProcStatus(0, "VmRSS"); err != nil || v == 0 {
		t.Fatalf("own RSS %d %v", v, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	data := []byte("42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 1 0 100 0 0")
	if d, err := parseStatCPU(data); err != nil || d != 4*time.Second {
		t.Fatalf("cpu %v %v", d, err)
	}
	if _, err := parseStatCPU([]byte("42 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
	if _, err := parseStatCPU([]byte("no parenthesis")); err == nil {
		t.Fatal("malformed stat accepted")
	}
}
