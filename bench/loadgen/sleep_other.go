//go:build !linux

package loadgen

import "time"

// fineSleep falls back to the runtime timer where nanosleep is not wired up. On macOS that timer is
// precise already (kqueue takes nanoseconds); elsewhere pacing may be coarser, and Result.Late says so.
func fineSleep(d time.Duration) { time.Sleep(d) }
