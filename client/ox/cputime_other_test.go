//go:build !unix

package ox

import "time"

// processCPU is not available here; the CPU-time ratios are then omitted.
func processCPU() time.Duration { return 0 }
