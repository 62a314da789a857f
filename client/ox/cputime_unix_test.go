//go:build unix

package ox

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time used by this process (all threads, user
// and system), which unlike wall time is not inflated by other processes
// competing for the cores.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
