//go:build unix && !linux

package redisserver

import (
	"os"
	"syscall"
)

// sysProcAttr keeps a terminal's Ctrl-C from reaching the server before
// Stop does.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
