//go:build !unix

package delivery_test

import "time"

// processCPU is not measured here: BenchmarkDrain reports no CPU figures.
func processCPU() time.Duration { return 0 }
