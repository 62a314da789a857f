// Package fuzzmin lowers, for the fuzz targets of a package, the default of
// go test's -fuzzminimizetime (Go's native fuzzing, cmd/go "Testing flags").
//
// When the fuzzer finds an input that reaches new code it minimises it
// before going on, for up to a minute by default. Minimisation of a byte
// string tries every sub-slice (internal/fuzz minimizeBytes, quadratic in
// the length), so for targets whose seeds are whole protocol messages or
// keys of a kilobyte or more, each taking a signature check or a key
// exchange, every new input stops the exploration for the whole minute: a
// 20-second run spends its time minimising the first input it finds. A
// budget counted in executions rather than seconds keeps the fuzzer
// exploring whatever the load of the machine; the saved inputs are
// somewhat larger. A crasher is minimised within the same budget: run its
// corpus entry with an explicit -fuzzminimizetime for a smaller one.
package fuzzmin

import (
	"flag"
	"strconv"
)

// flagName is the name go test gives -fuzzminimizetime in the test binary.
const flagName = "test.fuzzminimizetime"

// Default sets -fuzzminimizetime to n executions of the fuzz function
// per input unless the command line set it. It must run in TestMain
// after flag.Parse and before m.Run; it does nothing in a binary without
// the flag. It reports whether it changed the value.
func Default(n int) bool {
	if flag.Lookup(flagName) == nil {
		return false
	}
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == flagName {
			explicit = true
		}
	})
	if explicit {
		return false
	}
	return flag.Set(flagName, strconv.Itoa(n)+"x") == nil
}
