//go:build unix && !linux

package process

import (
	"os"
	"syscall"
)

// sysProcAttr puts the program in its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
