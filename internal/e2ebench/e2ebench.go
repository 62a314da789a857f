// Package e2ebench measures Balcony end to end, through real XMPP servers
// (RFC 6120/6121; Prosody and ejabberd started by the project's harness
// scripts): a message from one client's Send to the other client's event,
// for plaintext and every end-to-end encryption mechanism, memory at
// scale, memory and start-up per account, and many accounts at once.
//
// The measurements are Go benchmarks and tests in this package's test
// files, run by scripts/bench.sh and described in docs/BENCHMARKS.md.
// This file holds what they share: latency statistics and the process's
// resident memory.
package e2ebench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// Latencies is a set of measured durations.
type Latencies []time.Duration

// Percentile returns the p-th percentile (0 < p ≤ 100) by the
// nearest-rank method, or 0 for an empty set.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// ProcStatus returns a field of /proc/PID/status in bytes ("VmRSS",
// "VmHWM"); pid 0 is this process.
func ProcStatus(pid int, field string) (uint64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("e2ebench: %w", err)
	}
	return parseStatus(data, field)
}

// parseStatus reads "Field:   1234 kB" from the text of /proc/PID/status.
func parseStatus(data []byte, field string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	prefix := []byte(field + ":")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		f := bytes.Fields(line[len(prefix):])
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("e2ebench: unexpected %s line %q", field, line)
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("e2ebench: %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("e2ebench: no %s in process status", field)
}

// OpenFDs counts this process's open file descriptors.
func OpenFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("e2ebench: %w", err)
	}
	return len(ents), nil
}

// ProcCPU returns the CPU time (user and system) process pid has used,
// from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("e2ebench: %w", err)
	}
	return parseStatCPU(data)
}

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat (100 on
// every Linux architecture Go supports).
const clockTick = 100

// parseStatCPU reads utime and stime (fields 14 and 15) from the text of
// /proc/PID/stat; the command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("e2ebench: malformed stat %q", data)
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("e2ebench: short stat %q", data)
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("e2ebench: stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

// HeapAfterGC collects garbage twice (the second pass frees what the first
// one's finalizers released) and returns the live heap in bytes.
func HeapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
