//go:build unix

package ox

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time used by this process (all threads, user
// and system) and by its finished child processes (gpg in the GnuPG
// benchmarks), which unlike wall time is not inflated by other processes
// competing for the cores.
func processCPU() time.Duration {
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) != nil {
		return 0
	}
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}
