package cputime

import "testing"

func TestProcessGrowsWithWork(t *testing.T) {
	before := Process()
	x := uint64(1)
	for i := 0; i < 10000 && Process()-before <= 0; i++ {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if x == 0 {
		t.Log(x)
	}
	if d := Process() - before; d <= 0 {
		t.Fatalf("CPU time did not grow: %v", d)
	}
}
