//go:build !unix

package process

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// terminate kills: there is no SIGTERM to send here.
func terminate(p *os.Process) error { return p.Kill() }
