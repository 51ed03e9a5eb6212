//go:build linux

package spool

import (
	"io"
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

// writeAt writes bufs back to back at off with pwritev: one system call for
// a whole commit (up to IOV_MAX chunks). It consumes bufs (the slice
// headers, not the bytes).
func writeAt(f *os.File, bufs [][]byte, off int64) error {
	const iovMax = 1024
	fd := int(f.Fd())
	for len(bufs) > 0 {
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), iovMax)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
	}
	return nil
}
