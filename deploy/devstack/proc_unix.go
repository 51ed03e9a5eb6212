//go:build unix && !linux

package devstack

import (
	"os"
	"syscall"
)

// sysProcAttr puts a service in its own process group, so a Ctrl-C in the
// terminal reaches devstack only, and devstack stops services in order.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
