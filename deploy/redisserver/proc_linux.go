package redisserver

import (
	"os"
	"syscall"
)

// sysProcAttr keeps a terminal's Ctrl-C from reaching the server before
// Stop does, and has the kernel kill the server if the process that
// started it dies without calling Stop (a test binary killed by its
// timeout), so none is left running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
