//go:build linux

package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data (and the size needed to read it back) durable
// without flushing the other metadata (mtime), which a commit does not need.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
