//go:build !unix

package client

import "time"

// processCPU is not available here; the CPU-time ratios are then omitted.
func processCPU() time.Duration { return 0 }
