//go:build !unix

package ox

import "time"

var cpuEpoch = time.Now()

// processCPU falls back to wall time where getrusage is not available.
func processCPU() time.Duration { return time.Since(cpuEpoch) }
