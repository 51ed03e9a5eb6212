package devstack

import (
	"os"
	"syscall"
)

// sysProcAttr puts a service in its own process group, so a Ctrl-C in the
// terminal reaches devstack only, and devstack stops services in order. If
// devstack itself dies, the kernel sends the service SIGTERM.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
