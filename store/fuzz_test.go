package store

import (
	"strings"
	"testing"
)

func FuzzNormalizeFingerprint(f *testing.F) {
	f.Add("2fd4e1c6 7a2d28fc ed849ee1 bb76e739 1b93eb12")
	f.Add(strings.Repeat("ab:", 32))
	f.Add("q1w2e3r4t5y6u7i8o9p0+/==")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		for _, m := range Mechanisms() {
			out, err := NormalizeFingerprint(m, in)
			if err != nil {
				continue
			}
			again, err := NormalizeFingerprint(m, out)
			if err != nil || again != out {
				t.Fatalf("%s: not idempotent: %q -> %q -> %q, %v", m, in, out, again, err)
			}
			if out == "" || strings.ContainsAny(out, " \t\r\n") {
				t.Fatalf("%s: %q -> %q", m, in, out)
			}
			switch m {
			case OX, OTR:
				if strings.Trim(out, "0123456789ABCDEF") != "" {
					t.Fatalf("%s: %q -> %q is not upper-case hex", m, in, out)
				}
			case OMEMO:
				if strings.Trim(out, "0123456789abcdef") != "" || len(out) != 64 {
					t.Fatalf("%s: %q -> %q is not 64 lower-case hex digits", m, in, out)
				}
			}
		}
	})
}
