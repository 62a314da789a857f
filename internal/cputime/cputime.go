// Package cputime measures the CPU time of the running process, for
// benchmarks that report ratios between operations measured in the same
// run: unlike wall time, it is not inflated by other processes competing
// for the cores, nor by a goroutine waiting to be scheduled.
package cputime

import "time"

// Process returns the CPU time used so far by this process, all threads,
// user and system (and by its finished child processes on Unix). Where the
// system cannot tell, it returns the wall time since the process started.
func Process() time.Duration { return process() }
