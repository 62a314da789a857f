package fuzzmin

import (
	"flag"
	"testing"
)

// The flag is set when the command line did not set it, and left alone
// when it did.
func TestDefault(t *testing.T) {
	f := flag.Lookup(flagName)
	if f == nil {
		t.Fatal("the test binary has no " + flagName + " flag")
	}
	old := f.Value.String()
	t.Cleanup(func() { flag.Set(flagName, old) })
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == flagName })

	changed := Default(300)
	if explicit {
		if changed || f.Value.String() != old {
			t.Fatalf("an explicit -fuzzminimizetime %s was changed to %s", old, f.Value)
		}
		return
	}
	if !changed || f.Value.String() != "300x" {
		t.Fatalf("Default(300): changed %v, value %s", changed, f.Value)
	}
}
