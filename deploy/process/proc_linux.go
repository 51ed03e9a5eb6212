package process

import (
	"os"
	"syscall"
)

// sysProcAttr puts the program in its own process group and has the kernel
// send it SIGTERM if the supervisor dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
