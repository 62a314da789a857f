package main

import (
	"strings"
	"testing"
	"time"
)

const stream = `go: downloading example.org/x v1.0.0
{"Action":"start","Package":"m/a"}
{"Action":"start","Package":"m/b"}
{"Action":"start","Package":"m/c"}
{"Action":"run","Package":"m/b","Test":"TestOK"}
{"Action":"output","Package":"m/b","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"m/b","Test":"TestOK","Output":"secret-free chatter of a passing test\n"}
{"Action":"pass","Package":"m/b","Test":"TestOK","Elapsed":0.1}
{"Action":"skip","Package":"m/b","Test":"TestSkipped","Elapsed":0}
{"Action":"pass","Package":"m/b","Elapsed":0.5}
{"Action":"output","Package":"m/c","Output":"?   \tm/c\t[no test files]\n"}
{"Action":"skip","Package":"m/c","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestBad"}
{"Action":"output","Package":"m/a","Test":"TestBad","Output":"    a_test.go:9: want 1, got 2\n"}
{"Action":"output","Package":"m/a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"m/a","Test":"TestBad","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestHangs"}
{"Action":"output","Package":"m/a","Test":"TestHangs","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"m/a","Output":"FAIL\tm/a\t1.2s\n"}
{"Action":"fail","Package":"m/a","Elapsed":1.2}
`

func TestRun(t *testing.T) {
	var out strings.Builder
	if run(strings.NewReader(stream), &out, time.Hour, "") {
		t.Error("run reported success for a failed package")
	}
	got := out.String()
	for _, want := range []string{
		"go: downloading example.org/x v1.0.0\n",
		"ok    m/b (0.5s)\n",
		"    a_test.go:9: want 1, got 2\n--- FAIL: TestBad (0.00s)\n",
		"panic: test timed out after 1s\n",
		"FAIL  m/a (1.2s)\n",
		"packages: 1 ok, 1 failed, 1 without tests",
		"\ntests: 1 passed, 1 failed, 1 skipped\n",
		// The recap before the closing lines repeats why TestBad failed.
		"failed tests and their messages:\n--- FAIL: m/a TestBad\n    a_test.go:9: want 1, got 2\npackages:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"chatter of a passing test", "m/c", "FAIL\tm/a"} {
		if strings.Contains(got, not) {
			t.Errorf("output has %q:\n%s", not, got)
		}
	}
	// Package lines come in the order packages finish.
	if strings.Index(got, "ok    m/b") > strings.Index(got, "FAIL  m/a") {
		t.Errorf("m/b finished first but was printed later:\n%s", got)
	}
}

func TestRunPasses(t *testing.T) {
	var out strings.Builder
	in := `{"Action":"start","Package":"m/b"}` + "\n" +
		`{"Action":"pass","Package":"m/b","Test":"TestOK","Elapsed":0}` + "\n" +
		`{"Action":"pass","Package":"m/b","Elapsed":0.1}` + "\n"
	if !run(strings.NewReader(in), &out, time.Hour, "") {
		t.Errorf("run reported a failure:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "tests: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("closing line:\n%s", out.String())
	}
}

func TestHeartbeat(t *testing.T) {
	var out strings.Builder
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newProgress(&out, t0)
	p.heartbeat(t0.Add(10*time.Second), 30*time.Second)
	if out.Len() != 0 {
		t.Fatalf("heartbeat before the interval: %q", out.String())
	}
	p.heartbeat(t0.Add(31*time.Second), 30*time.Second)
	if want := "   ... 31s: 0 packages done, building\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
	p.trim = "m/"
	p.line(`{"Action":"start","Package":"m/x"}`)
	p.line(`{"Action":"start","Package":"m/a"}`)
	out.Reset()
	p.heartbeat(t0.Add(50*time.Second), 30*time.Second)
	if out.Len() != 0 {
		t.Fatalf("a second heartbeat within the interval: %q", out.String())
	}
	p.heartbeat(t0.Add(61*time.Second), 30*time.Second)
	if want := "   ... 1m1s: 0 packages done, running: a x\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}
