package loadgen

import (
	"syscall"
	"time"
)

// fineSleep blocks the calling thread in nanosleep, which wakes within tens of microseconds instead
// of the runtime timer's millisecond. It may return early (EINTR); the sleeper copes.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
